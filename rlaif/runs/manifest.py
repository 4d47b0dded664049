"""A folder's file manifest: the size and sha256 of every file, written when the folder is
complete and checked before it is trusted again (a checkpoint on `--resume`, on export).

    <folder>/files.json   {"files": {"<relative path>": {"bytes": N, "sha256": "..."}}}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rlaif.io import atomic_write_json

MANIFEST_FILE = "files.json"


def file_digest(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_file_manifest(folder: Path) -> None:
    """Record size and sha256 of every file under `folder` in `folder/files.json`."""
    files = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_digest(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}
    atomic_write_json(folder / MANIFEST_FILE, {"files": files})


def damaged_file(folder: Path, *, required: bool = False) -> str | None:
    """What is wrong with `folder`'s files (the first problem found), or None when they verify.

    A folder without `files.json` verifies unless `required` (folders written before manifests
    existed hold none; an export insists on one)."""
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        return f"{manifest} is missing (the folder's files cannot be verified)" if required else None
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        items = [(str(rel), int(want["bytes"]), str(want["sha256"])) for rel, want in files.items()]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return f"{manifest} is damaged"
    for rel, size, digest in items:
        p = folder / rel
        if not p.is_file():
            return f"{p} is missing"
        if p.stat().st_size != size:
            return f"{p} has {p.stat().st_size} bytes, {size} were written (truncated?)"
        if file_digest(p) != digest:
            return f"{p} does not match the checksum recorded when it was written (altered)"
    return None
