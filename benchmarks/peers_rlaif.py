"""Peer worker (c): rlaif's PPOTrainer, driven step by step by `peers.py` over `_protocol`.

Same model folder, LoRA (r 16, alpha 32, q_proj + v_proj), prompts (plain HH dialogues,
rendered through the chat template by rlaif), batch, minibatch, sampling and response length
as the TRL sides. The reward is either the shared seeded reward model (a classifier judge on
prompt + response, its single logit) or a named judge (`--judge profanity-check`).

Timing comes from the trainer's own step metrics (time/generate, time/reward, and the rest of the step).
Side (e) (`--backend vllm`, `peers_vllm.py`): rollouts from a vLLM engine; its "generate" is
time/generate + time/weight_sync. With `--async-rollout` every step takes the stream's next
batch (the one the engine sampled during the last step) and, before answering, waits for the
engine to finish sampling the next one, counting that wait in "generate": the step then costs
what a step of an uninterrupted run costs (the next batch's sampling hidden behind this
step's update only as far as the update lasts), and no sampling runs on into another side's
turn.
For the MFU figure, `_update` (the PPO epochs only, not the rollout forwards) is timed on
every step, and on the first (warm-up) step its floating-point operations are counted with
`torch.utils.flop_counter.FlopCounterMode` (every matmul and attention kernel the forward and
backward ran, LoRA and the frozen-head logprobs included); shapes repeat step to step, as
every response has the same length and the prompts are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _protocol import (
    emit,
    next_command,
    peak_gpu_mb,
    peak_rss_mb,
    rss_mb,
    setup_threads,
    sync,
    worker_parser,
)
from peers_vllm import server_pid, start_engine, tree_rss_mb


def run_config(args: argparse.Namespace, run_dir: str) -> Any:
    """The rlaif run config for the benchmark's settings."""
    from rlaif.config import load_config

    cuda = args.device != "cpu"
    generation: dict[str, Any] = {"min_new_tokens": args.min_new_tokens, "max_new_tokens": args.new_tokens,
                                  "top_k": 0, "top_p": 1.0, "temperature": args.temperature, "do_sample": True}
    ppo: dict[str, Any] = {}
    if getattr(args, "backend", "hf") == "vllm":  # side (e); scripts/gpu/checks.py's vLLM check
        generation["backend"] = "vllm"
        generation["vllm"] = {"engine": getattr(args, "vllm_engine", "auto"),
                              "sync": getattr(args, "vllm_sync", "auto"),
                              "dtype": getattr(args, "vllm_dtype", None) or args.dtype}
        ppo = {"async_rollout": bool(getattr(args, "async_rollout", False)),
               "tis_cap": getattr(args, "tis_cap", None)}
    return load_config(data={
        "model": {"name_or_path": args.policy,
                  "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}},
        "judge": {"ref": "profanity-check"},
        "data": {"task": "chat", "max_prompt_tokens": 96},
        "ppo": {"batch_size": args.batch, "mini_batch_size": args.mini_batch, "ppo_epochs": args.epochs,
                "steps": 100_000, "learning_rate": args.lr, "kl": {"kind": "fixed", "kl_coef": 0.05},
                "vf_coef": 0.1, "seed": 0, "share_prefix": not getattr(args, "no_share_prefix", False),
                **ppo},
        "generation": generation,
        "output": {"dir": run_dir},
        "accelerate": {"cpu": not cuda,
                       "mixed_precision": "bf16" if args.dtype == "bfloat16" else "no"},
    })


def build_judge(args: argparse.Namespace) -> Any:
    """The shared reward model as a classifier judge, or the named judge."""
    from rlaif.judges.registry import build_judge as build

    if args.judge:
        return build(args.judge)
    return build({"type": "classifier", "name": "seeded-reward", "model": args.reward,
                  "label": None, "output": "logit", "input": "prompt_response",
                  "device": args.device, "batch_size": args.batch})


def main() -> None:
    """Build the rlaif trainer and run steps on command."""
    p = worker_parser("peer worker (c): rlaif PPO")
    p.add_argument("--judge", help="a judge name instead of the reward model (learning part)")
    p.add_argument("--min-new-tokens", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--count-flops", action="store_true")
    p.add_argument("--no-share-prefix", action="store_true", help="ppo.share_prefix=false (the lever off)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="generation.backend")
    p.add_argument("--vllm-engine", default="auto", help="generation.vllm.engine")
    p.add_argument("--vllm-sync", default="auto", help="generation.vllm.sync")
    p.add_argument("--vllm-dtype", default=None, help="generation.vllm.dtype (default --dtype)")
    p.add_argument("--async-rollout", action="store_true", help="ppo.async_rollout=true")
    p.add_argument("--tis-cap", type=float, default=None, help="ppo.tis_cap")
    args = p.parse_args()
    setup_threads(args.threads)

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rlaif.ppo.trainer import PPOTrainer

    baseline = rss_mb()
    prompts = json.loads(Path(args.prompts).read_text())
    trainer = PPOTrainer.build(run_config(args, tempfile.mkdtemp(prefix="peers-rlaif-")), prompts,
                         judge=build_judge(args))
    update_times: list[float] = []
    flops: dict[str, float] = {}
    plain_update = trainer._update

    def timed_update(rollout: Any) -> Any:
        if args.count_flops and not flops:
            with FlopCounterMode(display=False) as counter:
                out = plain_update(rollout)
            flops["update"] = float(counter.get_total_flops())
            flops["tokens"] = float((rollout.query_mask.sum() + rollout.response_mask.sum()) * args.epochs)
            return out
        sync()
        t0 = time.perf_counter()
        out = plain_update(rollout)
        sync()
        update_times.append(time.perf_counter() - t0)
        return out

    trainer._update = timed_update
    engine_s = 0.0
    if args.backend == "vllm":  # the engine starts before the first step (not in its time)
        t0 = time.perf_counter()
        start_engine(trainer)
        engine_s = time.perf_counter() - t0
    emit({"ready": True, "baseline_rss_mb": baseline, "rss_mb": rss_mb(), "engine_start_s": engine_s,
          "versions": {"torch": torch.__version__}})
    server_peak = 0.0
    try:
        while next_command() == "step":
            # async: the stream's next batch, which the engine sampled during the last step
            batch = None if args.async_rollout else trainer.next_prompts() if args.judge else prompts[: args.batch]
            sync()
            t0 = time.perf_counter()
            m = trainer.step(batch)
            drained = drain(trainer)
            sync()
            seconds = time.perf_counter() - t0
            generate = m["time/generate"] + m.get("time/weight_sync", 0.0) + drained
            if (pid := server_pid(trainer)) is not None:
                server_peak = max(server_peak, tree_rss_mb(pid))
            tokens = round(m["response/length"] * args.batch)
            emit({"step": seconds, "generate": generate, "reward": m["time/reward"],
                  "update": seconds - generate - m["time/reward"], "samples": args.batch,
                  "tokens": tokens, "reward_mean": m["reward/mean"], "kl": m["objective/kl"],
                  "sampler_kl": m.get("rollout/sampler_kl"), "stale": m.get("rollout/stale"),
                  "server_rss_mb": server_peak or None,
                  "ppo_update": update_times[-1] if update_times else None, "flops": dict(flops),
                  "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb()})
    finally:
        trainer.close_rollouts()
    emit({"final": True, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
          "server_rss_mb": server_peak or None})


def drain(trainer: Any) -> float:
    """ppo.async_rollout: wait until the engine has sampled the batch it started for the next
    step; the seconds waited (0 without one)."""
    pending = getattr(getattr(trainer, "rollouts", None), "pending", None)
    if pending is None:
        return 0.0
    t0 = time.perf_counter()
    pending.future.result()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
