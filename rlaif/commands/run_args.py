"""The run-folder options every training verb shares (`rlaif train`, `rlaif dpo`): --out,
--resume, --overwrite, --allow-changes, turned into config overrides."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--out, --resume [DIR], --overwrite, --allow-changes."""
    parser.add_argument("--out", metavar="DIR", help="run folder (overrides output.dir)")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                        help="continue the run in the run folder from its latest checkpoint, or "
                        "from DIR (a run folder or a checkpoints/step-N folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a run folder that already holds a run: its run files "
                        "(config, metrics, checkpoints, report, final/) are replaced; other files stay")
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume: continue even though settings that change the math "
                        "differ from the run's config.yaml (the change is recorded)")


def run_overrides(args: argparse.Namespace) -> list[str]:
    """The verb's KEY=VALUE overrides plus those the run-folder options stand for."""
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
    if args.overwrite:
        overrides.append("overwrite=true")
    if args.allow_changes:
        overrides.append("allow_changes=true")
    return overrides
