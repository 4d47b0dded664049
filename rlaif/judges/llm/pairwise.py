"""Claude as a pairwise judge (`type: pairwise`): which of two replies is better, both ways round.

    judge = load_pairwise_judge("claude-pairwise-anthropic")
    prefs = judge.compare([Pair(prompt, reply_1, reply_2)])
    consistency_rate(prefs), judge.usage()

Each pair is asked as (a, b) and, with `orders: both` (the default), as (b, a): the reply
shown first is "A" in the template (`prompts/pairwise-harmlessness.yaml`). An answer is read
from the forced tool call `submit_preference` (rationale, preference "A" | "B" | "tie",
strength in [0, 1]), else from the text by `rlaif.judges.llm.parsing.parse_preference` (the
final "Preference:" and "Strength:" lines; the judged replies' own text never counts).
Each answer is un-swapped to the canonical a/b, and the two are combined by
`rlaif.judges.pairwise.combine_orders` (agreeing verdicts count; disagreeing ones become a
tie or unscored, by `disagreement:`).

Requests go through `rlaif.judges.llm.sender` like the pointwise Claude judge: concurrency,
pacing, budget (a stop raises `PairwiseBudgetExceeded` with every finished Preference in
`.partial`), retries, cost; `usage().requests` counts HTTP attempts. With `cache:` each asking
is stored by (spec fingerprint, prompt, first, second) (`rlaif.judges.pairwise_cache`), so a
rerun pays for nothing twice; answers are stored before a stop is raised. Identical
askings within one batch are sent once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rlaif.judges.base import JudgeStats, Usage
from rlaif.judges.llm.pointwise import oversize_error
from rlaif.judges.pairwise import (
    Pair, PairwiseBudgetExceeded, PairwiseError, PairwiseJudge, Preference, combine_orders, unswap,
)
from rlaif.judges.pairwise_cache import PairwiseCache, shown_hash
from rlaif.judges.llm.parsing import PreferenceVerdict, check_tool_preference, parse_preference
from rlaif.judges.llm.provider import JudgeRequest, Provider, Reply, ToolSpec
from rlaif.judges.llm.sender import RequestSender
from rlaif.judges.spec import PairwiseSpec
from rlaif.judges.llm.templates import PairwiseTemplate, load_pairwise_template, render_pair

log = logging.getLogger(__name__)

PREFERENCE_TOOL = ToolSpec(
    "submit_preference",
    "Submit which of the two replies is better under the rubric.",
    {
        "type": "object",
        "properties": {
            "rationale": {"type": "string", "description": "One or two sentences justifying the verdict."},
            "preference": {"type": "string", "enum": ["A", "B", "tie"],
                           "description": "A (the first reply), B (the second) or tie."},
            "strength": {"type": "number", "minimum": 0, "maximum": 1,
                         "description": "How clearly the verdict holds: 0 = no real difference, 1 = clear."},
        },
        "required": ["rationale", "preference", "strength"],
    },
)


class PairwiseLLMJudge(PairwiseJudge):
    """Claude pairwise judge over the Anthropic API or Bedrock; see the module doc."""

    def __init__(self, spec: PairwiseSpec, provider: Provider | None = None) -> None:
        self.spec = spec
        self.template: PairwiseTemplate = load_pairwise_template(spec.prompt)
        self.name = spec.name or f"{spec.provider}:{self.template.name}"
        self.orders = ("ab", "ba") if spec.orders == "both" else ("ab",)
        self._tool = PREFERENCE_TOOL if spec.structured else None
        self._sender = RequestSender(spec, self.name, provider)
        self.cache = PairwiseCache(spec.cache, spec.fingerprint()) if spec.cache else None

    def usage(self) -> Usage:
        """HTTP attempts (retries included), tokens, estimated USD and latency so far."""
        return self._sender.usage()

    def stats(self) -> JudgeStats | None:
        """The pairwise cache's statistics (hits and misses count askings); None without `cache:`."""
        return self.cache.stats() if self.cache is not None else None

    def load(self) -> None:
        """Check now that the provider can make its client (a missing key or region fails here)."""
        self._sender.provider.load()

    def close(self) -> None:
        """Close the provider's clients and thread pool, the cache file, then the judge's loop."""
        self._sender.close()
        if self.cache is not None:
            self.cache.close()
        super().close()

    def __repr__(self) -> str:
        return (f"PairwiseLLMJudge(name={self.name!r}, provider={self.spec.provider!r}, "
                f"model={self.spec.model!r}, prompt={self.template.name!r}, orders={self.spec.orders!r})")

    async def acompare(self, pairs: Sequence[Pair]) -> list[Preference]:
        """Ask every pair in each order (cache first), combine; one Preference per pair."""
        pairs = list(pairs)
        jobs = [(i, order) for i in range(len(pairs)) for order in self.orders]
        shown = [(pairs[i].prompt, *((pairs[i].a, pairs[i].b) if o == "ab" else (pairs[i].b, pairs[i].a)))
                 for i, o in jobs]
        hashes = [shown_hash(*s) for s in shown]
        answers: list[dict[str, Any] | None] = [None] * len(jobs)
        usages = [Usage() for _ in jobs]
        stored = self.cache.lookup(hashes) if self.cache is not None else {}
        first_of: dict[str, int] = {}  # hash -> the job that asks it (identical askings go once)
        requests: list[JudgeRequest | None] = [None] * len(jobs)
        for j, ((_, order), h, (prompt, first, second)) in enumerate(zip(jobs, hashes, shown)):
            if h in stored:
                answers[j] = _unswapped({**stored[h], "cached": True}, order)
            elif h not in first_of:
                first_of[h] = j
                too_big = oversize_error(len(prompt) + len(first) + len(second), self.spec.max_input_chars,
                                         "prompt + both responses")
                if too_big:
                    answers[j] = _unswapped({"shown": None, "error": too_big}, order)
                else:
                    rendered = render_pair(self.template, prompt, first, second)
                    requests[j] = JudgeRequest(rendered.system, rendered.user, self._tool)
        outcome = await self._sender.send_all(requests)
        fresh: list[tuple[str, dict[str, Any]]] = []
        for j, sent in enumerate(outcome.sent):
            if sent is None:
                continue
            usages[j] = sent.usage
            answer = {"shown": None, "error": sent.error} if sent.reply is None else _read(sent.reply)
            answers[j] = _unswapped(answer, jobs[j][1])
            if answer["shown"] is not None:
                fresh.append((hashes[j], answer))
            else:
                log.warning("%s: pair %d (order %s) not scored: %s", self.name, jobs[j][0], jobs[j][1], answer["error"])
        for j, h in enumerate(hashes):  # identical askings share the one answer (not its cost)
            if answers[j] is None and h in first_of and answers[first_of[h]] is not None:
                answers[j] = _unswapped(_shown_answer(answers[first_of[h]]), jobs[j][1])  # type: ignore[arg-type]
        if self.cache is not None:
            self.cache.save(fresh)
        prefs = self._combine(len(pairs), jobs, answers, usages)
        stop = self._sender.stop_error(outcome, prefs, unit="requests", error=PairwiseError,
                                       budget=PairwiseBudgetExceeded)
        if stop is not None:
            raise stop
        return prefs  # type: ignore[return-value]  # every pair is answered when nothing stopped

    def _combine(self, n: int, jobs: list[tuple[int, str]], answers: list[dict[str, Any] | None],
                 usages: list[Usage]) -> list[Preference | None]:
        per_pair: list[list[dict[str, Any] | None]] = [[] for _ in range(n)]
        cost = [Usage() for _ in range(n)]
        for (i, _), answer, usage in zip(jobs, answers, usages):
            per_pair[i].append(answer)
            cost[i] = cost[i] + usage
        return [
            combine_orders(asked, cost[i], self.spec.disagreement)  # type: ignore[arg-type]
            if all(a is not None for a in asked) else None
            for i, asked in enumerate(per_pair)
        ]


def _read(reply: Reply) -> dict[str, Any]:
    """An answer in shown positions from a reply: the tool call's, else the text's."""
    structured = reply.tool_input is not None
    if structured:
        tool = reply.tool_input or {}
        verdict: PreferenceVerdict = check_tool_preference(tool.get("preference"), tool.get("strength"))
        rationale = str(tool.get("rationale") or "")
    else:
        verdict = parse_preference(reply.text)
        rationale = reply.text
    how = "tool call" if structured else "text reply"
    return {"shown": verdict.shown, "strength": verdict.strength, "rationale": rationale,
            "error": None if verdict.ok else f"unreadable preference in the {how}: {verdict.error}",
            "structured": structured, "raw": reply.raw}


def _unswapped(answer: dict[str, Any], order: str) -> dict[str, Any]:
    """The answer with its canonical verdict for `order` ("ab": a shown first)."""
    shown = answer.get("shown")
    return {"order": order, "cached": False, **answer, "verdict": None if shown is None else unswap(shown, order)}


def _shown_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer stripped back to shown positions (to reuse it for another job)."""
    return {k: v for k, v in answer.items() if k not in ("order", "verdict")}
