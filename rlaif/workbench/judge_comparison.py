"""Compare judges on human preference pairs (HH chosen vs rejected), side by side.

For each judge, every pair's chosen and rejected reply is scored, and the report gives:

- preference accuracy: wins / scored pairs, where a win is chosen > rejected. A tie
  (equal scores) is not a win: it is counted and reported as the tie rate, as RewardBench
  does. Scores are compared at 12 significant digits (`rlaif.workbench.preference_stats`).
  A pair where either reply is unscored is left out of both and counted as unscored.
- mean and (population) std of every score, chosen and rejected means, mean margin.
- latency p50/p95: per request from `Score.usage.latency_s` when the judge reports it
  (API judges), else per batch call; requests, tokens and cost from `Usage`.
- the Spearman rank correlation between every two judges over the replies that all
  judges scored (average ranks for ties), and the pair agreement (share of pairs, scored
  by both, where the two judges give the same verdict: chosen better, worse or tied).

`compare_judges(...)` runs each judge through the workbench loop (`rlaif.workbench.job`):
with a `Journal` every reply's score is written to `<out>/scores.jsonl.partial` as it arrives
and `--resume` asks only the replies without one. A judge error (a budget) stops that judge
(its finished scores kept, the rest marked unscored) and the next one runs; a signal stops
the comparison (`WorkbenchStopped`). `rlaif.workbench.comparison_report` writes the files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlaif.judges.base import Judge, Sample, Score, Usage
from rlaif.judges.cache import sample_hash
from rlaif.markdown import fmt_num, fmt_pct
from rlaif.workbench.job import WorkbenchStopped, answer_in_batches, stop_message
from rlaif.workbench.journal import Existing, Journal
from rlaif.workbench.judge_setup import JudgeChoice, build_judges
from rlaif.workbench.preference_stats import matrices, mean_or_none, percentile, verdict
from rlaif.workbench.records import score_from_record, score_record, spent
from rlaif.runs.signals import GracefulStop

logger = logging.getLogger(__name__)
SIDES = ("chosen", "rejected")


class PreferencePair(Protocol):
    """What `compare_judges` reads from an example (e.g. `rlaif.data.hh.HHExample`)."""

    prompt: str
    chosen: str
    rejected: str


@dataclass
class JudgeResult:
    """One judge's scores on every pair, and what producing them cost."""

    name: str
    scale: tuple[float, float]
    chosen: list[Score]
    rejected: list[Score]
    batch_latency_s: list[float] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    stopped: str | None = None  # the JudgeError that stopped this judge early, if any

    def values(self, side: str) -> list[float | None]:
        """Score values of one side ("chosen" or "rejected"), None where unscored."""
        return [s.value for s in getattr(self, side)]

    def metrics(self) -> dict[str, Any]:
        """Every number of this judge, JSON-ready (None where undefined)."""
        chosen, rejected = self.values("chosen"), self.values("rejected")
        pairs = [(c, r) for c, r in zip(chosen, rejected) if c is not None and r is not None]
        wins = sum(verdict(c, r) > 0 for c, r in pairs)
        ties = sum(verdict(c, r) == 0 for c, r in pairs)
        scored = [v for v in chosen + rejected if v is not None]
        sample_lat = [s.usage.latency_s for s in self.chosen + self.rejected
                      if s.usage is not None and s.usage.latency_s > 0]
        lat_per, lat = ("request", sample_lat) if sample_lat else ("batch", self.batch_latency_s)
        errors = [s.error for s in self.chosen + self.rejected if not s.ok]
        return {
            "scale": list(self.scale),
            "pairs": len(chosen),
            "scored_pairs": len(pairs),
            "unscored_pairs": len(chosen) - len(pairs),
            "unscored_responses": len(errors),
            "wins": wins,
            "ties": ties,
            "losses": len(pairs) - wins - ties,
            "accuracy": wins / len(pairs) if pairs else None,
            "tie_rate": ties / len(pairs) if pairs else None,
            "mean": mean_or_none(scored),
            "std": float(np.std(scored)) if scored else None,
            "chosen_mean": mean_or_none([v for v in chosen if v is not None]),
            "rejected_mean": mean_or_none([v for v in rejected if v is not None]),
            "margin_mean": mean_or_none([c - r for c, r in pairs]),
            "latency": {"per": lat_per, "p50": percentile(lat, 50), "p95": percentile(lat, 95), "n": len(lat)},
            "batch_latency": {"p50": percentile(self.batch_latency_s, 50),
                              "p95": percentile(self.batch_latency_s, 95), "n": len(self.batch_latency_s)},
            "requests": self.usage.requests,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.usage.cost_usd,
            "wall_s": self.wall_s,
            "stopped": self.stopped,
            "first_errors": sorted(set(errors))[:5],
        }


