"""Preference pairs for DPO: an `rlaif label` JSONL (or a `datasets` folder) -> TRL rows.

Prompts stay plain HH dialogues in the label file (what the judge saw). For `data.task: chat`
each becomes chat messages (the dialogue's turns, optional system message) and each reply one
assistant message, TRL's *conversational* preference format, so TRL renders them through the
tokenizer's own chat template exactly as generation does; for `dialogue` they stay text.

Rows whose `chosen` or `rejected` is null (a tie, or a pair the judge could not score) are
left out and counted, never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.data.chat import chat_messages
from rlaif.dpo.config import PreferenceConfig
from rlaif.io import iter_jsonl


@dataclass
class PreferenceSet:
    """The usable pairs (TRL rows) and what was left out, by reason."""

    rows: list[dict[str, Any]]
    left_out: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def summary(self) -> str:
        """One line: how many pairs, and how many left out and why."""
        out = ", ".join(f"{n} {why}" for why, n in self.left_out.items() if n)
        return f"{len(self.rows)} preference pairs from {self.source}" + (f" ({out} left out)" if out else "")


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) of a JSONL file or a `save_to_disk` folder."""
    if path.is_dir():
        from datasets import load_from_disk

        try:
            dataset = load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"preferences.path {path}: not a `datasets` folder ({exc}); pass the "
                             "JSONL written by `rlaif label` or its --dataset folder") from None
        return [(i + 1, dict(row)) for i, row in enumerate(dataset)]
    if not path.is_file():
        raise FileNotFoundError(f"preferences.path {path} does not exist; write one with "
                                "`rlaif label ... --out FILE.jsonl`")
    return list(iter_jsonl(path))


def load_preferences(prefs: PreferenceConfig, *, chat: bool, system_prompt: str | None = None
                     ) -> PreferenceSet:
    """Read, check and convert the pairs; errors name the file, row and field, and the fix."""
    path = Path(prefs.path).expanduser()
    rows, left_out = [], {"ties or unscored": 0, "below min_strength": 0, "identical replies": 0}
    for lineno, row in _read_rows(path):
        where = f"{path}: row {lineno}"
        for name in ("prompt", "chosen", "rejected"):
            if name not in row:
                raise ValueError(f"{where}: missing field {name!r} (fields: {', '.join(row)}); a "
                                 "preference row needs 'prompt', 'chosen' and 'rejected'")
        if row["chosen"] is None or row["rejected"] is None:
            left_out["ties or unscored"] += 1
            continue
        for name in ("prompt", "chosen", "rejected"):
            if not isinstance(row[name], str):
                # ValueError, not TypeError: bad user data, which the CLI reports as such.
                raise ValueError(f"{where}, field {name!r}: expected a string, got "  # noqa: TRY004
                                 f"{type(row[name]).__name__}")
        if row["chosen"].strip() == row["rejected"].strip():
            left_out["identical replies"] += 1  # no preference to learn; DPO's loss is flat there
            continue
        if prefs.min_strength is not None:
            strength = row.get("strength")
            if not isinstance(strength, (int, float)) or not math.isfinite(strength) \
                    or strength < prefs.min_strength:  # NaN compares False: test it explicitly
                left_out["below min_strength"] += 1
                continue
        rows.append(_trl_row(row, chat=chat, system_prompt=system_prompt, where=where))
        if prefs.limit is not None and len(rows) >= prefs.limit:
            break
    if not rows:
        raise ValueError(f"preferences.path {path}: no usable pair ({PreferenceSet([], left_out).summary()}); "
                         "label more pairs, or lower preferences.min_strength")
    return PreferenceSet(rows, left_out, str(path))


def _trl_row(row: dict[str, Any], *, chat: bool, system_prompt: str | None, where: str) -> dict[str, Any]:
    """One TRL preference row: conversational (chat) or plain text."""
    if not chat:
        return {"prompt": row["prompt"], "chosen": " " + row["chosen"].strip(),
                "rejected": " " + row["rejected"].strip()}
    try:
        prompt = chat_messages(row["prompt"], system_prompt)
    except ValueError as exc:
        raise ValueError(f"{where}, field 'prompt': {exc}") from None
    return {"prompt": prompt,
            "chosen": [{"role": "assistant", "content": row["chosen"].strip()}],
            "rejected": [{"role": "assistant", "content": row["rejected"].strip()}]}
