"""PPO rollouts from a vLLM engine (`generation.backend: vllm`), in place of `sample_responses`.

    sync     the policy as it is now (after the last update) reaches the engine: sync=weights
             writes the tensors training changed (`models/synced_weights.py`: LoRA merged into
             its layers, or a full fine-tune's weights) and the engine reloads them in place;
             sync=adapter writes the LoRA adapter and loads it under a fresh name (the previous
             one unloaded; a name is never reused, as vLLM keeps its prefix cache per adapter).
             So the step that generates uses the weights of the step before it.
    sample   one completion request per prompt on the same left-truncated token ids the hf path
             builds (`tokenize_queries`, chat template applied by rlaif), a seed per request drawn
             from torch's RNG (so a resumed run draws the same seeds), stopping at the model's EOS
             ids after `min_new_tokens`; -> a `Responses` batch as `sample_responses` returns it
             (the EOS rule applied, states None: the trainer computes the old logprobs itself),
             plus the sampler's own logprobs of each token for the mismatch metrics.
    rollout  sync + sample for one step; with ppo.async_rollout it returns the batch sampled
             during the step before (from the weights one step older) and starts sampling the
             next batch now, so the engine generates while the trainer updates.

The engine (`vllm_connect.py`) is a server rlaif starts, one at `generation.vllm.url`, or
vllm.LLM in this process; opened on first use, stopped by `close`. Not yet: several processes,
seq2seq policies; each is refused with the reason.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlaif.config import RunConfig
from rlaif.engines.generate import SEED_LIMIT, engine_params
from rlaif.engines.vllm_client import Completion
from rlaif.engines.vllm_server import SERVED_NAME
from rlaif.models.generate import cut_at_eos, tokenize_queries
from rlaif.models.synced_weights import save_synced
from rlaif.ppo.rollout import Responses
from rlaif.engines.start import Engine
from rlaif.ppo.vllm_connect import engine_dtype, open_engine

logger = logging.getLogger(__name__)



def vllm_sampling_params(config: RunConfig, eos_ids: Sequence[int]) -> dict[str, Any]:
    """The /v1/completions sampling fields for the run's generation settings."""
    return engine_params(config.generation.generate_kwargs(), eos_ids)


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


@dataclass
class Pending:
    """A batch the engine is sampling for a later step (ppo.async_rollout)."""

    prompts: list[str]
    future: Future


