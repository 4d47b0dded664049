"""Specs of the judges on a sentence encoder: `embedding` (a linear head over the pooled
vector) and `relevance` (request-reply cosine, or a head over the pair's features)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from rlaif.judges.spec_base import HEAD_SUFFIXES, _SpecBase

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class _EncoderSpec(_SpecBase):
    """The sentence encoder fields that the embedding and relevance judges share."""

    encoder: str = Field(description="hub id or local folder of a transformers encoder (AutoModel); "
                         "an installed weights package holding the id is used (judges/local/installed.py)")
    pooling: Literal["mean", "cls"] = Field(
        default="mean", description="mean over the attention mask, or the first token's state")
    max_length: int = Field(default=256, gt=0)
    batch_size: int = Field(default=32, gt=0)
    device: str = "auto"
    revision: str | None = None

    def relative_to(self, folder: Path) -> Self:
        """This spec with a relative `encoder` folder existing in `folder` (the spec's) made absolute."""
        encoder = Path(self.encoder).expanduser()
        if not encoder.is_absolute() and (folder / encoder).is_dir():
            return self.model_copy(update={"encoder": str(folder / encoder)})
        return self


class _HeadSpec(_EncoderSpec):
    """An encoder plus a linear head file: the head's bytes are part of the fingerprint, and a
    relative head path is relative to the spec file's folder."""

    head: str | None = None
    label: str | int = Field(default=1, description="which class's output is the score: a head "
                             "label or index")
    output: Literal["prob", "logit"] = "prob"

    @field_validator("head")
    @classmethod
    def _check_head(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith(HEAD_SUFFIXES):
            raise ValueError(f"head must be a {' or '.join(HEAD_SUFFIXES)} file, got {v!r}")
        return v

    def _fingerprint_payload(self) -> dict[str, Any]:
        # The head file's bytes decide the scores, not its path: refitting the head in
        # place must not keep serving scores cached for the old one.
        payload = super()._fingerprint_payload()
        head = Path(self.head).expanduser() if self.head else None
        if head is not None and head.is_file():
            payload["head"] = "sha256:" + hashlib.sha256(head.read_bytes()).hexdigest()
        return payload

    def relative_to(self, folder: Path) -> Self:
        """This spec with a relative `head` (and a relative `encoder` folder that exists
        there) taken relative to `folder`, the spec file's folder."""
        spec = super().relative_to(folder)
        if spec.head is None or Path(spec.head).expanduser().is_absolute():
            return spec
        return spec.model_copy(update={"head": str(folder / Path(spec.head).expanduser())})


class EmbeddingSpec(_HeadSpec):
    """A sentence encoder (hub id or local folder) plus a linear head stored in a small file."""

    type: Literal["embedding"] = "embedding"
    head: str = Field(  # type: ignore[assignment]  # required here
        description="the linear head: a .safetensors or .json file with weight (C, D), bias (C,) "
        "and labels; a relative path is relative to the spec file's folder",
    )
    label: str | int = Field(description="which class's output is the score: a head label or index")
    input: Literal["response", "prompt_response"] = "response"
    normalize: bool = Field(default=True, description="L2-normalise the pooled embedding")


class RelevanceSpec(_HeadSpec):
    """cosine(last Human turn, reply) - a copy penalty, scale (-1, 1); or, with `head`, a
    logistic head on the pair's features, P(label) - the copy penalty, scale (0, 1)
    (`rlaif.judges.local.relevance`)."""

    type: Literal["relevance"] = "relevance"
    copy_penalty: float = Field(
        default=1.0, ge=0, description="subtracted x the share of the reply's word bigrams that "
        "occur in the prompt, so parroting the request back does not score as relevant")
    head: str | None = Field(
        default=None, description="optional: a head file over relevance.pair_features (e.g. "
        "written by the demo's helpfulness build); without it the value is the cosine")
