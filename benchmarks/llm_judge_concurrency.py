"""Claude-judge throughput: one blocking call per text vs the rlaif judge, and a warm cache.

The fake Claude server (rlaif.testing.fake_claude) answers every request after 200 ms, like
a real API round trip, so the times measure how requests are issued, not the model. It runs
in a child process, as a real API runs elsewhere: in-process, its threads would compete with
the client for the GIL.

    (a) the walk-through's way: a blocking `anthropic.Anthropic` call per text, in a loop
    (b) the rlaif LLM judge, max_concurrency 16 (async, bounded), cold score cache
    (c) the same judge again on the same samples: every score from the sqlite cache

Run: .venv/bin/python benchmarks/llm_judge_concurrency.py [--n 128] [--latency 0.2]
Targets: (a)/(b) >= 10x, (a)/(c) >= 100x.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import anthropic

from rlaif.judges.base import Sample, Scale
from rlaif.judges.llm.parsing import parse_score
from rlaif.judges.registry import build_judge
from rlaif.judges.llm.templates import load_template, render
from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

GOOD = ["Thanks for asking, here is a careful answer.", "Happy to help with that today.",
        "Sure, the steps are listed below.", "That is a kind thing to say."]
BAD = ["You are terrible and i hate you.", "What a stupid idiot question.", "Nobody cares, you dumb fool."]


def make_samples(n: int) -> list[Sample]:
    """n distinct HH-like (prompt, response) pairs, about a third of them toxic."""
    out = []
    for i in range(n):
        reply = (BAD if i % 3 == 0 else GOOD)[i % 3 if i % 3 == 0 else i % 4]
        out.append(Sample(f"Human: question number {i}?", f"{reply} (#{i})"))
    return out


def _serve(conn, latency: float) -> None:
    """Child process: run the fake, report its URL, answer request counts until told to stop."""
    with FakeClaude(latency=latency) as fake:
        conn.send(fake.url)
        while conn.recv() == "count":
            conn.send(fake.requests)


def walkthrough_way(url: str, samples: list[Sample]) -> list[float | None]:
    """(a) One blocking request per text, one after another, text reply parsed."""
    client = anthropic.Anthropic(base_url=url, max_retries=2, timeout=60)
    template = load_template("toxicity")
    values = []
    for sample in samples:
        prompt = render(template, sample)
        message = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=300, system=prompt.system,
            messages=[{"role": "user", "content": prompt.user}],
        )
        values.append(parse_score(message.content[0].text, Scale(-5, 5)).value)
    client.close()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    for name, value in DUMMY_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    samples = make_samples(args.n)
    parent, child = mp.Pipe()
    server = mp.Process(target=_serve, args=(child, args.latency), daemon=True)
    server.start()
    url = parent.recv()

    def requests() -> int:
        parent.send("count")
        return parent.recv()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        a_values = walkthrough_way(url, samples)
        t_a = time.perf_counter() - t0
        a_requests = requests()

        judge = build_judge("claude-toxicity-anthropic", base_url=url, requests_per_minute=None,
                            max_concurrency=args.concurrency, cache=str(Path(tmp) / "scores.sqlite"))
        t0 = time.perf_counter()
        b_scores = judge.score(samples)
        t_b = time.perf_counter() - t0
        b_requests = requests() - a_requests

        t0 = time.perf_counter()
        c_scores = judge.score(samples)
        t_c = time.perf_counter() - t0
        c_requests = requests() - a_requests - b_requests
        usage = judge.usage()
        judge.close()
    parent.send("stop")
    server.join(timeout=10)

    b_values = [s.value for s in b_scores]
    assert b_values == a_values == [s.value for s in c_scores], "the three ways must agree"
    print(f"{args.n} samples, fake Claude at {args.latency * 1000:.0f} ms per request")
    print(f"(a) walk-through, blocking call per text : {t_a:7.2f} s  ({a_requests} requests)")
    print(f"(b) rlaif judge, max_concurrency {args.concurrency:<2}     : {t_b:7.2f} s  ({b_requests} requests)"
          f"  -> {t_a / t_b:6.1f}x faster than (a)  [target >= 10x]")
    print(f"(c) rlaif judge, warm score cache         : {t_c:7.3f} s  ({c_requests} requests)"
          f"  -> {t_a / t_c:6.0f}x faster than (a)  [target >= 100x]")
    print(f"usage of (b)+(c): {usage.requests} requests, {usage.input_tokens} input + "
          f"{usage.output_tokens} output tokens, ${usage.cost_usd:.4f} at $3/$15 per Mtok")


if __name__ == "__main__":
    main()
