"""`rlaif compare-runs RUN_A RUN_B ... [--out DIR]`: several runs in one table and one plot.

Per run: the evaluator's hold-out toxicity before and after with the 95% CI of the
difference, hold-out and training KL, the reward judge's view of the same replies, judge
calls, cost and wall-clock (see rlaif.runs.comparison). The table is printed; with --out the
table (compare_runs.md), the numbers (compare_runs.json) and the plot (compare_runs.png)
are written there.
"""

from __future__ import annotations

import argparse

HELP = "put the hold-out results, KL, judge calls, cost and time of several runs side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif compare-runs`."""
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders written by `rlaif train`, `rlaif dpo` or `rlaif demo`")
    parser.add_argument("--out", metavar="DIR", default="runs/compare",
                        help="folder for compare_runs.md/.json/.png (default: runs/compare)")


def run(args: argparse.Namespace) -> int:
    """Read the runs, print the table and the notes, write the files."""
    from rlaif.runs.comparison import compare_runs

    result = compare_runs(args.runs, args.out)
    print(result["table"])
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"plot: {result['plot']}")
    return 0
