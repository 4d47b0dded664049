"""Label pairs in chunks, streaming each finished chunk to `<out>.partial`; resumable.

    result = label_pairs(judge, items, Path("prefs.jsonl"))

- Each chunk's rows are appended to `<out>.partial` as soon as the judge returns them; on a
  stop (budget, a judge error, Ctrl-C) the comparisons already made in that chunk are kept too
  (`PairwiseError.partial`), then `LabelingStopped` says how many rows are safe and where.
- At the end every row, in the order of the pairs, is written to `out` atomically, the
  `.partial` removed, and `<out>.meta.json` written (judge, counts, agreement, cost, time).
- A rerun reads `out` and `<out>.partial` and skips every pair whose key already has a
  verdict; only the rest reach the judge (whose `--cache` also keeps what a stopped chunk paid).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.io import append_jsonl, atomic_write_json, atomic_write_jsonl
from rlaif.judges.base import JudgeError
from rlaif.judges.pairwise import PairwiseJudge, PointwisePairwise, Preference
from rlaif.labeling.agreement import summarize_labels
from rlaif.labeling.rows import is_labelled, label_row
from rlaif.labeling.sources import LabelItem
from rlaif.scoring import check_output_path

log = logging.getLogger(__name__)

CHUNK = 32  # pairs per judge call: progress and .partial granularity
META_SUFFIX = ".meta.json"


class LabelingStopped(JudgeError):
    """Labelling stopped early; the rows finished so far are in `<out>.partial`."""


@dataclass
class LabelResult:
    """Every row (in pair order), how many were labelled now vs kept from before, the summary."""

    rows: list[dict[str, Any]]
    labelled_now: int
    resumed: int
    summary: dict[str, Any]
    out: Path
    meta_path: Path
    seconds: float


def partial_path(out: Path) -> Path:
    """Where finished rows go while a run is under way (and stay if it stops)."""
    return out.with_name(out.name + ".partial")


def meta_path(out: Path) -> Path:
    """The run's summary beside the labels (read by `rlaif dpo` for the judge and its cost)."""
    return out.with_name(out.name + META_SUFFIX)


def read_rows_tolerant(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a last line cut short by a kill is dropped (with a warning)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                log.warning("%s: its last line was cut short (a stopped run); it is labelled again", path)
                break
            raise ValueError(f"{path}: line {n} is not valid JSON; delete the file to label from "
                             "scratch") from None
    return rows


def done_rows(out: Path) -> dict[str, dict[str, Any]]:
    """key -> row of every pair already labelled, from `out` and its `.partial` (latest wins)."""
    done: dict[str, dict[str, Any]] = {}
    for path in (out, partial_path(out)):
        for row in read_rows_tolerant(path):
            if "key" not in row:
                raise ValueError(f"{path}: a row without 'key' was not written by `rlaif label`; "
                                 "choose another --out")
            if is_labelled(row):
                done[row["key"]] = row
    return done


def _calls_per_pair(judge: PairwiseJudge, pref: Preference) -> int:
    """Judge evaluations behind one Preference: two responses scored, or one per order asked."""
    return 2 if isinstance(judge, PointwisePairwise) else len(pref.orders)


def label_pairs(judge: PairwiseJudge, items: Sequence[LabelItem], out: Path, *, chunk: int = CHUNK,
                progress: Callable[[int], Any] | None = None,
                meta: dict[str, Any] | None = None) -> LabelResult:
    """Label every pair not yet labelled in `out`; write `out` and its meta; see the module doc."""
    t0 = time.perf_counter()
    check_output_path(out)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        log.warning("%d repeated pairs (same prompt and replies): each is labelled once",
                    len(keys) - len(set(keys)))
    done = done_rows(out)
    todo = list({it.key: it for it in items if it.key not in done}.values())
    if progress is not None and len(items) > len(todo):
        progress(len(items) - len(todo))
    partial = partial_path(out)
    new: dict[str, dict[str, Any]] = {}
    for start in range(0, len(todo), chunk):
        batch = todo[start:start + chunk]
        try:
            prefs = judge.compare([it.pair for it in batch])
        except (JudgeError, KeyboardInterrupt) as exc:
            got = list(getattr(exc, "partial", None) or [])
            rows = [label_row(it, p, _calls_per_pair(judge, p)) for it, p in zip(batch, got)
                    if p is not None]
            append_jsonl(partial, *rows)
            kept = len(done) + len(new) + sum(is_labelled(r) for r in rows)
            raise LabelingStopped(
                f"{exc or type(exc).__name__} (while labelling pairs {start}...{start + len(batch) - 1} "
                f"of the {len(todo)} left); {kept} of {len(items)} pairs are labelled and kept in "
                f"{partial if partial.exists() else out}. Re-run the same command to continue: labelled "
                "pairs are skipped, and with --cache nothing already paid for is asked again") from exc
        rows = [label_row(it, p, _calls_per_pair(judge, p)) for it, p in zip(batch, prefs)]
        append_jsonl(partial, *rows)
        new.update((r["key"], r) for r in rows)
        if progress is not None:
            progress(len(batch))
    rows = [new.get(it.key) or done[it.key] for it in items]
    atomic_write_jsonl(out, rows)
    partial.unlink(missing_ok=True)
    summary = summarize_labels(rows)
    seconds = time.perf_counter() - t0
    labelled_now = len(new)
    # Wall-clock over every run that built this file (a resumed file adds to the earlier ones),
    # with the policy's sampling time when the caller measured it.
    earlier = json.loads(meta_path(out).read_text()) if meta_path(out).is_file() and done else {}
    this_run = seconds + float((meta or {}).get("seconds_sampling", 0.0))
    info = {**(meta or {}), "judge": judge.name, "out": str(out), "labelled_now": labelled_now,
            "resumed": len(items) - labelled_now, "seconds_this_run": round(this_run, 1),
            "seconds_total": round(float(earlier.get("seconds_total", 0.0)) + this_run, 1),
            "usage_this_run": {"requests": judge.usage.requests, "cost_usd": judge.usage.cost_usd},
            **summary}
    atomic_write_json(meta_path(out), info)
    return LabelResult(rows, labelled_now, len(items) - labelled_now, summary, out, meta_path(out),
                       seconds)
