"""A fake Claude server on 127.0.0.1 for tests and benchmarks: no network, no keys, no cost.

It speaks enough of two wire protocols for the real clients to talk to it unchanged:

- Anthropic Messages API: `POST /v1/messages` (`anthropic.Anthropic(base_url=fake.url)`);
- Bedrock runtime: `POST /model/{modelId}/invoke` (Anthropic messages body) and
  `POST /model/{modelId}/converse` (`boto3.client("bedrock-runtime", endpoint_url=fake.url)`,
  any dummy AWS credentials; signatures are not checked).

    with FakeClaude(latency=0.2, faults=["429", "500"]) as fake:
        ... base_url=fake.url ...
        assert fake.requests == 3

Replies. When the request carries tools (Anthropic `tools`, converse `toolConfig`) the reply
is a tool call filling every numeric property of the tool's input schema, plus `rationale`;
otherwise it is text ending in "Score: X" (or one "name: X" line per criterion when the
prompt asks for lines like "helpfulness: <number>").

Deterministic scores, computable by hand (the rules live in `rlaif.testing.fake_rules`). With the judged text = what lies between the
first <response> and </response> tags of the user message (the whole message if none),
words = its lowercase runs of letters/apostrophes, and the scale [low, high] read from the
tool schema's minimum/maximum (else from "scale from LOW to HIGH" in the prompt, else -5..5),
step = (high - low) / 5, every value rounded to 2 decimals:

- `score` (single-score requests) and `harmlessness`: high - step * (#words in BAD_WORDS),
  floored at low. E.g. toxicity -5..5: "You are terrible and i hate you." -> 5 - 2*2 = 1.
- `helpfulness`: low + step * (len(words) // 4), capped at high.
- `honesty`: high - step * (#words in OVERCLAIM_WORDS), floored at low.
- any other property name: the `score` rule.

Pairwise requests (the user message holds <response_a> and <response_b>, or the tool is
`submit_preference`): with va, vb = the `score` rule above on the -5..5 scale for the reply
shown first (A) and second (B), and bias = `position_bias` (points added to whichever reply
is shown first: a scripted position bias; negative favours the second), d = va + bias - vb:
preference = "A" if d > 0, "B" if d < 0, else "tie"; strength = min(1, |d| / 10), 2 decimals.
E.g. bias 3, A "I hate it" (3) vs B "Fine" (5): d = 1 -> A; swapped, d = 5 + 3 - 3 -> A
again, i.e. the other reply: an inconsistent pair. The reply is a tool call (rationale,
preference, strength) or text ending "Preference: X" / "Strength: s"; with
`quote_replies=True` the text first restates both judged replies unquoted, as a careless
judge might (an injection inside them must still not set the verdict).

Usage: input_tokens = whitespace-separated words in system + user text; output_tokens =
words in the reply text (or in the JSON of the tool input).

Faults, scripted by a queue (`faults=[...]`, consumed by the next requests, any text) or
per text (`fault_on={"substring": [kinds...]}`, consumed by requests whose judged text
contains the substring):

    "429"          rate limited, with retry-after (Anthropic) / x-amz-retry-after (Bedrock)
    "529"          overloaded (Bedrock: 503 ServiceUnavailableException)
    "500"          internal server error
    "slow"         wait `slow_s` seconds, then reply normally (past the client's timeout)
    "malformed"    200 with a truncated JSON body
    "unparseable"  200 with a text reply holding no number (even when a tool was forced)
    "text"         200 with the normal text reply even when a tool was forced
    "tool_use"     200 with a tool call even when no tool was offered
    "bad_tool"     200 with a tool call whose values lie outside the scale (pairwise:
                   preference "C", strength 7)
    "401" / "403"  authentication / permission error (Bedrock: 403 UnrecognizedClientException
                   / AccessDeniedException)

`echo_credentials=True` makes auth errors quote the credentials the client sent, like a
careless server, so a test can prove rlaif redacts them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from rlaif.testing.fake_rules import BAD_WORDS, fake_preference, fake_value, judged_text

FAULTS = frozenset(
    {"429", "529", "500", "slow", "malformed", "unparseable", "text", "tool_use", "bad_tool", "401", "403"}
)
# Dummy credentials for tests (set them with monkeypatch.setenv): the real clients insist on
# some, the fake never checks them, and the secret-redaction test looks for these strings.
DUMMY_CREDENTIALS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-TESTKEY-DO-NOT-LEAK-123456",
    "AWS_ACCESS_KEY_ID": "AKIATESTDONOTLEAK999",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-TEST-DO-NOT-LEAK-abcdef",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_SCALE_RE = re.compile(r"scale from ([+-]?\d+(?:\.\d+)?) to ([+-]?\d+(?:\.\d+)?)", re.IGNORECASE)
_ANSWER_LINE_RE = re.compile(r"^\s*([a-z_]+): <number>\s*$", re.MULTILINE)
_PAIR_RES = (re.compile(r"<response_a>(.*?)</response_a>", re.DOTALL),
             re.compile(r"<response_b>(.*?)</response_b>", re.DOTALL))
_BEDROCK_RE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>invoke|converse)$")


def _words(text: str) -> int:
    return len(text.split())


class _Request:
    """What the fake needs from any of the three request shapes."""

    def __init__(self, system: str, user: str, schema: dict[str, Any] | None, tool_name: str | None):
        self.system, self.user, self.schema, self.tool_name = system, user, schema, tool_name
        found = [m.search(user) for m in _PAIR_RES]
        self.pair = (found[0].group(1).strip(), found[1].group(1).strip()) if all(found) else None  # type: ignore[union-attr]
        self.text = "\n".join(self.pair) if self.pair else judged_text(user)

    def scale(self) -> tuple[float, float]:
        for prop in (self.schema or {}).get("properties", {}).values():
            if "minimum" in prop and "maximum" in prop:
                return float(prop["minimum"]), float(prop["maximum"])
        m = _SCALE_RE.search(self.system + "\n" + self.user)
        return (float(m.group(1)), float(m.group(2))) if m else (-5.0, 5.0)

    def names(self) -> list[str]:
        if self.schema:
            props = self.schema.get("properties", {})
            return [k for k, v in props.items() if v.get("type") in ("number", "integer")]
        lines = _ANSWER_LINE_RE.findall(self.system + "\n" + self.user)
        return [n for n in dict.fromkeys(lines) if n != "score"] or ["score"]

    def values(self, bad: bool = False) -> dict[str, float]:
        scale = self.scale()
        if bad:
            return {n: scale[1] + 10 for n in self.names() or ["score"]}
        return {n: fake_value(n, self.text, scale) for n in self.names() or ["score"]}


class FakeClaude:
    """Background fake Claude server; use as a context manager, point clients at `.url`."""

    def __init__(
        self,
        latency: float = 0.0,
        faults: Iterable[str] = (),
        fault_on: Mapping[str, Iterable[str]] | None = None,
        retry_after: float = 0.1,
        slow_s: float = 3.0,
        echo_credentials: bool = False,
        position_bias: float = 0.0,
        quote_replies: bool = False,
    ) -> None:
        self.latency, self.retry_after, self.slow_s = latency, retry_after, slow_s
        self.position_bias, self.quote_replies = position_bias, quote_replies
        self.echo_credentials = echo_credentials
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._fault_on: dict[str, deque[str]] = {}
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0  # most requests handled at once (checks client-side concurrency)
        self.log: list[dict[str, Any]] = []
        self.add_faults(faults)
        for substring, kinds in (fault_on or {}).items():
            self.add_faults(kinds, on=substring)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_faults(self, kinds: Iterable[str], on: str | None = None) -> None:
        """Queue faults for the next requests (or for requests whose judged text contains `on`)."""
        kinds = list(kinds)
        unknown = sorted(set(kinds) - FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {sorted(FAULTS)}")
        with self._lock:
            (self._faults if on is None else self._fault_on.setdefault(on, deque())).extend(kinds)

    def _next_fault(self, text: str) -> str | None:
        with self._lock:
            for substring, queue in self._fault_on.items():
                if substring in text and queue:
                    return queue.popleft()
            return self._faults.popleft() if self._faults else None

    def count(self, path_part: str = "", fault: str | None = "any") -> int:
        """Requests received whose path contains `path_part` (and with `fault`, if given)."""
        with self._lock:
            return sum(
                1 for r in self.log
                if path_part in r["path"] and (fault == "any" or r["fault"] == fault)
            )

    @property
    def url(self) -> str:
        """Base URL for `base_url=` / `endpoint_url=`."""
        if self._server is None:
            raise RuntimeError("FakeClaude is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeClaude:
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # slow replies must not hold up shutdown
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-claude", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- request handling (runs in the server's threads) ---

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body)."""
        bedrock = _BEDROCK_RE.match(path)
        try:
            payload = json.loads(body or b"{}")
            if bedrock and bedrock.group("op") == "converse":
                req = _converse_request(payload)
            elif bedrock or path == "/v1/messages":
                req = _messages_request(payload)
            else:
                return 404, {}, json.dumps({"message": f"no route {path}"}).encode()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return 400, {}, json.dumps({"message": f"bad request body: {exc}"}).encode()
        fault = self._next_fault(req.text)
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.log.append({"path": path, "fault": fault, "text": req.text})
        try:
            time.sleep(self.latency + (self.slow_s if fault == "slow" else 0.0))
        finally:
            with self._lock:
                self.in_flight -= 1
        kind = "anthropic" if not bedrock else bedrock.group("op")
        if fault in ("429", "529", "500", "401", "403"):
            return _error(kind, fault, self.retry_after, self._leak(headers))
        if fault == "malformed":
            return 200, {"content-type": "application/json"}, b'{"id": "msg_broken", "content": [{"type": "te'
        use_tool = (req.schema is not None or fault in ("tool_use", "bad_tool")) and fault not in ("text", "unparseable")
        if use_tool:
            flagged = sum(w in BAD_WORDS for w in re.findall(r"[a-z']+", req.text.lower()))
            inp: dict[str, Any] = {"rationale": f"{flagged} flagged words."}
            if req.pair is not None:
                preference, strength = fake_preference(*req.pair, self.position_bias)
                bad = fault == "bad_tool"
                inp.update(preference="C" if bad else preference, strength=7 if bad else strength)
            else:
                inp.update(req.values(bad=fault == "bad_tool"))
            out_tokens = _words(json.dumps(inp))
        else:
            if fault == "unparseable":
                text = "I cannot decide on a number for this one."
            elif req.pair is not None:
                text = _pair_text_reply(req.pair, self.position_bias, self.quote_replies)
            else:
                text = _text_reply(req)
            out_tokens = _words(text)
        in_tokens = _words(req.system) + _words(req.user)
        tool_name = req.tool_name or ("submit_preference" if req.pair is not None else "submit_score")
        if kind == "converse":
            block = {"toolUse": {"toolUseId": "tooluse_fake", "name": tool_name, "input": inp}} if use_tool else {"text": text}
            reply = {
                "output": {"message": {"role": "assistant", "content": [block]}},
                "stopReason": "tool_use" if use_tool else "end_turn",
                "usage": {"inputTokens": in_tokens, "outputTokens": out_tokens, "totalTokens": in_tokens + out_tokens},
                "metrics": {"latencyMs": int(self.latency * 1000)},
            }
        else:
            block = (
                {"type": "tool_use", "id": "toolu_fake", "name": tool_name, "input": inp}
                if use_tool else {"type": "text", "text": text}
            )
            reply = {
                "id": f"msg_fake_{self.requests}", "type": "message", "role": "assistant",
                "model": payload.get("model", bedrock.group("model") if bedrock else "fake"),
                "content": [block], "stop_reason": "tool_use" if use_tool else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": in_tokens, "output_tokens": out_tokens},
            }
        return 200, {"content-type": "application/json"}, json.dumps(reply).encode()

    def _leak(self, headers: Mapping[str, str]) -> str:
        if not self.echo_credentials:
            return ""
        return f" (received x-api-key={headers.get('x-api-key', '')!r}, authorization={headers.get('authorization', '')!r})"


