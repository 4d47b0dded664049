"""The HTTP API of a vLLM server, as rlaif's rollouts use it (standard library only).

    ready            /health answers 200 and /v1/models lists the model
    load_adapter     POST /v1/load_lora_adapter (the server needs VLLM_ALLOW_RUNTIME_LORA_UPDATING)
    unload_adapter   POST /v1/unload_lora_adapter
    update_weights   POST /collective_rpc (rlaif's worker extension loads a safetensors file of
                     changed tensors in place), then /reset_prefix_cache (its KV came from the
                     old weights); the server needs VLLM_SERVER_DEV_MODE=1
    complete_batch   one /v1/completions request per prompt, sent together: token-id prompts,
                     a seed per request, the sampled tokens' ids and logprobs back

Prompts go as token ids, so the server's tokenizer never re-reads rlaif's text; the replies
come back as token ids (`return_token_ids`), so nothing is decoded and encoded again.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

MAX_PARALLEL_REQUESTS = 64
DEV_MODE_HINT = ("; a server that has no such route (404) runs without VLLM_SERVER_DEV_MODE=1, "
                 "or (500) without --worker-extension-cls rlaif_vllm_worker.WeightSync on its "
                 "PYTHONPATH (rlaif/engines/vllm_worker/); rlaif's own server has both")
PROBE_TIMEOUT_S = 5.0
RESET_TRIES, RESET_WAIT_S = 20, 0.25


class EngineError(RuntimeError):
    """A vLLM server failed a request or cannot be reached; the message says which and why."""


@dataclass
class Completion:
    """One sampled reply: its token ids and each token's logprob under the sampling distribution."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str | None


def reset_prefix_cache(reset: Callable[[], bool]) -> None:
    """Call `reset` (an engine's prefix-cache reset; False = refused while a request still holds
    cache blocks) until it succeeds; an `EngineError` after RESET_TRIES refusals."""
    for _ in range(RESET_TRIES):
        if reset():
            return
        time.sleep(RESET_WAIT_S)
    raise EngineError("vLLM loaded the new weights but would not reset its prefix cache "
                      f"({RESET_TRIES} tries): cached prompts would reuse keys and values of the "
                      "old weights; are requests still running in it (another client)?")


