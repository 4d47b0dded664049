"""Amazon Bedrock provider: `invoke_model` with the Anthropic messages body, and `converse`.

boto3 is synchronous: calls run in a thread pool bounded by the judge's max_concurrency.
Retries are botocore's own ("adaptive" mode: throttling and transient errors, client-side
rate limiting, `x-amz-retry-after` honoured as a floor). Region and credentials come from
the usual AWS chain; they never appear in rlaif's messages (see `rlaif.judges.llm.provider`).
A `before-send` event handler counts every HTTP attempt (retries included) of the call
running in its thread. The client and its thread pool open once, on the first batch (or
`judge.load()`), and serve every batch until the judge is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlaif.judges.base import JudgeError
from rlaif.judges.llm.provider import JudgeRequest, Provider, ProviderAuthError, ProviderError, Reply, messages_reply
from rlaif.judges.spec import LLMSpec

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_AWS_AUTH_CODES = frozenset({
    "UnrecognizedClientException", "AccessDeniedException", "ExpiredTokenException",
    "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationTokenException",
})
_AWS_CREDENTIALS_HINT = (
    "check the AWS credentials chain (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN], "
    "or AWS_PROFILE, or an instance/role profile) and that the identity may call "
    "bedrock:InvokeModel on this model in this region (model access enabled in the Bedrock console)"
)


class BedrockProvider(Provider):
    """boto3 `bedrock-runtime`, `invoke_model` (Anthropic body) or `converse`, in a thread pool."""

    def __init__(self, spec: LLMSpec) -> None:
        import boto3  # noqa: F401 - fail early, at build time, if boto3 is missing

        super().__init__(spec)
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._attempts = threading.local()  # .count: HTTP attempts of the call in this thread

    def load(self) -> None:
        """Make the client now (a missing region fails here); it is bound to no loop, so it stays."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()

    async def open(self) -> None:
        """Open the client and thread pool once: boto3 clients are thread-safe and bound to no
        event loop, so every batch on every loop shares them until `close`."""
        self.load()
        with self._lock:
            if self._executor is None:
                # boto3 is synchronous: at most max_concurrency calls run at once, each in a thread.
                self._executor = ThreadPoolExecutor(self.spec.max_concurrency, thread_name_prefix="rlaif-bedrock")

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import NoRegionError

        config = Config(
            retries={"mode": "adaptive", "max_attempts": self.spec.max_retries},  # retries after the first try
            read_timeout=self.spec.timeout,
            connect_timeout=min(self.spec.timeout, 10.0),
            max_pool_connections=self.spec.max_concurrency,
        )
        try:
            client = boto3.session.Session().client(
                "bedrock-runtime", region_name=self.spec.region,
                endpoint_url=self.spec.endpoint_url, config=config,
            )
            client.meta.events.register("before-send.bedrock-runtime", self._count_attempt)
            return client
        except NoRegionError:
            raise JudgeError(
                "bedrock: no AWS region; set `region:` in the judge spec, or AWS_REGION / AWS_DEFAULT_REGION"
            ) from None

    def _count_attempt(self, **kwargs: Any) -> None:
        """botocore `before-send` handler: one more HTTP attempt for this thread's call."""
        self._attempts.count = getattr(self._attempts, "count", 0) + 1

    def close(self) -> None:
        """Close the client's connections and the thread pool; a later batch opens new ones."""
        with self._lock:
            client, self._client = self._client, None
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if client is not None:
            client.close()

    async def send(self, request: JudgeRequest) -> Reply:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._send_sync, request)

    def _send_sync(self, request: JudgeRequest) -> Reply:
        self._attempts.count = 0
        try:
            reply = self._call(request)
        except ProviderError as exc:
            exc.attempts = self._attempts.count
            raise
        return dataclasses.replace(reply, attempts=self._attempts.count)

    def _call(self, request: JudgeRequest) -> Reply:
        from botocore.exceptions import (
            BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
            NoCredentialsError, PartialCredentialsError, ReadTimeoutError,
        )

        try:
            if self.spec.api == "converse":
                return self._converse(request)
            return self._invoke(request)
        except ClientError as exc:
            raise _bedrock_client_error(exc, self.spec) from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise ProviderAuthError(f"bedrock: {exc}; {_AWS_CREDENTIALS_HINT}", "auth") from None
        except (ReadTimeoutError, ConnectTimeoutError):
            raise ProviderError(
                f"timeout: no reply within {self.spec.timeout:g}s, {self.spec.max_retries} retries; "
                "likely cause: the model is slow or overloaded, or `timeout` is too low", "timeout",
            ) from None
        except EndpointConnectionError as exc:
            raise ProviderError(
                f"connection error: {exc}; likely cause: wrong region or endpoint_url, or no network",
                "connection",
            ) from None
        except BotoCoreError as exc:  # ResponseParserError and friends
            raise ProviderError(f"malformed reply: {exc}; likely cause: a proxy or server bug", "malformed") from None

    def _invoke(self, request: JudgeRequest) -> Reply:
        body: dict[str, Any] = {
            "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
            "max_tokens": self.spec.max_tokens,
            "temperature": self.spec.temperature,
            "system": request.system,
            "messages": [{"role": "user", "content": request.user}],
        }
        if request.tool is not None:
            body.update(request.tool.messages_tools())
        response = self._client.invoke_model(
            modelId=self.spec.model, body=json.dumps(body),
            contentType="application/json", accept="application/json",
        )
        raw = response["body"].read()
        try:
            data = json.loads(raw)
            usage = data["usage"]
            return messages_reply(data["content"], int(usage["input_tokens"]), int(usage["output_tokens"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"malformed reply: {type(exc).__name__} {exc} in body {raw[:120]!r}; "
                "likely cause: a proxy or server bug", "malformed",
            ) from None

    def _converse(self, request: JudgeRequest) -> Reply:
        kwargs: dict[str, Any] = {}
        if request.tool is not None:
            kwargs["toolConfig"] = {
                "tools": [{"toolSpec": {"name": request.tool.name, "description": request.tool.description,
                                        "inputSchema": {"json": request.tool.schema}}}],
                "toolChoice": {"tool": {"name": request.tool.name}},
            }
        response = self._client.converse(
            modelId=self.spec.model,
            system=[{"text": request.system}],
            messages=[{"role": "user", "content": [{"text": request.user}]}],
            inferenceConfig={"maxTokens": self.spec.max_tokens, "temperature": self.spec.temperature},
            **kwargs,
        )
        try:
            content = response["output"]["message"]["content"]
            usage = response["usage"]
        except (KeyError, TypeError) as exc:
            raise ProviderError(
                f"malformed reply: the converse response has no {exc}; likely cause: a proxy or server bug",
                "malformed",
            ) from None
        texts = [b["text"] for b in content if "text" in b]
        tools = [b["toolUse"].get("input") for b in content if "toolUse" in b]
        tool_input = tools[-1] if tools and isinstance(tools[-1], dict) else None
        return Reply("\n".join(texts).strip(), tool_input, int(usage["inputTokens"]), int(usage["outputTokens"]))


def _bedrock_client_error(exc: Any, spec: LLMSpec) -> ProviderError:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code, message = error.get("Code", "?"), error.get("Message", str(exc))
    status = meta.get("HTTPStatusCode", "?")
    retries = meta.get("RetryAttempts", 0)
    if code in _AWS_AUTH_CODES or status in (401, 403):
        return ProviderAuthError(f"{status} {code}: {message}; {_AWS_CREDENTIALS_HINT}", status)
    causes = {
        "ThrottlingException": "max_concurrency / requests_per_minute above the account's Bedrock quota: "
                               "lower them or request a quota increase",
        "ServiceUnavailableException": "Bedrock is overloaded: retry later or raise max_retries",
        "ModelNotReadyException": "the model is not ready yet: retry later",
        "InternalServerException": "a server-side error: retry later",
        "ModelTimeoutException": "the model took too long: lower max_tokens or raise timeout",
        "ValidationException": f"a bad request (model id {spec.model!r}, region, or parameters)",
        "ResourceNotFoundException": f"model {spec.model!r} not found in this region: check `model:` / `region:`",
    }
    cause = causes.get(code, "see the message")
    return ProviderError(f"{status} {code} after {retries} retries: {message}; likely cause: {cause}", status)
