"""Classifier judge: any Hugging Face sequence classifier or reward model as a judge.

    type: classifier
    model: facebook/roberta-hate-speech-dynabench-r4-target   # hub id or local folder
    label: nothate          # name (checked against config.id2label) or index;
                            # null = single-logit reward model (score = logit 0)
    output: logit           # logit | prob (softmax) | logprob (log_softmax)
    input: response         # response | prompt_response (tokenized as a text pair)

Default scales when the spec sets none: prob (0, 1), logprob (-20, 0), logit (-10, 10).
Logits are unbounded, so (-10, 10) is only a convention for range normalisation in
ensembles; set `scale:` in the spec when you know your model's typical range.

Why it is fast: every text is tokenized once, then sorted by token length and cut into
batches padded only to their own longest member (dynamic padding), so a batch of short
texts never pays for one long text; the forward runs under `torch.inference_mode`.
Scores come back in input order. `Score.raw` is the JSON list of the row's logits.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score
from rlaif.judges.spec import ClassifierSpec

if TYPE_CHECKING:
    import torch

DEFAULT_SCALES = {"prob": (0.0, 1.0), "logprob": (-20.0, 0.0), "logit": (-10.0, 10.0)}
# Tokenizers whose model_max_length was never set report ~1e30: treat that as "unknown".
_UNSET_MAX_LENGTH = 1_000_000
# RoBERTa-style models number positions from pad_token_id + 1, so two position slots are
# never usable for tokens.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}


def _torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class ClassifierJudge(Judge):
    """Scores texts with an `AutoModelForSequenceClassification` (loaded once, lazily)."""

    def __init__(self, spec: ClassifierSpec) -> None:
        self.spec = spec
        self.name = spec.name or "classifier"
        self.scale = Scale(*(spec.scale or DEFAULT_SCALES[spec.output]))
        self._model: Any = None
        self._tokenizer: Any = None
        self._label_index = 0
        self._max_length = spec.max_length
        self._device: Any = None
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load the tokenizer and model now (otherwise done on first use); idempotent."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        spec = self.spec
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision)
            model = AutoModelForSequenceClassification.from_pretrained(
                spec.model, revision=spec.revision, dtype=_torch_dtype(spec.dtype)
            )
        except (OSError, ValueError) as exc:
            raise JudgeError(
                f"judge {self.name!r}: cannot load classifier {spec.model!r} ({exc}). "
                "If it is a hub id, the hub may be offline (HF_HUB_OFFLINE is set, or no "
                "network) and the model is not in the local cache; if it is a local folder, "
                "check that it exists and holds config.json, the weights and the tokenizer."
            ) from exc
        if spec.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(spec.device)
        model.to(device).eval()
        self._label_index = self._resolve_label(model.config)
        self._max_length = self._effective_max_length(tokenizer, model.config)
        self._tokenizer, self._model, self._device = tokenizer, model, device

    def _resolve_label(self, config: Any) -> int:
        label, n = self.spec.label, int(config.num_labels)
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        names = ", ".join(id2label[i] for i in sorted(id2label)) or "(none)"
        where = f"judge {self.name!r} (spec field `label`)"
        if label is None:
            if n > 1:
                raise JudgeError(
                    f"{where}: model {self.spec.model!r} has {n} outputs ({names}); "
                    "`label: null` is only for single-logit reward models. "
                    f"Set `label:` to one of: {names} (or an index 0..{n - 1})."
                )
            return 0
        if isinstance(label, int):
            if not 0 <= label < n:
                raise JudgeError(
                    f"{where}: label index {label} is out of range for model "
                    f"{self.spec.model!r} with {n} outputs ({names}); use 0..{n - 1}."
                )
            return label
        for index, label_name in id2label.items():
            if label_name == label:
                return index
        raise JudgeError(
            f"{where}: label {label!r} is not one of the labels of model "
            f"{self.spec.model!r}: {names}. Use one of those names or an index."
        )

    def _effective_max_length(self, tokenizer: Any, config: Any) -> int:
        """The spec's max_length, capped by what the tokenizer and position table allow."""
        limit = self.spec.max_length
        tok_max = getattr(tokenizer, "model_max_length", None)
        if tok_max is not None and tok_max < _UNSET_MAX_LENGTH:
            limit = min(limit, int(tok_max))
        positions = getattr(config, "max_position_embeddings", None)
        if positions:
            limit = min(limit, int(positions) - _POSITION_OFFSET.get(config.model_type, 0))
        return limit

    @property
    def model(self) -> Any:
        """The loaded `AutoModelForSequenceClassification` (loads it on first access)."""
        self.load()
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (loads it on first access)."""
        self.load()
        return self._tokenizer

    # -- scoring ---------------------------------------------------------------------------

    def logits(self, texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
        """Logits (N, num_labels), float32 on CPU, in input order; `pairs` = second segments."""
        import torch

        self.load()
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs; they must match")
        num_labels = int(self._model.config.num_labels)
        if not texts:
            return torch.empty(0, num_labels)
        # Tokenize once, without padding; transformers 5 truncates only when both
        # truncation=True and an explicit max_length are given.
        enc = self._tokenizer(
            list(texts), list(pairs) if pairs is not None else None,
            truncation=True, max_length=self._max_length, padding=False,
        )
        ids: list[list[int]] = enc["input_ids"]
        type_ids: list[list[int]] | None = enc.get("token_type_ids")
        # Longest first: the biggest batch runs first (memory errors show at once) and each
        # batch holds texts of similar length, so padding is minimal.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = torch.empty(len(ids), num_labels, dtype=torch.float32)
        pad_id = self._tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self._tokenizer.eos_token_id or 0
        left = getattr(self._tokenizer, "padding_side", "right") == "left"
        bs = self.spec.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                batch = _pad([ids[i] for i in idx], pad_id, left)
                if type_ids is not None:
                    batch["token_type_ids"] = _pad([type_ids[i] for i in idx], 0, left)["input_ids"]
                batch = {k: v.to(self._device) for k, v in batch.items()}
                logits = self._model(**batch).logits  # (B, num_labels)
                out[torch.tensor(idx)] = logits.float().cpu()
        return out

    def _texts(self, samples: Sequence[Sample]) -> tuple[list[str], list[str] | None]:
        if self.spec.input == "prompt_response":
            return [s.prompt for s in samples], [s.response for s in samples]
        return [s.response for s in samples], None

    def _score_sync(self, samples: Sequence[Sample]) -> list[Score]:
        import torch

        texts, pairs = self._texts(samples)
        logits = self.logits(texts, pairs)  # (N, num_labels)
        if self.spec.output == "prob":
            values = torch.softmax(logits, dim=-1)[:, self._label_index]
        elif self.spec.output == "logprob":
            values = torch.log_softmax(logits, dim=-1)[:, self._label_index]
        else:
            values = logits[:, self._label_index]
        scores = []
        for row, value in zip(logits.tolist(), values.tolist()):
            raw = json.dumps(row)
            if math.isfinite(value):
                scores.append(Score(value=value, raw=raw))
            else:
                scores.append(Score.failed(f"model produced a non-finite {self.spec.output} ({value})", raw=raw))
        return scores

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch in a worker thread, so other judges' requests keep flowing."""
        if not samples:
            return []
        return await asyncio.to_thread(self._score_sync, list(samples))

    def close(self) -> None:
        """Drop the model and tokenizer (they load again on next use)."""
        with self._lock:
            self._model = self._tokenizer = None


def _pad(rows: list[list[int]], pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    """Pad token-id rows to the batch's longest row; returns input_ids and attention_mask."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        if left:
            input_ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        else:
            input_ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}
