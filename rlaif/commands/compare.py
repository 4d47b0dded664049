"""`rlaif compare SPEC [SPEC ...] --data hh|sample|FILE`: judges side by side on HH pairs.

Every reply's score goes to `<out>/scores.jsonl.partial` as it arrives; after a stop,
`--resume` continues (see rlaif.workbench.judge_comparison). Exit 1 when a judge stopped
early or no reply was scored at all.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from rlaif.commands.score import add_resume_arguments

HELP = "score HH chosen/rejected pairs with several judges; report accuracy, cost, latency, agreement"
HUB_ID = "Anthropic/hh-rlhf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif compare`."""
    parser.add_argument("specs", nargs="+", metavar="SPEC",
                        help="judge specs to compare: built-in names (roberta-hate) or YAML paths")
    parser.add_argument("--data", required=True,
                        help=f"'hh' (the hub dataset {HUB_ID}), 'sample' (bundled), or a local "
                             "HH json/jsonl/parquet file or folder")
    parser.add_argument("--data-dir", default="harmless-base",
                        help="subset of the hub dataset (harmless-base, helpful-base, ...); hub only")
    parser.add_argument("--split", default="test", help="split to read (hub and sample; a file is one split)")
    parser.add_argument("--limit", type=int, default=None, help="compare on the first N pairs")
    parser.add_argument("--batch-size", type=int, default=16, help="replies per judge call (default 16)")
    parser.add_argument("--out", default=None,
                        help="output folder for report.md/json and plots (default runs/compare-<time>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="JUDGE.KEY=VALUE",
                        help="override a spec field of one judge, e.g. --set hhh-claude.base_url=http://... "
                             "(VALUE is read as YAML; repeatable)")
    parser.add_argument("--cache", metavar="PATH",
                        help="sqlite score cache shared by the judges: a rerun pays for no reply twice")
    add_resume_arguments(parser, "scores")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Load the pairs, build the judges, compare them, write and print the report."""
    from rlaif.data.hh import load_hh
    from rlaif.io import check_output_dir
    from rlaif.overrides import parse_overrides
    from rlaif.workbench.comparison_report import write_comparison
    from rlaif.workbench.job import WorkbenchStopped
    from rlaif.workbench.journal import existing_policy
    from rlaif.workbench.judge_comparison import compare_with
    from rlaif.workbench.judge_setup import JudgeChoice, judge_names, split_overrides

    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be a positive number of pairs, got {args.limit}")
    existing = existing_policy(args.resume, args.restart)
    names = judge_names(args.specs)
    overrides = split_overrides(args.overrides, names)
    choices = {n: JudgeChoice.resolve(ref, parse_overrides(overrides[n]), args.cache)
               for n, ref in zip(names, args.specs)}

    is_hub = args.data == "hh"
    source = HUB_ID if is_hub else args.data
    data = load_hh(source, data_dir=args.data_dir if is_hub else None, split=args.split, limit=args.limit)
    examples = data.examples
    if not examples:
        raise ValueError(f"--data {args.data}: no HH pairs to compare (split {args.split!r})")
    print(f"comparing {len(names)} judge(s) on {len(examples)} pairs from {data.source}", file=sys.stderr)

    out = Path(args.out) if args.out else Path("runs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    check_output_dir(out)  # before the first request
    meta = {"data": str(data.source), "split": args.split, "limit": args.limit,
            "skipped_rows": data.skipped, "judges": {n: str(r) for n, r in zip(names, args.specs)}}
    try:
        report, journal = compare_with(choices, examples, out, existing=existing, batch_size=args.batch_size,
                                       progress=not args.no_progress, meta=meta)
    except WorkbenchStopped as exc:
        print(f"rlaif compare: stopped: {exc}", file=sys.stderr)
        return exc.exit_code

    paths = write_comparison(report, out)
    print(report.table())
    print(f"\nSpearman rank correlation ({report.spearman_n} replies scored by every judge):")
    print(report.matrix_table("spearman"))
    print(f"\nreport: {paths['md']}; every score: {journal.out}")
    stopped = {n: r.stopped for n, r in report.results.items() if r.stopped}
    for name, why in stopped.items():
        n_done = sum(s.ok for s in report.results[name].chosen + report.results[name].rejected)
        print(f"rlaif compare: judge {name} stopped early: {why}. Its {n_done} finished score(s) "
              f"are in the report and {journal.out}; {_rerun_hint(args.cache)}", file=sys.stderr)
    if not any(s.ok for r in report.results.values() for s in r.chosen + r.rejected):
        print("rlaif compare: no reply was scored by any judge; the reasons are in "
              f"{journal.out}", file=sys.stderr)
        return 1
    return 1 if stopped else 0


def _rerun_hint(cache: str | None) -> str:
    """How to continue without paying twice (only true with a cache)."""
    if cache:
        return f"re-running with --cache {cache} skips every reply already scored"
    return "pass --cache PATH next time so a rerun skips the replies already scored"
