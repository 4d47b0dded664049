"""`<run>/metrics.jsonl`: one JSON object per training step (PPO) or log line (DPO), written by
the main process as the run goes; a resumed run drops the rows after its checkpoint's step and
writes them again. Non-finite numbers are written as null (JSON has no NaN), never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlaif.io import append_jsonl, atomic_write_jsonl, read_jsonl
from rlaif.runs.folder import METRICS_FILE


def finite_or_none(value: Any) -> Any:
    """`value`, with a non-finite float as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends one JSON object per step to `metrics.jsonl` (main process only)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled

    def reset(self, keep_through_step: int = 0) -> None:
        """Drop lines of steps after `keep_through_step` (a resumed run rewrites them)."""
        if not self.enabled:
            return
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= keep_through_step] \
            if self.path.exists() else []
        atomic_write_jsonl(self.path, kept)

    def write(self, metrics: Mapping[str, Any]) -> None:
        """Append one step's metrics (non-finite numbers as null)."""
        if self.enabled:
            append_jsonl(self.path, {k: finite_or_none(v) for k, v in metrics.items()})


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a metrics.jsonl (a run folder or the file itself)."""
    path = Path(path)
    return read_jsonl(path / METRICS_FILE if path.is_dir() else path)
