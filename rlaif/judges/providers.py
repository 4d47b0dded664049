"""Send one judge request to Claude: the Anthropic API, or Amazon Bedrock (invoke_model, converse).

Retries are the SDKs' own: the anthropic client retries 408/409/429/5xx (529 included) with
capped exponential backoff honouring `retry-after`; botocore's "adaptive" mode retries
throttling and transient errors with client-side rate limiting and honours
`x-amz-retry-after`. What reaches rlaif after those retries is final and becomes a
`ProviderError` whose message names the status, the server's message and the likely cause;
authentication failures become `ProviderAuthError` (every further request would fail too).

Credentials never leave the SDKs' own chains (ANTHROPIC_API_KEY; the AWS chain) and never
appear in rlaif's messages or logs: `redact` scrubs them from every error text, and
`install_log_redaction` scrubs them from the SDKs' debug logs (botocore logs signed headers).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import ssl
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from rlaif.judges.base import JudgeError
from rlaif.judges.spec import LLMSpec

# Current Claude models (Nov 2026). Bedrock's `us.` prefix is the cross-region inference
# profile that on-demand calls to recent models require; use `eu.`/`global.` elsewhere.
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-6", "bedrock": "us.anthropic.claude-sonnet-4-6"}
SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
)
# Key shapes scrubbed even when they did not come from the environment.
_SECRET_PATTERNS = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b")
_LOGGER_PREFIXES = ("anthropic", "httpx", "httpcore", "botocore", "boto3", "urllib3", "rlaif")
def redact(text: str) -> str:
    """Replace every known secret (from the environment, or key-shaped) with '***'."""
    for var in SECRET_ENV_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _SECRET_PATTERNS.sub("***", text)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later from exc_info: pre-format and scrub them now.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_FILTER = _RedactFilter()


def install_log_redaction() -> None:
    """Scrub secrets from every SDK logger (filters run per logger, so each gets one)."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in _LOGGER_PREFIXES]
    for name in {*names, *_LOGGER_PREFIXES}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class ProviderError(Exception):
    """A request failed for good (after the SDK's retries); the message says why."""

    def __init__(self, message: str, status: int | str | None = None) -> None:
        super().__init__(redact(message))
        self.status = status


class ProviderAuthError(ProviderError):
    """Credentials missing or refused: every request would fail the same way."""


@dataclass(frozen=True)
class ToolSpec:
    """The scoring tool offered to (and forced on) the model."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class JudgeRequest:
    """One rendered judge request."""

    system: str
    user: str
    tool: ToolSpec | None


@dataclass(frozen=True)
class Reply:
    """What came back: text, the tool call's input (if any), token usage, raw output."""

    text: str
    tool_input: dict[str, Any] | None
    input_tokens: int
    output_tokens: int

    @property
    def raw(self) -> str:
        """The model's output for audit: the text, or the tool input as JSON after any text."""
        if self.tool_input is None:
            return self.text
        return (self.text + "\n" if self.text else "") + json.dumps(self.tool_input, sort_keys=True)


class Provider(ABC):
    """Sends requests for one LLMSpec. `open`/`aclose` bracket each scored batch."""

    def __init__(self, spec: LLMSpec) -> None:
        self.spec = spec
        install_log_redaction()

    async def open(self) -> None:
        """Prepare clients for a batch (inside the running event loop)."""

    async def aclose(self) -> None:
        """Release per-batch resources."""

    def close(self) -> None:
        """Release everything (thread pools)."""

    @abstractmethod
    async def send(self, request: JudgeRequest) -> Reply:
        """Send one request; raise ProviderError / ProviderAuthError when it fails for good."""


def _messages_content(content: list[dict[str, Any]], in_tokens: int, out_tokens: int) -> Reply:
    texts = [b.get("text", "") for b in content if b.get("type") == "text"]
    tools = [b.get("input") for b in content if b.get("type") == "tool_use"]
    tool_input = tools[-1] if tools and isinstance(tools[-1], dict) else None
    return Reply("\n".join(texts).strip(), tool_input, in_tokens, out_tokens)


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
                http_client=anthropic.DefaultAsyncHttpxClient(verify=_ssl_context()),
            )
        except anthropic.AnthropicError as exc:  # no key and no profile to fall back on
            raise JudgeError(
                f"anthropic: no usable credentials ({redact(str(exc))}); set ANTHROPIC_API_KEY in the environment"
            ) from None
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
        import anthropic

        kwargs: dict[str, Any] = {}
        if request.tool is not None:
            kwargs["tools"] = [{"name": request.tool.name, "description": request.tool.description,
                                "input_schema": request.tool.schema}]
            kwargs["tool_choice"] = {"type": "tool", "name": request.tool.name}
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
            raise ProviderError(
                f"connection error: {exc}; likely cause: wrong base_url "
                f"({self.spec.base_url or 'default'}) or no network", "connection",
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
        return _messages_content(content, message.usage.input_tokens, message.usage.output_tokens)


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


def make_provider(spec: LLMSpec) -> Provider:
    """The provider for `spec.provider` / `spec.api`."""
    if spec.provider == "anthropic":
        return AnthropicProvider(spec)
    from rlaif.judges.bedrock import BedrockProvider  # boto3 only when Bedrock is used

    return BedrockProvider(spec)
