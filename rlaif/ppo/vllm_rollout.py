"""PPO rollouts from a vLLM server (`generation.backend: vllm`), in place of `sample_responses`.

    sync     the policy's LoRA adapter as it is now (after the last update) is written to a fresh
             folder and loaded under a fresh name; the previous adapter is unloaded. So the step
             that generates uses the weights of the step before it, and a name is never reused
             (vLLM's prefix cache is kept per adapter).
    sample   one completion request per prompt on the same left-truncated token ids the hf path
             builds (`tokenize_queries`, chat template applied by rlaif), a seed per request drawn
             from torch's RNG (so a resumed run draws the same seeds), stopping at the model's EOS
             ids after `min_new_tokens`; -> a `Responses` batch as `sample_responses` returns it
             (the EOS rule applied, states None: the trainer computes the old logprobs itself),
             plus the sampler's own logprobs of each token for the mismatch metrics.

The server is rlaif's own (started on first use, stopped by `close`; `rlaif.engines`), or the
one at `generation.vllm.url`. Not yet: a full fine-tune (no weight sync), several processes,
seq2seq policies; each is refused with the reason.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rlaif.config import RunConfig
from rlaif.config_generation import VLLM_LORA_RANKS
from rlaif.engines.vllm_client import Completion, EngineError, VLLMClient
from rlaif.engines.vllm_server import ServerSpec, VLLMServer
from rlaif.engines.vllm_setup import VLLMUnavailable, cpu_problem, find_vllm_python, has_nvidia_gpu
from rlaif.models.generate import cut_at_eos, tokenize_queries
from rlaif.models.load import load_base_model
from rlaif.ppo.rollout import Responses

logger = logging.getLogger(__name__)

SEED_LIMIT = 2**31 - 1
CONFIG_FILE = "config.json"  # a transformers model folder vLLM can serve as it is


def vllm_sampling_params(config: RunConfig, eos_ids: Sequence[int]) -> dict[str, Any]:
    """The /v1/completions sampling fields for the run's generation settings (top_k 0 = off in
    both; greedy = temperature 0)."""
    gen = config.generation
    params: dict[str, Any] = {"max_tokens": gen.max_new_tokens, "min_tokens": gen.min_new_tokens,
                              "stop_token_ids": sorted(eos_ids), "skip_special_tokens": False}
    if gen.do_sample:
        params.update(temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k)
    else:
        params.update(temperature=0.0)
    return params


def server_lora_rank(r: int) -> int:
    """The smallest LoRA rank vLLM accepts (`--max-lora-rank`) that holds rank `r`."""
    return min(rank for rank in VLLM_LORA_RANKS if rank >= r)


def pack_completions(completions: Sequence[Completion], eos_ids: Sequence[int], pad_token_id: int,
                     device: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replies -> (response_ids, response_mask, sampler_logprobs), each (B, R): cut after the
    first EOS (kept, as the hf path keeps it), padded on the right with `pad_token_id` (ids),
    0 (mask) and 0.0 (logprobs). The mask comes from the lengths, never from the pad id, which
    may itself be an EOS id."""
    rows = [cut_at_eos(c.token_ids, set(eos_ids)) for c in completions]
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (B, R)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, R)
    sampler_logprobs = torch.zeros((len(rows), width), dtype=torch.float32)  # (B, R)
    for i, (row, completion) in enumerate(zip(rows, completions)):
        n = len(row)
        ids[i, :n] = torch.tensor(row, dtype=torch.long)
        mask[i, :n] = 1
        sampler_logprobs[i, :n] = torch.tensor(completion.logprobs[:n], dtype=torch.float32)
    return ids.to(device), mask.to(device), sampler_logprobs.to(device)


