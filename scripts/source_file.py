"""Read a released data file from a download, a working-tree clone or a bare git clone
(shared by the scripts that rebuild rlaif's shipped data subsets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def read_source(path: Path, source_file: str, source_url: str, fix: str) -> bytes:
    """The bytes of `source_file` (a path inside the repository at `source_url`) from `path`:
    the file itself, a working-tree clone holding it, or a bare clone (read with git show);
    exits naming `path` and `fix` otherwise."""
    if path.is_file():
        return path.read_bytes()
    if (path / source_file).is_file():
        return (path / source_file).read_bytes()
    if path.is_dir():
        done = subprocess.run(["git", "-C", str(path), "show", f"HEAD:{source_file}"],
                              capture_output=True)
        if done.returncode == 0:
            return done.stdout
    sys.exit(f"{path}: neither the file {source_file} nor a clone of {source_url} holding it. "
             f"Fix: {fix}")


def checked_source(path: Path, source_file: str, source_url: str, sha256: str, fix: str,
                   download_fix: str) -> tuple[bytes, str]:
    """(bytes, sha256) of the source file (`read_source`), exiting when the sha256 is not the
    expected one: `download_fix` says how to take the file again."""
    import hashlib

    data = read_source(path, source_file, source_url, fix)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        sys.exit(f"{path}: sha256 {digest} is not the expected {sha256} of {source_url} "
                 f"{source_file}. Fix: {download_fix} If upstream changed it on purpose, review "
                 "the new rows, then update SOURCE_SHA256 and SOURCE_ROWS here and rebuild")
    return data, digest
