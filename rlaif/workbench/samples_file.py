"""The input of `rlaif score`: a JSONL file of {prompt, response} rows or HH {chosen, rejected} rows.

Rows are numbered from 1: a row's number is its line in the file (blank lines are skipped but
keep their numbers), in every message. HH transcripts are split into the prompt and the final
assistant reply (both sides must share the prompt).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaif.io import iter_jsonl
from rlaif.judges.base import Sample

HH_SIDES = ("chosen", "rejected")
SAMPLE_REFS = {"sample": "train", "sample:train": "train", "sample:test": "test"}

Row = tuple[int, dict[str, Any]]  # (row number in the file, from 1; the JSON object)


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
