"""Label pairs with a pairwise judge: the library behind `rlaif label`; resumable, one judge per file.

    choice = JudgeChoice.resolve("claude-pairwise-anthropic")
    journal = open_label_journal(Path("prefs.jsonl"), choice.owner(), existing="resume")
    result = label_with(choice, items, journal)

- Each labelled pair's row goes to `<out>.partial` as soon as the judge answers
  (`rlaif.workbench.journal`); on a stop (budget, a judge error, SIGINT/SIGTERM/SIGHUP) the
  comparisons the judge finished are kept too (`PairwiseError.partial`), and
  `WorkbenchStopped` says how many pairs are kept, where, and how to continue.
- At the end every row, in the order of the pairs, is written to `out` atomically, the
  `.partial` removed, and `<out>.meta.json` written (judge, reference and spec fingerprint,
  counts, agreement, cost, time).
- A file belongs to one judge: a finished `out` whose meta names another reference or spec
  fingerprint is refused (choose another --out, or --restart). A finished `out` of the same
  judge is extended: its labelled pairs are skipped. A `.partial` is continued with
  `existing="resume"` (--resume), discarded with "restart", else refused.
- Pairs are numbered from 1 in messages, in the order given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.data.label_meta import label_meta_path, read_label_meta
from rlaif.io import atomic_write_json
from rlaif.judges.pairwise import PairwiseJudge, PointwisePairwise, Preference
from rlaif.workbench.agreement import summarize_labels
from rlaif.workbench.job import WorkbenchStopped, answer_in_batches, stop_message
from rlaif.workbench.journal import Existing, Journal, check_output_path, owner_mismatch, read_rows_tolerant
from rlaif.workbench.judge_setup import JudgeChoice
from rlaif.workbench.label_rows import is_labelled, label_row
from rlaif.workbench.pairs import LabelItem
from rlaif.workbench.records import spent
from rlaif.runs.signals import GracefulStop

log = logging.getLogger(__name__)

PAIRS_PER_CALL = 32  # pairs per call of a local judge


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


def read_meta(out: Path) -> dict[str, Any]:
    """The `.meta.json` beside `out` ({} when there is none)."""
    return read_label_meta(out) or {}


def open_label_journal(out: Path, owner: Mapping[str, Any], existing: Existing = "refuse") -> Journal:
    """The journal of `out` after the one-judge rule (module doc); "restart" also drops `out` and its meta."""
    check_output_path(out)
    if existing == "restart":
        out.unlink(missing_ok=True)
        label_meta_path(out).unlink(missing_ok=True)
    earlier = read_meta(out)
    if out.exists() and earlier:
        was = {"label": {"ref": earlier.get("judge_ref"), "spec_fingerprint": earlier.get("spec_fingerprint")}}
        why = owner_mismatch(was, {"label": owner})
        if why:
            raise ValueError(f"{out} holds labels of another judge ({why}); "
                             "a label file belongs to one judge: choose another --out, or pass "
                             "--restart to discard those labels")
    return Journal.open(out, {"kind": "label", "judges": {"label": dict(owner)}}, existing)


def done_rows(journal: Journal) -> dict[str, dict[str, Any]]:
    """key -> row of every pair already labelled, from `out` and its `.partial` (latest wins)."""
    done: dict[str, dict[str, Any]] = {}
    for path, rows in ((journal.out, read_rows_tolerant(journal.out)), (journal.path, journal.rows)):
        for row in rows:
            if "key" not in row:
                raise ValueError(f"{path}: a row without 'key' was not written by `rlaif label`; "
                                 "choose another --out")
            if is_labelled(row):
                done[row["key"]] = row
    return done


def _calls_per_pair(judge: PairwiseJudge, pref: Preference) -> int:
    """Judge evaluations behind one Preference: two responses scored, or one per order asked."""
    return 2 if isinstance(judge, PointwisePairwise) else len(pref.orders)


def label_pairs(judge: PairwiseJudge, items: Sequence[LabelItem], journal: Journal, *, batch: int = PAIRS_PER_CALL,
                progress: Callable[[int], Any] | None = None,
                meta: dict[str, Any] | None = None) -> LabelResult:
    """Label every pair not yet labelled in `journal`; write `out` and its meta; see the module doc."""
    t0 = time.perf_counter()
    out = journal.out
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        log.warning("%d repeated pairs (same prompt and replies): each is labelled once",
                    len(keys) - len(set(keys)))
    done = done_rows(journal)
    spent_before = spent(done.values())
    todo = list({it.key: it for it in items if it.key not in done}.values())
    if progress is not None and len(items) > len(todo):
        progress(len(items) - len(todo))
    new: dict[str, dict[str, Any]] = {}

    def keep(positions: Sequence[int], prefs: Sequence[Preference]) -> None:
        rows = [label_row(todo[p], pref, _calls_per_pair(judge, pref)) for p, pref in zip(positions, prefs)]
        journal.append(rows)
        new.update((r["key"], r) for r in rows)

    before = judge.usage()
    with GracefulStop("finishing the answers in flight, then stopping") as signals:
        answered = answer_in_batches(judge.compare, [it.pair for it in todo], batch=batch, keep=keep,
                                     signals=signals, progress=progress)
    if answered.stop is not None:
        stop = answered.stop
        position = {k: n for n, k in enumerate(keys, start=1)}
        first, last = (position[todo[min(p, len(todo) - 1)].key] for p in stop.batch)
        kept = len(done) + sum(is_labelled(r) for r in new.values())
        where = journal.path if journal.path.exists() else out
        raise WorkbenchStopped(stop_message(stop, doing=f"while labelling pairs {first}-{last} of {len(items)}",
                                            kept=f"{kept} of {len(items)} pairs", where=where), stop)
    rows = [new.get(it.key) or done[it.key] for it in items]
    journal.finish(rows)
    summary = summarize_labels(rows)
    seconds = time.perf_counter() - t0
    labelled_now = len(new)
    # Wall-clock over every run that built this file (a resumed file adds to the earlier ones),
    # with the policy's sampling time when the caller measured it.
    earlier = read_meta(out) if done else {}
    this_run = seconds + float((meta or {}).get("seconds_sampling", 0.0))
    usage = judge.usage() - before
    owner = journal.header["judges"]["label"]
    total = spent(rows)
    info = {**(meta or {}), "judge": judge.name, "judge_ref": owner.get("ref", (meta or {}).get("judge_ref")),
            "spec_fingerprint": owner.get("spec_fingerprint"), "out": str(out),
            "labelled_now": labelled_now, "resumed": len(items) - labelled_now,
            "seconds_this_run": round(this_run, 1),
            "seconds_total": round(float(earlier.get("seconds_total", 0.0)) + this_run, 1),
            "usage_this_run": {"requests": usage.requests, "cost_usd": usage.cost_usd},
            "spent_before_this_run": {"requests": spent_before.requests, "cost_usd": spent_before.cost_usd},
            "spent_total": {"requests": total.requests, "cost_usd": total.cost_usd},
            **summary}
    atomic_write_json(label_meta_path(out), info)
    return LabelResult(rows, labelled_now, len(items) - labelled_now, summary, out, label_meta_path(out), seconds)


def label_with(choice: JudgeChoice, items: Sequence[LabelItem], journal: Journal, *, chunk: int = PAIRS_PER_CALL,
               progress: Callable[[int], Any] | None = None, meta: dict[str, Any] | None = None) -> LabelResult:
    """Build the judge with the budget `journal`'s file has not spent, load it, label, close.
    (`open_label_journal` first, so a refused file stops before any pair is sampled.)"""
    judge = choice.pairwise(spent=spent(done_rows(journal).values()))
    try:
        judge.load()
        return label_pairs(judge, items, journal, batch=choice.batch(chunk, per_unit=2), progress=progress,
                           meta={"judge_ref": choice.ref, **(meta or {})})
    finally:
        judge.close()
