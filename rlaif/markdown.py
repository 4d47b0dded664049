"""Markdown helpers for reports and tables: arbitrary text made safe inside one table cell."""

from __future__ import annotations

import math

CELL_CHARS = 300  # texts longer than this are cut in a markdown cell (report.json keeps all)


def md_escape(text: str, limit: int = CELL_CHARS, keep: str = "start") -> str:
    """Make arbitrary text safe inside one markdown table cell (cut to `limit` characters,
    keeping the start, or the end for dialogue prompts whose last turn matters most)."""
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…" if keep == "start" else "…" + text[-(limit - 1):]
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    for ch in "*_<>[]#":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\r\n", "\n").replace("\n", "<br>") or " "


def fmt_num(x: float | None, fmt: str = ".4f") -> str:
    """A number for a table cell; "n/a" for None or a non-finite value."""
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def fmt_pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal; "n/a" for None."""
    return "n/a" if x is None else f"{100 * x:.1f}%"
