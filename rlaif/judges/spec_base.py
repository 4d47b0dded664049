"""What every judge spec shares: strict pydantic models, the declared scale, the fingerprint
(the cache key: what determines the scores, not how they are computed)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlaif.judges.base import Scale


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


HEAD_SUFFIXES = (".safetensors", ".json")
# Fields that change how a judge runs, not what it scores: left out of the cache key.
RUNTIME_FIELDS = frozenset(
    {"name", "description", "batch_size", "device", "max_concurrency", "requests_per_minute",
     "timeout", "max_retries", "cache", "budget", "base_url", "endpoint_url", "region", "price",
     "max_input_chars"}
)


class _SpecBase(_Strict):
    name: str = ""
    description: str = ""
    scale: tuple[float, float] | None = None
    cache: str | None = Field(
        default=None, description="path of a sqlite score cache; repeated samples cost nothing"
    )

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None:
            Scale(*v)  # raises with the values and the rule
        return v

    def fingerprint(self) -> str:
        """Stable hash of what determines the scores (not how they are computed)."""
        blob = json.dumps(self._fingerprint_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _fingerprint_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=set(RUNTIME_FIELDS))
