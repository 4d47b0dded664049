"""`rlaif train CONFIG [key=value ...] [--resume [DIR]] [--out DIR]`: PPO with any judge.

The run folder (`output.dir`, or `--out`) receives config.yaml (the config used, secrets
redacted), metrics.jsonl (one line per step) and checkpoints/step-N (+ `latest`); with
`eval.enabled`, the hold-out evaluation runs before and after training and report.md,
report.json and plots land there too (see rlaif.pipeline). At the end, final/ holds the trained
model as a standard Hugging Face folder (LoRA merged unless output.merge_lora=false) with its
model card (README.md); `output.report_to=[tensorboard,mlflow,wandb]` also streams the metrics
to those trackers (pip install rlaif[tracking]).
`--resume` continues the run in that folder from its latest checkpoint; `--resume DIR`
continues from a given run folder or step-N checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train a policy with PPO, rewarded by any judge (YAML run config + key=value overrides)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif train`."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config YAML (see configs/: tiny.yaml, flan-t5-hh-roberta.yaml, "
                        "llama-hh-claude.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, values parsed as YAML: ppo.learning_rate=1e-5 "
                        "model.lora.r=8 judge.ref=hhh-ensemble")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                        help="continue from the run folder's latest checkpoint, or from DIR "
                        "(a run folder or a checkpoints/step-N folder)")
    parser.add_argument("--out", metavar="DIR", help="run folder (overrides output.dir)")
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume: continue even though settings that change the math "
                        "differ from the run's config.yaml (the change is recorded)")


def run(args: argparse.Namespace) -> int:
    """Load the config, build the trainer, train; prints a summary at the end."""
    from rlaif.config import load_config

    overrides = list(args.overrides)
    resume = args.resume
    # `--resume ppo.steps=8` : argparse hands the override to --resume; give it back.
    if isinstance(resume, str) and "=" in resume and not Path(resume).exists():
        overrides.insert(0, resume)
        resume = True
    if args.out:
        overrides.append(f"output.dir={args.out}")
    if resume is not None:
        overrides.append(f"resume={'true' if resume is True else resume}")
    if args.allow_changes:
        overrides.append("allow_changes=true")
    config = load_config(args.config, overrides)

    from rlaif.pipeline import train_and_evaluate

    result = train_and_evaluate(config)
    if result.holdout is not None:
        from rlaif.evaluation.report import summary_table

        print()
        print(summary_table(result.holdout.to_dict()))
        print(f"report: {result.paths['md']}")
    print(f"run folder: {result.train.run_dir}")
    return 0
