"""vLLM's engine in rlaif's own process (`vllm.LLM`, TRL's "colocate"), with `VLLMClient`'s API.

The usual GPU setup: rlaif and vLLM share one environment, and the rollouts call the engine
directly instead of over HTTP. The engine is asked for what the server's command line asks
(`vllm_server.ServerSpec`): logprobs of the distribution sampled from (processed_logprobs), no
sampling defaults from generation_config.json, token ids in and out (no tokenizer), and rlaif's
worker extension (`vllm_worker/`, put on sys.path and PYTHONPATH: vLLM's engine core runs in a
process of its own) for the in-place weight sync.

    InProcessEngine.start  builds `vllm.LLM` from a `ServerSpec` (model folder, dtype, LoRA
                           rank or None, max_model_len, seed; KV cache: VLLM_CPU_KVCACHE_SPACE
                           on a CPU, kv_cache_memory_bytes on a GPU it shares with the
                           trainer; extra server flags as LLM arguments)
    load_adapter           a LoRA adapter folder under a name, loaded now (a bad folder fails
                           here); `unload_adapter` removes it from the engine
    update_weights         the worker extension's rlaif_load_weights(path) on every worker,
                           then the prefix cache reset (its KV came from the old weights)
    complete_batch         one `LLM.generate` call: token-id prompts, a seed per request, the
                           sampled tokens' ids and logprobs back
    prompt_logprobs        one prefill of a sequence: each token's logprob given those before
    close                  the engine core shut down (its process and workers end)

Imports only the standard library, and torch and vLLM when an engine starts: it also runs in
vLLM's own environment, which has none of rlaif's other dependencies.
"""

from __future__ import annotations

import gc
import itertools
import json
import multiprocessing
import os
import sys
from collections.abc import Sequence
from typing import Any

from rlaif.engines.vllm_client import Completion, EngineError, reset_prefix_cache
from rlaif.engines.vllm_server import SERVED_NAME, STOP_GRACE_S, WORKER_DIR, WORKER_EXTENSION, ServerSpec
from rlaif.engines.vllm_setup import VLLMUnavailable

GIB = 2**30


def _import_vllm() -> Any:
    """The vllm module, or `VLLMUnavailable` saying how to get it."""
    try:
        import vllm
    except ImportError as exc:
        raise VLLMUnavailable(
            f"generation.vllm.engine=inprocess needs vllm importable in rlaif's own environment "
            f"({sys.executable}): {exc}. Install vllm next to rlaif (pip install vllm, the usual "
            "GPU setup), or use generation.vllm.engine=server, which runs vLLM from its own "
            "environment (bash scripts/setup_vllm.sh)") from exc
    return vllm


def _worker_importable() -> None:
    """The worker extension's folder on sys.path and PYTHONPATH (the engine core's process)."""
    folder = str(WORKER_DIR)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *paths])


def flag_arguments(flags: Sequence[str]) -> dict[str, Any]:
    """Server flags as `vllm.LLM` arguments: `--max-num-seqs 8` -> max_num_seqs=8, a bare
    `--enforce-eager` -> True, `--no-enable-prefix-caching` -> enable_prefix_caching=False."""
    out: dict[str, Any] = {}
    items = list(flags)
    for i, flag in enumerate(items):
        if not flag.startswith("--"):
            continue
        name, has_value, value = flag[2:].partition("=")
        if not has_value and i + 1 < len(items) and not items[i + 1].startswith("--"):
            has_value, value = True, items[i + 1]
        key = name.replace("-", "_")
        if not has_value:
            out[key.removeprefix("no_")] = not key.startswith("no_")
            continue
        try:
            out[key] = json.loads(value)  # numbers, true/false, JSON objects
        except ValueError:
            out[key] = value
    return out


