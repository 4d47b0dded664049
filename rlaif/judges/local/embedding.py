"""Embedding judge: a sentence encoder plus a linear head stored in a small file.

    type: embedding
    encoder: sentence-transformers/all-MiniLM-L6-v2   # hub id or local folder (AutoModel);
                            # an installed weights package holding the id is used first
                            # (`rlaif.judges.local.installed`)
    head: head.safetensors  # or .json: weight (C, D), bias (C,), labels
    label: clean            # a head label or index: whose output is the score
    output: prob            # prob | logit
    input: response         # response | prompt_response (encoded as a text pair)
    pooling: mean           # mean over the attention mask | cls (the first token's state)
    normalize: true         # L2-normalise the pooled vector (as sentence-transformers does
                            # for all-MiniLM)

The head is `logits = embedding @ weight.T + bias`. With C >= 2 rows it is a softmax
classifier over `labels`: prob = softmax, logit = that row. With one row and two labels
[negative, positive] it is a logistic regression on z: the positive label's prob is
sigmoid(z) and its logit z; the negative label's are sigmoid(-z) and -z.
Default scales: prob (0, 1), logit (-10, 10). `Score.raw` is the JSON list of the row's logits.

A head file may record how its inputs were made (`pooling`, `normalize`); a spec that
embeds differently is refused, since the head's weights would then read the wrong vectors.
The encoder shares batching and truncation with the classifier judge
(`rlaif.judges.local.model`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlaif.io import atomic_path, atomic_write_text
from rlaif.judges.base import JudgeError, Sample, Scale, Score
from rlaif.judges.local.installed import local_weights
from rlaif.judges.local.model import (DEFAULT_SCALES, LocalModelJudge, TruncationNotice,
                                      effective_max_length, length_sorted_batches, load_error,
                                      resolve_device, sample_texts, scores_from)
from rlaif.judges.spec import HEAD_SUFFIXES, EmbeddingSpec, RelevanceSpec

if TYPE_CHECKING:
    import torch


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """Sentence vectors (B, D) from token states (B, T, D): masked mean or first real token,
    then optionally L2-normalised."""
    import torch

    if pooling == "cls":  # the first real token, also under left padding
        first = mask.argmax(dim=1)  # (B,)
        vectors = hidden[torch.arange(hidden.shape[0], device=hidden.device), first]  # (B, D)
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        vectors = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)
    if normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
    return vectors


class SentenceEncoder:
    """A transformers encoder plus pooling: texts -> (N, D) float32 vectors (loaded once, lazily)."""

    def __init__(self, ref: str, *, pooling: str = "mean", normalize: bool = True,
                 max_length: int = 256, batch_size: int = 32, device: str = "auto",
                 revision: str | None = None, name: str = "embedding") -> None:
        self.ref, self.pooling, self.normalize = ref, pooling, normalize
        self.batch_size, self.device_name, self.revision, self.name = batch_size, device, revision, name
        self._max_length = max_length
        self.truncation: TruncationNotice | None = None  # texts cut at max_length, counted
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: EmbeddingSpec | RelevanceSpec) -> SentenceEncoder:
        """The encoder exactly as a judge built from `spec` runs it (a relevance spec
        L2-normalises; cosine does not depend on it)."""
        return cls(spec.encoder, pooling=spec.pooling, normalize=getattr(spec, "normalize", True),
                   max_length=spec.max_length, batch_size=spec.batch_size, device=spec.device,
                   revision=spec.revision, name=spec.name or spec.type)

    def load(self) -> None:
        """Load the tokenizer and encoder now (otherwise done on first use); idempotent."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        ref = local_weights(self.ref, self.revision)  # an installed weights package, if any
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref, revision=self.revision)
            model = AutoModel.from_pretrained(ref, revision=self.revision)
        except (OSError, ValueError) as exc:
            raise load_error(self.name, "encoder", ref, exc) from exc
        device = resolve_device(self.device_name)
        model.to(device).eval()
        self._max_length = effective_max_length(self._max_length, tokenizer, model.config)
        self._tokenizer, self._model, self._device = tokenizer, model, device

    @property
    def dim(self) -> int | None:
        """The encoder's hidden size as its config states it (loads the encoder)."""
        self.load()
        size = getattr(self._model.config, "hidden_size", None)
        return int(size) if size else None

    def embed(self, texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
        """Pooled vectors (N, D), float32 on CPU, in input order; `pairs` = second segments."""
        import torch

        self.load()
        out: torch.Tensor | None = None
        if self.truncation is None or self.truncation.max_length != self._max_length:
            self.truncation = TruncationNotice(getattr(self, "name", "judge"), self._max_length)
        batches = length_sorted_batches(self._tokenizer, texts, pairs, max_length=self._max_length,
                                        batch_size=self.batch_size, device=self._device,
                                        notice=self.truncation)
        with torch.inference_mode():
            for idx, batch in batches:
                hidden = self._model(**batch).last_hidden_state  # (B, T, D)
                vectors = pool(hidden, batch["attention_mask"], self.pooling, self.normalize)
                if out is None:
                    out = torch.empty(len(texts), vectors.shape[-1], dtype=torch.float32)
                out[torch.tensor(idx)] = vectors.float().cpu()
        return out if out is not None else torch.empty(0, self.dim or 0)

    def close(self) -> None:
        """Drop the encoder and tokenizer (they load again on next use)."""
        with self._lock:
            self._model = self._tokenizer = None


@dataclass(frozen=True)
class LinearHead:
    """logits = x @ weight.T + bias over pooled vectors; see the module doc for C == 1."""

    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    labels: tuple[str, ...]
    meta: dict[str, str] = field(default_factory=dict)

    def label_index(self, label: str | int, judge: str, where: str) -> int:
        """The row of `label` (a head label or an index); JudgeError naming the spec field and
        the labels of the head file `where` otherwise."""
        names = ", ".join(self.labels)
        if isinstance(label, int):
            if not 0 <= label < len(self.labels):
                raise JudgeError(f"judge {judge!r} (spec field `label`): index {label} is out "
                                 f"of range for head labels {names}; use 0..{len(self.labels) - 1}")
            return label
        if label not in self.labels:
            raise JudgeError(f"judge {judge!r} (spec field `label`): {label!r} is not a label "
                             f"of head {where}: {names}. Use one of those or an index.")
        return self.labels.index(label)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) logits of (N, D) vectors."""
        return x.float() @ self.weight.T + self.bias

    def values(self, logits: torch.Tensor, index: int, output: str) -> torch.Tensor:
        """(N,) prob or logit of label `index`."""
        import torch

        if self.weight.shape[0] == 1:  # logistic regression: labels = [negative, positive]
            z = logits[:, 0] if index == 1 else -logits[:, 0]
            return torch.sigmoid(z) if output == "prob" else z
        if output == "prob":
            return torch.softmax(logits, dim=-1)[:, index]
        return logits[:, index]


def save_head(path: Path, weight: torch.Tensor, bias: torch.Tensor, labels: Sequence[str],
              meta: dict[str, str] | None = None) -> Path:
    """Write a head file (.safetensors, or .json) that `load_head` reads back."""
    path = Path(path)
    meta = {k: str(v) for k, v in (meta or {}).items()}
    if path.suffix == ".json":
        data = {"weight": weight.tolist(), "bias": bias.tolist(), "labels": list(labels), **meta}
        return atomic_write_text(path, json.dumps(data))
    if path.suffix != ".safetensors":
        raise ValueError(f"head file must end in {' or '.join(HEAD_SUFFIXES)}, got {path.name!r}")
    from safetensors.torch import save

    blob = save({"weight": weight.float().contiguous(), "bias": bias.float().contiguous()},
                metadata={"labels": json.dumps(list(labels)), **meta})
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(blob)
    return path


def load_head(path: Path, judge: str = "embedding") -> LinearHead:
    """Read and check a head file; errors name the file, the problem and the fix."""
    import torch

    where = f"judge {judge!r}: head file {path}"
    if not path.is_file():
        raise JudgeError(f"{where} does not exist (spec field `head`); point `head:` at the "
                         ".safetensors or .json file written with the head (a relative path is "
                         "relative to the spec file's folder)")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            weight = torch.tensor(data.pop("weight"), dtype=torch.float32)
            bias = torch.tensor(data.pop("bias"), dtype=torch.float32)
            labels = data.pop("labels")
            meta = {k: str(v) for k, v in data.items()}
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                weight, bias = f.get_tensor("weight").float(), f.get_tensor("bias").float()
                meta = dict(f.metadata() or {})
            labels = json.loads(meta.pop("labels"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JudgeError(f"{where}: cannot read it ({type(exc).__name__}: {exc}); it needs "
                         "`weight` (C, D), `bias` (C,) and `labels`") from exc
    c = weight.shape[0] if weight.dim() == 2 else -1
    want = 2 if c == 1 else c
    if c < 1 or tuple(bias.shape) != (c,):
        raise JudgeError(f"{where}: weight must be (C, D) and bias (C,), got "
                         f"{tuple(weight.shape)} and {tuple(bias.shape)}")
    if (not isinstance(labels, list) or len(labels) != want or len(set(map(str, labels))) != want):
        raise JudgeError(f"{where}: labels must be {want} distinct names for a head with {c} "
                         f"row(s) ({'[negative, positive]' if c == 1 else 'one per row'}), "
                         f"got {labels!r}")
    return LinearHead(weight, bias, tuple(str(x) for x in labels), meta)


class EncoderJudge(LocalModelJudge):
    """A local judge on a `SentenceEncoder` (`self.encoder`): loads and closes with it."""

    encoder: SentenceEncoder

    def load(self) -> None:
        """Load the encoder now (otherwise done on first use); idempotent."""
        self.encoder.load()

    def close(self) -> None:
        """Drop the encoder (it loads again on next use), then the judge's loop."""
        self.encoder.close()
        super().close()


