"""A judge that lives in an `rlaif serve` service, called over HTTP: `RemoteJudge`.

    from rlaif.integrations.remote import RemoteJudge, remote_reward_function

    judge = RemoteJudge("http://judge-host:8000")            # token: $RLAIF_SERVE_TOKEN
    judge.score([("How do I ...?", "Like this.")])[0].value
    reward = remote_reward_function("http://judge-host:8000")  # a TRL GRPO / RLOO reward function

It is a `Judge` like any other (so `rlaif.integrations.trl.reward_function` wraps it as is):
`ascore` posts the batch to the native endpoint (`POST /v1/score`) and rebuilds each `Score`
-- value, or None with the service's reason; the cache flag; the judge calls and USD the
sample cost. Name and scale come from the service's `GET /health` when it is built.

Retries: 429 (queue full) and 503 (draining) wait the service's Retry-After, 504 (the
request timed out; the service keeps judging and caches, so the retry is cheap) and
connection errors back off from 0.5 s, up to `max_retries`, then `JudgeError`. A 400 / 401
/ 404 fails at once with the service's message. The token is sent as
`Authorization: Bearer ...` and appears in no repr, log line or error.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from rlaif.judges.base import Judge, JudgeError, MemberScore, Sample, Scale, Score, Usage
from rlaif.integrations.trl import RewardFunction, reward_function

TOKEN_ENV = "RLAIF_SERVE_TOKEN"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_WAIT_S = 30.0


class RemoteJudge(Judge):
    """The judge served at `url` (`rlaif serve`); scores travel over HTTP, one POST per batch."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 180.0,
                 max_retries: int = 5, token_env: str = TOKEN_ENV) -> None:
        self.url = url.rstrip("/")
        self._token = token if token is not None else (os.environ.get(token_env, "").strip() or None)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._usage = Usage()
        info = self._health()
        if info.get("kind") != "pointwise" or not info.get("scale"):
            raise JudgeError(f"{self.url} serves the pairwise judge {info.get('judge')!r}, which has no score "
                             "per sample; call its /v1/compare endpoint, or serve a pointwise judge")
        self.name = str(info["judge"])
        self.scale = Scale(*map(float, info["scale"]))

    def __repr__(self) -> str:
        return f"RemoteJudge(url={self.url!r}, name={self.name!r})"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _health(self) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/health", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout_s, 30.0)) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:  # 503 while draining still says what is served
            try:
                return json.loads(exc.read())
            except ValueError:
                raise JudgeError(f"{self.url}/health answered {exc.code}; is this an rlaif serve service?") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise JudgeError(f"cannot reach the judge service at {self.url} ({exc}); start it with "
                             "`rlaif serve JUDGE`, or fix the URL") from None

    def usage(self) -> Usage:
        """What this client's samples cost on the service (judge calls, tokens, USD)."""
        return self._usage

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """POST the batch to /v1/score (retrying 429/5xx as the module doc says); one Score per sample."""
        import aiohttp

        samples = list(samples)
        if not samples:
            return []
        body = {"samples": [{"prompt": s.prompt, "response": s.response} for s in samples]}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            wait = min(MAX_RETRY_WAIT_S, 0.5 * 2 ** attempt)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, \
                        session.post(f"{self.url}/v1/score", json=body, headers=self._headers()) as reply:
                    data = await reply.json(content_type=None)
                    if reply.status == 200:
                        return self._scores(data, len(samples))
                    message = data.get("error") if isinstance(data, dict) else None
                    last = f"HTTP {reply.status}: {message or reply.reason}"
                    if reply.status not in RETRY_STATUSES:
                        raise JudgeError(f"judge service {self.url} refused the batch ({last})")
                    if reply.headers.get("Retry-After", "").isdigit():
                        wait = min(MAX_RETRY_WAIT_S, float(reply.headers["Retry-After"]))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_retries:
                await asyncio.sleep(wait)
        raise JudgeError(f"judge service {self.url} did not answer after {self.max_retries + 1} tries "
                         f"(last: {last}); check that it runs and is not overloaded")

    def _scores(self, data: dict[str, Any], expected: int) -> list[Score]:
        items = data.get("scores")
        if not isinstance(items, list) or len(items) != expected:
            raise JudgeError(f"judge service {self.url} returned {len(items) if isinstance(items, list) else 'no'} "
                             f"scores for {expected} samples")
        out = []
        for item in items:
            usage = Usage(requests=int(item.get("requests", 0)), input_tokens=int(item.get("input_tokens", 0)),
                          output_tokens=int(item.get("output_tokens", 0)), cost_usd=float(item.get("cost_usd", 0.0)))
            self._usage = self._usage + usage
            members = item.get("members")
            score = Score(
                value=item.get("value"), error=item.get("error"), rationale=item.get("rationale"), usage=usage,
                details={"cached": bool(item.get("cached")), "service": self.url}, criteria=item.get("criteria"),
                members=None if members is None else {n: MemberScore.from_dict(m) for n, m in members.items()})
            out.append(score)
        return out


def remote_reward_function(url: str, *, token: str | None = None, name: str | None = None,
                           missing: float | None = None, **client: Any) -> RewardFunction:
    """A TRL reward function (async, `(prompts, completions, **kw) -> list[float | None]`) that
    asks the service at `url`; None for an unscored sample unless `missing` is set (see
    `rlaif.integrations.trl.reward_function`). `client` goes to `RemoteJudge` (timeout_s, max_retries)."""
    return reward_function(RemoteJudge(url, token=token, **client), name=name, missing=missing)
