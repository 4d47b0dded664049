"""Drives `rlaif.engines.vllm_inprocess.InProcessEngine` inside vLLM's own environment, for
tests/test_vllm_inprocess.py (rlaif's environment has no vllm): reads a plan (JSON), writes
what the engine answered (JSON); the test compares it with transformers.

    python tests/vllm_inprocess_driver.py PLAN OUT      (PYTHONPATH: the checkout)

Plan: model (folder), prompts (token ids), full (safetensors of changed weights), adapter (a
peft folder), new_tokens, temperature. Two engines, one after the other:

    plain   no LoRA: greedy replies and their prefill logprobs; seeded samples (the same seed
            twice, in a batch and alone; another seed); update_weights(full), then greedy and
            logprobs again; load_adapter refused; close (no engine process left)
    lora    max_lora_rank 8: the adapter under a name, greedy and logprobs with it and with
            the base model; unload, then the name is refused
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def scored(engine: Any, model: str, prompts: list[list[int]], replies: list[list[int]]) -> list[list[float]]:
    """Each reply's tokens' prefill logprobs after its prompt."""
    return [engine.prompt_logprobs(model, p + r)[len(p):] for p, r in zip(prompts, replies)]


def refused(call: Any) -> str:
    """The message of the `EngineError` `call()` raises ('' when it raises none)."""
    from rlaif.engines.vllm_client import EngineError

    try:
        call()
    except EngineError as exc:
        return str(exc)
    return ""


def children() -> list[str]:
    """The names of this process's live descendants (vLLM's engine core and workers), less
    multiprocessing's resource tracker (it lives as long as this process)."""
    import psutil

    names = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                names.append(p.name())
        except psutil.NoSuchProcess:
            continue
    return names


def main(plan_path: str, out_path: str) -> None:
    from rlaif.engines.vllm_inprocess import InProcessEngine
    from rlaif.engines.vllm_server import SERVED_NAME, ServerSpec

    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    prompts, n = plan["prompts"], plan["new_tokens"]
    greedy = {"max_tokens": n, "min_tokens": n, "temperature": 0.0}
    sample = {"max_tokens": n, "min_tokens": n, "temperature": plan["temperature"], "top_p": 1.0,
              "top_k": 0, "skip_special_tokens": False, "stop_token_ids": []}
    out: dict[str, Any] = {}
    def spec(max_lora_rank: int | None) -> ServerSpec:  # as rlaif's PPO builds it
        return ServerSpec(model=plan["model"], python="", dtype="float32", max_lora_rank=max_lora_rank,
                          max_model_len=256, seed=0, kv_cache_gb=1,
                          extra_args=["--skip-tokenizer-init", "--max-num-seqs", "16"])

    began = time.monotonic()
    engine = InProcessEngine.start(spec(None))
    out["start_s"] = time.monotonic() - began
    out["healthy"] = engine.healthy()
    out["models"] = engine.models()
    seeds = [11, 12, 13, 14][:len(prompts)]
    base = [c.token_ids for c in engine.complete_batch(SERVED_NAME, prompts, greedy, [0] * len(prompts))]
    out["base_greedy"], out["base_scored"] = base, scored(engine, SERVED_NAME, prompts, base)
    first = engine.complete_batch(SERVED_NAME, prompts, sample, seeds)
    again = engine.complete_batch(SERVED_NAME, prompts, sample, seeds)
    alone = engine.complete(SERVED_NAME, prompts[1], sample, seeds[1])
    other = engine.complete_batch(SERVED_NAME, prompts, sample, [s + 100 for s in seeds])
    out["sampled"] = [c.token_ids for c in first]
    out["sampled_logprobs"] = [c.logprobs for c in first]
    out["sampled_finish"] = [c.finish_reason for c in first]
    out["sampled_again"] = [c.token_ids for c in again]
    out["sampled_alone"] = alone.token_ids
    out["sampled_other_seeds"] = [c.token_ids for c in other]
    out["update_count"] = engine.update_weights(plan["full"])
    full = [c.token_ids for c in engine.complete_batch(SERVED_NAME, prompts, greedy, [0] * len(prompts))]
    out["full_greedy"], out["full_scored"] = full, scored(engine, SERVED_NAME, prompts, full)
    out["weight_sums"] = engine.weight_sums()
    out["no_lora_refusal"] = refused(lambda: engine.load_adapter("a", plan["adapter"]))
    out["unknown_model_refusal"] = refused(lambda: engine.complete(
        "nope", prompts[0], greedy, 0))
    out["children_open"] = children()
    engine.close()
    engine.close()  # twice: a no-op
    deadline = time.monotonic() + 30
    while children() and time.monotonic() < deadline:
        time.sleep(0.2)
    out["children_closed"] = children()
    out["healthy_closed"] = engine.healthy()
    out["closed_refusal"] = refused(lambda: engine.complete(SERVED_NAME, prompts[0], greedy, 0))

    with InProcessEngine.start(spec(8)) as lora:
        lora.load_adapter("policy-1", plan["adapter"])
        out["lora_models"] = lora.models()
        adapted = [c.token_ids for c in lora.complete_batch("policy-1", prompts, greedy, [0] * len(prompts))]
        out["lora_greedy"], out["lora_scored"] = adapted, scored(lora, "policy-1", prompts, adapted)
        plain = [c.token_ids for c in lora.complete_batch(SERVED_NAME, prompts, greedy, [0] * len(prompts))]
        out["lora_base_greedy"] = plain
        out["taken_refusal"] = refused(lambda: lora.load_adapter("policy-1", plan["adapter"]))
        out["bad_adapter_refusal"] = refused(lambda: lora.load_adapter("policy-2", plan["model"] + "/nope"))
        lora.unload_adapter("policy-1")
        out["unloaded_refusal"] = refused(lambda: lora.complete("policy-1", prompts[0], greedy, 0))
    out["total_s"] = time.monotonic() - began
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