class VLLMClient:
    """Requests to the vLLM server at `url`. `alive()` (optional) raises when the server process
    is known to be gone, so a refused connection reads as the real cause."""

    def __init__(self, url: str, *, timeout_s: float = 600.0,
                 alive: Callable[[], None] | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.alive = alive or (lambda: None)

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              timeout: float | None = None) -> tuple[int, str]:
        """(status, body text) of one request; a connection failure raises `EngineError`."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout_s) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            self.alive()  # the process is gone: say so, with its log
            raise EngineError(f"{method} {self.url}{path} failed: {exc}; is the vLLM server "
                              "running? (generation.vllm.url)") from exc

    def _post_ok(self, path: str, body: dict[str, Any], what: str, hint: str = "") -> str:
        status, text = self._call("POST", path, body)
        if status != 200:
            raise EngineError(f"the vLLM server refused to {what} (HTTP {status}): "
                              f"{text.strip()[:2000]}{hint}")
        return text

    # ------------------------------------------------------------------ the API

    def healthy(self) -> bool:
        """Whether the server answers /health with 200."""
        try:
            return self._call("GET", "/health", timeout=PROBE_TIMEOUT_S)[0] == 200
        except EngineError:
            return False

    def ready(self, model: str) -> bool:
        """Whether the server answers /health and lists `model` in /v1/models."""
        try:
            return self.healthy() and model in self.models()
        except EngineError:
            return False

    def models(self) -> list[str]:
        """The model (and adapter) names the server serves."""
        status, text = self._call("GET", "/v1/models", timeout=PROBE_TIMEOUT_S)
        if status != 200:
            return []
        return [m.get("id") for m in json.loads(text).get("data", [])]

    def load_adapter(self, name: str, path: str) -> None:
        """Load the LoRA adapter folder `path` (peft's save_pretrained) under `name`."""
        self._post_ok("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path},
                      f"load the LoRA adapter {path} as {name!r}",
                      hint=("; a server that has no such route (404) was started without "
                            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True or --enable-lora"))

    def unload_adapter(self, name: str) -> None:
        """Unload the adapter `name`."""
        self._post_ok("/v1/unload_lora_adapter", {"lora_name": name},
                      f"unload the LoRA adapter {name!r}")

    def collective_rpc(self, method: str, *args: str) -> list[Any]:
        """Call the worker extension's `method` on every worker; their results."""
        text = self._post_ok("/collective_rpc", {"method": method, "args": list(args)},
                             f"run {method} on its workers", hint=DEV_MODE_HINT)
        return json.loads(text).get("results", []) if text.strip() else []

    def update_weights(self, path: str) -> int:
        """Load the safetensors file `path` (checkpoint names) into the served model in place,
        and drop the prefix cache the old weights computed; returns how many tensors loaded."""
        counts = self.collective_rpc("rlaif_load_weights", path)
        reset_prefix_cache(lambda: json.loads(self._post_ok(
            "/reset_prefix_cache", {}, "reset its prefix cache", hint=DEV_MODE_HINT) or "{}").get("success", True))
        return int(counts[0]) if counts else 0

    def weight_sums(self) -> dict[str, float]:
        """{parameter name: sum} of the served model (worker 0), to check a sync (tests)."""
        return self.collective_rpc("rlaif_weight_sums")[0]

    def prompt_logprobs(self, model: str, token_ids: Sequence[int]) -> list[float | None]:
        """Each token's logprob given the ones before it (the first: None), from one prefill
        of `token_ids`: what the engine's weights say of a sequence, without its decode path."""
        body = {"model": model, "prompt": list(token_ids), "max_tokens": 1, "temperature": 0.0,
                "prompt_logprobs": 0, "return_tokens_as_token_ids": True}
        choice = json.loads(self._post_ok("/v1/completions", body, "score a prompt"))["choices"][0]
        out: list[float | None] = []
        for token, entry in zip(token_ids, choice.get("prompt_logprobs") or []):
            if not entry:
                out.append(None)
                continue
            hit = entry.get(str(token)) or entry.get(f"token_id:{token}") or next(iter(entry.values()))
            out.append(float(hit["logprob"]))
        return out

    def complete(self, model: str, prompt_ids: Sequence[int], params: dict[str, Any],
                 seed: int) -> Completion:
        """Sample one reply to the token ids `prompt_ids` with sampling `params` and `seed`."""
        body = {**params, "model": model, "prompt": list(prompt_ids), "n": 1, "seed": seed,
                "logprobs": 0, "return_token_ids": True, "return_tokens_as_token_ids": True}
        choice = json.loads(self._post_ok("/v1/completions", body, "sample a reply"))["choices"][0]
        token_ids = choice.get("token_ids")
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
        if token_ids is None or logprobs is None or len(token_ids) != len(logprobs):
            raise EngineError(
                "the vLLM server's completion lacks token ids or logprobs for every token "
                f"(token_ids {token_ids!r}, logprobs {logprobs!r}); rlaif needs vLLM >= 0.10 "
                "(return_token_ids); build the environment with bash scripts/setup_vllm.sh")
        return Completion(list(token_ids), [float(x) for x in logprobs], choice.get("finish_reason"))

    def complete_batch(self, model: str, prompts: Sequence[Sequence[int]], params: dict[str, Any],
                       seeds: Sequence[int]) -> list[Completion]:
        """`complete` for every prompt, the requests in flight together (the server batches
        them); replies in prompt order."""
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(len(prompts), MAX_PARALLEL_REQUESTS)) as pool:
            return list(pool.map(lambda p, s: self.complete(model, p, params, s), prompts, seeds))
