"""The HTTP endpoints of one judge service (aiohttp), over one judge object shared by every caller.

    POST /get_reward    OpenRLHF's remote reward protocol (`rlaif.serve.protocol`)
    POST /v1/score      native: per-sample value or unscored reason, cache flag, calls, cost
    POST /v1/compare    pairwise verdicts (a pairwise judge, or a pointwise one comparing scores)
    GET  /health        {"status": "ok" | "draining", judge, kind, scale, batching}; no token needed
    GET  /metrics       Prometheus text (`rlaif.serve.metrics`)

Status codes: 400 a body that breaks the protocol (the message says what to send), 401 a
missing or wrong token, 404 an endpoint this judge does not have, 429 + Retry-After the queue
is full, 502 OpenRLHF samples unscored under `unscored_fill: error` (the reasons listed), 503
+ Retry-After draining for shutdown, 504 the request timed out (the judge's work goes on and
reaches the cache, so a retry is cheap).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from rlaif.judges.base import Judge, Score, Usage
from rlaif.judges.pairwise import PairwiseJudge
from rlaif.serve.auth import authorized
from rlaif.serve.metrics import ServeMetrics
from rlaif.serve.protocol import (
    RequestError, UnscoredError, openrlhf_answer, parse_native, parse_openrlhf, parse_pairs,
    preference_json, score_json,
)
from rlaif.serve.scheduling import (
    DirectScheduler, DynamicBatcher, Overloaded, SharedCalls, compare_or_unscored, judge_or_unscored,
)
from rlaif.serve.settings import ServeSettings

log = logging.getLogger("rlaif.serve")
MAX_BODY_BYTES = 64 * 2**20  # an old OpenRLHF client sends a whole rollout batch in one body
ENDPOINTS = {"/get_reward": "get_reward", "/v1/score": "score", "/v1/compare": "compare",
             "/health": "health", "/metrics": "metrics"}
JUDGE_THREADS = 64  # concurrent judge calls; an API judge's own max_concurrency bounds its requests
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


class JudgeService:
    """Routes, auth, back-pressure and metrics around one judge (and its pairwise view)."""

    def __init__(self, settings: ServeSettings, judge: Judge | None, pairwise: PairwiseJudge | None,
                 judge_type: str) -> None:
        if judge is None and pairwise is None:
            raise ValueError("JudgeService needs a judge, a pairwise judge, or both")
        self.settings = settings
        self.judge = judge
        self.pairwise = pairwise
        self.judge_type = judge_type
        self.name = judge.name if judge is not None else pairwise.name  # type: ignore[union-attr]
        self.metrics = ServeMetrics()
        self.draining = False
        self.batching = judge is not None and settings.coalesces(judge_type)
        # Threads that wait on the judge's own loop: one per concurrent judge call.
        self.threads = ThreadPoolExecutor(JUDGE_THREADS, thread_name_prefix="rlaif-serve-judge")
        self.scheduler: DynamicBatcher | DirectScheduler | None = None
        if judge is not None:
            def score(items: list[Any]) -> Any:
                return judge_or_unscored(judge, items, self.threads)

            self.scheduler = (
                DynamicBatcher(score, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue,
                               self.metrics.batch_done) if self.batching else
                DirectScheduler(SharedCalls(score), settings.max_queue, self.metrics.batch_done))
        self.comparer = None if pairwise is None else DirectScheduler(
            SharedCalls(lambda items: compare_or_unscored(pairwise, items, self.threads)), settings.max_queue,
            self.metrics.batch_done)

    # -- application -------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (start the schedulers on its loop: `on_startup` does)."""
        app = web.Application(middlewares=[self._count, self._auth], client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/get_reward", self.get_reward)
        app.router.add_post("/v1/score", self.score)
        app.router.add_post("/v1/compare", self.compare)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_text)
        app.on_startup.append(self._start)
        return app

    async def _start(self, app: web.Application) -> None:
        if self.scheduler is not None:
            self.scheduler.start()

    async def close(self) -> None:
        """Stop the batch worker (after the last request was answered)."""
        for sched in (self.scheduler, self.comparer):
            if sched is not None:
                await sched.close()
        self.threads.shutdown(wait=True)

    def usage(self) -> Usage:
        """The judge's total usage (HTTP attempts, tokens, USD), pairwise judge included."""
        if self.judge is not None:  # the pairwise view, if any, is this judge (PointwisePairwise)
            return self.judge.usage()
        return self.pairwise.usage() if self.pairwise is not None else Usage()

    @property
    def queued(self) -> int:
        """Samples and pairs waiting or being judged."""
        return sum(s.queued for s in (self.scheduler, self.comparer) if s is not None)

    # -- middlewares ---------------------------------------------------------------------------

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = ENDPOINTS.get(request.path, "other")
        start = time.perf_counter()
        self.metrics.in_flight += 1
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.metrics.in_flight -= 1
            self.metrics.request_done(endpoint, status, time.perf_counter() - start)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.settings.token
        if token is not None and request.path != "/health" \
                and not authorized(request.headers.get("Authorization"), token.get_secret_value()):
            self.metrics.rejected["unauthorized"] += 1
            return _error(401, "missing or wrong token: send 'Authorization: Bearer <token>' "
                          "(or HTTP Basic with the token as the password)")
        if self.draining and request.path not in ("/health", "/metrics"):
            self.metrics.rejected["draining"] += 1
            return _error(503, "shutting down: this request was not started; send it to another "
                          "replica or retry when the service is back", retry_after=5)
        return await handler(request)

    # -- handlers ------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"{request.method} {request.path}: the body is not JSON ({exc})") from None

    async def _judged(self, request: web.Request, endpoint: str, parse: Callable[[Any], Any],
                      answer: Callable[[Any, list[Any]], web.Response], scheduler: Any) -> web.Response:
        """Parse, queue, wait and answer; the errors every judging endpoint shares."""
        try:
            parsed = parse(await self._body(request))
            items, pre_failed = parsed if isinstance(parsed, tuple) else (parsed, {})
            self.metrics.samples[endpoint] += len(items)
            todo = [i for i in range(len(items)) if i not in pre_failed]
            results: list[Any] = [None] * len(items)
            for i, why in pre_failed.items():
                results[i] = Score.failed(why)
            if todo:
                judged = await scheduler.score([items[i] for i in todo], self.settings.request_timeout_s)
                for i, r in zip(todo, judged):
                    results[i] = r
        except RequestError as exc:
            return _error(400, str(exc))
        except Overloaded as exc:
            self.metrics.rejected["queue_full"] += 1
            return _error(429, f"queue full: {exc}", retry_after=exc.retry_after_s)
        except asyncio.TimeoutError:
            self.metrics.rejected["timeout"] += 1
            return _error(504, f"not judged within {self.settings.request_timeout_s:g} s; the judge "
                          "keeps working and caches what it finishes, so a retry is cheap", retry_after=1)
        return answer(items, results)

    async def get_reward(self, request: web.Request) -> web.Response:
        """OpenRLHF: {"query", "prompts", "labels"} -> {"rewards", "scores", "extra_logs"}."""
        if self.scheduler is None:
            return _error(404, f"judge {self.name!r} is pairwise: it has no reward per sample; use /v1/compare")

        def answer(items: list[Any], scores: list[Score]) -> web.Response:
            self._count_scores("get_reward", scores)
            try:
                body, filled = openrlhf_answer(scores, self.settings.unscored_fill)
            except UnscoredError as exc:
                log.warning("get_reward: %d of %d samples unscored, answered 502 (unscored_fill: error)",
                            len(exc.reasons), len(scores))
                return _error(502, f"{exc}; the service runs with unscored_fill 'error' (start it with "
                              "--unscored-fill NUMBER to fill instead)",
                              unscored=[{"index": i, "error": e} for i, e in sorted(exc.reasons.items())])
            self.metrics.filled += filled
            return web.json_response(body)

        return await self._judged(request, "get_reward", lambda b: parse_openrlhf(b, self.settings.eos_markers),
                                  answer, self.scheduler)

    async def score(self, request: web.Request) -> web.Response:
        """Native: per-sample value or unscored reason, cache flag, judge calls and cost."""
        if self.scheduler is None:
            return _error(404, f"judge {self.name!r} is pairwise: it has no score per sample; use /v1/compare")

        def answer(items: list[Any], scores: list[Score]) -> web.Response:
            self._count_scores("score", scores)
            scale = [self.judge.scale.low, self.judge.scale.high]  # type: ignore[union-attr]
            return web.json_response({"judge": self.name, "scale": scale, "scores": [score_json(s) for s in scores],
                                      "unscored": sum(s.value is None for s in scores)})

        return await self._judged(request, "score", parse_native, answer, self.scheduler)

    async def compare(self, request: web.Request) -> web.Response:
        """Pairwise: {"pairs": [{prompt, a, b}]} -> one Preference per pair."""
        if self.comparer is None:
            return _error(404, f"judge {self.name!r} has no pairwise view")

        def answer(items: list[Any], prefs: list[Any]) -> web.Response:
            unscored = sum(p.verdict is None for p in prefs)
            self.metrics.unscored["compare"] += unscored
            return web.json_response({"judge": self.name, "preferences": [preference_json(p) for p in prefs],
                                      "unscored": unscored})

        return await self._judged(request, "compare", parse_pairs, answer, self.comparer)

    def _count_scores(self, endpoint: str, scores: list[Score]) -> None:
        self.metrics.unscored[endpoint] += sum(s.value is None for s in scores)
        self.metrics.cache_hits[endpoint] += sum(bool(s.details.get("cached")) for s in scores)

    async def health(self, request: web.Request) -> web.Response:
        """Liveness and what is served; 503 while draining, so a load balancer stops sending."""
        scale = None if self.judge is None else [self.judge.scale.low, self.judge.scale.high]
        kind = "pointwise" if self.judge is not None else "pairwise"
        return web.json_response({"status": "draining" if self.draining else "ok", "judge": self.name,
                                  "kind": kind, "scale": scale, "batching": self.batching},
                                 status=503 if self.draining else 200)

    async def metrics_text(self, request: web.Request) -> web.Response:
        """Prometheus exposition text."""
        text = self.metrics.render(self.name, self.usage, self.queued)
        return web.Response(body=text.encode("utf-8"),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