def _text_reply(req: _Request) -> str:
    values = req.values()
    if list(values) == ["score"]:
        return f"The reply has been checked against the rubric.\nScore: {values['score']:g}"
    return "Assessment of each criterion.\n" + "\n".join(f"{k}: {v:g}" for k, v in values.items())


def _pair_text_reply(pair: tuple[str, str], position_bias: float, quote: bool) -> str:
    preference, strength = fake_preference(*pair, position_bias)
    restated = f"Reply A reads: {pair[0]}\nReply B reads: {pair[1]}\n" if quote else ""
    return f"{restated}Both replies were compared against the rubric.\nPreference: {preference}\nStrength: {strength:g}"


def _messages_request(payload: dict[str, Any]) -> _Request:
    system = payload.get("system", "")
    if isinstance(system, list):
        system = "\n".join(b.get("text", "") for b in system)
    user = "\n".join(
        c if isinstance(c, str) else "\n".join(b.get("text", "") for b in c)
        for c in (m["content"] for m in payload["messages"] if m["role"] == "user")
    )
    tools = payload.get("tools") or []
    tool = tools[0] if tools else None
    return _Request(system, user, tool["input_schema"] if tool else None, tool["name"] if tool else None)


def _converse_request(payload: dict[str, Any]) -> _Request:
    system = "\n".join(b.get("text", "") for b in payload.get("system", []))
    user = "\n".join(
        b.get("text", "") for m in payload["messages"] if m["role"] == "user" for b in m["content"]
    )
    tools = (payload.get("toolConfig") or {}).get("tools") or []
    spec = tools[0]["toolSpec"] if tools else None
    return _Request(system, user, spec["inputSchema"]["json"] if spec else None, spec["name"] if spec else None)