class InProcessEngine:
    """One `vllm.LLM` in this process; the same methods as `VLLMClient` (rollouts take either)."""

    def __init__(self, llm: Any, vllm: Any, lora: bool) -> None:
        self.llm, self.vllm, self.lora = llm, vllm, lora
        self.adapters: dict[str, Any] = {}  # name -> LoRARequest
        self._ids = itertools.count(1)  # a fresh int id per adapter loaded (vLLM keys on it)

    @classmethod
    def start(cls, spec: ServerSpec, **llm_args: Any) -> InProcessEngine:
        """Build the engine with a server spec's settings (its Python and timeouts unused; its
        extra_args, server flags, become `vllm.LLM` arguments, and `llm_args` go as they are).
        A failure is `EngineError` with vLLM's reason."""
        vllm = _import_vllm()
        import torch

        _worker_importable()
        args: dict[str, Any] = {
            "model": spec.model, "dtype": spec.dtype, "seed": spec.seed,
            "max_model_len": spec.max_model_len, "logprobs_mode": "processed_logprobs",
            "generation_config": "vllm", "skip_tokenizer_init": True,
            "worker_extension_cls": WORKER_EXTENSION, "enable_lora": bool(spec.max_lora_rank)}
        if spec.max_lora_rank:
            args.update(max_lora_rank=spec.max_lora_rank, max_loras=1, max_cpu_loras=2)
        if torch.cuda.is_available():  # the trainer shares the GPU: a KV cache of this size only
            args["kv_cache_memory_bytes"] = int(spec.kv_cache_gb * GIB)
        else:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(spec.kv_cache_gb))
        args.update(flag_arguments(spec.extra_args), **llm_args)
        try:
            llm = vllm.LLM(**args)
        except Exception as exc:
            cause = f"{exc} {exc.__cause__ or ''}"
            hint = ("; vLLM starts its engine in a spawned process, which imports your script "
                    "again: put the script's code under `if __name__ == \"__main__\":`"
                    if "bootstrapping phase" in cause or "Failed core proc" in cause else "")
            raise EngineError(f"vLLM could not start on {spec.model} in this process: "
                              f"{type(exc).__name__}: {exc}{hint}") from exc
        return cls(llm, vllm, lora=bool(spec.max_lora_rank))

    # ------------------------------------------------------------------ state

    def _engine(self) -> Any:
        if self.llm is None:
            raise EngineError("the in-process vLLM engine was closed")
        return self.llm

    def healthy(self) -> bool:
        """Whether the engine is open and its engine core not dead."""
        if self.llm is None:
            return False
        resources = getattr(self.llm.llm_engine.engine_core, "resources", None)
        return not getattr(resources, "engine_dead", False)

    def ready(self, model: str) -> bool:
        """Whether the engine is healthy and serves `model`."""
        return self.healthy() and model in self.models()

    def models(self) -> list[str]:
        """The base model's name and the adapters' names."""
        return [SERVED_NAME, *self.adapters]

    def close(self) -> None:
        """Shut the engine core down (its process and workers end); safe to call twice."""
        if self.llm is None:
            return
        llm, self.llm = self.llm, None
        self.adapters.clear()
        # a grace period (vLLM's default, 5 s, kills an engine core still waiting for its workers)
        llm.llm_engine.engine_core.shutdown(timeout=STOP_GRACE_S)
        del llm
        gc.collect()
        multiprocessing.active_children()  # reaps an engine process vLLM killed (no zombie)

    def __enter__(self) -> InProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the API

    def load_adapter(self, name: str, path: str) -> None:
        """Load the LoRA adapter folder `path` (peft's save_pretrained) under `name`."""
        if not self.lora:
            raise EngineError(f"cannot load the LoRA adapter {path} as {name!r}: the engine was "
                              "started without LoRA (max_lora_rank None)")
        if name == SERVED_NAME or name in self.adapters:
            raise EngineError(f"cannot load the LoRA adapter {path} as {name!r}: that name is "
                              "taken (adapters get a fresh name each time)")
        from vllm.lora.request import LoRARequest

        request = LoRARequest(name, next(self._ids), str(path))
        try:
            self._engine().llm_engine.add_lora(request)
        except Exception as exc:
            raise EngineError(f"vLLM refused to load the LoRA adapter {path} as {name!r}: "
                              f"{type(exc).__name__}: {exc}") from exc
        self.adapters[name] = request

    def unload_adapter(self, name: str) -> None:
        """Unload the adapter `name`."""
        request = self.adapters.pop(name, None)
        if request is None:
            raise EngineError(f"cannot unload the LoRA adapter {name!r}: none is loaded by that name")
        self._engine().llm_engine.remove_lora(request.lora_int_id)

    def collective_rpc(self, method: str, *args: str) -> list[Any]:
        """Call the worker extension's `method` on every worker; their results."""
        llm = self._engine()
        try:
            return list(llm.collective_rpc(method, args=tuple(args)))
        except Exception as exc:
            raise EngineError(f"vLLM's workers failed {method}{args!r}: {type(exc).__name__}: "
                              f"{exc} (is {WORKER_EXTENSION} importable from {WORKER_DIR}?)") from exc

    def update_weights(self, path: str) -> int:
        """Load the safetensors file `path` (checkpoint names) into the model in place, and drop
        the prefix cache the old weights computed; returns how many tensors loaded."""
        counts = self.collective_rpc("rlaif_load_weights", path)
        reset_prefix_cache(lambda: bool(self._engine().reset_prefix_cache()))
        return int(counts[0]) if counts else 0

    def weight_sums(self) -> dict[str, float]:
        """{parameter name: sum} of the model (worker 0), to check a sync (tests)."""
        return self.collective_rpc("rlaif_weight_sums")[0]

    def _generate(self, model: str, prompts: Sequence[Sequence[int]], params: list[Any]) -> list[Any]:
        """One `LLM.generate` call for token-id prompts, each with its sampling params."""
        if model != SERVED_NAME and model not in self.adapters:
            raise EngineError(f"the in-process vLLM engine serves no model {model!r} "
                              f"(it serves {self.models()})")
        llm, lora = self._engine(), self.adapters.get(model)
        inputs = [self.vllm.TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        try:
            return llm.generate(inputs, params, use_tqdm=False,
                                lora_request=[lora] * len(inputs) if lora else None)
        except Exception as exc:
            raise EngineError(f"vLLM failed to generate for {len(inputs)} prompts with "
                              f"{model!r}: {type(exc).__name__}: {exc}") from exc

    def _sampling(self, **fields: Any) -> Any:
        try:
            return self.vllm.SamplingParams.from_optional(detokenize=False, **fields)
        except Exception as exc:  # vLLM's validation error is no ValueError
            raise EngineError(f"vLLM refused the sampling parameters {fields}: {exc}") from exc

    def prompt_logprobs(self, model: str, token_ids: Sequence[int]) -> list[float | None]:
        """Each token's logprob given the ones before it (the first: None), from one prefill
        of `token_ids`: what the engine's weights say of a sequence, without its decode path."""
        params = self._sampling(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        entries = self._generate(model, [token_ids], [params])[0].prompt_logprobs or []
        return [None if not entry else float((entry.get(token) or next(iter(entry.values()))).logprob)
                for token, entry in zip(token_ids, entries)]

    def complete(self, model: str, prompt_ids: Sequence[int], params: dict[str, Any],
                 seed: int) -> Completion:
        """Sample one reply to the token ids `prompt_ids` with sampling `params` and `seed`."""
        return self.complete_batch(model, [prompt_ids], params, [seed])[0]

    def complete_batch(self, model: str, prompts: Sequence[Sequence[int]], params: dict[str, Any],
                       seeds: Sequence[int]) -> list[Completion]:
        """`complete` for every prompt, in one batch; replies in prompt order."""
        if not prompts:
            return []
        if len(seeds) != len(prompts):
            raise EngineError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        sampling = [self._sampling(**params, n=1, seed=int(s), logprobs=0) for s in seeds]
        out = []
        for result in self._generate(model, prompts, sampling):
            reply = result.outputs[0]
            token_ids = list(reply.token_ids)
            steps = reply.logprobs or []
            if len(steps) != len(token_ids):
                raise EngineError(f"vLLM returned {len(token_ids)} tokens but {len(steps)} logprobs")
            logprobs = [float(step[t].logprob) for t, step in zip(token_ids, steps)]
            out.append(Completion(token_ids, logprobs, reply.finish_reason))
        return out
