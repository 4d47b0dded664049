"""The decided pairs as a Hugging Face `datasets` folder (`save_to_disk`), ready for TRL.

Only rows with a verdict a or b go in (ties and unscored pairs have no chosen/rejected);
the columns are TRL's `prompt`, `chosen`, `rejected` plus the judge's fields. The folder is
built beside its target and renamed into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaif.io import atomic_write_dir
from rlaif.workbench.label_rows import DECIDED

COLUMNS = ("prompt", "chosen", "rejected", "verdict", "strength", "rationale", "consistent",
           "cost_usd", "judge_calls", "key")


def save_dataset(rows: Sequence[dict[str, Any]], folder: str | Path) -> int:
    """Write the decided rows to `folder` with `Dataset.save_to_disk`; returns how many."""
    from datasets import Dataset

    decided = [r for r in rows if r.get("verdict") in DECIDED]
    if not decided:
        raise ValueError(f"no pair was decided (all ties or unscored): nothing to save to {folder}")
    extra = [c for c in ("human_chosen", "agrees_with_human") if c in decided[0]]
    table = Dataset.from_list([{c: r.get(c) for c in (*COLUMNS, *extra)} for r in decided])
    atomic_write_dir(folder, lambda tmp: table.save_to_disk(str(tmp)))
    return len(decided)
