"""The settings of one judge service (`rlaif serve`), checked before anything starts.

Cross-field rules live here, so the CLI and a library user get the same refusals:
a bind address other than loopback needs a bearer token; the batch, queue and timeouts are
positive; the OpenRLHF fill value is either "error" or a finite number.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# The end-of-sequence markers OpenRLHF's decoded query may end with (it decodes the prompt
# and response tokens with skip_special_tokens=False): stripped from the response's end.
DEFAULT_EOS_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>",
                       "<end_of_turn>", "<|end|>")


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine ("localhost", 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


class ServeSettings(BaseModel):
    """How the service listens, batches, refuses and fills.

    max_batch: the most samples one coalesced judge call holds (a single larger request
        still goes in one call).
    max_wait_ms: how long the first queued request waits for company before its batch starts.
    max_queue: the most samples waiting or being judged at once; beyond it requests get 429.
    request_timeout_s: a request not answered by then gets 504 (the judge's work goes on and
        its scores reach the cache, so a retry is cheap).
    batching: "auto" coalesces requests for every judge type except `llm` and `pairwise`
        (those already keep many API calls in flight); "on" / "off" force it.
    unscored_fill: what OpenRLHF's /get_reward returns for a sample the judge could not score:
        "error" (HTTP 502 naming the reasons; OpenRLHF retries, then drops the reward) or a number.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    token: SecretStr | None = None
    max_batch: int = Field(64, ge=1)
    max_wait_ms: float = Field(5.0, ge=0)
    max_queue: int = Field(4096, ge=1)
    request_timeout_s: float = Field(150.0, gt=0)  # under OpenRLHF's 180 s client timeout
    shutdown_timeout_s: float = Field(300.0, gt=0)
    batching: Literal["auto", "on", "off"] = "auto"
    unscored_fill: Literal["error"] | float = "error"
    eos_markers: tuple[str, ...] = DEFAULT_EOS_MARKERS

    @field_validator("unscored_fill", mode="before")
    @classmethod
    def _fill(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() != "error":
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"unscored_fill must be 'error' or a number, got {value!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"unscored_fill must be a finite number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServeSettings:
        if not is_loopback(self.host) and (self.token is None or not self.token.get_secret_value().strip()):
            raise ValueError(
                f"host {self.host!r} is not loopback, so anyone who can reach it could spend this "
                "judge's budget: set a bearer token (RLAIF_SERVE_TOKEN or --token-file), or bind "
                "127.0.0.1 and put a proxy in front"
            )
        if self.max_queue < self.max_batch:
            raise ValueError(f"max_queue ({self.max_queue}) is below max_batch ({self.max_batch}), "
                             "so a full batch could never be queued; raise max_queue")
        return self

    def coalesces(self, judge_type: str) -> bool:
        """Whether requests are batched together for a judge of spec type `judge_type`."""
        if self.batching == "auto":
            return judge_type not in ("llm", "pairwise")
        return self.batching == "on"
