"""How concurrent requests reach the one judge: coalesced into batches, or passed straight on.

Every request for a local model (classifier, embedding, relevance, function) waits in one
bounded queue; a single worker takes everything waiting, up to `max_batch` samples, as soon as
the previous batch is done, or -- when the judge is idle -- after the first request has waited
`max_wait_s` for company (only when the last batch held several requests, so a lone caller
sending one request at a time never waits). One padded forward pass over 64 samples costs little more than over
one, so 32 clients sending a few samples each are served at about the judge's batch speed.

API judges (`llm`, `pairwise`) and pairwise comparisons skip the queue (`DirectScheduler`): the judge already keeps
`max_concurrency` requests in flight and paces them, shared by all callers.

Both refuse work beyond `max_queue` samples (waiting plus being judged) with `Overloaded`,
which the server answers with 429 and a Retry-After estimated from the recent throughput. A
request that times out stops waiting, but the judge's work goes on (shielded): its scores
reach the cache, so the caller's retry costs nothing.

Identical samples in flight at once in the direct path share one judge call (`SharedCalls`),
so two workers asking the same question together pay once; the cache answers later repeats.

A `JudgeError` (budget reached, auth refused) never loses a finished score: each sample gets
its score from `JudgeError.partial`, or an unscored `Score` whose error names the failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from rlaif.judges.base import Judge, JudgeError, Sample, Score
from rlaif.judges.pairwise import Pair, PairwiseJudge, Preference

BatchHook = Callable[[int, float, "JudgeError | None"], None]  # (samples, seconds, error)


class Overloaded(Exception):
    """The queue is full; `retry_after_s` is when the caller may expect room."""

    def __init__(self, queued: int, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{queued} samples queued or being judged, the limit is {limit}; "
                         f"retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


Work = Callable[[list[Any]], Awaitable[tuple[list[Any], "JudgeError | None"]]]


async def judge_or_unscored(judge: Judge, samples: Sequence[Sample],
                            threads: Executor) -> tuple[list[Score], JudgeError | None]:
    """The judge's scores for `samples`; a JudgeError keeps `partial` and marks the rest unscored.

    The call runs as `judge.score` in one of `threads`, that is on the judge's own long-lived
    loop (`rlaif.judges.loop`), so an API judge opens its client once, not once per request."""
    try:
        loop = asyncio.get_running_loop()
        scores = list(await loop.run_in_executor(threads, judge.score, list(samples)))
    except JudgeError as exc:
        partial = list(exc.partial or [])
        partial += [None] * (len(samples) - len(partial))
        why = f"judge stopped: {type(exc).__name__}: {exc}"
        return [s if s is not None else Score.failed(why) for s in partial[:len(samples)]], exc
    if len(scores) != len(samples):
        raise JudgeError(f"judge {judge.name!r} returned {len(scores)} scores for {len(samples)} samples")
    return scores, None


async def compare_or_unscored(judge: PairwiseJudge, pairs: Sequence[Pair],
                              threads: Executor) -> tuple[list[Preference], JudgeError | None]:
    """The pairwise judge's verdicts (`judge.compare` in one of `threads`); a PairwiseError keeps
    `partial` and marks the rest unscored."""
    try:
        loop = asyncio.get_running_loop()
        prefs = list(await loop.run_in_executor(threads, judge.compare, list(pairs)))
    except JudgeError as exc:
        partial = list(exc.partial or [])
        partial += [None] * (len(pairs) - len(partial))
        why = f"judge stopped: {type(exc).__name__}: {exc}"
        return [p if isinstance(p, Preference) else Preference.failed(why) for p in partial[:len(pairs)]], exc
    if len(prefs) != len(pairs):
        raise JudgeError(f"pairwise judge {judge.name!r} returned {len(prefs)} verdicts for {len(pairs)} pairs")
    return prefs, None


class SharedCalls:
    """Identical items in flight at once share one call of `work` (a single flight per item).

    Two trainer workers asking about the same (prompt, response) at the same moment both miss
    the score cache; without this both would pay for a Claude call. An item's key is its
    dataclass fields as JSON, so a Sample's meta counts too."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self._flying: dict[str, asyncio.Future[Any]] = {}

    async def __call__(self, items: list[Any]) -> tuple[list[Any], JudgeError | None]:
        loop = asyncio.get_running_loop()
        futures, mine = [], []
        for item in items:
            key = json.dumps(dataclasses.asdict(item), sort_keys=True, default=str)
            future = self._flying.get(key)
            if future is None:
                future = self._flying[key] = loop.create_future()
                mine.append((key, item, future))
            futures.append(future)
        error: JudgeError | None = None
        if mine:
            try:
                results, error = await self.work([item for _, item, _ in mine])
            except BaseException as exc:
                for key, _, future in mine:
                    self._flying.pop(key, None)
                    future.set_exception(exc)
                    future.exception()  # retrieved here; the callers that joined re-raise it
                raise
            for (key, _, future), result in zip(mine, results):
                self._flying.pop(key, None)
                future.set_result(result)
        return [await f for f in futures], error


