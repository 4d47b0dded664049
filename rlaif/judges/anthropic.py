"""Anthropic API provider: `anthropic.AsyncAnthropic`, key from ANTHROPIC_API_KEY.

`temperature` is not sent: the SDK 2.x Messages API takes no sampling parameters. Retries
are the SDK's own (see `rlaif.judges.provider`); an httpx request hook counts every HTTP
attempt, retries included, for the request whose task is sending it (a context variable).
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

from rlaif.judges.base import JudgeError
from rlaif.judges.provider import JudgeRequest, Provider, ProviderAuthError, ProviderError, Reply, messages_reply
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
    """One CA bundle load per process (~0.3 s each), shared by the per-batch clients."""
    return ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR


class AnthropicProvider(Provider):
    """`anthropic.AsyncAnthropic`; key from ANTHROPIC_API_KEY (or the SDK's other sources)."""

    def __init__(self, spec: LLMSpec) -> None:
        import anthropic  # noqa: F401 - fail early, at build time, if the SDK is missing

        super().__init__(spec)
        if spec.temperature:
            logging.getLogger(__name__).warning(
                "temperature=%s is not sent: the Anthropic Messages API (SDK 2.x) takes no sampling "
                "parameters; it applies to provider bedrock only", spec.temperature,
            )
        # One client per event loop, shared by the batches running on it: the async HTTP
        # pool belongs to the loop that created it, and `Judge.score` may run each batch on
        # a fresh loop (or several batches at once, e.g. TRL's async reward functions).
        self._clients: dict[asyncio.AbstractEventLoop, list[Any]] = {}  # loop -> [client, users]
        self._lock = threading.Lock()

    async def open(self) -> None:
        import anthropic

        loop = asyncio.get_running_loop()
        with self._lock:
            if loop in self._clients:
                self._clients[loop][1] += 1
                return
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
            await client.close()
            raise JudgeError(
                "anthropic: ANTHROPIC_API_KEY has leading or trailing whitespace (often a newline "
                "pasted with it), which no HTTP header may hold; strip it, e.g. "
                "export ANTHROPIC_API_KEY=\"$(echo $ANTHROPIC_API_KEY)\""
            )
        if client.api_key is None and client.auth_token is None and getattr(client, "credentials", None) is None:
            await client.close()
            raise JudgeError(
                "anthropic: no API key found; set ANTHROPIC_API_KEY in the environment "
                "(rlaif never reads keys from judge specs)"
            )
        with self._lock:
            self._clients[loop] = [client, 1]

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(loop)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del self._clients[loop]
        await entry[0].close()

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
            client = self._clients[asyncio.get_running_loop()][0]
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
            used = getattr(self._clients.get(asyncio.get_running_loop(), [None])[0], "base_url", None)
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