@dataclass
class ComparisonReport:
    """Per-judge results, the Spearman matrix and pair agreement, and run metadata."""

    results: dict[str, JudgeResult]
    n_pairs: int
    spearman: list[list[float | None]]
    spearman_n: int  # replies scored by every judge (the Spearman sample)
    agreement: list[list[float | None]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Judge names, in the order given."""
        return list(self.results)

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready: metrics, matrices, and each judge's scores."""
        return {
            "meta": self.meta,
            "n_pairs": self.n_pairs,
            "judges": {n: r.metrics() for n, r in self.results.items()},
            "spearman": {"judges": self.names, "matrix": self.spearman, "n_responses": self.spearman_n},
            "pair_agreement": {"judges": self.names, "matrix": self.agreement},
            "scores": {n: {"chosen": r.values("chosen"), "rejected": r.values("rejected")}
                       for n, r in self.results.items()},
        }

    def table(self) -> str:
        """The per-judge markdown table (also printed by `rlaif compare`)."""
        lines = [
            "| judge | accuracy | ties | unscored pairs | mean ± std | chosen − rejected "
            "| latency p50 / p95 (s) | requests | tokens in / out | cost (USD) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in self.results.items():
            m = r.metrics()
            lat = m["latency"]
            lines.append(
                f"| {name}{' (stopped)' if m['stopped'] else ''} | {fmt_pct(m['accuracy'])} "
                f"| {m['ties']} ({fmt_pct(m['tie_rate'])}) | {m['unscored_pairs']} / {m['pairs']} "
                f"| {fmt_num(m['mean'], '.3f')} ± {fmt_num(m['std'], '.3f')} | {fmt_num(m['margin_mean'], '+.3f')} "
                f"| {fmt_num(lat['p50'], '.3f')} / {fmt_num(lat['p95'], '.3f')} per {lat['per']} | {m['requests']} "
                f"| {m['input_tokens']} / {m['output_tokens']} | {m['cost_usd']:.4f} |"
            )
        return "\n".join(lines)

    def matrix_table(self, which: str = "spearman") -> str:
        """The Spearman (or pair agreement) matrix as a markdown table."""
        matrix = self.spearman if which == "spearman" else self.agreement
        head = "| | " + " | ".join(self.names) + " |"
        rows = [head, "|---" * (len(self.names) + 1) + "|"]
        for name, row in zip(self.names, matrix):
            rows.append(f"| {name} | " + " | ".join(fmt_num(v, ".3f") for v in row) + " |")
        return "\n".join(rows)


def _usage_sum(scores: Sequence[Score]) -> Usage:
    return sum((s.usage for s in scores if s.usage is not None), Usage())


def _kept(journal: Journal | None, name: str, hashes: Sequence[str]) -> dict[int, Score]:
    """Reply index -> Score of the replies `name` answered in earlier runs (same replies only)."""
    done: dict[int, Score] = {}
    for row in journal.rows if journal is not None else []:
        if row.get("judge") != name:
            continue
        i = 2 * int(row["pair"]) + SIDES.index(row["side"])
        if i >= len(hashes) or row.get("sample") != hashes[i]:
            raise ValueError(f"{journal.path} was written for other pairs (pair {row['pair']} "  # type: ignore[union-attr]
                             "differs); pass --restart to discard it, or choose another --out")
        done[i] = score_from_record(row)
    return done


def _judge_one(name: str, judge: Judge, samples: Sequence[Sample], hashes: Sequence[str], *,
               batch: int, journal: Journal | None, signals: GracefulStop, bar: Any) -> JudgeResult:
    """Score the replies `name` has not answered yet; a JudgeError stops this judge only."""
    done = _kept(journal, name, hashes)
    earlier = _usage_sum(list(done.values()))
    todo = [i for i in range(len(samples)) if i not in done]
    bar.update(len(done))

    def record(i: int, score: Score) -> dict[str, Any]:
        return score_record(score, judge=name, pair=i // 2, side=SIDES[i % 2], sample=hashes[i])

    def keep(positions: Sequence[int], scores: Sequence[Score]) -> None:
        if journal is not None:
            journal.append(record(todo[p], s) for p, s in zip(positions, scores))
        done.update((todo[p], s) for p, s in zip(positions, scores))

    before = judge.usage()
    t0 = time.perf_counter()
    answered = answer_in_batches(judge.score, [samples[i] for i in todo], batch=batch, keep=keep,
                                 signals=signals, progress=bar.update)
    stop = answered.stop
    if stop is not None and stop.interrupted:
        first, last = (todo[min(p, len(todo) - 1)] // 2 + 1 for p in stop.batch)
        where = journal.path if journal is not None else "memory (no journal)"
        kept = (f"{len(done)} of {len(samples)} replies judged by {name} "
                f"({len(journal.rows) if journal is not None else 0} answers of all judges)")
        raise WorkbenchStopped(stop_message(stop, doing=f"while {name} judged pairs {first}-{last}",
                                            kept=kept, where=where), stop)
    if stop is not None:
        logger.error("judge %s stopped: %s", name, stop.reason)
    asked = set(todo)
    now = [s for i, s in done.items() if i in asked]
    usage = judge.usage() - before
    if usage == Usage():  # judges that only report per score
        usage = _usage_sum(now)
    why = f"not scored: {name} stopped: {stop.reason}" if stop is not None else ""
    scores = [done.get(i) or Score.failed(why) for i in range(len(samples))]
    return JudgeResult(name=name, scale=(judge.scale.low, judge.scale.high), chosen=scores[0::2],
                       rejected=scores[1::2], batch_latency_s=answered.batch_seconds, usage=usage + earlier,
                       wall_s=time.perf_counter() - t0, stopped=stop.reason if stop is not None else None)


def compare_judges(judges: Mapping[str, Judge], examples: Sequence[PreferencePair], *,
                   batch_size: int = 16, batches: Mapping[str, int] | None = None, progress: bool = True,
                   meta: Mapping[str, Any] | None = None, journal: Journal | None = None) -> ComparisonReport:
    """Score every pair's chosen and rejected reply with each judge and compare them.

    `batches[name]` (default `batch_size`) is how many replies that judge is asked at once.
    With a `journal`, every score is written as it arrives and the earlier runs' are reused;
    the finished `scores.jsonl` is written at the end (`journal.finish`)."""
    if not judges:
        raise ValueError("compare_judges needs at least one judge")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    # Chosen and rejected interleaved: reply 2i is pair i's chosen, 2i + 1 its rejected.
    samples = [Sample(e.prompt, text, {"pair": i, "side": side})
               for i, e in enumerate(examples) for side, text in zip(SIDES, (e.chosen, e.rejected))]
    hashes = [sample_hash(s.prompt, s.response) for s in samples]
    results: dict[str, JudgeResult] = {}
    bar = _progress(len(samples) * len(judges), progress)
    try:
        with GracefulStop("finishing the answers in flight, then stopping") as signals:
            for name, judge in judges.items():
                results[name] = _judge_one(name, judge, samples, hashes, signals=signals, bar=bar,
                                           batch=(batches or {}).get(name, batch_size), journal=journal)
    finally:
        bar.close()
    if journal is not None:
        journal.finish(score_record(s, judge=name, pair=i // 2, side=SIDES[i % 2], sample=hashes[i])
                       for name, r in results.items()
                       for i, s in enumerate(x for pair in zip(r.chosen, r.rejected) for x in pair))
    rho, n_common, agree = matrices({n: (r.values("chosen"), r.values("rejected")) for n, r in results.items()})
    info = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "batch_size": batch_size, **(meta or {})}
    return ComparisonReport(results, len(examples), rho, n_common, agree, info)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="judging", unit="reply", disable=not enabled)


def compare_with(choices: Mapping[str, JudgeChoice], examples: Sequence[PreferencePair], out: Path, *,
                 existing: Existing = "refuse", batch_size: int = 16, progress: bool = True,
                 meta: Mapping[str, Any] | None = None) -> tuple[ComparisonReport, Journal]:
    """Open `<out>/scores.jsonl`'s journal, build the judges (budgets lowered by what their kept
    answers cost), compare, close them; the report and the journal (its `out` is the scores file)."""
    journal = Journal.open(out / "scores.jsonl", {"kind": "compare",
                                                  "judges": {n: c.owner() for n, c in choices.items()}}, existing)
    spent_by = {n: spent(r for r in journal.rows if r.get("judge") == n) for n in choices}
    judges = build_judges(choices, spent_by)
    try:
        report = compare_judges(judges, examples, batch_size=batch_size, progress=progress, meta=meta,
                                batches={n: c.batch(batch_size) for n, c in choices.items()}, journal=journal)
    finally:
        for judge in judges.values():
            judge.close()
    return report, journal
