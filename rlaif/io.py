"""Files a run writes and reads: atomic writes (text, JSON, JSONL, whole folders), JSONL and
YAML reading.

Every writer goes through a temporary name in the target's own folder and an `os.replace`, so
a crash or a full disk never leaves a half-written file where a reader expects a whole one.
Readers name the file and line of anything they cannot parse; the YAML reader also refuses a
key given twice in one mapping (plain YAML keeps the last silently, dropping a whole section).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib Figure as PNG atomically (the temporary name keeps the .png suffix)."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    For writers that insist on a file name of their own (matplotlib, torch.save)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 is not what a report wants
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and an atomic rename."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix + ".tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """`atomic_write_text` of `data` as JSON (non-ASCII kept, trailing newline)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write one JSON value per line, atomically: readers never see half a file."""
    path = Path(path)
    with atomic_path(path, suffix=".jsonl.tmp") as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def atomic_write_dir(final: str | Path, build: Callable[[Path], Any]) -> Any:
    """Fill a temporary folder beside `final` with `build(tmp)`, then swap it into place.

    An existing `final` is replaced only once the new one is complete; returns what `build` did.
    Its files get the permissions of an ordinary write (0644 under umask 022), whatever the
    writer chose (transformers writes model.safetensors 0600)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    old = final.parent / f".{final.name}.old"
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        result = build(tmp)
        for path in tmp.rglob("*"):
            if path.is_file() and not path.is_symlink():
                os.chmod(path, 0o666 & ~_umask())
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return result


def append_jsonl(path: str | Path, *rows: Any) -> None:
    """Append JSON lines (for logs that grow a line per step) in one write, flushed: a kill
    mid-write can cut only the last line."""
    if rows:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def check_output_dir(out: Path) -> None:
    """Refuse, before any work is paid for, an --out that is a file or a folder that cannot be
    written (it is created if missing)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: the folder cannot be created ({exc.strerror}); choose another path") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {out}: not writable; choose a writable folder")


class JsonlStream:
    """Rows written as they finish, to `<path>.partial`, renamed to `path` by `finish()`.

    Each row is flushed to the operating system when written, so a stop of any kind (an
    error, Ctrl-C, even SIGKILL) leaves every finished row in the `.partial` file; `path`
    itself only ever appears whole. Use as a context manager: on an exception the
    `.partial` file stays (and `rows` says how many it holds); on success it is renamed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.rows = 0
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.partial_path.open("w", encoding="utf-8")

    def write(self, row: Any) -> None:
        """Append one row and flush it."""
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.rows += 1

    def finish(self) -> Path:
        """Close and rename the finished file into place (atomic)."""
        self._fh.close()
        os.replace(self.partial_path, self.path)
        return self.path

    def close(self) -> None:
        """Close without renaming: the `.partial` file keeps what was written."""
        if not self._fh.closed:
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None and not self._fh.closed:
            self.finish()
        else:
            self.close()


def iter_jsonl(path: str | Path, *, objects_only: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSONL file.

    A line that is not JSON, not UTF-8, or (with `objects_only`) not a JSON object raises
    ValueError naming the file and line."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: line {lineno}: not UTF-8 ({exc.reason} at byte "
                                 f"{exc.start}); save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno}: not valid JSON ({exc.msg} at column "
                                 f"{exc.colno}); each line must be one JSON value") from None
            if objects_only and not isinstance(value, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object, got "
                                 f"{type(value).__name__}")
            yield lineno, value


def read_jsonl(path: str | Path, *, objects_only: bool = True) -> list[Any]:
    """All values of a JSONL file (see `iter_jsonl` for the errors)."""
    return [value for _, value in iter_jsonl(path, objects_only=objects_only)]


def read_yaml(path: str | Path, *, what: str = "YAML file") -> Any:
    """The YAML document in `path` (None when empty). ValueError naming the file for text that is
    not UTF-8, not YAML, or a mapping that gives one key twice (both lines named)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: the {what} is not UTF-8 ({exc.reason} at byte {exc.start}); "
                         "save it as UTF-8") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, path, what)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: yaml.Node, path: Path, what: str, prefix: str = "",
                           seen_nodes: set[int] | None = None) -> None:
    """Walk a composed YAML tree; the first mapping key seen twice raises ValueError."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:  # an alias of a node already checked (or a recursive one)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, path, what, f"{prefix}{i}.", seen_nodes)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                raise ValueError(
                    f"{path}: key '{prefix}{key}' is given twice in the {what}, at line "
                    f"{seen[key]} and at line {line}; YAML would keep only the second (silently "
                    "dropping the first): merge them into one")
            seen[key] = line
            _refuse_duplicate_keys(value_node, path, what, f"{prefix}{key}.", seen_nodes)
        else:
            _refuse_duplicate_keys(value_node, path, what, prefix, seen_nodes)
