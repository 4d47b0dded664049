"""`rlaif train CONFIG [key=value ...] [--out DIR] [--resume [DIR] | --overwrite]`: PPO with any judge.

The run folder (`output.dir`, or `--out`) receives config.yaml (the config used, secrets
redacted), metrics.jsonl (one line per step) and checkpoints/step-N (+ `latest`); with
`eval.enabled`, the hold-out evaluation runs before and after training and report.md,
report.json and plots land there too (see rlaif.runs.lifecycle). At the end, final/ holds the trained
model as a standard Hugging Face folder (LoRA merged unless output.merge_lora=false) with its
model card (README.md); `output.report_to=[tensorboard,mlflow,wandb]` also streams the metrics
to those trackers (pip install rlaif[tracking]).
A folder that already holds a run is refused unless `--resume` (continue the run in that folder
from its latest checkpoint; `--resume DIR` from a given run folder or step-N checkpoint) or
`--overwrite` (start over; see rlaif.runs.folder).
"""

from __future__ import annotations

import argparse

from rlaif.commands.run_args import add_run_arguments, run_overrides

HELP = "train a policy with PPO, rewarded by any judge (YAML run config + key=value overrides)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif train`."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config YAML (see configs/: tiny.yaml, flan-t5-hh-roberta.yaml, "
                        "llama-hh-claude.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, values parsed as YAML: ppo.learning_rate=1e-5 "
                        "model.lora.r=8 judge.ref=hhh-ensemble")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the config, build the trainer, train; prints a summary at the end."""
    from rlaif.config import load_config

    overrides = run_overrides(args)
    config = load_config(args.config, overrides)

    from rlaif.runs.lifecycle import train_ppo

    result = train_ppo(config)
    if result.holdout is not None:
        from rlaif.evaluation.report import summary_table

        print()
        print(summary_table(result.holdout.to_dict()))
        print(f"report: {result.paths['md']}")
    print(f"run folder: {result.run_dir}")
    return 0
