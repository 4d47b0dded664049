"""`rlaif score JUDGE --data FILE`: score a JSONL file with any judge and summarise.

Rows are either {"prompt", "response"} (scored as is) or HH rows {"chosen", "rejected"}
(full transcripts: both are split into prompt and final reply and scored). The output
JSONL repeats every input field and adds `score`, `error`, `rationale` (HH rows:
`chosen_score`, `rejected_score`, `chosen_error`, ... ). It is written atomically; every
answer goes to `<out>.partial` as it arrives, and `--resume` continues a stopped run.
The work is done by `rlaif.workbench.score_file`; this verb parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NOTHING_SCORED = 3  # exit code: the run worked, but no sample got a score (see README)
HELP = "score a JSONL of {prompt, response} or HH {chosen, rejected} rows with a judge"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif score`."""
    parser.add_argument("judge", metavar="JUDGE",
                        help="built-in judge name (see `rlaif judges`) or a judge spec YAML path")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="JSONL file of {prompt, response} or HH {chosen, rejected} rows "
                        "('sample' or 'sample:test' = the bundled HH sample); messages number "
                        "rows from 1 (a row's number is its line)")
    parser.add_argument("--out", metavar="FILE",
                        help="output JSONL (default: <data stem>.scores.jsonl in the current "
                        "directory, so the input's folder is never written to)")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N rows")
    parser.add_argument("--cache", metavar="PATH",
                        help="sqlite score cache: repeated samples are not scored again")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a spec field, value parsed as YAML (repeatable; dotted "
                        "keys reach nested fields): --set device=cpu --set transform.add=1")
    add_resume_arguments(parser, "answers")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_resume_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """--resume / --restart: what to do with the `.partial` of a run that stopped."""
    parser.add_argument("--resume", action="store_true",
                        help=f"continue a stopped run from its <out>.partial: the {what} kept there "
                        "are not asked again, and the judge's budget is lowered by what they cost")
    parser.add_argument("--restart", action="store_true",
                        help="discard an earlier run's <out>.partial and start from scratch")


def _format_summary(label: str, s: dict[str, Any]) -> str:
    return (f"{label:<9} count {s['count']}  mean {s['mean']:.4f}  std {s['std']:.4f}  "
            f"min {s['min']:.4f}  max {s['max']:.4f}  unscored {s['unscored']}")


def run(args: argparse.Namespace) -> int:
    """Score every row, write the output JSONL, print the summary."""
    from tqdm.auto import tqdm

    from rlaif.overrides import parse_overrides
    from rlaif.workbench.job import WorkbenchStopped
    from rlaif.workbench.journal import existing_policy
    from rlaif.workbench.judge_setup import JudgeChoice
    from rlaif.workbench.samples_file import resolve_data
    from rlaif.workbench.score_file import ScoreJob, summarize

    data = resolve_data(args.data)
    out = Path(args.out) if args.out else Path.cwd() / f"{data.stem}.scores.jsonl"
    existing = existing_policy(args.resume, args.restart)
    job = ScoreJob.read(data, out, args.limit)
    if not job.rows:
        print(f"rlaif score: warning: {data} holds no rows; nothing to score", file=sys.stderr)
        return NOTHING_SCORED
    choice = JudgeChoice.resolve(args.judge, parse_overrides(args.overrides), args.cache)
    try:
        with tqdm(total=len(job.samples), desc=f"scoring with {choice.spec.name or args.judge}",
                  unit="sample", disable=args.no_progress) as bar:
            result = job.score_with(choice, existing=existing, progress=bar.update)
    except WorkbenchStopped as exc:
        print(f"rlaif score: stopped: {exc}", file=sys.stderr)
        return exc.exit_code

    print(f"judge {choice.spec.name or args.judge} on {data} ({len(job.rows)} rows) -> {out}")
    for label, values in result.values.items():
        print(_format_summary(label, summarize(values)))
    wins, ties, pairs = result.pairs()
    if pairs:
        print(f"chosen > rejected in {wins}/{pairs} pairs ({wins / pairs:.1%}), ties {ties}")
    stats = result.cache_stats
    if stats:
        print(f"cache {stats.path}: {stats.hits} hits, {stats.misses} misses")
    usage, earlier = result.usage, result.earlier
    if usage.requests or earlier.requests:
        print(f"usage: {usage.requests} requests, {usage.input_tokens} input + "
              f"{usage.output_tokens} output tokens, ~${usage.cost_usd:.4f}"
              + (f" (earlier runs of this file: {earlier.requests} requests, ~${earlier.cost_usd:.4f})"
                 if result.resumed else ""))
    if result.n_scored == 0:
        first = next((r.get("error") or r.get("chosen_error") for r in result.rows), None)
        print(f"rlaif score: no sample was scored (first reason: {first}); the rows are in {out} "
              "with their errors", file=sys.stderr)
        return NOTHING_SCORED
    return 0