class VLLMRollouts:
    """The vLLM side of a PPO run: weight sync and sampling (see the module docstring)."""

    def __init__(self, config: RunConfig, *, eos_ids: Sequence[int], pad_token_id: int,
                 max_model_len: int | None, num_processes: int = 1, is_seq2seq: bool = False) -> None:
        if num_processes > 1:
            raise ValueError(
                f"generation.backend='vllm' runs one vLLM engine for one trainer process, and this "
                f"run has {num_processes}; several processes are not supported yet: run one "
                "process, or use generation.backend=hf")
        if is_seq2seq:
            raise ValueError(
                f"generation.backend='vllm' serves decoder-only models, and {config.model.name_or_path} "
                "is an encoder-decoder (seq2seq) model: use generation.backend=hf")
        self.sync_mode = config.generation.vllm.sync_mode()
        if self.sync_mode == "adapter" and config.model.lora is None:  # RunConfig refuses it too
            raise ValueError("generation.vllm.sync='adapter' needs model.lora; a full fine-tune "
                             "syncs its weights: use generation.vllm.sync=weights")
        self.config = config
        self.eos_ids = sorted(eos_ids)
        self.pad_token_id = pad_token_id
        self.max_model_len = max_model_len
        self.params = vllm_sampling_params(config, self.eos_ids)
        self._workdir: Path | None = None
        self.engine: Engine | None = None
        self.model: str | None = None  # what requests name: the base model, or the adapter now
        self.adapter_dir: Path | None = None
        self.keep_log = False  # the engine failed: `close` leaves its log in the work folder
        self.syncs = 0
        self.run_tag = uuid.uuid4().hex[:8]  # adapter names unique on a shared server too
        self.pending: Pending | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def workdir(self) -> Path:
        """A temporary folder (made on first use) for the server's log, synced weights and the
        base model."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="rlaif-vllm-"))
        return self._workdir

    @property
    def client(self) -> Any:
        """The open engine's client (VLLMClient's methods), or None before `connect`."""
        return self.engine.client if self.engine is not None else None

    def connect(self, policy: Any) -> Any:
        """The run's engine (opened on first use; `vllm_connect.open_engine`); its client."""
        if self.engine is None:
            try:
                self.engine = open_engine(self.config, policy, self.workdir, self.max_model_len)
            except BaseException:
                self.keep_log = True
                raise
        return self.engine.client

    # ------------------------------------------------------------------ one step

    def sync(self, policy: Any) -> str:
        """Put the policy's current weights on the engine; returns the model name requests use."""
        client = self.connect(policy)
        self.syncs += 1
        if self.sync_mode == "weights":
            path = self.workdir / f"weights-{self.syncs}.safetensors"
            dtype = getattr(torch, engine_dtype(self.config))  # the file in the engine's dtype
            try:
                save_synced(policy.model, path, dtype)
                client.update_weights(str(path))
            finally:
                path.unlink(missing_ok=True)
            self.model = SERVED_NAME
            return self.model
        name = f"rlaif-{self.run_tag}-{self.syncs}"
        folder = self.workdir / "adapters" / name
        policy.model.save_pretrained(folder)  # peft: adapter_config.json + adapter weights only
        client.load_adapter(name, str(folder))
        if self.model is not None and self.model != SERVED_NAME:
            client.unload_adapter(self.model)
            shutil.rmtree(self.adapter_dir, ignore_errors=True)
        self.model, self.adapter_dir = name, folder
        return name

    def start_sample(self, tokenizer: Any, prompts: Sequence[str], *, max_prompt_tokens: int,
                     device: Any, chat: bool = False, system_prompt: str | None = None) -> Future:
        """Start sampling one reply per prompt from the weights last `sync`ed (seeds drawn now,
        from torch's RNG); the future's result is a `Responses` batch."""
        if self.client is None or self.model is None:
            raise RuntimeError("VLLMRollouts.sample before sync: call sync(policy) first")
        query_ids, query_mask = tokenize_queries(tokenizer, prompts, max_prompt_tokens, device,
                                                 chat=chat, system_prompt=system_prompt)  # (B, Q)
        prompt_ids = [ids[mask.bool()].tolist() for ids, mask in zip(query_ids.cpu(), query_mask.cpu())]
        seeds = torch.randint(0, SEED_LIMIT, (len(prompt_ids),)).tolist()  # torch's RNG: resumable
        client, model = self.client, self.model

        def run() -> Responses:
            completions = client.complete_batch(model, prompt_ids, self.params, seeds)
            response_ids, response_mask, sampler_logprobs = pack_completions(
                completions, self.eos_ids, self.pad_token_id, device)
            return Responses(query_ids, query_mask, response_ids, response_mask, states=None,
                             sampler_logprobs=sampler_logprobs)

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlaif-vllm")
        return self._pool.submit(run)

    def sample(self, tokenizer: Any, prompts: Sequence[str], **kwargs: Any) -> Responses:
        """One reply per prompt from the weights last `sync`ed, as a `Responses` batch."""
        return self.start_sample(tokenizer, prompts, **kwargs).result()

    def rollout(self, policy: Any, tokenizer: Any, prompts: Sequence[str], *,
                next_prompts: Sequence[str] | None, times: dict[str, float],
                **sample_kwargs: Any) -> tuple[Responses, bool]:
        """This step's batch and whether it is one step stale: the batch sampled during the
        last step when it was for these prompts (ppo.async_rollout), else sampled now after a
        sync. With `next_prompts`, sampling them starts before returning (from the weights as
        they are now). `times` gets time/generate (waiting on the engine) and time/weight_sync."""
        pending, self.pending = self.pending, None
        start = time.perf_counter()
        batch = pending.future.result() if pending is not None else None  # before any sync
        if batch is not None and pending.prompts != list(prompts):
            batch = None  # sampled for other prompts (step() was given its own)
        waited = time.perf_counter() - start
        start = time.perf_counter()
        self.sync(policy)
        times["time/weight_sync"] = time.perf_counter() - start
        stale = batch is not None
        if batch is None:
            start = time.perf_counter()
            batch = self.sample(tokenizer, prompts, **sample_kwargs)
            waited += time.perf_counter() - start
        times["time/generate"] = waited
        if next_prompts:
            self.pending = Pending(list(next_prompts),
                                   self.start_sample(tokenizer, next_prompts, **sample_kwargs))
        return batch, stale

    def close(self) -> None:
        """Stop the engine rlaif started (a server at generation.vllm.url keeps running, its
        adapter unloaded) and remove the work folder; the server's log stays when it had died
        (the error that said so names it)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.future.cancel()
            try:
                pending.future.result()  # let a running request finish before the engine stops
            except BaseException:  # noqa: BLE001 - its batch is dropped; closing must go on
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        engine, self.engine = self.engine, None
        if engine is not None and engine.died():
            self.keep_log = True  # it died: keep the log its error named
        try:
            if engine is not None and engine.kind == "url":
                if self.model is not None and self.model != SERVED_NAME:
                    try:
                        engine.client.unload_adapter(self.model)
                    except Exception as exc:  # noqa: BLE001 - closing must not hide the run's own error
                        logger.warning("could not unload the adapter %s: %s", self.model, exc)
            elif engine is not None:
                engine.close()
        finally:
            self.model = None
            if self._workdir is not None:
                for folder in ((self._workdir / "adapters", self._workdir / "base") if self.keep_log
                               else (self._workdir,)):
                    shutil.rmtree(folder, ignore_errors=True)
                if not self.keep_log:
                    self._workdir = None
