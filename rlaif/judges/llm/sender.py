"""Sending a batch of judge requests to Claude: concurrency, pacing, budget and usage.

What every Claude judge shares (`LLMJudge` scores one response, `PairwiseLLMJudge` compares
two): at most `max_concurrency` requests in flight (one bound per judge, shared by batches
running at once), at most `requests_per_minute` starts per minute, a `budget:` checked
before each request (`max_requests`; `max_usd` by the request's estimated cost), and usage
summed per request. `Usage.requests` counts HTTP attempts, retries included (what the
server saw), not samples.

A request that fails for good (after the SDK's retries) comes back as a `Sent` with its
error; an authentication failure stops the batch (nothing more is sent) and a budget stop
lets in-flight requests finish and sends nothing new. `stop_error` turns either into the
judge's own JudgeError type, carrying the judge's finished results in `.partial`.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlaif.judges.base import BudgetExceeded, JudgeError, Usage
from rlaif.judges.llm.provider import JudgeRequest, Provider, ProviderAuthError, ProviderError, Reply
from rlaif.judges.spec import LLMSpec

log = logging.getLogger(__name__)

# Rough characters per token, only to estimate a request's cost before the first reply.
_CHARS_PER_TOKEN = 3.5


def make_provider(spec: LLMSpec) -> Provider:
    """The provider for `spec.provider` / `spec.api` (boto3 is imported only for Bedrock)."""
    if spec.provider == "anthropic":
        from rlaif.judges.llm.anthropic import AnthropicProvider

        return AnthropicProvider(spec)
    from rlaif.judges.llm.bedrock import BedrockProvider

    return BedrockProvider(spec)


@dataclass(frozen=True)
class Sent:
    """One sent request: the reply, or None and the error after the SDK's retries; its usage."""

    reply: Reply | None
    error: str | None
    usage: Usage


@dataclass
class SendOutcome:
    """A batch's results (None = not sent) and why it stopped early, if it did."""

    sent: list[Sent | None]
    wanted: int = 0  # requests to send (the slots that were not None)
    budget_stop: str | None = None  # why the budget stopped sending
    failure: BaseException | None = None  # an auth failure or an unexpected error


