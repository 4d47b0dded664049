"""Anthropic API provider: `anthropic.AsyncAnthropic`, key from ANTHROPIC_API_KEY.

`temperature` is not sent: the SDK 2.x Messages API takes no sampling parameters. Retries
are the SDK's own (see `rlaif.judges.llm.provider`); an httpx request hook counts every HTTP
attempt, retries included, for the request whose task is sending it (a context variable).
A judge's synchronous calls share one client for the judge's life (`AnthropicProvider`).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import logging
import ssl
import threading
from typing import Any

from rlaif.judges import loop as judge_loop
from rlaif.judges.base import JudgeError
from rlaif.judges.llm.provider import JudgeRequest, Provider, ProviderAuthError, ProviderError, Reply, messages_reply
from rlaif.judges.spec import LLMSpec
from rlaif.secrets import redact_text


# The attempt counter of the request being sent in this task (see `_count_attempt`).
_ATTEMPTS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("rlaif_attempts", default=None)


async def _count_attempt(request: Any) -> None:
    """httpx request hook: one more HTTP attempt for the request this task is sending."""
    counter = _ATTEMPTS.get()
    if counter is not None:
        counter[0] += 1


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One CA bundle load per process (~0.3 s each), shared by every client."""
    return ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR


@dataclasses.dataclass
class _Client:
    """One `AsyncAnthropic` and how long it lives: `users` batches run on it now; `pinned`
    when it was opened on a judge's own loop (it then outlives its batches)."""

    client: Any
    users: int
    pinned: bool


