"""The workbench keeps every paid answer through kills and signals (issue #21.3, #21.5).

`rlaif score` and `rlaif label` run as subprocesses against a fake Claude server that answers
the first N requests and then holds the next ones: a deterministic point mid-run, without
sleeps. SIGKILL there leaves exactly the N answered samples / N/2 pairs on disk; SIGTERM
finishes the request in flight first. The `--resume` rerun (on a fresh server, which counts
only its own requests) pays for no request twice and the final file has every row once.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from rlaif.cli import main
from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

SAFETY_S = 120  # only so a broken run cannot hang the suite; never a timing assertion


class HoldingClaude(FakeClaude):
    """Answers the first `answer` requests, then holds every later one until `release`:
    `answer_held` True answers it (counted), False drops it (a 503, not counted)."""

    def __init__(self, answer: int) -> None:
        super().__init__()
        self.answer = answer
        self.held = threading.Event()
        self.release = threading.Event()
        self.answer_held = True
        self._seen = 0
        self._seen_lock = threading.Lock()

    def handle(self, path, headers, body):
        with self._seen_lock:
            n, self._seen = self._seen, self._seen + 1
        if n >= self.answer:
            self.held.set()
            self.release.wait()
            if not self.answer_held:
                return 503, {}, b'{"message": "dropped"}'
        return super().handle(path, headers, body)

    def __exit__(self, *exc):
        self.answer_held = False
        self.release.set()
        super().__exit__(*exc)


def _env():
    return {**os.environ, **DUMMY_CREDENTIALS, "PYTHONUNBUFFERED": "1"}


def _start(argv):
    return subprocess.Popen([sys.executable, "-m", "rlaif.cli", *argv], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class _Lines:
    """A subprocess stream read by a thread: wait for a line, then take everything."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(x) for x in stream] + [self.lines.put(None)],
                         daemon=True).start()

    def wait_for(self, needle: str) -> None:
        while not self.seen or needle not in self.seen[-1]:
            line = self.lines.get(timeout=SAFETY_S)
            assert line is not None, "".join(self.seen)
            self.seen.append(line)

    def rest(self) -> str:
        while (line := self.lines.get(timeout=SAFETY_S)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def _stop(proc, fake, how):
    """Hold at the fake's point, then SIGKILL (drop the held request) or SIGTERM (answer it)."""
    assert fake.held.wait(SAFETY_S)
    if how == "kill":
        proc.send_signal(signal.SIGKILL)
        proc.wait(SAFETY_S)
        fake.answer_held = False
        fake.release.set()
        return ""
    err = _Lines(proc.stderr)
    proc.send_signal(signal.SIGTERM)
    err.wait_for("finishing the answers in flight")
    fake.release.set()
    proc.wait(SAFETY_S)
    return err.rest()


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def _credentials(monkeypatch):
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("how", ["kill", "term"])
def test_score_killed_or_terminated_mid_run_resumes_without_paying_twice(tmp_path, how, _credentials, capsys):
    n, answered = 60, 25
    data, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    data.write_text("".join(json.dumps({"prompt": "p", "response": f"reply number {i}"}) + "\n"
                            for i in range(n)))
    partial = tmp_path / "out.jsonl.partial"
    with HoldingClaude(answer=answered) as fake:
        proc = _start(["score", "claude-toxicity-anthropic", "--data", str(data), "--out", str(out),
                       "--no-progress", "--set", f"base_url={fake.url}", "--set", "requests_per_minute=null",
                       "--set", "max_concurrency=1"])
        said = _stop(proc, fake, how)
        paid = fake.requests
    kept = answered if how == "kill" else answered + 1  # SIGTERM: the request in flight is finished
    assert paid == kept
    assert proc.returncode == (-9 if how == "kill" else 130)
    header, *rows = _rows(partial)
    assert [r["row"] for r in rows] == list(range(1, kept + 1)) and all(r["score"] is not None for r in rows)
    if how == "term":
        assert f"stopped by SIGTERM (while scoring rows {kept + 1}-{kept + 1} of {data})" in said
        assert f"{kept} of {n} samples ({kept} of {n} rows with an answer) are kept in {partial}" in said
        assert "--resume" in said and "Traceback" not in said
    before = partial.read_bytes()
    with FakeClaude() as fake:
        base = ["score", "claude-toxicity-anthropic", "--data", str(data), "--out", str(out), "--no-progress",
                "--set", f"base_url={fake.url}", "--set", "requests_per_minute=null"]
        assert main(base) == 1  # an earlier .partial is refused, not overwritten
        assert "pass --resume to continue it" in capsys.readouterr().err
        assert partial.read_bytes() == before and fake.requests == 0
        assert main([*base, "--resume"]) == 0
        assert fake.requests == n - kept  # no paid request repeated
    final = _rows(out)
    assert [r["response"] for r in final] == [f"reply number {i}" for i in range(n)]
    assert all(r["score"] is not None for r in final) and not partial.exists()


def _hh(path, n):
    lines = []
    for i in range(n):
        prompt = f"\n\nHuman: question {i}?\n\nAssistant:"
        lines.append(json.dumps({"chosen": f"{prompt} Kind reply {i}.", "rejected": f"{prompt} You idiot {i}."}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("how", ["kill", "term"])
def test_label_killed_or_terminated_mid_run_resumes_and_another_judge_is_refused(tmp_path, how, _credentials,
                                                                                 capsys):
    n_pairs, answered = 12, 10  # the pairwise judge asks both orders: 2 requests per pair
    data, out = _hh(tmp_path / "hh.jsonl", n_pairs), tmp_path / "labels.jsonl"
    partial = tmp_path / "labels.jsonl.partial"
    common = ["--data", str(data), "--out", str(out), "--no-progress", "--set", "requests_per_minute=null",
              "--set", "max_concurrency=2"]
    with HoldingClaude(answer=answered) as fake:
        proc = _start(["label", "claude-pairwise-anthropic", *common, "--set", f"base_url={fake.url}"])
        said = _stop(proc, fake, how)
        paid = fake.requests
    kept_pairs = answered // 2 if how == "kill" else answered // 2 + 1
    assert paid == 2 * kept_pairs
    header, *rows = _rows(partial)
    assert header["_partial"]["judges"]["label"]["ref"] == "claude-pairwise-anthropic"
    assert len(rows) == kept_pairs and all(r["verdict"] == r["human_chosen"] for r in rows)
    if how == "term":
        assert proc.returncode == 130 and "Traceback" not in said
        assert f"{kept_pairs} of {n_pairs} pairs are kept in {partial}" in said
    with FakeClaude() as fake:
        url = ["--set", f"base_url={fake.url}"]
        assert main(["label", "claude-pairwise-anthropic", *common, *url, "--resume"]) == 0
        assert fake.requests == 2 * (n_pairs - kept_pairs)
        capsys.readouterr()
        final = _rows(out)
        assert len(final) == n_pairs and len({r["key"] for r in final}) == n_pairs
        meta = json.loads((tmp_path / "labels.jsonl.meta.json").read_text())
        assert meta["judge_ref"] == "claude-pairwise-anthropic" and len(meta["spec_fingerprint"]) == 16
        assert meta["spent_total"]["requests"] == 2 * n_pairs
        # the file belongs to one judge: another judge, or another spec, is refused
        assert main(["label", "claude-toxicity-anthropic", *common, *url]) == 1
        err = capsys.readouterr().err
        assert "holds labels of another judge" in err and "--out" in err and "--restart" in err
        assert main(["label", "claude-pairwise-anthropic", *common, *url, "--set", "orders=single"]) == 1
        assert "spec_fingerprint" in capsys.readouterr().err
        assert fake.requests == 2 * (n_pairs - kept_pairs) and _rows(out) == final


def test_a_budget_carries_across_resume(tmp_path, capsys, _credentials):
    data, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    data.write_text("".join(json.dumps({"prompt": "p", "response": f"reply {i}"}) + "\n" for i in range(20)))
    with FakeClaude() as fake:
        base = ["score", "claude-toxicity-anthropic", "--data", str(data), "--out", str(out), "--no-progress",
                "--set", f"base_url={fake.url}", "--set", "requests_per_minute=null", "--set", "max_concurrency=1"]
        assert main([*base, "--set", "budget.max_requests=7"]) == 1 and fake.requests == 7
        capsys.readouterr()
        # the same budget on resume: all 7 requests are spent already, nothing is sent
        assert main([*base, "--resume", "--set", "budget.max_requests=7"]) == 1
        assert "budget.max_requests = 7 is already spent on this file" in capsys.readouterr().err
        assert fake.requests == 7
        # a budget of 12 for the whole file: 5 more requests
        assert main([*base, "--resume", "--set", "budget.max_requests=12"]) == 1
        assert fake.requests == 12
        assert main([*base, "--resume"]) == 0 and fake.requests == 20


def test_an_api_judge_is_asked_its_concurrency_at_a_time_so_the_cache_and_partial_grow_per_batch(
        tmp_path, _credentials):
    """A kill loses at most max_concurrency answers: each batch is on disk (and in the cache)
    before the next request leaves."""
    from rlaif.judges.base import Sample
    from rlaif.workbench.journal import Journal
    from rlaif.workbench.judge_setup import JudgeChoice
    from rlaif.workbench.score_file import ScoreJob

    data, out, cache = tmp_path / "rows.jsonl", tmp_path / "out.jsonl", tmp_path / "c.sqlite"
    data.write_text("".join(json.dumps({"prompt": "p", "response": f"reply {i}"}) + "\n" for i in range(10)))
    with FakeClaude() as fake:
        choice = JudgeChoice.resolve("claude-toxicity-anthropic", {"base_url": fake.url, "max_concurrency": 3,
                                                                   "requests_per_minute": None}, str(cache))
        assert choice.batch(256) == 3
        job = ScoreJob.read(data, out)
        journal = Journal.open(out, job.header(choice))
        seen = []
        judge = choice.pointwise()
        real = judge.score

        def watched(samples: list[Sample]):
            # before each call: every earlier answer is in the journal file and the cache
            on_disk = len(_rows(journal.path)) - 1 if journal.path.exists() else 0
            seen.append((len(samples), on_disk, judge.stats().entries))
            return real(samples)

        judge.score = watched  # type: ignore[method-assign]
        try:
            job.run(judge, journal, batch=choice.batch(256))
        finally:
            judge.close()
    assert seen == [(3, 0, 0), (3, 3, 3), (3, 6, 6), (1, 9, 9)]
