"""`rlaif demo`: the offline detoxification demo on the bundled HH sample (README's main command)."""

from __future__ import annotations

import argparse

HELP = ("offline end-to-end demo: PPO detoxifies SmolLM2-135M-Instruct on real red-team requests "
        "(reward: harmlessness + relevance), measured on held-out conversations by different judges "
        "(toxicity, helpfulness, fluency, diversity, floors); --seeds N for the spread; --toy for GPT-2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rlaif demo`."""
    parser.add_argument("--out", default="runs/demo",
                        help="run folder for checkpoints, metrics and the report (default runs/demo)")
    parser.add_argument("--steps", type=int, default=None,
                        help="PPO steps (default: configs/demo.yaml's ppo.steps)")
    parser.add_argument("--fast", action="store_true",
                        help="a smaller run (fewer PPO steps and hold-out prompts) for a quick look")
    parser.add_argument("--toy", action="store_true",
                        help="the toy demo: a 1M-parameter GPT-2 and a RoBERTa evaluator trained "
                        "from scratch on the sample (seconds per step; for tests and quick looks)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="run PPO with seeds 0..N-1 (into OUT/seed-<s>/) and report each seed "
                        "and the spread (OUT/seeds.md); the before side is computed once")
    parser.add_argument("--resume", action="store_true",
                        help="continue a stopped demo in --out (each seed from its latest checkpoint)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo in --out (its files go; other files stay)")
    parser.add_argument("--config", default=None,
                        help="run config to use instead of configs/demo.yaml")
    parser.add_argument("--cache-dir", default=None,
                        help="where the demo's models are cached (default $RLAIF_CACHE or "
                        "~/.cache/rlaif)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. ppo.kl.kl_coef=0.1")


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 when the report was written."""
    from rlaif.demo import run_demo

    if args.steps is not None and args.steps <= 0:
        raise ValueError(f"--steps must be > 0, got {args.steps}")
    run_demo(args.out, steps=args.steps, fast=args.fast, toy=args.toy, overrides=args.overrides,
             config_path=args.config, cache_dir=args.cache_dir, seeds=args.seeds, resume=args.resume,
             overwrite=args.overwrite)
    return 0
