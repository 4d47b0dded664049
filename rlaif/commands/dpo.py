"""`rlaif dpo CONFIG [key=value ...] [--out DIR] [--resume [DIR] | --overwrite]`: DPO (TRL's
DPOTrainer) on labelled pairs.

The pairs are an `rlaif label` JSONL (or its --dataset folder), named by `preferences.path`.
The run folder receives what `rlaif train` writes: config.yaml, metrics.jsonl (TRL's log, one
line per logged step), checkpoints/step-N (+ `latest`; `--resume` continues from them), final/
(the model, LoRA merged), and with `eval.enabled` the same hold-out before/after report
(report.md, report.json, plots). An existing run folder is refused as `rlaif train` refuses
it. Causal LMs only.
See configs/dpo-tiny.yaml and rlaif.dpo.
"""

from __future__ import annotations

import argparse

from rlaif.commands.run_args import add_run_arguments, run_overrides

HELP = "train a policy with DPO (TRL's DPOTrainer) on AI-labelled preference pairs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif dpo`."""
    parser.add_argument("config", metavar="CONFIG", help="DPO run config YAML (see configs/dpo-*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, values parsed as YAML: dpo.beta=0.2 "
                        "preferences.path=labels.jsonl model.lora.r=8")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, print the summary."""
    from rlaif.dpo.config import load_dpo_config

    config = load_dpo_config(args.config, run_overrides(args))

    from rlaif.runs.lifecycle import train_dpo

    result = train_dpo(config)
    last = result.history[-1] if result.history else {}
    print(f"DPO: {len(result.history)} logged steps; last loss {last.get('loss', float('nan')):.4f}, "
          f"reward accuracy {last.get('rewards/accuracies', float('nan')):.2f}, margin "
          f"{last.get('rewards/margins', float('nan')):.3f}")
    if result.holdout is not None:
        from rlaif.evaluation.report import summary_table

        print()
        print(summary_table(result.holdout.to_dict()))
        print(f"report: {result.paths['md']}")
    print(f"final model: {result.paths['final']}")
    print(f"run folder: {result.run_dir}")
    return 0
