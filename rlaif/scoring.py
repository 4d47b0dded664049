"""Score a JSONL file with a judge: the library behind `rlaif score`.

Rows are either {"prompt", "response"} (scored as is) or HH rows {"chosen", "rejected"}
(full transcripts: both are split into prompt and final reply and scored). The output rows
repeat every input field and add `score`, `error`, `rationale` (HH rows: `chosen_score`,
`rejected_score`, `chosen_error`, ...). Errors in the input name the file and the row.

    job = ScoringJob.read(Path("rows.jsonl"), Path("rows.scores.jsonl"))
    judge = load_judge("roberta-hate", {"device": "cpu"})
    try:
        preload(judge)
        result = job.run(judge)
    finally:
        judge.close()
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.io import JsonlStream, iter_jsonl
from rlaif.judges.base import Judge, JudgeError, Sample, Score, Usage
from rlaif.stats import mean_std

CHUNK = 256  # samples per judge call: big enough for length-sorted batches, small for progress
HH_SIDES = ("chosen", "rejected")
SAMPLE_REFS = {"sample": "train", "sample:train": "train", "sample:test": "test"}

Row = tuple[int, dict[str, Any]]  # (row number in the file, the JSON object)


def resolve_data(ref: str) -> Path:
    """The JSONL file `ref` names: a path, or 'sample' / 'sample:test' (the bundled HH sample)."""
    path = Path(ref).expanduser()
    if not path.exists() and ref in SAMPLE_REFS:
        from rlaif.data.hh import sample_path

        return sample_path(SAMPLE_REFS[ref])  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"--data {ref}: no such file; pass a JSONL file or 'sample'")
    return path


def read_numbered_rows(path: Path, limit: int | None = None) -> list[Row]:
    """The first `limit` JSON objects of a JSONL file, with their row numbers (blank lines skipped)."""
    try:
        return list(itertools.islice(iter_jsonl(path), limit))
    except ValueError as exc:  # rlaif.io says "line N"; this file's unit is the row
        raise ValueError(str(exc).replace(f"{path}: line ", f"{path}: row ", 1)) from None


def to_samples(rows: Sequence[Row], path: Path) -> list[list[Sample]]:
    """One list of Samples per row: [sample] for prompt/response rows, [chosen, rejected] for HH."""
    from rlaif.data.hh import split_prompt_response

    out: list[list[Sample]] = []
    for lineno, row in rows:
        where = f"{path}: row {lineno}"
        if "response" in row:
            prompt, response = row.get("prompt", ""), row["response"]
            if not isinstance(prompt, str) or not isinstance(response, str):
                raise ValueError(f"{where}: 'prompt' and 'response' must be strings, got "
                                 f"{type(prompt).__name__} and {type(response).__name__}")
            out.append([Sample(prompt, response)])
        elif all(side in row for side in HH_SIDES):
            pair = []
            for side in HH_SIDES:
                if not isinstance(row[side], str):
                    raise ValueError(f"{where}, field {side!r}: expected a transcript string, "
                                     f"got {type(row[side]).__name__}")
                pair.append(Sample(*split_prompt_response(row[side], where=f"{where}, field {side!r}")))
            if pair[0].prompt != pair[1].prompt:  # as rlaif.data.hh.load_hh refuses them
                raise ValueError(f"{where}: 'chosen' and 'rejected' differ before the final assistant "
                                 "reply, so they are not two answers to one prompt; both transcripts "
                                 "must share every turn but the last assistant reply")
            out.append(pair)
        else:
            keys = ", ".join(row) or "(none)"
            raise ValueError(f"{where}: expected fields 'prompt' + 'response', or 'chosen' + "
                             f"'rejected' (HH transcripts); found: {keys}")
    return out


class ScoringStopped(JudgeError):
    """Scoring stopped early; the rows finished so far are in `<out>.partial`."""


def score_in_chunks(judge: Judge, samples: Sequence[Sample], where: Path | str, *,
                    chunk: int = CHUNK, progress: Callable[[int], Any] | None = None,
                    on_chunk: Callable[[list[Score]], Any] | None = None,
                    on_stop: Callable[[list[Score | None]], str] | None = None) -> list[Score]:
    """Score `samples` `chunk` at a time (`on_chunk(scores so far)` and `progress(n)` after
    each). On a stop (a judge error, a budget, Ctrl-C) `on_stop(scores so far, None where not
    scored)` keeps them and returns what it did; the error then names the chunk, how many were
    scored and where they went."""
    scores: list[Score] = []
    for start in range(0, len(samples), chunk):
        batch = samples[start:start + chunk]
        try:
            scores.extend(judge.score(batch))
        except (JudgeError, KeyboardInterrupt) as exc:
            partial = [*scores, *(getattr(exc, "partial", None) or [])]
            done = [*partial, *[None] * (len(samples) - len(partial))]
            kept = on_stop(done) if on_stop is not None else ""
            n_done = sum(s is not None and s.value is not None for s in done)
            raise ScoringStopped(
                f"{exc or type(exc).__name__} (while scoring {where}, samples {start}..."
                f"{start + len(batch) - 1}); {n_done} of {len(samples)} samples were scored"
                + (f"; {kept}" if kept else "")
                + ". Re-running with the same --cache skips every sample already paid for",
                partial=done) from exc
        if on_chunk is not None:
            on_chunk(scores)
        if progress is not None:
            progress(len(batch))
    return scores


def check_output_path(out: Path) -> None:
    """Refuse, before any request is sent, an output path that cannot be written."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; pass a file path such as {out / 'scores.jsonl'}")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: its folder cannot be created ({exc.strerror}); "
                         "choose another path") from None
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"--out {out}: not writable; choose a writable path")


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """count, mean, std (population), min, max over the scored values; unscored counted apart."""
    got = [v for v in values if v is not None]
    n = len(got)
    mean, std = mean_std(got)
    return {"count": n, "mean": mean, "std": std, "min": min(got) if n else math.nan,
            "max": max(got) if n else math.nan, "unscored": len(values) - n}