class EmbeddingJudge(EncoderJudge):
    """Scores texts with a sentence encoder and a linear head (the head loads at once, the
    encoder lazily)."""

    def __init__(self, spec: EmbeddingSpec) -> None:
        self.spec = spec
        self.name = spec.name or "embedding"
        self.scale = Scale(*(spec.scale or DEFAULT_SCALES[spec.output]))
        self.head = load_head(Path(spec.head).expanduser(), self.name)
        self._check_head_meta()
        self._index = self.head.label_index(self.spec.label, self.name, self.spec.head)
        self.encoder = SentenceEncoder.from_spec(spec)

    def _check_head_meta(self) -> None:
        spec, meta = self.spec, self.head.meta
        for key, value in (("pooling", spec.pooling), ("normalize", str(spec.normalize).lower())):
            if key in meta and meta[key].lower() != value:
                raise JudgeError(
                    f"judge {self.name!r}: head {spec.head} was fitted on vectors made with "
                    f"{key}={meta[key]}, but the spec sets {key}: {value}; set {key}: "
                    f"{meta[key]} in the spec (or refit the head)")

    def _score_sync(self, samples: Sequence[Sample]) -> list[Score]:
        texts, pairs = sample_texts(samples, self.spec.input)
        x = self.encoder.embed(texts, pairs)  # (N, D)
        if x.shape[1] != self.head.weight.shape[1]:
            raise JudgeError(
                f"judge {self.name!r}: encoder {self.spec.encoder!r} makes {x.shape[1]}-dim "
                f"vectors but head {self.spec.head} expects {self.head.weight.shape[1]}; use the "
                "encoder the head was fitted on")
        logits = self.head.logits(x)  # (N, C)
        values = self.head.values(logits, self._index, self.spec.output)  # (N,)
        return scores_from(logits, values, self.spec.output, self.scale, self.name)
