"""The `.partial` file of a judging job: every answer written as it arrives, so none is lost.

    <out>.partial   line 1: {"_partial": {kind, judges: {name: {ref, spec_fingerprint}}, ...}}
                    then one JSON row per answer (a scored reply, a labelled pair), appended a
                    batch at a time, flushed and fsync'd before the judge is asked again

A kill of any kind (SIGKILL included) leaves every answer of the finished batches on disk; a
last line cut short is dropped when the file is read back. An existing `.partial` is never
overwritten: `existing="resume"` (`--resume`) continues it (its judges must be this run's:
same reference and spec fingerprint), `"restart"` (`--restart`) deletes it, and `"refuse"`
(the default) stops before any request, naming both flags. The finished file is written to
`out` atomically and the `.partial` removed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from rlaif.io import atomic_write_jsonl

log = logging.getLogger(__name__)

Existing = Literal["refuse", "resume", "restart"]
HEADER = "_partial"
FLAGS = "--resume to continue it (nothing already answered is asked again) or --restart to discard it"


def partial_path(out: Path) -> Path:
    """Where answers go while a run is under way (and stay if it stops)."""
    return out.with_name(out.name + ".partial")


def existing_policy(resume: bool, restart: bool) -> Existing:
    """The policy of the --resume / --restart flags (both: refused)."""
    if resume and restart:
        raise ValueError("--resume and --restart contradict each other; pass one")
    return "resume" if resume else "restart" if restart else "refuse"


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
                log.warning("%s: its last line was cut short (a stopped run); that answer is asked again", path)
                break
            raise ValueError(f"{path}: line {n} is not valid JSON; pass --restart to discard the file "
                             "and start from scratch") from None
    return rows


def owner_mismatch(earlier: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """How two {judge name: {ref, spec_fingerprint}} records differ for a judge both name (None: they agree)."""
    for name, was in earlier.items():
        this = now.get(name)
        if this is None:
            continue
        for field in ("ref", "spec_fingerprint"):
            if was.get(field) is not None and was.get(field) != this.get(field):
                who = f"judge {name!r}: " if len(now) > 1 else ""
                return f"{who}{field} {was.get(field)!r} there, {this.get(field)!r} in this run"
    if earlier and not set(earlier) & set(now):
        return f"it belongs to judge(s) {sorted(earlier)}, this run's are {sorted(now)}"
    return None


class Journal:
    """One job's `.partial` file (see the module doc): the answers of earlier runs, and appends."""

    def __init__(self, out: Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        self.out = out
        self.path = partial_path(out)
        self.header = header
        self.rows = rows  # answers kept from earlier runs (resume), then this run's appended
        self.earlier = len(rows)

    @classmethod
    def open(cls, out: Path, header: dict[str, Any], existing: Existing = "refuse") -> Journal:
        """The journal of `out`: an earlier `.partial` resumed, deleted or refused by `existing`."""
        path = partial_path(out)
        if not path.exists():
            return cls(out, header, [])
        if existing == "restart":
            path.unlink()
            return cls(out, header, [])
        rows = read_rows_tolerant(path)
        found = rows[0].get(HEADER) if rows else None
        answers = [r for r in rows if HEADER not in r]
        if existing == "refuse":
            raise ValueError(f"{path} holds {len(answers)} answer(s) of an earlier run that stopped; "
                             f"pass {FLAGS}")
        if found is not None:
            if found.get("kind") != header.get("kind"):
                raise ValueError(f"{path} was written by `rlaif {found.get('kind')}`, not "
                                 f"`rlaif {header.get('kind')}`; pass --restart to discard it or "
                                 "choose another --out")
            why = owner_mismatch(found.get("judges") or {}, header.get("judges") or {})
            if why:
                raise ValueError(f"{path} belongs to another judge ({why}); its answers cannot be "
                                 "mixed with this judge's: choose another --out, or pass --restart "
                                 "to discard them")
        return cls(out, header, answers)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append answers in one write, then flush and fsync: on disk before the next request."""
        rows = list(rows)
        if not rows:
            return
        lines = [] if self.path.exists() else [{HEADER: self.header}]
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*lines, *rows])
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.extend(rows)

    def finish(self, rows: Iterable[Any]) -> Path:
        """Write the finished file atomically, then remove the `.partial`."""
        atomic_write_jsonl(self.out, rows)
        self.path.unlink(missing_ok=True)
        return self.out
