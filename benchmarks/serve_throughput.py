"""`rlaif serve` against in-process scoring: throughput, latency, overhead, and a Claude soak.

Samples: (prompt, response) pairs cut from the bundled hh-rlhf harmless-base TRAIN transcripts
(prompt = everything up to the last "Assistant:", response = the last reply).

Part 1, per local judge (`--judges`, default profanity-check and minilm-relevance):
  (a) in-process: `judge.score` over all samples in batches of `--max-batch` (the judge's
      best case: as large a batch as the service forms), before and after (b), averaged;
  (b) served: `rlaif serve JUDGE` in its own process; `--clients` concurrent clients send
      OpenRLHF-shaped requests (`/get_reward`, `--per-request` samples each, one keep-alive
      aiohttp session) until every sample was sent; samples/s, latency p50/p99, mean batch,
      once per request size;
  (c) overhead: one client, one request at a time, `--overhead-size` samples: served mean
      latency minus in-process `judge.score` mean latency on the same requests.
  Goal: (b) / (a) >= 80%.

Part 2: `--claude-requests` requests (one sample each, native /v1/score) from `--clients`
concurrent clients against `claude-toxicity-anthropic` on the fake Claude server (a child
process, 50 ms per reply), score cache on; 80% of the requests are distinct samples, the rest
repeats; 10% of the distinct samples meet one scripted 429 each, 0.5% one unparseable reply.
Checked: 0 requests lost (every one answered 200 with a value or a reported reason), 0
duplicated paid calls (no sample scored by the fake more than once), every unscored reported
(the answers' unscored = the service's rlaif_serve_unscored_total).

    python benchmarks/serve_throughput.py                        # ~4 minutes on 2 busy cores
    python benchmarks/serve_throughput.py --claude-requests 2000 --judges profanity-check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import aiohttp  # noqa: E402

from rlaif.judges.base import Sample  # noqa: E402
from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "rlaif" / "data" / "sample" / "hh_harmless_train.jsonl"


def hh_samples(n: int, seed: int = 0) -> list[Sample]:
    """n (prompt, last reply) pairs from the TRAIN transcripts, cycled with a numbered suffix past the end."""
    base = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        for side in ("chosen", "rejected"):
            text = json.loads(line)[side]
            prompt, sep, reply = text.rpartition("\n\nAssistant:")
            if sep:
                base.append(Sample(prompt + sep, reply[:600]))
    random.Random(seed).shuffle(base)
    return [base[i] if i < len(base) else Sample(base[i % len(base)].prompt, f"{base[i % len(base)].response} ({i})")
            for i in range(n)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_service(args: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`rlaif serve ...` on a port the OS picks, stderr to `log`; returns (process, URL)."""
    cmd = [sys.executable, "-m", "rlaif.cli", "serve", *args, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)
    for line in proc.stdout:  # type: ignore[union-attr]
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].strip()
    raise SystemExit(f"rlaif serve {args[0]} did not start; see {log}")


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(300)


