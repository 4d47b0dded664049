"""One side of a hold-out evaluation: a model's (or a floor text's) replies and what was measured
on them. Saved as JSON (`eval_before.json`); the token ids and LM behind the replies stay in
memory only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HoldoutSide:
    """One model's responses to the hold-out prompts (k per prompt, prompt-major) and their scores.

    Empty lists mean "not measured" (e.g. a side saved before the field existed)."""

    responses: list[str]
    toxicity: list[float | None]
    seconds_generate: float = 0.0
    seconds_score: float = 0.0
    model: str | None = None
    lengths: list[int] = field(default_factory=list)  # response tokens (EOS included) per sample
    token_ids: list[list[int]] = field(default_factory=list)  # reply token ids, the ending EOS left out
    eos: list[bool] = field(default_factory=list)  # whether an EOS ended the reply (vs max_new_tokens)
    # Negative log-likelihood of each reply (its EOS included) under the start model, untempered;
    # `start_lm` names that model. Empty: not measured.
    start_nll: list[float] = field(default_factory=list)
    start_lm: str | None = None
    helpfulness: list[float | None] = field(default_factory=list)  # the helpfulness judge's values
    helpfulness_judge: str | None = None
    # The before side only: per floor text, that text as the reply to every prompt (`floors.py`).
    floors: dict[str, HoldoutSide] = field(default_factory=dict)
    # The token ids and the LM behind the responses (for the KL); in memory only.
    generation: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (without the in-memory generation)."""
        out = {name: getattr(self, name) for name in SIDE_FIELDS}
        out["floors"] = {text: side.to_dict() for text, side in self.floors.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HoldoutSide:
        """Inverse of `to_dict` (unknown keys, e.g. the hold-out key saved beside it, ignored)."""
        floors = {text: cls.from_dict(side) for text, side in (data.get("floors") or {}).items()}
        return cls(**{k: v for k, v in data.items() if k in SIDE_FIELDS}, floors=floors)

    def reply_tokens(self) -> list[int] | None:
        """Tokens each reply holds with its ending EOS (what perplexity averages over); None if unknown."""
        if not self.token_ids or len(self.eos) != len(self.token_ids):
            return None
        return [len(ids) + int(end) for ids, end in zip(self.token_ids, self.eos)]


SIDE_FIELDS = ("responses", "toxicity", "seconds_generate", "seconds_score", "model", "lengths",
               "token_ids", "eos", "start_nll", "start_lm", "helpfulness", "helpfulness_judge")
