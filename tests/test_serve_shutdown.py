"""SIGTERM mid-load: `rlaif serve` as a real process answers every request it holds, exits 0,
and keeps the score cache, so a restarted service pays for none of those samples again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from serve_helpers import metric

from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

PROMPT = "\n\nHuman: Say something.\n\nAssistant:"
N = 12


def start_service(fake: FakeClaude, cache: Path) -> tuple[subprocess.Popen, str]:
    """`rlaif serve claude-toxicity-anthropic` on a port the OS picks; returns (process, URL)."""
    cmd = [sys.executable, "-m", "rlaif.cli", "serve", "claude-toxicity-anthropic", "--port", "0",
           "--cache", str(cache), "--set", f"base_url={fake.url}", "--set", "requests_per_minute=null",
           "--set", "max_concurrency=4", "--set", "timeout=30"]
    env = {**os.environ, **DUMMY_CREDENTIALS}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:  # the process prints its URL once it listens
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].strip()
    proc.wait(30)
    pytest.fail(f"rlaif serve exited {proc.returncode} before listening: {proc.stderr.read()}")  # type: ignore[union-attr]


def send_all(url: str, texts: list[str]) -> list[tuple[int, dict]]:
    """One OpenRLHF-shaped request per text, each from its own thread; (status, body) per text."""
    out: list[tuple[int, dict]] = [(0, {})] * len(texts)

    def one(i: int) -> None:
        body = json.dumps({"query": [PROMPT + texts[i]], "prompts": [PROMPT], "labels": [None]}).encode()
        request = urllib.request.Request(f"{url}/get_reward", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            out[i] = (reply.status, json.loads(reply.read()))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    return out, threads  # type: ignore[return-value]


@pytest.mark.slow
def test_sigterm_mid_load_answers_everything_held_and_keeps_the_cache(tmp_path):
    texts = [f" You are terrible and i hate you. ({i})" if i % 2 else f" Have a lovely day ({i})." for i in range(N)]
    cache = tmp_path / "cache.sqlite"
    with FakeClaude(latency=0.5) as fake:  # 12 requests, 4 at a time: they are in flight for a while
        proc, url = start_service(fake, cache)
        try:
            out, threads = send_all(url, texts)
            deadline = time.monotonic() + 120
            while metric(url, "rlaif_serve_queued_samples") < N:  # all 12 received (no timing assumed)
                assert time.monotonic() < deadline, "the requests never all reached the service"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(120)
            assert proc.wait(120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert [status for status, _ in out] == [200] * N  # nothing lost
        assert [body["rewards"] for _, body in out] == [[1.0] if i % 2 else [5.0] for i in range(N)]
        assert fake.requests == N
        assert "stopped; answered" in proc.stderr.read()  # type: ignore[union-attr]

        proc, url = start_service(fake, cache)  # the same cache file, a fresh process
        try:
            again, threads = send_all(url, texts)
            for t in threads:
                t.join(120)
            assert again == out and fake.requests == N  # every sample from the kept cache: nothing paid twice
            assert metric(url, "rlaif_serve_cache_hits_total") == N
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(120) == 0