class VLLMRollouts:
    """The vLLM side of a PPO run: weight sync and sampling (see the module docstring)."""

    def __init__(self, config: RunConfig, *, eos_ids: Sequence[int], pad_token_id: int,
                 max_model_len: int | None, num_processes: int = 1, is_seq2seq: bool = False) -> None:
        if num_processes > 1:
            raise ValueError(
                f"generation.backend='vllm' runs one vLLM server for one trainer process, and this "
                f"run has {num_processes}; several processes are not supported yet: run one "
                "process, or use generation.backend=hf")
        if is_seq2seq:
            raise ValueError(
                f"generation.backend='vllm' serves decoder-only models, and {config.model.name_or_path} "
                "is an encoder-decoder (seq2seq) model: use generation.backend=hf")
        if config.model.lora is None:  # RunConfig refuses it too; a hand-built config may not
            raise ValueError("generation.backend='vllm' needs model.lora (the weight sync is a "
                             "LoRA adapter); set model.lora, or use generation.backend=hf")
        self.config = config
        self.eos_ids = sorted(eos_ids)
        self.pad_token_id = pad_token_id
        self.max_model_len = max_model_len
        self.params = vllm_sampling_params(config, self.eos_ids)
        self._workdir: Path | None = None
        self.server: VLLMServer | None = None
        self.client: VLLMClient | None = None
        self.adapter: str | None = None  # the adapter's name on the server now
        self.adapter_dir: Path | None = None
        self.keep_log = False  # the server failed: `close` leaves its log in the work folder
        self.syncs = 0
        self.run_tag = uuid.uuid4().hex[:8]  # adapter names unique on a shared server too

    @property
    def workdir(self) -> Path:
        """A temporary folder (made on first use) for the server's log, adapters and base model."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="rlaif-vllm-"))
        return self._workdir

    # ------------------------------------------------------------------ the server

    def connect(self, policy: Any) -> VLLMClient:
        """The client of the run's server: `generation.vllm.url`, or a server started now on
        the policy's base model (once; later calls return the same client)."""
        if self.client is not None:
            return self.client
        settings = self.config.generation.vllm
        if settings.url:
            client = VLLMClient(settings.url, timeout_s=settings.request_timeout_s)
            if not client.healthy():
                raise EngineError(f"the vLLM server at generation.vllm.url={settings.url} does not "
                                  "answer /health; start it, or unset the url to let rlaif start one")
            self.client = client
            return client
        if not has_nvidia_gpu() and (problem := cpu_problem()):
            raise VLLMUnavailable(f"generation.backend='vllm' cannot start a server here: {problem}")
        python = find_vllm_python(settings.python)
        spec = ServerSpec(
            model=self._base_folder(policy), python=str(python), dtype=self._dtype(),
            max_lora_rank=server_lora_rank(self.config.model.lora.r), max_model_len=self.max_model_len,
            seed=self.config.ppo.seed, kv_cache_gb=settings.kv_cache_gb,
            start_timeout_s=settings.start_timeout_s, request_timeout_s=settings.request_timeout_s,
            extra_args=["--skip-tokenizer-init", *settings.extra_args])
        logger.info("starting the vLLM server (%s) on %s", python, spec.model)
        try:
            self.server = VLLMServer.start(spec, log_dir=self.workdir)
        except BaseException:
            self.keep_log = True
            raise
        self.client = self.server.client
        logger.info("vLLM server ready at %s (log %s)", self.server.url, self.server.log_path)
        return self.client

    def _dtype(self) -> str:
        """The server's dtype: generation.vllm.dtype, else the policy's (model.dtype; float32)."""
        return self.config.generation.vllm.dtype or self.config.model.dtype or "float32"

    def _base_folder(self, policy: Any) -> str:
        """A transformers folder of the policy's base model (no adapter): its own folder when it
        is one, else (a .gguf file, a hub id) written once, as safetensors, into the work folder."""
        source = Path(policy.name_or_path)
        if (source / CONFIG_FILE).is_file():
            return str(source)
        out = self.workdir / "base"
        logger.info("writing the base model %s as a folder vLLM can serve: %s", source, out)
        model = load_base_model(policy.name_or_path, revision=policy.revision)
        model.save_pretrained(out)
        del model
        return str(out)

    # ------------------------------------------------------------------ one step

    def sync(self, policy: Any) -> str:
        """Load the policy's current LoRA adapter on the server under a fresh name (and unload the
        previous one); returns the name rollouts are sampled with."""
        client = self.connect(policy)
        self.syncs += 1
        name = f"rlaif-{self.run_tag}-{self.syncs}"
        folder = self.workdir / "adapters" / name
        policy.model.save_pretrained(folder)  # peft: adapter_config.json + adapter weights only
        client.load_adapter(name, str(folder))
        if self.adapter is not None:
            client.unload_adapter(self.adapter)
            shutil.rmtree(self.adapter_dir, ignore_errors=True)
        self.adapter, self.adapter_dir = name, folder
        return name

    def sample(self, tokenizer: Any, prompts: Sequence[str], *, max_prompt_tokens: int, device: Any,
               chat: bool = False, system_prompt: str | None = None) -> Responses:
        """One reply per prompt from the adapter last `sync`ed, as a `Responses` batch."""
        if self.client is None or self.adapter is None:
            raise RuntimeError("VLLMRollouts.sample before sync: call sync(policy) first")
        query_ids, query_mask = tokenize_queries(tokenizer, prompts, max_prompt_tokens, device,
                                                 chat=chat, system_prompt=system_prompt)  # (B, Q)
        prompt_ids = [ids[mask.bool()].tolist() for ids, mask in zip(query_ids.cpu(), query_mask.cpu())]
        seeds = torch.randint(0, SEED_LIMIT, (len(prompt_ids),)).tolist()  # torch's RNG: resumable
        completions = self.client.complete_batch(self.adapter, prompt_ids, self.params, seeds)
        response_ids, response_mask, sampler_logprobs = pack_completions(
            completions, self.eos_ids, self.pad_token_id, device)
        return Responses(query_ids, query_mask, response_ids, response_mask, states=None,
                         sampler_logprobs=sampler_logprobs)

    def close(self) -> None:
        """Stop rlaif's server (a server at generation.vllm.url keeps running, its adapter
        unloaded) and remove the work folder; the server's log stays when it had died (the
        error that said so names it)."""
        if self.server is not None and self.server.process.poll() is not None:
            self.keep_log = True  # it died: keep the log its error named
        try:
            if self.server is not None:
                self.server.stop()
            elif self.client is not None and self.adapter is not None:
                try:
                    self.client.unload_adapter(self.adapter)
                except Exception as exc:  # noqa: BLE001 - closing must not hide the run's own error
                    logger.warning("could not unload the adapter %s: %s", self.adapter, exc)
        finally:
            self.server = self.client = self.adapter = None
            if self._workdir is not None:
                for folder in ((self._workdir / "adapters", self._workdir / "base") if self.keep_log
                               else (self._workdir,)):
                    shutil.rmtree(folder, ignore_errors=True)
                if not self.keep_log:
                    self._workdir = None
