"""One event loop and one HTTP client per judge: what sync `score` runs on, and what close() ends.

The Claude judges run the real anthropic / boto3 clients against the fake server; clients
are counted where they are made (`anthropic.AsyncAnthropic`, boto3's `Session.client`).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score
from rlaif.judges.registry import build_judge
from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

SAMPLES = [Sample("Say something.", "You are terrible and i hate you."),  # 2 bad words -> 1
           Sample("Say something.", "Have a lovely day.")]  # 0 -> 5
EXPECTED = [1.0, 5.0]
CALLS = 4  # sync score calls per test


class _WhereRun(Judge):
    """value = len(response); records the loop and thread each batch ran on."""

    scale = Scale(0, 100)

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[int, str]] = []

    async def ascore(self, samples):
        self.seen.append((id(asyncio.get_running_loop()), threading.current_thread().name))
        return [Score(float(len(s.response))) for s in samples]


class _Reentrant(_WhereRun):
    """A judge that wrongly calls its own sync `score` from inside `ascore`."""

    async def ascore(self, samples):
        return self.score(samples)


def _alive(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"rlaif-judge-loop:{name}"]


def test_sync_calls_share_one_loop_and_thread_until_close():
    judge = _WhereRun("loop-once")
    for _ in range(CALLS):
        assert [s.value for s in judge.score([("p", "abc"), ("p", "a")])] == [3.0, 1.0]
    assert len(set(judge.seen)) == 1 and len(judge.seen) == CALLS
    assert judge.seen[0][1] == "rlaif-judge-loop:loop-once"
    assert len(_alive("loop-once")) == 1
    judge.close()
    assert _alive("loop-once") == []
    judge.close()  # safe twice
    judge.score([("p", "ab")])  # a closed judge scores again, on a new loop
    assert judge.seen[-1][0] != judge.seen[0][0] and len(_alive("loop-once")) == 1
    judge.close()


def test_sync_score_works_inside_a_running_loop_as_in_jupyter():
    judge = _WhereRun("in-notebook")

    async def notebook_cell():
        return judge.score([("p", "abcd")])  # the main thread runs a loop, as Jupyter's does

    with judge:
        assert [s.value for s in asyncio.run(notebook_cell())] == [4.0]
    assert _alive("in-notebook") == []


def test_sync_score_from_the_judges_own_loop_is_refused_not_a_deadlock():
    with _Reentrant("reentrant") as judge, pytest.raises(RuntimeError, match="would wait for itself"):
        judge.score([("p", "a")])


@pytest.fixture
def credentials(monkeypatch):
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def anthropic_clients(monkeypatch, credentials):
    """Every `AsyncAnthropic` the provider makes, with the loop it was made on."""
    import anthropic

    made: list = []

    class Counted(anthropic.AsyncAnthropic):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loop = asyncio.get_running_loop()
            made.append(self)

    monkeypatch.setattr(anthropic, "AsyncAnthropic", Counted)
    return made


def _claude(fake: FakeClaude, **extra):
    return build_judge("claude-toxicity-anthropic", base_url=fake.url, requests_per_minute=None,
                       max_retries=0, timeout=5.0, **extra)


def test_sync_calls_open_one_anthropic_client_and_close_releases_it(anthropic_clients):
    with FakeClaude() as fake:
        judge = _claude(fake, name="one-client")
        for _ in range(CALLS):
            assert [s.value for s in judge.score(SAMPLES)] == EXPECTED
        assert fake.requests == CALLS * len(SAMPLES)
        assert len(anthropic_clients) == 1 and not anthropic_clients[0].is_closed()
        judge.close()
        assert anthropic_clients[0].is_closed() and _alive("one-client") == []


def test_threads_scoring_at_once_share_the_one_loop_and_client(anthropic_clients):
    from concurrent.futures import ThreadPoolExecutor

    with FakeClaude() as fake, _claude(fake, name="threads") as judge:
        with ThreadPoolExecutor(3) as pool:  # the first calls race to start the loop
            results = list(pool.map(lambda _: judge.score(SAMPLES), range(3)))
        assert [[s.value for s in r] for r in results] == [EXPECTED] * 3
        assert len(anthropic_clients) == 1 and len(_alive("threads")) == 1


def test_load_checks_the_credentials_now_and_sends_nothing(monkeypatch, credentials):
    with FakeClaude() as fake:
        with _claude(fake) as judge:
            judge.load()  # a key is set: nothing to complain about
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        with _claude(fake) as judge, pytest.raises(JudgeError, match="no API key found; set ANTHROPIC_API_KEY"):
            judge.load()
        assert fake.requests == 0


def test_async_callers_get_a_client_per_batch_on_their_own_loop(anthropic_clients):
    # The caller's loop may end at any time (asyncio.run per call), so a client opened on it
    # lives for that batch only and is never used from another loop.
    with FakeClaude() as fake, _claude(fake) as judge:
        for _ in range(2):
            assert [s.value for s in asyncio.run(judge.ascore(SAMPLES))] == EXPECTED
        assert len(anthropic_clients) == 2 and all(c.is_closed() for c in anthropic_clients)
        assert anthropic_clients[0].loop is not anthropic_clients[1].loop
        judge.score(SAMPLES)  # the judge's own loop: a third client, kept open
        assert len(anthropic_clients) == 3 and not anthropic_clients[2].is_closed()
    assert anthropic_clients[2].is_closed()


def test_a_cached_llm_judge_keeps_one_client_on_the_wrappers_loop(anthropic_clients, tmp_path):
    with FakeClaude() as fake:
        judge = _claude(fake, cache=str(tmp_path / "c.sqlite"))
        for i in range(CALLS):
            judge.score([Sample("p", f"reply number {i}")])  # a new sample each time: a miss
        assert fake.requests == CALLS and len(anthropic_clients) == 1
        stats = judge.stats()
        assert (stats.hits, stats.misses, stats.entries) == (0, CALLS, CALLS)
        judge.close()
        assert anthropic_clients[0].is_closed()


def test_bedrock_opens_one_client_until_close(monkeypatch, credentials):
    import boto3.session

    made: list[str] = []
    real = boto3.session.Session.client

    def counted(self, service, *args, **kwargs):
        made.append(service)
        return real(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counted)
    with FakeClaude() as fake:
        judge = build_judge("claude-toxicity-bedrock", endpoint_url=fake.url, requests_per_minute=None,
                            max_retries=0, timeout=5.0)
        for _ in range(CALLS):
            assert [s.value for s in judge.score(SAMPLES)] == EXPECTED
        assert made == ["bedrock-runtime"]
        judge.close()
        assert [s.value for s in judge.score(SAMPLES)] == EXPECTED  # reopened after close
        assert made == ["bedrock-runtime"] * 2
        judge.close()
