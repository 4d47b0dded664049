"""Persistent score cache: a repeated (judge spec, prompt, response) costs nothing.

One sqlite file, keyed by (spec fingerprint, sha256 of prompt and response). WAL mode and
a busy timeout let several threads and processes (e.g. DDP ranks, parallel `rlaif score`
runs) read and write the same file at once (`SqliteStore`, which the pairwise cache in
`rlaif.judges.pairwise_cache` uses too). Only real scores (value not None) are stored,
so a sample that failed is retried next time. When the inner judge fails part-way
(`JudgeError.partial`), every finished score is stored before the error goes up: scores
already paid for are never lost.

A row's `details` column holds the Score's extras as JSON: {"_layout": 2, "details": {...},
"criteria": {...} | null, "members": {name: {raw, normalized, weight[, error]}} | null}.
Rows written before that layout hold the bare details dict, with the criteria and ensemble
members under its "criteria" / "members" keys; they are still read (`_extras_from_json`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlaif.judges.base import Judge, JudgeError, JudgeStats, MemberScore, Sample, Score, Usage

BUSY_TIMEOUT_S = 30.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    key TEXT NOT NULL,
    sample TEXT NOT NULL,
    value REAL NOT NULL,
    rationale TEXT,
    raw TEXT,
    usage TEXT,
    details TEXT,
    created REAL NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (key, sample)
)
"""


