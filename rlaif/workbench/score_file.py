"""Score a JSONL file with a pointwise judge: the library behind `rlaif score`.

    job = ScoreJob.read(Path("rows.jsonl"), Path("rows.scores.jsonl"))
    result = job.score_with(JudgeChoice.resolve("roberta-hate", {"device": "cpu"}))

Every answer goes to `<out>.partial` as it arrives (`rlaif.workbench.journal`: one row per
sample with its row number, side, sample hash, score and cost); `--resume` asks only the
samples without one. The output rows repeat every input field and add `score`, `error`,
`rationale` (HH rows: `chosen_score`, `rejected_score`, `chosen_error`, ...); the file is
written whole at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.judges.base import Judge, Sample, Score, Usage
from rlaif.judges.cache import sample_hash
from rlaif.stats import mean_std
from rlaif.workbench.job import Stop, WorkbenchStopped, answer_in_batches, stop_message
from rlaif.workbench.journal import Existing, Journal, check_output_path
from rlaif.workbench.judge_setup import JudgeChoice
from rlaif.workbench.records import score_from_record, score_record, spent
from rlaif.workbench.samples_file import HH_SIDES, Row, read_numbered_rows, to_samples
from rlaif.runs.signals import GracefulStop

SAMPLES_PER_CALL = 256  # samples per call of a local judge: big enough for length-sorted batches


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """count, mean, std (population), min, max over the scored values; unscored counted apart."""
    got = [v for v in values if v is not None]
    n = len(got)
    mean, std = mean_std(got)
    return {"count": n, "mean": mean, "std": std, "min": min(got) if n else math.nan,
            "max": max(got) if n else math.nan, "unscored": len(values) - n}


def output_rows(rows: Sequence[Row], per_row: Sequence[Sequence[Sample]],
                scores: Sequence[Score]) -> tuple[list[dict[str, Any]], dict[str, list[float | None]]]:
    """Each input row plus its score fields, and the score values per column."""
    out_rows, it = [], iter(scores)
    by_side: dict[str, list[float | None]] = {}
    for (_, row), samples in zip(rows, per_row):
        row = dict(row)
        prefixes = [""] if len(samples) == 1 else [f"{side}_" for side in HH_SIDES]
        for prefix in prefixes:
            s = next(it)
            row.update({f"{prefix}score": s.value, f"{prefix}error": s.error,
                        f"{prefix}rationale": s.rationale})
            by_side.setdefault(prefix.rstrip("_") or "score", []).append(s.value)
        out_rows.append(row)
    return out_rows, by_side


@dataclass
class ScoredFile:
    """What `ScoreJob.run` did: the output rows, values per column, cache stats, usage."""

    rows: list[dict[str, Any]]
    values: dict[str, list[float | None]]  # "score", or "chosen" and "rejected" (HH rows)
    cache_stats: Any  # the judge's `stats()` (None without a cache)
    usage: Usage  # this run's
    earlier: Usage  # what the answers kept from earlier runs cost
    resumed: int  # samples answered by earlier runs

    @property
    def n_scored(self) -> int:
        """Samples that got a score."""
        return sum(v is not None for vals in self.values.values() for v in vals)

    def pairs(self) -> tuple[int, int, int]:
        """HH rows: (chosen > rejected, ties, pairs with both scored); zeros otherwise."""
        both = [(c, r) for c, r in zip(self.values.get("chosen", []), self.values.get("rejected", []))
                if c is not None and r is not None]
        return sum(c > r for c, r in both), sum(c == r for c, r in both), len(both)


@dataclass
class ScoreJob:
    """A JSONL file read and checked whole, ready to score: its rows and their Samples."""

    data: Path
    out: Path
    rows: list[Row]
    per_row: list[list[Sample]]

    @classmethod
    def read(cls, data: Path, out: Path, limit: int | None = None) -> ScoreJob:
        """Read the first `limit` rows of `data`; errors name the file and row."""
        if out.resolve() == data.resolve():
            raise ValueError(f"--out {out} is the input file; choose another output path")
        if limit is not None and limit <= 0:
            raise ValueError(f"--limit {limit}: must be a positive number of rows")
        check_output_path(out)
        rows = read_numbered_rows(data, limit)
        return cls(data, out, rows, to_samples(rows, data))

    @property
    def samples(self) -> list[Sample]:
        """Every Sample, in row order (HH rows: chosen, then rejected)."""
        return [s for samples in self.per_row for s in samples]

    def header(self, choice: JudgeChoice) -> dict[str, Any]:
        """The journal header: the verb, the data, the judge."""
        return {"kind": "score", "data": str(self.data), "judges": {"score": choice.owner()}}

    def _places(self) -> list[tuple[int, str | None]]:
        """(row number, side or None) of every sample."""
        return [(lineno, None if len(s) == 1 else side)
                for (lineno, _), s in zip(self.rows, self.per_row)
                for side in (HH_SIDES if len(s) > 1 else (None,))]

    def run(self, judge: Judge, journal: Journal, *, batch: int = SAMPLES_PER_CALL,
            progress: Callable[[int], Any] | None = None) -> ScoredFile:
        """Score every sample without an answer in `journal`; raise WorkbenchStopped on a stop."""
        samples, places = self.samples, self._places()
        hashes = [sample_hash(s.prompt, s.response) for s in samples]
        done = self._kept(journal, hashes)
        earlier = len(done)
        todo = [i for i in range(len(samples)) if i not in done]
        if progress is not None and done:
            progress(len(done))

        def keep(positions: Sequence[int], scores: Sequence[Score]) -> None:
            rows = [score_record(s, index=todo[p], row=places[todo[p]][0], side=places[todo[p]][1],
                                 sample=hashes[todo[p]]) for p, s in zip(positions, scores)]
            journal.append(rows)
            done.update((r["index"], s) for r, s in zip(rows, scores))

        before = judge.usage()
        with GracefulStop("finishing the answers in flight, then stopping") as signals:
            answered = answer_in_batches(judge.score, [samples[i] for i in todo], batch=batch,
                                         keep=keep, signals=signals, progress=progress)
        if answered.stop is not None:
            raise WorkbenchStopped(self._stop_message(answered.stop, todo, places, len(done), journal),
                                   answered.stop)
        scores = [done[i] for i in range(len(samples))]
        out_rows, values = output_rows(self.rows, self.per_row, scores)
        journal.finish(out_rows)
        return ScoredFile(out_rows, values, judge.stats(), judge.usage() - before,
                          spent(journal.rows[:journal.earlier]), earlier)

    def score_with(self, choice: JudgeChoice, *, existing: Existing = "refuse",
                   progress: Callable[[int], Any] | None = None) -> ScoredFile:
        """Open the journal (resume / restart / refuse an earlier `.partial`), build the judge
        with the budget its answers have not spent, load it (a missing model fails before any
        request), score, close."""
        journal = Journal.open(self.out, self.header(choice), existing)
        judge = choice.pointwise(spent=spent(journal.rows))
        try:
            judge.load()
            return self.run(judge, journal, batch=choice.batch(SAMPLES_PER_CALL), progress=progress)
        finally:
            judge.close()

    def _kept(self, journal: Journal, hashes: Sequence[str]) -> dict[int, Score]:
        """index -> Score of every sample the journal answers (its sample must be the same)."""
        done: dict[int, Score] = {}
        for row in journal.rows:
            i = row.get("index")
            if not isinstance(i, int) or i >= len(hashes) or row.get("sample") != hashes[i]:
                raise ValueError(f"{journal.path} was written for other rows (its answer for row "
                                 f"{row.get('row')} does not match {self.data}); pass --restart to "
                                 "discard it, or choose another --out")
            done[i] = score_from_record(row)
        return done

    def _stop_message(self, stop: Stop, todo: Sequence[int], places: Sequence[tuple[int, str | None]],
                      n_done: int, journal: Journal) -> str:
        doing = f"scoring {self.data}"
        if todo:
            first, last = (places[todo[min(p, len(todo) - 1)]][0] for p in stop.batch)
            doing = f"while scoring rows {first}-{last} of {self.data}"
        rows = len({r["row"] for r in journal.rows})
        kept = f"{n_done} of {len(places)} samples ({rows} of {len(self.rows)} rows with an answer)"
        return stop_message(stop, doing=doing, kept=kept, where=journal.path)
