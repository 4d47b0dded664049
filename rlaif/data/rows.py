"""Rows of local data files, read the way the hub repositories ship them.

    .jsonl / .json       one JSON object per line, or (.json) one JSON array of objects
    + .gz / .bz2 / .xz   the same, compressed (Anthropic/hh-rlhf ships `*.jsonl.gz`); .zst
                         needs the optional `zstandard` package
    .parquet             through pyarrow

`split_files(folder, data_dir, split)` finds a split in a folder laid out like a hub
repository: `<folder>/<data_dir>/<split>.jsonl.gz`, e.g. `hh-rlhf/harmless-base/test.jsonl.gz`
(no data_dir: `<folder>/<split>.*`, else every `<folder>/*/<split>.*`, as the hub combines
them). `read_rows(path)` yields the rows one by one, so a `limit` reads only what it needs;
`indexed_rows(path, keep)` yields (row index, row) and skips rows whose index `keep` refuses
before decoding them (held-out rows are never parsed).
A file that cannot be read raises `DataFileError` naming the file (and the row and line
where there is one) and the fix: not UTF-8, not JSON, a broken archive, no rows at all.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Callable, Optional

Keep = Optional[Callable[[int], bool]]  # row index -> read this row?

ROW_KINDS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_ARCHIVE_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)
_JSON_FIX = "write one JSON object per line (or one JSON array of objects in a .json file)"


class DataFileError(ValueError):
    """A data file that cannot be read as rows; the message names the file and the fix."""

    def __init__(self, problem: str, *, where: str, fix: str) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")


def file_kind(path: Path) -> str | None:
    """"json" or "parquet" for a supported file name (compressed or not), else None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes = suffixes[:-1]
    return ROW_KINDS.get(suffixes[-1]) if suffixes else None


def split_files(folder: Path, data_dir: str | None, split: str) -> list[Path]:
    """Files of `split` in a hub-layout folder (see the module docstring); [] when none match."""
    base = folder / data_dir if data_dir else folder

    def matches(parent: Path) -> list[Path]:
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir()
                      if p.is_file() and p.name.split(".")[0] == split and file_kind(p))

    found = matches(base)
    if not found and not data_dir:
        found = [p for sub in sorted(folder.iterdir()) for p in matches(sub)]
    return found


def read_rows(path: Path) -> Iterator[Any]:
    """The rows of one local file, one by one; raises DataFileError for an unreadable file."""
    return (row for _, row in indexed_rows(path))


def indexed_rows(path: Path, keep: Keep = None) -> Iterator[tuple[int, Any]]:
    """(0-based row index, row) of one local file's rows whose index `keep` accepts (all when None);
    refused rows are not decoded. Raises DataFileError for an unreadable file."""
    kind = file_kind(path)
    if kind is None:
        raise ValueError(
            f"{path}: unsupported file type; use .json, .jsonl or .parquet "
            f"(optionally {', '.join(COMPRESSED_SUFFIXES)} compressed)"
        )
    count = 0
    rows = _parquet_rows(path, keep) if kind == "parquet" else _json_rows(path, keep)
    for index, row in rows:
        count += 1
        if row is not _SKIPPED:
            yield index, row
    if count == 0:
        raise DataFileError("holds no rows (the file is empty or blank)", where=str(path),
                            fix="write HH rows, one JSON object with 'chosen' and 'rejected' "
                            "per line")


def _opener(path: Path) -> Callable[[Path], IO[bytes]]:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return lambda p: gzip.open(p, "rb")
    if suffix == ".bz2":
        return lambda p: bz2.open(p, "rb")
    if suffix == ".xz":
        return lambda p: lzma.open(p, "rb")
    if suffix == ".zst":
        try:
            import zstandard
        except ImportError:
            raise DataFileError("reading .zst files needs the 'zstandard' package",
                                where=str(path), fix="pip install zstandard, or decompress "
                                "the file (zstd -d)") from None
        return lambda p: zstandard.open(p, "rb")
    return lambda p: open(p, "rb")


def _lines(path: Path) -> Iterator[bytes]:
    """Raw lines of a (possibly compressed) file; a broken archive names the file."""
    with _opener(path)(path) as handle:
        while True:
            try:
                line = handle.readline()
            except _ARCHIVE_ERRORS as err:
                raise DataFileError(f"cannot be read ({type(err).__name__}: {err})",
                                    where=str(path), fix="check the file is complete and "
                                    "matches its suffix; download it again") from err
            if not line:
                return
            yield line


def _decode(raw: bytes, where: str) -> str:
    """UTF-8 text of `raw`; otherwise a DataFileError at `where` (line and column of the byte)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line = raw.count(b"\n", 0, err.start)
        place = f" line {line + 1}" if line else ""
        raise DataFileError(
            f"is not UTF-8 text (byte {raw[err.start:err.start + 1]!r} at{place} column "
            f"{err.start - line_start + 1})",
            where=where, fix="re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`",
        ) from None


_SKIPPED = object()  # a row that `keep` refused: counted, never decoded


def _json_rows(path: Path, keep: Keep = None) -> Iterator[tuple[int, Any]]:
    """JSON Lines, or (a .json file starting with '[') one JSON array of rows."""
    lines = _lines(path)
    first = next(lines, b"")
    is_array = first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")
    if is_array and ".jsonl" not in [s.lower() for s in path.suffixes]:  # read whole
        text = _decode(first + b"".join(lines), str(path)).lstrip("\ufeff")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFileError(f"not valid JSON ({err.msg})",
                                where=f"{path} line {err.lineno}", fix=_JSON_FIX) from None
        for index, item in enumerate(value):
            yield index, (item if keep is None or keep(index) else _SKIPPED)
        return
    row = 0
    for lineno, raw_line in enumerate(itertools.chain([first], lines), 1):
        where = f"{path} row {row} (line {lineno})"
        if keep is not None and raw_line.removeprefix(b"\xef\xbb\xbf").strip() and not keep(row):
            row += 1  # a refused row: not even decoded
            yield row - 1, _SKIPPED
            continue
        text = _decode(raw_line, where)
        if lineno == 1:
            text = text.lstrip("\ufeff")
        if not text.strip():
            continue  # blank lines (a trailing newline, spacing) hold no row
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFileError(f"not valid JSON ({err.msg} at column {err.colno})",
                                where=where, fix=_JSON_FIX) from None
        row += 1
        yield row - 1, value


def _parquet_rows(path: Path, keep: Keep = None) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq  # comes with `datasets`

    try:
        with _opener(path)(path) as handle:
            table = pq.read_table(handle)
    except DataFileError:
        raise
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataFileError(f"cannot be read as parquet ({type(err).__name__}: {err})",
                            where=str(path), fix="check the file is a complete parquet file"
                            ) from err
    kept = [i for i in range(table.num_rows) if keep is None or keep(i)]
    rows = dict(zip(kept, table.take(kept).to_pylist()))
    for index in range(table.num_rows):
        yield index, rows.get(index, _SKIPPED)