async def metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Every unlabelled-or-summed series of /metrics: name -> value (label sets added up)."""
    async with session.get(f"{url}/metrics") as reply:
        text = await reply.text()
    out: Counter[str] = Counter()
    for name, value in re.findall(r"^([a-z_]+)(?:\{[^}]*\})? (\S+)$", text, flags=re.MULTILINE):
        out[name] += float(value)
    return dict(out)


async def load(url: str, path: str, bodies: list[dict], clients: int) -> tuple[float, list[float], list[tuple[int, dict]]]:
    """Send every body from `clients` concurrent clients; (wall s, latencies, (status, answer) per body)."""
    answers: list[tuple[int, dict]] = [(0, {})] * len(bodies)
    latencies: list[float] = []
    queue = iter(range(len(bodies)))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def client() -> None:
            for i in queue:
                for _ in range(20):  # a 429 waits its Retry-After (none expected at these sizes)
                    start = time.perf_counter()
                    async with session.post(f"{url}{path}", json=bodies[i]) as reply:
                        body = await reply.json(content_type=None)
                        if reply.status != 429:
                            latencies.append(time.perf_counter() - start)
                            answers[i] = (reply.status, body)
                            break
                        await asyncio.sleep(float(reply.headers.get("Retry-After", 1)))

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - start, latencies, answers


def openrlhf_body(samples: list[Sample]) -> dict:
    return {"query": [s.prompt + s.response for s in samples], "prompts": [s.prompt for s in samples],
            "labels": [None] * len(samples)}


def local_judge(name: str, n: int, args: argparse.Namespace, tmp: Path) -> None:
    from rlaif.judges.registry import load_judge

    samples = hh_samples(n)
    sizes = [int(x) for x in args.per_request.split(",")]
    small = [samples[i:i + args.overhead_size] for i in range(0, args.overhead_size * args.overhead_n, args.overhead_size)]

    def in_process() -> tuple[float, list[float]]:
        """(samples/s in batches of max_batch, latencies of the small requests) of the judge in this process."""
        judge = load_judge(name)
        judge.load()
        judge.score(samples[:args.max_batch])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(samples), args.max_batch):
            judge.score(samples[i:i + args.max_batch])
        rate = len(samples) / (time.perf_counter() - start)
        latencies = []
        for req in small:
            t = time.perf_counter()
            judge.score(req)
            latencies.append(time.perf_counter() - t)
        judge.close()
        return rate, latencies

    # In-process before and after the served part, so load from other processes hits both alike.
    rate_before, inproc_lat = in_process()
    proc, url = start_service([name, "--max-batch", str(args.max_batch)], tmp / f"{name}.log")
    print(f"\n{name}: {len(samples)} samples, {args.clients} concurrent clients")
    served: list[tuple[int, float, list[float], float, int]] = []
    try:
        async def sequential() -> list[float]:
            served_lat = []
            async with aiohttp.ClientSession() as session:
                for req in small:
                    t = time.perf_counter()
                    async with session.post(f"{url}/get_reward", json=openrlhf_body(req)) as reply:
                        await reply.read()
                    served_lat.append(time.perf_counter() - t)
            return served_lat

        served_lat = asyncio.run(sequential())
        for size in sizes:
            requests = [samples[i:i + size] for i in range(0, len(samples), size)]
            asyncio.run(load(url, "/get_reward", [openrlhf_body(r) for r in requests[:8]], args.clients))  # warm-up
            before = asyncio.run(_metrics_once(url))
            wall, lat, answers = asyncio.run(load(url, "/get_reward", [openrlhf_body(r) for r in requests],
                                                  args.clients))
            after = asyncio.run(_metrics_once(url))
            bad = sum(status != 200 for status, _ in answers)
            batches = after["rlaif_serve_batch_samples_count"] - before["rlaif_serve_batch_samples_count"]
            batched = after["rlaif_serve_batch_samples_sum"] - before["rlaif_serve_batch_samples_sum"]
            served.append((size, len(samples) / wall, lat, batched / max(1, batches), bad))
    finally:
        stop_service(proc)
    rate_after, lat_after = in_process()
    inproc_rate = (rate_before + rate_after) / 2
    inproc_lat += lat_after
    print(f"  (a) in-process, batches of {args.max_batch}: {inproc_rate:9.1f} samples/s "
          f"(before {rate_before:.1f}, after {rate_after:.1f})")
    for size, rate, lat, mean_batch, bad in served:
        print(f"  (b) served, {size:3d} samples per request: {rate:9.1f} samples/s = {rate / inproc_rate:.0%} of (a) "
              f"(goal >= 80%); latency p50 {pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms; "
              f"mean batch {mean_batch:.1f}; non-200 {bad}")
    print(f"  (c) one client, {args.overhead_size}-sample requests, {args.overhead_n} in a row: served "
          f"{statistics.mean(served_lat) * 1e3:.2f} ms, in-process {statistics.mean(inproc_lat) * 1e3:.2f} ms, "
          f"overhead {(statistics.mean(served_lat) - statistics.mean(inproc_lat)) * 1e3:.2f} ms per request")


async def _metrics_once(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        return await metrics(session, url)


def _fake(conn, latency: float, fault_on: dict[str, list[str]]) -> None:
    """Child process: the fake Claude; answers "stats" with its request log summary."""
    with FakeClaude(latency=latency, retry_after=0.05, fault_on=fault_on) as fake:
        conn.send(fake.url)
        while conn.recv() == "stats":
            scored = Counter(r["text"] for r in fake.log if r["fault"] is None)
            faults = Counter(r["fault"] for r in fake.log if r["fault"] is not None)
            conn.send({"requests": fake.requests, "faults": dict(faults), "max_in_flight": fake.max_in_flight,
                       "scored_texts": len(scored), "scored_twice": sum(n > 1 for n in scored.values())})


def claude_soak(args: argparse.Namespace, tmp: Path) -> None:
    n = args.claude_requests
    distinct = max(1, int(n * 0.8))
    rng = random.Random(1)
    base = hh_samples(distinct, seed=1)
    marks = [f"[r{i}]" if i % 10 == 0 else f"[u{i}]" if i % 200 == 5 else "" for i in range(distinct)]
    # "#i" makes every reply unique, so the fake's log (which sees only the reply) tells samples apart.
    samples = [Sample(s.prompt, f"{s.response} #{i} {m}".rstrip()) for i, (s, m) in enumerate(zip(base, marks))]
    order = list(range(distinct)) + [rng.randrange(distinct) for _ in range(n - distinct)]
    rng.shuffle(order)
    fault_on = {m: ["429" if m.startswith("[r") else "unparseable"] for m in marks if m}  # one fault per marked sample
    parent, child = mp.Pipe()
    fake_proc = mp.get_context("spawn").Process(target=_fake, args=(child, 0.05, fault_on), daemon=True)
    fake_proc.start()
    fake_url = parent.recv()
    env = {**os.environ, **DUMMY_CREDENTIALS}
    overrides = [f"base_url={fake_url}", "requests_per_minute=null", f"max_concurrency={args.clients}",
                 "max_retries=4", "timeout=30"]
    proc, url = start_service(["claude-toxicity-anthropic", "--cache", str(tmp / "claude.sqlite"),
                               *(x for o in overrides for x in ("--set", o))], tmp / "claude.log", env)
    try:
        bodies = [{"samples": [{"prompt": samples[i].prompt, "response": samples[i].response}]} for i in order]
        wall, lat, answers = asyncio.run(load(url, "/v1/score", bodies, args.clients))

        async def read() -> dict[str, float]:
            async with aiohttp.ClientSession() as session:
                return await metrics(session, url)

        m = asyncio.run(read())
    finally:
        stop_service(proc)
    parent.send("stats")
    fake = parent.recv()
    parent.send("stop")
    fake_proc.join(30)
    lost = sum(status != 200 or len(body.get("scores", [])) != 1 for status, body in answers)
    reported = sum(body.get("unscored", 0) for _, body in answers)
    silent = sum(1 for _, body in answers for s in body.get("scores", []) if s["value"] is None and not s["error"])
    reasons = Counter(re.sub(r"\d+", "N", s["error"])[:90] for _, body in answers for s in body.get("scores", [])
                      if s["value"] is None and s["error"])
    print(f"\nclaude-toxicity-anthropic on the fake server (50 ms replies): {n} requests, {distinct} distinct samples, "
          f"{args.clients} clients, cache on")
    print(f"  {wall:.1f} s, {n / wall:.1f} requests/s, latency p50 {pct(lat, .5) * 1e3:.1f} ms, "
          f"p99 {pct(lat, .99) * 1e3:.1f} ms")
    print(f"  fake server: {fake['requests']} requests ({fake['faults']}), {fake['scored_texts']} samples scored, "
          f"max {fake['max_in_flight']} in flight")
    print(f"  lost {lost} (goal 0); samples the fake scored twice {fake['scored_twice']} (goal 0); "
          f"cache hits {m.get('rlaif_serve_cache_hits_total', 0):.0f}")
    print(f"  unscored: {reported} in the answers, {m.get('rlaif_serve_unscored_total', 0):.0f} in /metrics, "
          f"{silent} without a reason (goal: equal, 0); judge HTTP attempts {m.get('rlaif_serve_judge_requests_total', 0):.0f}, "
          f"cost ${m.get('rlaif_serve_cost_usd_total', 0):.4f}")
    for reason, count in reasons.most_common(5):
        print(f"    unscored x{count}: {reason}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--judges", default="profanity-check,minilm-relevance")
    p.add_argument("--samples", type=int, default=8192, help="samples for profanity-check (default 8192)")
    p.add_argument("--model-samples", type=int, default=512, help="samples for the other judges (default 512)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--per-request", default="8,32", help="samples per request, comma-separated (default 8,32)")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--overhead-size", type=int, default=1)
    p.add_argument("--overhead-n", type=int, default=200)
    p.add_argument("--claude-requests", type=int, default=10_000, help="0 skips part 2")
    args = p.parse_args()
    print(f"rlaif serve benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"aiohttp {aiohttp.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.judges.split(",")):
            n = args.samples if name == "profanity-check" else args.model_samples
            local_judge(name, n, args, Path(tmp))
        if args.claude_requests:
            claude_soak(args, Path(tmp))


if __name__ == "__main__":
    main()
