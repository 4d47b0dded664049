"""Claude as a judge (`type: llm`): a prompt template, a structured score, a budget.

    judge = build_judge("claude-toxicity-anthropic")      # or LLMJudge(spec)
    scores = judge.score([("Hi", "You are terrible and i hate you.")])
    judge.usage()                                           # requests, tokens, USD, latency

One request per sample, at most `max_concurrency` in flight and at most
`requests_per_minute` started per minute (`rlaif.judges.llm.sender`, shared with the pairwise
judge); `usage().requests` counts HTTP attempts, retries included. The score is asked for
through a forced tool call (`submit_score`: rationale + score, or one number per criterion)
where the provider allows it; a reply without a tool call (or `structured: false`) is parsed from text by the strict
rules of `rlaif.judges.llm.parsing`. A value that cannot be read becomes `Score.failed(reason)`,
never a guess.

Failures. After the SDK's own retries a failed request gives that sample
`Score.failed("<status> ...; likely cause ...")`; an authentication failure stops the batch
at once with `JudgeError` (every request would fail), carrying the finished scores in
`.partial`. With a `budget:` the judge stops sending before a request would pass
`max_requests` or (by its estimated cost) `max_usd`, lets in-flight requests finish, and
raises `BudgetExceeded` with `.partial` = every paid-for Score (None for unsent samples);
`CachedJudge` stores those before re-raising.

Providers: `anthropic` (rlaif.judges.llm.anthropic) uses `anthropic.AsyncAnthropic` (key from
ANTHROPIC_API_KEY; `temperature` is not sent, the SDK 2.x Messages API has no sampling
parameters); `bedrock` (rlaif.judges.llm.bedrock) uses boto3 `bedrock-runtime` (`invoke_model`
with the Anthropic body, the default, or `converse` with toolConfig), whose blocking calls run in a
thread pool of `max_concurrency` threads. Both retry with the SDK's own policy
(`max_retries`); what they share is in rlaif.judges.llm.provider. `score()` runs on the judge's
own event loop, so one client serves every call until `close()` (`load()` checks the
credentials at once); `await ascore(...)` on a caller's loop gets a client for that batch only
(`rlaif.judges.loop`). Error texts never carry
credentials; to scrub the SDKs' debug logs too, call `rlaif.secrets.install_log_redaction()`
once (the CLI does).

Multi-criteria. With `criteria: [helpfulness, honesty, harmlessness]` (template `hhh`) one
request returns all three: `Score.criteria = {name: value}`, `Score.value` = the mean of the
criteria present; unreadable ones are listed in `Score.details["missing"]`.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score, Usage
from rlaif.judges.llm.parsing import Verdict, check_tool_value, parse_criteria, parse_score
from rlaif.judges.llm.provider import JudgeRequest, Provider, Reply, ToolSpec
from rlaif.judges.llm.sender import RequestSender
from rlaif.judges.spec import LLMSpec
from rlaif.judges.llm.templates import Criterion, PromptTemplate, load_template, render

log = logging.getLogger(__name__)


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


def oversize_error(chars: int, limit: int, what: str = "prompt + response") -> str | None:
    """Why a judged text of `chars` characters is not sent (None when it fits `limit`)."""
    if chars <= limit:
        return None
    return (f"not sent: {what} are {chars:,} characters, over max_input_chars={limit:,}; "
            "raise it in the judge spec to pay for it")


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
        self.scale = self.template.score_scale
        self.name = spec.name or f"{spec.provider}:{self.template.name}"
        self._tool = score_tool(self.scale, self.criteria) if spec.structured else None
        self._sender = RequestSender(spec, self.name, provider)

    def usage(self) -> Usage:
        """HTTP attempts (retries included), tokens, estimated USD and summed latency so far."""
        return self._sender.usage()

    def load(self) -> None:
        """Check now that the provider can make its client (a missing key or region fails here)."""
        self._sender.provider.load()

    def close(self) -> None:
        """Close the provider's clients and thread pool, then the judge's loop."""
        self._sender.close()
        super().close()

    def __repr__(self) -> str:
        return (f"LLMJudge(name={self.name!r}, provider={self.spec.provider!r}, model={self.spec.model!r}, "
                f"prompt={self.template.name!r}, scale=({self.scale.low:g}, {self.scale.high:g}))")

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch concurrently; one Score per sample, in input order."""
        samples = list(samples)
        if not samples:
            return []
        results: list[Score | None] = [None] * len(samples)
        requests: list[JudgeRequest | None] = []
        for i, sample in enumerate(samples):
            too_big = oversize_error(len(sample.prompt) + len(sample.response), self.spec.max_input_chars)
            if too_big:
                results[i] = Score.failed(too_big)
                requests.append(None)
                continue
            rendered = render(self.template, sample, self.criteria)
            requests.append(JudgeRequest(rendered.system, rendered.user, self._tool))
        outcome = await self._sender.send_all(requests)
        for i, sent in enumerate(outcome.sent):
            if sent is None:
                continue
            results[i] = Score.failed(sent.error or "", usage=sent.usage) if sent.reply is None \
                else self._to_score(sent.reply, sent.usage)
            if not results[i].ok:  # type: ignore[union-attr]
                log.warning("%s: sample %d not scored: %s", self.name, i, results[i].error)  # type: ignore[union-attr]
        stop = self._sender.stop_error(outcome, results)
        if stop is not None:
            raise stop
        return results  # type: ignore[return-value]  # every slot is filled when nothing stopped

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