_ANTHROPIC_ERRORS = {
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    "529": (529, "overloaded_error", "Overloaded"),
    "500": (500, "api_error", "Internal server error"),
    "401": (401, "authentication_error", "invalid x-api-key"),
    "403": (403, "permission_error", "Your API key does not have permission to use the specified resource"),
}
_BEDROCK_ERRORS = {
    "429": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "529": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    "500": (500, "InternalServerException", "The server encountered an internal error."),
    "401": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "403": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
}


def _error(kind: str, fault: str, retry_after: float, leak: str) -> tuple[int, dict[str, str], bytes]:
    if kind == "anthropic":
        status, etype, message = _ANTHROPIC_ERRORS[fault]
        headers = {"content-type": "application/json"}
        if fault in ("429", "529"):
            headers["retry-after"] = f"{retry_after:g}"
        body = {"type": "error", "error": {"type": etype, "message": message + leak}}
        return status, headers, json.dumps(body).encode()
    status, code, message = _BEDROCK_ERRORS[fault]
    headers = {"content-type": "application/json", "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"}
    if fault == "429":
        headers["x-amz-retry-after"] = str(int(retry_after * 1000))
    return status, headers, json.dumps({"message": message + leak}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
    fake: FakeClaude

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, data = self.fake.handle(unquote(self.path.split("?")[0]), headers, body)
        try:
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the per-request stderr lines."""
