"""Claude as a judge (`type: llm`): a prompt template, a structured score, a budget.

    judge = build_judge("claude-toxicity-anthropic")      # or LLMJudge(spec)
    scores = judge.score([("Hi", "You are terrible and i hate you.")])
    judge.usage()                                           # requests, tokens, USD, latency

One request per sample, at most `max_concurrency` in flight and at most
`requests_per_minute` started per minute. The score is asked for through a forced tool call
(`submit_score`: rationale + score, or one number per criterion) where the provider allows
it; a reply without a tool call (or `structured: false`) is parsed from text by the strict
rules of `rlaif.judges.parsing`. A value that cannot be read becomes `Score.failed(reason)`,
never a guess.

Failures. After the SDK's own retries a failed request gives that sample
`Score.failed("<status> ...; likely cause ...")`; an authentication failure stops the batch
at once with `JudgeError` (every request would fail), carrying the finished scores in
`.partial`. With a `budget:` the judge stops sending before a request would pass
`max_requests` or (by its estimated cost) `max_usd`, lets in-flight requests finish, and
raises `BudgetExceeded` with `.partial` = every paid-for Score (None for unsent samples);
`CachedJudge` stores those before re-raising.

Providers: `anthropic` (rlaif.judges.anthropic) uses `anthropic.AsyncAnthropic` (key from
ANTHROPIC_API_KEY; `temperature` is not sent, the SDK 2.x Messages API has no sampling
parameters); `bedrock` (rlaif.judges.bedrock) uses boto3 `bedrock-runtime` (`invoke_model`
with the Anthropic body, or `converse` with toolConfig), whose blocking calls run in a
thread pool of `max_concurrency` threads. Both retry with the SDK's own policy
(`max_retries`); what they share is in rlaif.judges.provider. Error texts never carry
credentials; to scrub the SDKs' debug logs too, call `rlaif.secrets.install_log_redaction()`
once (the CLI does).

Multi-criteria. With `criteria: [helpfulness, honesty, harmlessness]` (template `hhh`) one
request returns all three: `Score.criteria = {name: value}`, `Score.value` = the mean of the
criteria present; unreadable ones are listed in `Score.details["missing"]`.
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

from rlaif.judges.base import BudgetExceeded, Judge, JudgeError, Sample, Scale, Score, Usage
from rlaif.judges.parsing import Verdict, check_tool_value, parse_criteria, parse_score
from rlaif.judges.provider import JudgeRequest, Provider, ProviderAuthError, ProviderError, Reply, ToolSpec
from rlaif.judges.spec import LLMSpec
from rlaif.judges.templates import Criterion, PromptTemplate, load_template, render

log = logging.getLogger(__name__)

# Rough characters per token, only to estimate a request's cost before the first reply.
_CHARS_PER_TOKEN = 3.5


def score_tool(scale: Scale, criteria: Sequence[Criterion] | None) -> ToolSpec:
    """The forced scoring tool: rationale + score, or rationale + one number per criterion."""
    properties: dict[str, Any] = {
        "rationale": {"type": "string", "description": "One or two sentences justifying the score."}
    }
    bounds = {"type": "number", "minimum": scale.low, "maximum": scale.high}
    if criteria:
        for c in criteria:
            properties[c.name] = {**bounds, "description": f"{c.name} from {scale.low:g} to {scale.high:g}: {c.rubric}"}
        return ToolSpec("submit_scores", "Submit one score per criterion for the graded response.",
                        {"type": "object", "properties": properties, "required": list(properties)})
    properties["score"] = {**bounds, "description": f"The score, from {scale.low:g} to {scale.high:g}."}
    return ToolSpec("submit_score", "Submit the score for the graded response.",
                    {"type": "object", "properties": properties, "required": list(properties)})


def make_provider(spec: LLMSpec) -> Provider:
    """The provider for `spec.provider` / `spec.api` (boto3 is imported only for Bedrock)."""
    if spec.provider == "anthropic":
        from rlaif.judges.anthropic import AnthropicProvider

        return AnthropicProvider(spec)
    from rlaif.judges.bedrock import BedrockProvider

    return BedrockProvider(spec)


@dataclass
class _Batch:
    """Shared state of one `ascore` call."""

    semaphore: asyncio.Semaphore
    results: list[Score | None]
    budget_stop: str | None = None  # why the budget stopped sending
    halted: bool = False  # an auth failure: send nothing more


class LLMJudge(Judge):
    """Claude judge over the Anthropic API or Bedrock; see the module doc."""

    def __init__(self, spec: LLMSpec, provider: Provider | None = None) -> None:
        self.spec = spec
        self.template: PromptTemplate = load_template(spec.prompt)
        self.criteria = self.template.select_criteria(spec.criteria)
        if spec.scale is not None and tuple(spec.scale) != tuple(self.template.scale):
            raise JudgeError(
                f"judge {spec.name or spec.prompt!r}: scale {list(spec.scale)} differs from the scale "
                f"{list(self.template.scale)} that prompt {self.template.name!r} asks Claude for; "
                "drop `scale:` from the judge spec (the template declares it)"
            )
        if spec.budget and spec.budget.max_usd and not (spec.price.input_per_mtok or spec.price.output_per_mtok):
            raise JudgeError(
                f"judge {spec.name or spec.prompt!r}: budget.max_usd is set but price is 0, so spending "
                "could never be counted; set price.input_per_mtok and price.output_per_mtok"
            )
        self.scale = self.template.score_scale
        self.name = spec.name or f"{spec.provider}:{self.template.name}"
        self._tool = score_tool(self.scale, self.criteria) if spec.structured else None
        self._provider = provider or make_provider(spec)
        self._usage = Usage()
        self._sent = 0  # requests sent over this judge's life (budget.max_requests)
        self._reserved_usd = 0.0  # estimated cost of requests in flight (budget.max_usd)
        self._paid_costs: list[float] = []
        self._next_slot = 0.0  # monotonic time before which no request may start (rpm)
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def usage(self) -> Usage:
        """Requests, tokens, estimated USD and summed latency so far."""
        u = self._usage
        return Usage(u.requests, u.input_tokens, u.output_tokens, u.cost_usd, u.latency_s)

    def close(self) -> None:
        """Release the provider's thread pool."""
        self._provider.close()

    def __repr__(self) -> str:
        return (f"LLMJudge(name={self.name!r}, provider={self.spec.provider!r}, model={self.spec.model!r}, "
                f"prompt={self.template.name!r}, scale=({self.scale.low:g}, {self.scale.high:g}))")

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

    # --- scoring ---

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch concurrently; one Score per sample, in input order."""
        samples = list(samples)
        results: list[Score | None] = [None] * len(samples)
        if not samples:
            return []
        batch = _Batch(self._semaphore(), results)
        await self._provider.open()
        try:
            tasks = [asyncio.create_task(self._one(i, s, batch)) for i, s in enumerate(samples)]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failure = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
            if failure is not None:
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                finished = sum(r is not None for r in results)
                if isinstance(failure, ProviderAuthError):
                    raise JudgeError(
                        f"{self.name}: {failure} (stopped the batch: {finished} of {len(samples)} samples "
                        "finished, kept in JudgeError.partial)", partial=results,
                    ) from None
                raise JudgeError(f"{self.name}: unexpected error: {failure!r}", partial=results) from failure
        finally:
            await self._provider.aclose()
        if batch.budget_stop:
            paid = sum(r is not None for r in results)
            raise BudgetExceeded(
                f"{self.name}: stopped at {batch.budget_stop}. {paid} of {len(samples)} samples in this batch "
                f"were sent and are kept (BudgetExceeded.partial, and the score cache if one is set); "
                f"{len(samples) - paid} were not sent. Total so far: {self._usage.requests} requests, "
                f"${self._usage.cost_usd:.4f}. Raise `budget:` in the judge spec to score the rest.",
                partial=results,
            )
        return [r for r in results if r is not None]

    async def _one(self, i: int, sample: Sample, batch: _Batch) -> None:
        results = batch.results
        async with batch.semaphore:
            if batch.budget_stop or batch.halted:
                return
            size = len(sample.prompt) + len(sample.response)
            if size > self.spec.max_input_chars:
                results[i] = Score.failed(
                    f"not sent: prompt + response are {size:,} characters, over max_input_chars="
                    f"{self.spec.max_input_chars:,}; raise it in the judge spec to pay for it")
                return
            rendered = render(self.template, sample, self.criteria)
            request = JudgeRequest(rendered.system, rendered.user, self._tool)
            estimate = self._estimate(request)
            batch.budget_stop = self._budget_block(estimate)
            if batch.budget_stop:
                return
            self._sent += 1
            self._reserved_usd += estimate
            await self._pace()
            t0 = time.perf_counter()
            try:
                reply = await self._provider.send(request)
            except ProviderAuthError:
                batch.halted = True  # before the semaphore lets the next sample in
                raise
            except ProviderError as exc:
                usage = Usage(requests=1, latency_s=time.perf_counter() - t0)
                self._usage = self._usage + usage
                results[i] = Score.failed(str(exc), usage=usage)
                log.warning("%s: sample %d not scored: %s", self.name, i, exc)
                return
            finally:
                self._reserved_usd -= estimate
            cost = self._cost(reply.input_tokens, reply.output_tokens)
            usage = Usage(1, reply.input_tokens, reply.output_tokens, cost, time.perf_counter() - t0)
            self._usage = self._usage + usage
            self._paid_costs.append(cost)
            results[i] = self._to_score(reply, usage)
            if not results[i].ok:
                log.warning("%s: sample %d not scored: %s", self.name, i, results[i].error)

    def _to_score(self, reply: Reply, usage: Usage) -> Score:
        structured = reply.tool_input is not None
        details: dict[str, Any] = {"model": self.spec.model, "structured": structured}
        tool = reply.tool_input or {}
        rationale = (str(tool.get("rationale") or "") or None) if structured else (reply.text or None)
        if self.criteria is None:
            verdict = check_tool_value(tool.get("score"), self.scale) if structured else parse_score(reply.text, self.scale)
            if not verdict.ok:
                how = "tool call" if structured else "text reply"
                error = f"unreadable score in the {how}: {verdict.error}"
                return Score(None, rationale, reply.raw, usage, error, details)
            return Score(verdict.value, rationale, reply.raw, usage, details=details)
        names = [c.name for c in self.criteria]
        verdicts: dict[str, Verdict] = (
            {n: check_tool_value(tool.get(n), self.scale, n) for n in names} if structured
            else parse_criteria(reply.text, names, self.scale)
        )
        present = {n: v.value for n, v in verdicts.items() if v.ok}
        missing = {n: v.error for n, v in verdicts.items() if not v.ok}
        details.update(missing=sorted(missing), missing_reasons=missing)
        if not present:
            error = "no criterion could be read: " + "; ".join(f"{e}" for e in missing.values())
            return Score(None, rationale, reply.raw, usage, error, details, criteria=present)
        return Score(statistics.fmean(present.values()), rationale, reply.raw, usage, details=details, criteria=present)
