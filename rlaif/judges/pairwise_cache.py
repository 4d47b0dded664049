"""Persistent cache of pairwise answers: a repeated (spec, prompt, first, second) costs nothing.

One row per asking of a pair, keyed by (spec fingerprint, sha256 of the prompt and the two
replies in the order they were shown), in table `pairwise` of the same kind of sqlite file
as the score cache (`rlaif.judges.cache.SqliteStore`: WAL, busy timeout, clear errors; the
two caches may share one file). Asking (a, b) and later (b, a) are two rows; asking pair
(b, a) in the order "ab" is the very request (a, b) asked as "ba", and hits it. Only answers
with a verdict are stored, so a failed asking is retried next time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaif.judges.base import JudgeStats
from rlaif.judges.cache import BUSY_TIMEOUT_S, SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairwise (
    key TEXT NOT NULL,
    sample TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (key, sample)
)
"""


def shown_hash(prompt: str, first: str, second: str) -> str:
    """sha256 of one asking: the prompt and the replies in the order shown (JSON-framed)."""
    blob = json.dumps(["pairwise", prompt, first, second], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class PairwiseCache:
    """Answers by asking (see the module doc); `answer` is a JSON-ready dict."""

    def __init__(self, path: str | Path, key: str, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.key = key
        self.store = SqliteStore(path, _SCHEMA, timeout)
        self.path = self.store.path
        self.hits = 0  # distinct askings looked up and found
        self.misses = 0  # distinct askings looked up and not found

    def lookup(self, hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored answers among `hashes`, by hash."""
        distinct = sorted(set(hashes))
        rows = self.store.read_keys(
            "SELECT sample, answer FROM pairwise WHERE key = ? AND sample IN ({marks})",
            self.key, distinct)
        found = {sample: json.loads(answer) for sample, answer in rows}
        self.hits += len(found)
        self.misses += len(distinct) - len(found)
        return found

    def save(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store answers (hash, answer); the caller passes only answers with a verdict."""
        self.store.write("INSERT OR REPLACE INTO pairwise (key, sample, answer) VALUES (?, ?, ?)",
                         [(self.key, h, json.dumps(a, default=str)) for h, a in items])

    def entries(self) -> int:
        """How many answers are stored under this key."""
        ((n,),) = self.store.read("SELECT COUNT(*) FROM pairwise WHERE key = ?", [self.key], "counting entries")
        return int(n)

    def stats(self) -> JudgeStats:
        """Hits and misses of this object's lookups (distinct askings), entries under its key."""
        return JudgeStats(str(self.path), self.hits, self.misses, self.entries(), self.key)

    def close(self) -> None:
        """Close the sqlite connection."""
        self.store.close()
