"""No absolute local path in what a run publishes (the model card, report.json, report.md).

A path on this machine means nothing to a reader elsewhere, and tells them a user name, a
cache layout, where the virtual environment lives. The rule, for every absolute path (`/...`
or `~/...`) found in a string:

    inside the run folder              relative to it: `checkpoints/step-2`, `metrics.jsonl`
                                       (the run folder itself: its name)
    a Hugging Face hub cache snapshot  the hub id and the file inside it: `org/name/config.json`
    anywhere else                      its last part: `my-judge.yaml` (no `~`, no folders above)

Hub ids, URLs and relative paths are left as they are. POSIX paths only: a Windows
`C:\\...` path is not recognised.

    publishable_text(text, run_dir)   one string, every absolute path in it rewritten
    publishable(data, run_dir)        a copy of a dict/list tree, every string rewritten
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# An absolute path of two parts or more, not inside a word, a URL (`://host/...`) or another path.
_ABSOLUTE = re.compile(r"(?<![\w/.:~\-])~?(?:/[^\s/'\"`|,;()\[\]{}<>]+){2,}")
_HUB_CACHE = re.compile(r"^(?:models|datasets|spaces)--(.+)$")


def _short(path: Path, bases: tuple[Path, ...]) -> str:
    """One absolute path as the rule says."""
    for base in bases:
        if path == base:
            return base.name  # the run folder itself: its name
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    parts = path.parts
    for i, part in enumerate(parts):
        hub = _HUB_CACHE.match(part)
        if hub and i + 2 < len(parts) and parts[i + 1] == "snapshots":
            return "/".join([hub.group(1).replace("--", "/"), *parts[i + 3:]])
    return path.name or str(path)


def publishable_text(text: str, run_dir: str | Path | None = None) -> str:
    """`text` with every absolute local path shown relative to `run_dir` or as its last part."""
    bases: tuple[Path, ...] = ()
    if run_dir is not None:
        bases = tuple(dict.fromkeys((Path(run_dir).absolute(), Path(run_dir).resolve())))

    def rewrite(match: re.Match[str]) -> str:
        found = match.group(0)
        tail = found[len(found.rstrip(".:")):]  # a sentence's full stop is not part of the path
        path = Path(os.path.expanduser(found[: len(found) - len(tail)]))
        return _short(path, bases) + tail

    return _ABSOLUTE.sub(rewrite, text)


def publishable(data: Any, run_dir: str | Path | None = None) -> Any:
    """A copy of a dict/list tree with `publishable_text` applied to every string (keys too)."""
    if isinstance(data, dict):
        return {publishable(k, run_dir): publishable(v, run_dir) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [publishable(v, run_dir) for v in data]
    if isinstance(data, str):
        return publishable_text(data, run_dir)
    return data