class RequestSender:
    """Sends the requests of one LLMSpec (see the module doc); owns the provider."""

    def __init__(self, spec: LLMSpec, name: str, provider: Provider | None = None) -> None:
        if spec.budget and spec.budget.max_usd and not (spec.price.input_per_mtok or spec.price.output_per_mtok):
            raise JudgeError(
                f"judge {name!r}: budget.max_usd is set but price is 0, so spending could never be "
                "counted; set price.input_per_mtok and price.output_per_mtok"
            )
        self.spec = spec
        self.name = name
        self.provider = provider or make_provider(spec)
        self._usage = Usage()
        self._sent = 0  # requests sent over the judge's life (budget.max_requests)
        self._reserved_usd = 0.0  # estimated cost of requests in flight (budget.max_usd)
        self._paid_costs: list[float] = []
        self._next_slot = 0.0  # monotonic time before which no request may start (rpm)
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def usage(self) -> Usage:
        """HTTP attempts, tokens, estimated USD and summed latency so far."""
        u = self._usage
        return Usage(u.requests, u.input_tokens, u.output_tokens, u.cost_usd, u.latency_s)

    def close(self) -> None:
        """Release the provider's clients and thread pool."""
        self.provider.close()

    # --- cost and pacing ---

    def _cost(self, input_tokens: int, output_tokens: int) -> float:
        p = self.spec.price
        return (input_tokens * p.input_per_mtok + output_tokens * p.output_per_mtok) / 1e6

    def _estimate(self, request: JudgeRequest) -> float:
        """Expected cost of a request: the mean paid so far, else an upper bound."""
        if self._paid_costs:
            return statistics.fmean(self._paid_costs)
        chars = len(request.system) + len(request.user) + (len(str(request.tool.schema)) if request.tool else 0)
        return self._cost(int(chars / _CHARS_PER_TOKEN), self.spec.max_tokens)

    def _budget_block(self, estimate: float) -> str | None:
        budget = self.spec.budget
        if budget is None:
            return None
        if budget.max_requests is not None and self._sent >= budget.max_requests:
            return f"budget.max_requests = {budget.max_requests} requests sent"
        if budget.max_usd is not None and self._usage.cost_usd + self._reserved_usd + estimate > budget.max_usd:
            return (f"budget.max_usd = ${budget.max_usd:g}: ${self._usage.cost_usd:.4f} spent, the next "
                    f"request (about ${estimate:.4f}) would pass it")
        return None

    async def _pace(self) -> None:
        """Space request starts 60/requests_per_minute seconds apart (across batches too)."""
        rpm = self.spec.requests_per_minute
        if not rpm:
            return
        now = time.monotonic()
        start = max(now, self._next_slot)
        self._next_slot = start + 60.0 / rpm
        if start > now:
            await asyncio.sleep(start - now)

    def _semaphore(self) -> asyncio.Semaphore:
        """The judge-wide bound on requests in flight, one per event loop (batches share it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if loop not in self._semaphores:
                self._semaphores[loop] = asyncio.Semaphore(self.spec.max_concurrency)
            return self._semaphores[loop]

    # --- sending ---

    async def send_all(self, requests: Sequence[JudgeRequest | None]) -> SendOutcome:
        """Send every request (None: skip that slot) concurrently; results in input order."""
        outcome = SendOutcome([None] * len(requests), wanted=sum(r is not None for r in requests))
        if not any(r is not None for r in requests):
            return outcome
        semaphore = self._semaphore()
        halted = [False]  # an auth failure: send nothing more
        await self.provider.open()
        try:
            tasks = [asyncio.create_task(self._one(i, r, outcome, semaphore, halted))
                     for i, r in enumerate(requests) if r is not None]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failure = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
            if failure is not None:
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                outcome.failure = failure
        finally:
            await self.provider.aclose()
        return outcome

    async def _one(self, i: int, request: JudgeRequest, outcome: SendOutcome,
                   semaphore: asyncio.Semaphore, halted: list[bool]) -> None:
        async with semaphore:
            if outcome.budget_stop or halted[0]:
                return
            estimate = self._estimate(request)
            outcome.budget_stop = self._budget_block(estimate)
            if outcome.budget_stop:
                return
            self._sent += 1
            self._reserved_usd += estimate
            await self._pace()
            t0 = time.perf_counter()
            try:
                reply = await self.provider.send(request)
            except ProviderAuthError as exc:
                halted[0] = True  # before the semaphore lets the next request in
                self._usage = self._usage + Usage(requests=exc.attempts, latency_s=time.perf_counter() - t0)
                raise
            except ProviderError as exc:
                usage = Usage(requests=exc.attempts, latency_s=time.perf_counter() - t0)
                self._usage = self._usage + usage
                outcome.sent[i] = Sent(None, str(exc), usage)
                log.warning("%s: request %d failed: %s", self.name, i, exc)
                return
            finally:
                self._reserved_usd -= estimate
            cost = self._cost(reply.input_tokens, reply.output_tokens)
            usage = Usage(reply.attempts, reply.input_tokens, reply.output_tokens, cost, time.perf_counter() - t0)
            self._usage = self._usage + usage
            self._paid_costs.append(cost)
            outcome.sent[i] = Sent(reply, None, usage)

    def stop_error(self, outcome: SendOutcome, partial: list[Any], unit: str = "samples",
                   error: type[JudgeError] = JudgeError,
                   budget: type[JudgeError] = BudgetExceeded) -> JudgeError | None:
        """The error to raise for a batch that stopped early (None if it did not), with
        `partial` (the judge's finished results) attached; `unit` names what was sent."""
        n = outcome.wanted
        finished = sum(s is not None for s in outcome.sent)
        failure = outcome.failure
        if isinstance(failure, ProviderAuthError):
            return error(f"{self.name}: {failure} (stopped the batch: {finished} of {n} {unit} "
                         "finished, kept in JudgeError.partial)", partial)
        if failure is not None:
            exc = error(f"{self.name}: unexpected error: {failure!r}", partial)
            exc.__cause__ = failure
            return exc
        if outcome.budget_stop:
            unsent = n - finished
            return budget(
                f"{self.name}: stopped at {outcome.budget_stop}. {finished} of {n} {unit} in this batch "
                f"were sent and are kept (BudgetExceeded.partial, and the score cache if one is set); "
                f"{unsent} were not sent. Total so far: {self._usage.requests} requests, "
                f"${self._usage.cost_usd:.4f}. Raise `budget:` in the judge spec to score the rest.",
                partial,
            )
        return None