def preload(judge: Judge) -> None:
    """Load the judge's model now (a cached judge's inner one), so a missing model fails
    before any scoring starts."""
    load = getattr(getattr(judge, "judge", judge), "load", None)
    if callable(load):
        load()


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
    """What `ScoringJob.run` did: the output rows, the values per column, cache stats, usage."""

    rows: list[dict[str, Any]]
    values: dict[str, list[float | None]]  # "score", or "chosen" and "rejected" (HH rows)
    cache_stats: dict[str, Any] | None
    usage: Usage

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
class ScoringJob:
    """A JSONL file read and checked whole, ready to score: its rows and their Samples."""

    data: Path
    out: Path
    rows: list[Row]
    per_row: list[list[Sample]]

    @classmethod
    def read(cls, data: Path, out: Path, limit: int | None = None) -> ScoringJob:
        """Read the first `limit` rows of `data`; errors name the file and row."""
        if out.resolve() == data.resolve():
            raise ValueError(f"--out {out} is the input file; choose another output path")
        if limit is not None and limit <= 0:
            raise ValueError(f"--limit {limit}: must be a positive number of rows")
        rows = read_numbered_rows(data, limit)
        return cls(data, out, rows, to_samples(rows, data))

    @property
    def samples(self) -> list[Sample]:
        """Every Sample, in row order (HH rows: chosen, then rejected)."""
        return [s for samples in self.per_row for s in samples]

    def run(self, judge: Judge, progress: Callable[[int], Any] | None = None) -> ScoredFile:
        """Score every sample. Finished rows stream to `<out>.partial` as each chunk ends (so
        even a killed run keeps them); the file is renamed to `out` once every row is done."""
        check_output_path(self.out)
        writer = _RowWriter(self, JsonlStream(self.out))
        try:
            scores = score_in_chunks(judge, self.samples, self.data, progress=progress,
                                     on_chunk=writer.flush_ready, on_stop=writer.stop)
        except BaseException:
            writer.stream.close()
            raise
        writer.flush_ready(scores)
        writer.stream.finish()
        stats = judge.stats() if hasattr(judge, "stats") else None
        out_rows, values = output_rows(self.rows, self.per_row, scores)
        return ScoredFile(out_rows, values, stats, judge.usage())


class _RowWriter:
    """Writes a job's rows as their samples are scored: in order while scoring runs; on a stop,
    every other row whose samples all finished too."""

    def __init__(self, job: ScoringJob, stream: JsonlStream) -> None:
        self.job, self.stream = job, stream
        self.next_row = 0  # rows before it are written
        self.starts = list(itertools.accumulate((len(s) for s in job.per_row), initial=0))

    def _write(self, rows: Sequence[int], scores: Sequence[Score | None]) -> None:
        for i in rows:
            lo, hi = self.starts[i], self.starts[i + 1]
            out, _ = output_rows([self.job.rows[i]], [self.job.per_row[i]], scores[lo:hi])  # type: ignore[arg-type]
            self.stream.write(out[0])

    def flush_ready(self, scores: Sequence[Score | None]) -> None:
        """Write the rows, from the next unwritten one on, whose samples are all in `scores`."""
        end = self.next_row
        while end < len(self.job.rows) and self.starts[end + 1] <= len(scores):
            end += 1
        self._write(range(self.next_row, end), scores)
        self.next_row = end

    def stop(self, scores: list[Score | None]) -> str:
        """On a stop: write every remaining row whose samples were all scored; say how many."""
        ready = [i for i in range(self.next_row, len(self.job.rows))
                 if all(s is not None for s in scores[self.starts[i]:self.starts[i + 1]])]
        self._write(ready, scores)
        self.next_row = len(self.job.rows)
        self.stream.close()
        return (f"{self.stream.rows} finished row(s) of {len(self.job.rows)} written to "
                f"{self.stream.partial_path}")
