"""Build the judge, listen, and stop gracefully: what `rlaif serve` runs.

    service = build_service("profanity-check", ServeSettings(port=8000))
    asyncio.run(serve(service, ready=print))      # until SIGTERM or SIGINT

One judge object serves every caller, so its score cache, budget, rate limit and retries
are shared. On SIGTERM (or SIGINT) the service stops taking connections, answers what it
holds (up to `shutdown_timeout_s`; new requests on open connections get 503 + Retry-After
meanwhile), then closes the judge. The score cache is a file that every finished batch was
written to before its answer went out, so a restart with the same `--cache` answers those
samples without paying again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from rlaif.judges.base import Judge
from rlaif.judges.pairwise import PairwiseJudge, PointwisePairwise
from rlaif.judges.registry import load_judge, load_pairwise_judge
from rlaif.judges.spec import load_spec
from rlaif.serve.app import JudgeService
from rlaif.serve.settings import ServeSettings

log = logging.getLogger("rlaif.serve")


def judge_type(ref: str | Path) -> str:
    """The spec type ("classifier", "llm", "pairwise", ...) of a built-in name or spec path."""
    return str(load_spec(ref).type)


def build_service(ref: str, settings: ServeSettings, overrides: dict[str, Any] | None = None,
                  cache: str | None = None) -> JudgeService:
    """Load the judge `ref` names (with `overrides`, `cache`) and wrap it in a JudgeService.

    A `type: pairwise` judge is served on /v1/compare only; any other judge on /get_reward and
    /v1/score, and on /v1/compare through `PointwisePairwise` (the same judge object). The
    judge's weights load (and its clients open) here, so a missing model fails before binding.
    """
    kind = judge_type(ref)
    judge: Judge | None = None
    pairwise: PairwiseJudge
    if kind == "pairwise":
        pairwise = load_pairwise_judge(ref, overrides, cache)
        loaded: Any = pairwise
    else:
        judge = load_judge(ref, overrides, cache)
        pairwise = PointwisePairwise(judge)
        loaded = judge
    try:
        loaded.load()
        return JudgeService(settings, judge, pairwise, kind)
    except BaseException:
        loaded.close()
        raise


class RunningService:
    """A started service on the current loop: its URL, and `stop()` to drain and close."""

    def __init__(self, service: JudgeService, runner: web.AppRunner, url: str) -> None:
        self.service = service
        self.runner = runner
        self.url = url

    async def stop(self) -> None:
        """Stop listening, answer every request already received, then close the judge."""
        self.service.draining = True
        log.info("draining: %d request(s) in flight", self.service.metrics.in_flight)
        await self.runner.cleanup()  # stops the sites, waits up to shutdown_timeout for handlers
        await self.service.close()
        for judge in (self.service.judge, self.service.pairwise):
            if judge is not None:
                await asyncio.to_thread(judge.close)  # a judge's close may wait on its own loop


async def start(service: JudgeService) -> RunningService:
    """Bind the service's host and port (0: one the OS picks) and start answering."""
    settings = service.settings
    runner = web.AppRunner(service.app(), access_log=None, shutdown_timeout=settings.shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = _bound_port(runner)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return RunningService(service, runner, f"http://{host}:{port}")


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError(f"the server bound no TCP address ({runner.addresses!r})")


async def serve(service: JudgeService, ready: Callable[[str], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully. `ready(url)` is called once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start(service)
    try:
        if ready is not None:
            ready(running.url)
        await stop.wait()
        log.info("signal received: finishing the requests in flight, then closing the judge")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await running.stop()
