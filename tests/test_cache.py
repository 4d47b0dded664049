"""Score cache: hits skip the judge, partial results are kept, bad files give clear errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlaif.judges.base import Judge, JudgeError, MemberScore, Sample, Scale, Score, Usage
from rlaif.judges.cache import CachedJudge, sample_hash
from rlaif.judges.registry import build_judge


class Counting(Judge):
    """value = len(response); remembers every batch it was asked to score."""

    name = "counting"
    scale = Scale(0, 100)

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_after = fail_after

    async def ascore(self, samples):
        self.calls.append([s.response for s in samples])
        scores = [
            Score(float(len(s.response)), rationale=f"len {s.response}", raw="r",
                  usage=Usage(requests=1, cost_usd=0.01), details={"k": 1})
            if s.response != "bad" else Score.failed("cannot score 'bad'")
            for s in samples
        ]
        if self.fail_after is not None:
            partial = scores[: self.fail_after] + [None] * (len(samples) - self.fail_after)
            raise JudgeError("budget exhausted", partial=partial)
        return scores

    def usage(self) -> Usage:
        return Usage(requests=len(self.calls))


SAMPLES = [Sample("p", "a"), Sample("p", "bb"), Sample("q", "a"), Sample("p", "bad")]


def test_miss_then_hit_skips_the_inner_judge(tmp_path):
    path = tmp_path / "c.sqlite"
    inner = Counting()
    first = CachedJudge(inner, path, key="k1").score(SAMPLES)
    assert [s.value for s in first] == [1.0, 2.0, 1.0, None]
    assert inner.calls == [["a", "bb", "a", "bad"]]

    inner2 = Counting()
    cached = CachedJudge(inner2, path, key="k1")  # a fresh object, as in a new run
    second = cached.score(SAMPLES)
    assert [s.value for s in second[:3]] == [1.0, 2.0, 1.0]
    assert inner2.calls == [["bad"]]  # failed scores are not stored: retried
    assert second[0].details == {"k": 1, "cached": True}
    assert second[0].rationale == "len a" and second[0].raw == "r"
    assert second[0].usage == Usage()  # a hit costs nothing
    assert (cached.hits, cached.misses) == (3, 1)
    assert cached.stats().entries == 3
    assert cached.usage() == Usage(requests=1)  # the inner judge's usage
    assert (cached.name, cached.scale) == ("counting", Scale(0, 100))


def test_key_separates_specs_and_duplicates_are_scored_once(tmp_path):
    inner = Counting()
    judge = CachedJudge(inner, tmp_path / "c.sqlite", key="other")
    judge.score([Sample("p", "zz"), Sample("p", "zz")])
    assert inner.calls == [["zz"]]
    inner_k1 = Counting()
    CachedJudge(inner_k1, tmp_path / "c.sqlite", key="k1").score([Sample("p", "zz")])
    assert inner_k1.calls == [["zz"]]  # another spec fingerprint never reuses the score


def test_partial_scores_are_stored_before_the_error_goes_up(tmp_path):
    path = tmp_path / "c.sqlite"
    hit = CachedJudge(Counting(), path, key="k")
    hit.score([Sample("x", "first")])  # one entry already there
    judge = CachedJudge(Counting(fail_after=2), path, key="k")
    batch = [Sample("x", "first"), Sample("p", "a"), Sample("p", "bb"), Sample("p", "ccc")]
    with pytest.raises(JudgeError, match="budget exhausted") as err:
        judge.score(batch)
    # partial is mapped back onto the caller's batch: the hit, two finished, one missing
    assert [s.value if s else None for s in err.value.partial] == [5.0, 1.0, 2.0, None]
    again = Counting()
    CachedJudge(again, path, key="k").score(batch)
    assert again.calls == [["ccc"]]


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(JudgeError, match=rf"score cache {path}.*delete it"):
        CachedJudge(Counting(), path, key="k")


def test_locked_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    judge = CachedJudge(Counting(), path, key="k", timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        with pytest.raises(JudgeError, match=r"locked.*another process holds it") as err:
            judge.score([Sample("p", "a")])
        assert err.value.partial[0].value == 1.0  # scored, only the save failed
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_build_judge_wraps_a_spec_with_cache(tmp_path):
    spec = {"type": "function", "function": "math:fabs", "scale": [0, 1],
            "cache": str(tmp_path / "c.sqlite")}
    judge = build_judge(spec)
    assert isinstance(judge, CachedJudge) and len(judge.key) == 16


class Fixed(Judge):
    """Returns one fixed Score for every sample."""

    name, scale = "fixed", Scale(0, 10)

    def __init__(self, score: Score) -> None:
        self.fixed = score

    async def ascore(self, samples):
        return [self.fixed for _ in samples]


def test_criteria_and_members_round_trip_through_the_file(tmp_path):
    path = tmp_path / "c.sqlite"
    members = {"a": MemberScore(8.0, 0.6, 3.0), "b": MemberScore(None, None, 1.0, "b could not read")}
    fresh = Score(4.0, details={"model": "m"}, criteria={"helpfulness": 5.0, "honesty": 3.0}, members=members)
    CachedJudge(Fixed(fresh), path, key="k").score([Sample("p", "r")])
    [hit] = CachedJudge(Counting(), path, key="k").score([Sample("p", "r")])
    assert hit.details == {"model": "m", "cached": True}
    assert hit.criteria == {"helpfulness": 5.0, "honesty": 3.0}
    assert hit.members == members


def test_rows_written_with_the_old_details_layout_still_load(tmp_path):
    path = tmp_path / "c.sqlite"
    CachedJudge(Counting(), path, key="k")  # creates the table
    old = ('{"model": "m", "structured": true, "criteria": {"honesty": 3.0}, "missing": [], '
           '"members": {"a": {"raw": 8.0, "normalized": 0.6, "weight": 3.0}, '
           '"b": {"raw": null, "normalized": null, "weight": 1.0, "error": "x"}}}')
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO scores (key, sample, value, details) VALUES (?, ?, ?, ?)",
                     ["k", sample_hash("p", "r"), 4.0, old])
    inner = Counting()
    [hit] = CachedJudge(inner, path, key="k").score([Sample("p", "r")])
    assert inner.calls == [] and hit.value == 4.0
    assert hit.details == {"model": "m", "structured": True, "missing": [], "cached": True}
    assert hit.criteria == {"honesty": 3.0}
    assert hit.members == {"a": MemberScore(8.0, 0.6, 3.0), "b": MemberScore(None, None, 1.0, "x")}


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from rlaif.judges.base import Judge, Scale, Score, Sample
    from rlaif.judges.cache import CachedJudge

    class Len(Judge):
        name, scale = "len", Scale(0, 1000)
        async def ascore(self, samples):
            return [Score(float(len(s.response))) for s in samples]

    path, tag, go = sys.argv[1], sys.argv[2], sys.argv[3]
    judge = CachedJudge(Len(), path, key="k")
    while not os.path.exists(go):  # start writing together, so the writes overlap
        time.sleep(0.01)
    for start in range(0, 200, 10):
        # 150 texts of this writer's own, 50 shared with the other writer
        judge.score([Sample("p", f"{tag if i < 150 else 'shared'}-{i}" + "x" * (i % 7))
                     for i in range(start, start + 10)])
    print("done")
    """
)


def test_two_processes_write_concurrently(tmp_path):
    path = tmp_path / "c.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen([sys.executable, str(script), str(path), tag, str(go)], cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag in ("A", "B")
    ]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    with sqlite3.connect(path) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM scores").fetchone()
        (total,) = conn.execute("SELECT SUM(value) FROM scores").fetchone()
    assert n == 150 + 150 + 50
    expected = {f"{tag if i < 150 else 'shared'}-{i}" + "x" * (i % 7) for tag in "AB" for i in range(200)}
    assert total == sum(len(t) for t in expected)


def test_read_only_message_keeps_the_cache(tmp_path):
    # (The sandbox runs as root, which sqlite lets write to a chmod-444 file, so the message is
    # checked on the error sqlite raises for a read-only database.)
    judge = CachedJudge(Counting(), tmp_path / "c.sqlite", key="k")
    err = judge.store.error(sqlite3.OperationalError("attempt to write a readonly database"), "writing")
    text = str(err)
    assert "read-only" in text and "do not delete it" in text and "corrupt" not in text
    judge.close()