class AnthropicProvider(Provider):
    """`anthropic.AsyncAnthropic`; key from ANTHROPIC_API_KEY (or the SDK's other sources).

    One client per event loop, because the async HTTP pool belongs to the loop that opened
    it: on a judge's own loop (`Judge.score`) it is opened once and kept until that loop or
    this provider closes; on a caller's loop (`await judge.ascore(...)`) it is shared by the
    batches running there at once and closed when the last one ends (`rlaif.judges.loop`)."""

    def __init__(self, spec: LLMSpec) -> None:
        import anthropic  # noqa: F401 - fail early, at build time, if the SDK is missing

        super().__init__(spec)
        if spec.temperature:
            logging.getLogger(__name__).warning(
                "temperature=%s is not sent: the Anthropic Messages API (SDK 2.x) takes no sampling "
                "parameters; it applies to provider bedrock only", spec.temperature,
            )
        self._clients: dict[asyncio.AbstractEventLoop, _Client] = {}
        self._lock = threading.Lock()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(loop)
            if entry is not None:
                entry.users += 1
                return
            owner = judge_loop.current()
            self._clients[loop] = _Client(self._new_client(), 1, pinned=owner is not None)
        if owner is not None:
            owner.at_close(functools.partial(self._drop, loop))

    def load(self) -> None:
        """Check the credentials now by making a client; an unused client holds no connection."""
        self._new_client()

    def _new_client(self) -> Any:
        """A new `AsyncAnthropic` with the spec's retries and timeout, its key checked (it has
        sent nothing yet, so a refused one is simply dropped)."""
        import anthropic

        try:
            client = anthropic.AsyncAnthropic(
                base_url=self.spec.base_url, max_retries=self.spec.max_retries, timeout=self.spec.timeout,
                http_client=anthropic.DefaultAsyncHttpxClient(
                    verify=_ssl_context(), event_hooks={"request": [_count_attempt]}),
            )
        except anthropic.AnthropicError as exc:  # no key and no profile to fall back on
            raise JudgeError(
                f"anthropic: no usable credentials ({redact_text(str(exc))}); set ANTHROPIC_API_KEY in the environment"
            ) from None
        key = client.api_key
        if isinstance(key, str) and key != key.strip():
            raise JudgeError(
                "anthropic: ANTHROPIC_API_KEY has leading or trailing whitespace (often a newline "
                "pasted with it), which no HTTP header may hold; strip it, e.g. "
                "export ANTHROPIC_API_KEY=\"$(echo $ANTHROPIC_API_KEY)\""
            )
        if client.api_key is None and client.auth_token is None and getattr(client, "credentials", None) is None:
            raise JudgeError(
                "anthropic: no API key found; set ANTHROPIC_API_KEY in the environment "
                "(rlaif never reads keys from judge specs)"
            )
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(loop)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0 or entry.pinned:
                return
            del self._clients[loop]
        await entry.client.close()

    async def _drop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the client of `loop` (run on that loop as it closes), if it is still open."""
        with self._lock:
            entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry.client.close()

    def close(self) -> None:
        """Close every client, each on the loop it was opened on."""
        with self._lock:
            entries, self._clients = self._clients, {}
        for loop, entry in entries.items():
            judge_loop.finish_on(loop, entry.client.close())

    async def send(self, request: JudgeRequest) -> Reply:
        counter = [0]
        token = _ATTEMPTS.set(counter)
        try:
            reply = await self._send(request)
        except ProviderError as exc:
            exc.attempts = counter[0]
            raise
        finally:
            _ATTEMPTS.reset(token)
        return dataclasses.replace(reply, attempts=counter[0])

    async def _send(self, request: JudgeRequest) -> Reply:
        import anthropic

        kwargs: dict[str, Any] = request.tool.messages_tools() if request.tool is not None else {}
        try:
            # No `temperature`: the anthropic SDK 2.x Messages API has no sampling parameters.
            client = self._clients[asyncio.get_running_loop()].client
            message = await client.messages.create(
                model=self.spec.model, max_tokens=self.spec.max_tokens, system=request.system,
                messages=[{"role": "user", "content": request.user}], **kwargs,
            )
        except anthropic.APIStatusError as exc:
            raise _anthropic_status_error(exc, self.spec) from None
        except anthropic.APITimeoutError:
            raise ProviderError(
                f"timeout: no reply within {self.spec.timeout:g}s, {self.spec.max_retries} retries; "
                "likely cause: the API is slow or overloaded, or `timeout` is too low for max_tokens",
                "timeout",
            ) from None
        except anthropic.APIConnectionError as exc:
            # The URL the client really used: the spec's base_url, else ANTHROPIC_BASE_URL, else the default.
            entry = self._clients.get(asyncio.get_running_loop())
            used = getattr(entry.client, "base_url", None) if entry is not None else None
            raise ProviderError(
                f"connection error: {exc}; likely cause: wrong base_url "
                f"({used or self.spec.base_url or 'default'}) or no network", "connection",
            ) from None
        except (anthropic.APIResponseValidationError, ValueError) as exc:
            raise ProviderError(f"malformed reply: {exc}; likely cause: a proxy or server bug", "malformed") from None
        except anthropic.AnthropicError as exc:  # e.g. no credentials found at all
            raise ProviderAuthError(
                f"anthropic client error: {exc}; set ANTHROPIC_API_KEY in the environment", "auth"
            ) from None
        if not hasattr(message, "content") or not isinstance(message.content, list):
            raise ProviderError(f"malformed reply: {str(message)[:200]!r}", "malformed")
        content = [b.model_dump() if hasattr(b, "model_dump") else dict(b) for b in message.content]
        return messages_reply(content, message.usage.input_tokens, message.usage.output_tokens)


def _anthropic_status_error(exc: Any, spec: LLMSpec) -> ProviderError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    detail = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else None
    detail = detail or str(exc)
    tries = f"after {spec.max_retries} retries"
    if status == 401:
        return ProviderAuthError(
            f"401 authentication failed: {detail}; set ANTHROPIC_API_KEY to a valid Anthropic API key", 401
        )
    if status == 403:
        return ProviderAuthError(
            f"403 permission denied: {detail}; the key in ANTHROPIC_API_KEY may not use model "
            f"{spec.model!r}: use a key with access, or another model", 403
        )
    if status == 429:
        cause = "max_concurrency / requests_per_minute above the organisation's rate limit: lower them"
    elif status == 529:
        cause = "the Anthropic API is overloaded: retry later or raise max_retries"
    elif status >= 500:
        cause = "a server-side error: retry later"
    elif status == 404:
        cause = f"model {spec.model!r} does not exist: check `model:`"
    elif status == 400:
        cause = "a bad request (model id, max_tokens, or a prompt too long)"
    else:
        cause = "see the message"
    return ProviderError(f"{status} {tries}: {detail}; likely cause: {cause}", status)
