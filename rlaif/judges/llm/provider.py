"""What the Claude providers share: the request and reply types, the errors, the base class.

A provider sends one judge request to Claude: `anthropic.AnthropicProvider` (the Anthropic
API) or `bedrock.BedrockProvider` (Amazon Bedrock: invoke_model, converse); `LLMJudge` picks
one by `spec.provider`.

Retries are the SDKs' own: the anthropic client retries 408/409/429/5xx (529 included) with
capped exponential backoff honouring `retry-after`; botocore's "adaptive" mode retries
throttling and transient errors with client-side rate limiting and honours
`x-amz-retry-after`. What reaches rlaif after those retries is final and becomes a
`ProviderError` whose message names the status, the server's message and the likely cause;
authentication failures become `ProviderAuthError` (every further request would fail too).

Credentials never leave the SDKs' own chains (ANTHROPIC_API_KEY; the AWS chain) and never
appear in rlaif's messages: `ProviderError` scrubs its text with `rlaif.secrets.redact_text`.
The SDKs' debug logs are scrubbed once `rlaif.secrets.install_log_redaction()` has been
called (the CLI does; building a provider changes no global state).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from rlaif.judges.spec import LLMSpec
from rlaif.secrets import redact_text


class ProviderError(Exception):
    """A request failed for good (after the SDK's retries); the message says why.

    `attempts`: HTTP attempts the SDK made for it (retries included), set by the provider."""

    def __init__(self, message: str, status: int | str | None = None, attempts: int = 1) -> None:
        super().__init__(redact_text(message))
        self.status = status
        self.attempts = attempts


class ProviderAuthError(ProviderError):
    """Credentials missing or refused: every request would fail the same way."""


@dataclass(frozen=True)
class ToolSpec:
    """The scoring tool offered to (and forced on) the model."""

    name: str
    description: str
    schema: dict[str, Any]

    def messages_tools(self) -> dict[str, Any]:
        """`tools` and `tool_choice` of an Anthropic messages request (API or Bedrock body)."""
        return {
            "tools": [{"name": self.name, "description": self.description, "input_schema": self.schema}],
            "tool_choice": {"type": "tool", "name": self.name},
        }


@dataclass(frozen=True)
class JudgeRequest:
    """One rendered judge request."""

    system: str
    user: str
    tool: ToolSpec | None


@dataclass(frozen=True)
class Reply:
    """What came back: text, the tool call's input (if any), token usage, raw output, and the
    HTTP attempts it took (1 + the SDK's retries: what `Usage.requests` counts)."""

    text: str
    tool_input: dict[str, Any] | None
    input_tokens: int
    output_tokens: int
    attempts: int = 1

    @property
    def raw(self) -> str:
        """The model's output for audit: the text, or the tool input as JSON after any text."""
        if self.tool_input is None:
            return self.text
        return (self.text + "\n" if self.text else "") + json.dumps(self.tool_input, sort_keys=True)


def messages_reply(content: list[dict[str, Any]], in_tokens: int, out_tokens: int) -> Reply:
    """A Reply from the content blocks of an Anthropic messages response (API or Bedrock)."""
    texts = [b.get("text", "") for b in content if b.get("type") == "text"]
    tools = [b.get("input") for b in content if b.get("type") == "tool_use"]
    tool_input = tools[-1] if tools and isinstance(tools[-1], dict) else None
    return Reply("\n".join(texts).strip(), tool_input, in_tokens, out_tokens)


class Provider(ABC):
    """Sends requests for one LLMSpec. `open`/`aclose` bracket each scored batch; a client
    lives past the batch on a judge's own loop (the rule in `rlaif.judges.loop`)."""

    def __init__(self, spec: LLMSpec) -> None:
        self.spec = spec

    def load(self) -> None:
        """Fail now, not at the first batch, if no client can be made (no key, no region).

        Nothing bound to an event loop stays open: the first batch opens that on its own loop."""

    async def open(self) -> None:
        """Make a client ready for a batch on the running event loop (opened once, then reused)."""

    async def aclose(self) -> None:
        """A batch ended: release what was opened for that batch only."""

    def close(self) -> None:
        """Release every client and thread pool; a later batch opens them again."""

    @abstractmethod
    async def send(self, request: JudgeRequest) -> Reply:
        """Send one request; raise ProviderError / ProviderAuthError when it fails for good.

        The Reply's (or the error's) `attempts` counts every HTTP attempt, retries included."""