def sample_hash(prompt: str, response: str) -> str:
    """sha256 of the (prompt, response) pair; JSON framing keeps ("ab", "c") != ("a", "bc")."""
    blob = json.dumps([prompt, response], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_LAYOUT = 2  # the `details` column's JSON layout (see the module doc)


def _extras_to_json(score: Score) -> str | None:
    """The Score's details, criteria and members as one JSON text (None when it has none)."""
    if not score.details and score.criteria is None and score.members is None:
        return None
    members = None if score.members is None else {n: m.to_dict() for n, m in score.members.items()}
    return json.dumps({"_layout": _LAYOUT, "details": score.details, "criteria": score.criteria,
                       "members": members}, default=str)


def _extras_from_json(text: str | None) -> dict[str, Any]:
    """Score keyword arguments (details, criteria, members) from a stored `details` column."""
    data = json.loads(text) if text else {}
    if data.get("_layout") == _LAYOUT:
        details, criteria, members = data.get("details") or {}, data.get("criteria"), data.get("members")
    else:  # a row written before typed criteria/members: they sat inside the details dict
        details = dict(data)
        criteria, members = details.pop("criteria", None), details.pop("members", None)
    return {
        "details": details,
        "criteria": None if criteria is None else {k: float(v) for k, v in criteria.items()},
        "members": None if members is None else {n: MemberScore.from_dict(m) for n, m in members.items()},
    }


def _retry_while_locked(action: Any, timeout: float) -> Any:
    """Run `action`, retrying while sqlite says the file is locked, up to `timeout` seconds.

    Switching a new file to WAL takes an exclusive lock and sqlite answers BUSY at once,
    without its busy handler, when another process is creating the same file: two ranks
    opening a fresh cache together must wait for each other, not fail.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class SqliteStore:
    """One sqlite cache file shared by threads and processes: WAL, busy timeout, clear errors.

    `read` and `write` run one statement under a lock, on a connection opened per process
    (a connection must not cross a fork). Used by the score cache and the pairwise cache."""

    def __init__(self, path: str | Path, schema: str, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path).expanduser()
        self.schema = schema
        self.timeout = timeout
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with self.lock:
            self._connect()  # a corrupt or unwritable file fails here, before any scoring

    def error(self, exc: sqlite3.Error, doing: str) -> JudgeError:
        """A JudgeError naming the file, what failed and the fix (locked, read-only, corrupt)."""
        text = str(exc)
        if "locked" in text or "busy" in text:
            return JudgeError(
                f"score cache {self.path} is locked ({text}) while {doing}: another process "
                f"holds it and did not let go within {self.timeout:.0f} s. Stop that process, "
                "or point `cache:` / --cache at another file."
            )
        unwritable = not os.access(self.path.parent, os.W_OK) or (
            self.path.exists() and not os.access(self.path, os.W_OK))
        if "readonly" in text or "read-only" in text or unwritable or "unable to open" in text:
            return JudgeError(
                f"score cache {self.path} is read-only ({text}) while {doing}; the scores in it are "
                "valid and are kept (do not delete it): make the file and its folder writable "
                "(sqlite also writes -wal/-shm files beside it), or point `cache:` / --cache at a "
                "writable copy."
            )
        return JudgeError(
            f"score cache {self.path} cannot be used ({type(exc).__name__}: {text}) while "
            f"{doing}; if the file is corrupt or not a cache, delete it ({self.path}) and "
            "its -wal/-shm files to start a fresh cache."
        )

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            _retry_while_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(self.schema)
        except sqlite3.Error as exc:
            raise self.error(exc, "opening it") from exc
        except OSError as exc:
            raise JudgeError(
                f"score cache {self.path} cannot be created ({exc}); choose a writable path"
            ) from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def read(self, sql: str, params: Sequence[Any], doing: str = "reading") -> list[tuple[Any, ...]]:
        """All rows of one query."""
        with self.lock:
            conn = self._connect()
            try:
                return conn.execute(sql, list(params)).fetchall()
            except sqlite3.Error as exc:
                raise self.error(exc, doing) from exc

    def read_keys(self, sql: str, key: str, hashes: Sequence[str]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (ending in "key = ? AND sample IN ({marks})") for many hashes."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(hashes), 500):  # stay under sqlite's variable limit
            chunk = list(hashes[start:start + 500])
            rows += self.read(sql.format(marks=",".join("?" * len(chunk))), [key, *chunk])
        return rows

    def write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run `sql` for every row in one transaction."""
        if not rows:
            return
        with self.lock:
            conn = self._connect()
            try:
                # IMMEDIATE takes the write lock up front, so concurrent writers queue on the
                # busy timeout instead of failing on a lock upgrade.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(sql, rows)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self.error(exc, "writing") from exc

    def close(self) -> None:
        """Close this process's connection."""
        with self.lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class CachedJudge(Judge):
    """Wraps a judge with a sqlite cache; only cache misses reach the inner judge."""

    def __init__(self, judge: Judge, path: str | Path, key: str,
                 timeout: float = BUSY_TIMEOUT_S) -> None:
        self.judge = judge
        self.key = key
        self.name = judge.name
        self.scale = judge.scale
        self.hits = 0
        self.misses = 0
        self.store = SqliteStore(path, _SCHEMA, timeout)
        self.path = self.store.path

    def _lookup(self, hashes: list[str]) -> dict[str, Score]:
        found: dict[str, Score] = {}
        rows = self.store.read_keys(
            "SELECT sample, value, rationale, raw, details FROM scores WHERE key = ? AND sample IN ({marks})",
            self.key, hashes)
        for sample, value, rationale, raw, extras in rows:
            score = Score(value=float(value), rationale=rationale, raw=raw, usage=Usage(),
                          **_extras_from_json(extras))
            score.details["cached"] = True
            found[sample] = score
        return found

    def _store(self, items: list[tuple[str, Score]]) -> None:
        rows = [
            (self.key, h, s.value, s.rationale, s.raw,
             json.dumps(asdict(s.usage)) if s.usage else None,
             _extras_to_json(s))
            for h, s in items if s is not None and s.value is not None
        ]
        self.store.write(
            "INSERT OR REPLACE INTO scores (key, sample, value, rationale, raw, usage, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    # -- the judge --------------------------------------------------------------------------

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Answer hits from the file, score the misses (each distinct one once), store them."""
        hashes = [sample_hash(s.prompt, s.response) for s in samples]
        found = self._lookup(sorted(set(hashes)))
        results: list[Score | None] = [found.get(h) for h in hashes]
        # Distinct misses only: a sample repeated within the batch is scored once.
        todo: dict[str, int] = {}
        for i, (h, r) in enumerate(zip(hashes, results)):
            if r is None and h not in todo:
                todo[h] = i
        n_hits = sum(r is not None for r in results)
        self.hits += n_hits
        self.misses += len(samples) - n_hits
        if todo:
            miss_hashes = list(todo)
            try:
                fresh = await self.judge.ascore([samples[todo[h]] for h in miss_hashes])
            except JudgeError as exc:
                done = list(zip(miss_hashes, exc.partial or []))
                self._store([(h, s) for h, s in done if s is not None])
                by_hash = {h: s for h, s in done if s is not None}
                exc.partial = [r if r is not None else by_hash.get(h) for h, r in zip(hashes, results)]
                raise
            if len(fresh) != len(miss_hashes):
                raise JudgeError(
                    f"judge {self.name!r} returned {len(fresh)} scores for {len(miss_hashes)} "
                    "samples; a judge must return exactly one Score per sample"
                )
            by_hash = dict(zip(miss_hashes, fresh))
            results = [r if r is not None else by_hash[h] for h, r in zip(hashes, results)]
            try:
                self._store(list(by_hash.items()))
            except JudgeError as exc:
                exc.partial = list(results)  # the scores exist; only saving them failed
                raise
        return results  # type: ignore[return-value]  # every slot is filled above

    @property
    def spec(self) -> Any:  # type: ignore[override]  # the inner judge's
        """The inner judge's spec (the one with `cache:` set, when built by the registry)."""
        return self.judge.spec

    def load(self) -> None:
        """Load the inner judge now."""
        self.judge.load()

    def stats(self) -> JudgeStats:
        """Hit/miss counts of this object and the number of entries stored under this key."""
        ((entries,),) = self.store.read("SELECT COUNT(*) FROM scores WHERE key = ?", [self.key], "counting entries")
        return JudgeStats(str(self.path), self.hits, self.misses, int(entries), self.key)

    def usage(self) -> Usage:
        """The inner judge's usage: cache hits add nothing."""
        return self.judge.usage()

    def close(self) -> None:
        """Close the sqlite connection, the inner judge and this wrapper's loop."""
        self.store.close()
        self.judge.close()
        super().close()