class _Throughput:
    """Samples per second over recent work (exponentially weighted), for Retry-After."""

    def __init__(self) -> None:
        self.rate = 0.0

    def add(self, samples: int, seconds: float) -> None:
        if samples and seconds > 0:
            now = samples / seconds
            self.rate = now if self.rate == 0 else 0.8 * self.rate + 0.2 * now

    def retry_after(self, backlog: int) -> int:
        """Whole seconds (1..60) the backlog takes at the recent rate."""
        if self.rate <= 0:
            return 1
        return int(min(60, max(1, math.ceil(backlog / self.rate))))


class DirectScheduler:
    """Each request is its own call of `work`; only the number of items in flight is bounded.

    `work` maps a list of items (samples, or pairs) to (one result per item, the JudgeError
    that stopped it or None): `judge_or_unscored` or `compare_or_unscored` bound to a judge.
    (DynamicBatcher takes the same `work`, over a whole batch.)
    """

    def __init__(self, work: Work, max_queue: int, on_batch: BatchHook | None = None) -> None:
        self.work = work
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.in_flight = 0  # items being judged, timed-out requests' work included
        self._rate = _Throughput()

    @property
    def queued(self) -> int:
        """Items waiting or being judged."""
        return self.in_flight

    def start(self) -> None:
        """Nothing to start (present so both schedulers are used alike)."""

    async def score(self, items: Sequence[Any], timeout_s: float) -> list[Any]:
        """Judge `items` now; Overloaded when the limit would be passed, TimeoutError after `timeout_s`."""
        if self.in_flight and self.in_flight + len(items) > self.max_queue:
            raise Overloaded(self.in_flight, self.max_queue, self._rate.retry_after(self.in_flight))
        self.in_flight += len(items)
        task = asyncio.ensure_future(self._call(list(items)))
        return await asyncio.wait_for(asyncio.shield(task), timeout_s)

    async def _call(self, items: list[Any]) -> list[Any]:
        start = time.perf_counter()
        try:
            results, error = await self.work(items)
        finally:
            self.in_flight -= len(items)
        seconds = time.perf_counter() - start
        self._rate.add(len(items), seconds)
        if self.on_batch:
            self.on_batch(len(items), seconds, error)
        return results

    async def close(self) -> None:
        """Nothing to stop: every call ends with its own request."""


@dataclass
class _Job:
    samples: list[Sample]
    future: asyncio.Future[list[Score]]
    arrived: float
    abandoned: bool = field(default=False)


class DynamicBatcher:
    """Coalesce concurrent requests into judge batches of up to `max_batch` samples."""

    def __init__(self, work: Work, max_batch: int, max_wait_s: float, max_queue: int,
                 on_batch: BatchHook | None = None) -> None:
        self.work = work
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._pending_samples = 0
        self._running_samples = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._rate = _Throughput()
        self._last_jobs = 0  # requests in the previous batch

    @property
    def queued(self) -> int:
        """Samples waiting or being judged."""
        return self._pending_samples + self._running_samples

    def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="rlaif-serve-batcher")

    async def score(self, samples: Sequence[Sample], timeout_s: float) -> list[Score]:
        """Queue `samples`, wait for their batch; Overloaded when full, TimeoutError after `timeout_s`."""
        if self._worker is None or self._wake is None:
            raise RuntimeError("DynamicBatcher.start() was not called on the serving loop")
        if self._worker.done():
            raise RuntimeError(f"the batch worker stopped: {self._worker.exception()!r}")
        backlog = self.queued
        if backlog and backlog + len(samples) > self.max_queue:
            raise Overloaded(backlog, self.max_queue, self._rate.retry_after(backlog))
        loop = asyncio.get_running_loop()
        job = _Job(list(samples), loop.create_future(), loop.time())
        self._pending.append(job)
        self._pending_samples += len(job.samples)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except asyncio.TimeoutError:
            job.abandoned = True  # still queued: dropped unjudged; in a batch: judged, cached
            raise

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            deadline = self._pending[0].arrived + self.max_wait_s
            # Wait for company only once company was seen (the last batch held several
            # requests): a lone sequential caller never pays max_wait.
            while self._last_jobs > 1 and self._pending_samples < self.max_batch \
                    and (left := deadline - loop.time()) > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            self._last_jobs = len(batch)
            await self._judge_batch(batch)

    def _take(self) -> list[_Job]:
        """Jobs from the head of the queue, up to max_batch samples (at least one job)."""
        batch: list[_Job] = []
        size = 0
        while self._pending:
            job = self._pending[0]
            if job.abandoned:
                self._pending.popleft()
                self._pending_samples -= len(job.samples)
                continue
            if batch and size + len(job.samples) > self.max_batch:
                break
            self._pending.popleft()
            self._pending_samples -= len(job.samples)
            batch.append(job)
            size += len(job.samples)
        return batch

    async def _judge_batch(self, batch: list[_Job]) -> None:
        samples = [s for job in batch for s in job.samples]
        if not samples:
            return
        self._running_samples = len(samples)
        start = time.perf_counter()
        try:
            scores, error = await self.work(samples)
        except Exception as exc:  # a bug in the judge: every caller of this batch hears of it
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self._running_samples = 0
        seconds = time.perf_counter() - start
        self._rate.add(len(samples), seconds)
        if self.on_batch:
            self.on_batch(len(samples), seconds, error)
        at = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(scores[at:at + len(job.samples)])
            at += len(job.samples)

    async def close(self) -> None:
        """Stop the worker (call after the last request was answered)."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
