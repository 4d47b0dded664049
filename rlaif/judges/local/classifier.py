"""Classifier judge: any Hugging Face sequence classifier or reward model as a judge.

    type: classifier
    model: facebook/roberta-hate-speech-dynabench-r4-target   # hub id or local folder
    label: nothate          # name (checked against config.id2label) or index;
                            # null = single-logit reward model (score = logit 0)
    output: logit           # logit | prob (softmax) | logprob (log_softmax)
    input: response         # response | prompt_response (tokenized as a text pair)

Default scales when the spec sets none: prob (0, 1), logprob (-20, 0), logit (-10, 10).
Logits are unbounded, so (-10, 10) is only a convention for range normalisation in
ensembles; set `scale:` in the spec when you know your model's typical range. A value
outside the scale (declared or default) is never used: that sample is unscored, and its
`Score.error` names the judge, the value and the scale.

Why it is fast: texts are tokenized once and run in length-sorted, dynamically padded
batches (`rlaif.judges.local.model`); the forward runs under `torch.inference_mode`.
Scores come back in input order. `Score.raw` is the JSON list of the row's logits.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rlaif.judges.base import JudgeError, Sample, Scale, Score
from rlaif.judges.local.model import (DEFAULT_SCALES, LocalModelJudge, TruncationNotice,
                                      effective_max_length, length_sorted_batches, load_error,
                                      resolve_device, sample_texts, scores_from)
from rlaif.judges.spec import ClassifierSpec

if TYPE_CHECKING:
    import torch


def _torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class ClassifierJudge(LocalModelJudge):
    """Scores texts with an `AutoModelForSequenceClassification` (loaded once, lazily)."""

    def __init__(self, spec: ClassifierSpec) -> None:
        self.spec = spec
        self.name = spec.name or "classifier"
        self.scale = Scale(*(spec.scale or DEFAULT_SCALES[spec.output]))
        self._model: Any = None
        self._tokenizer: Any = None
        self._label_index = 0
        self._max_length = spec.max_length
        self.truncation: TruncationNotice | None = None  # texts cut at max_length, counted
        self._device: Any = None
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load the tokenizer and model now (otherwise done on first use); idempotent."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        spec = self.spec
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision)
            model = AutoModelForSequenceClassification.from_pretrained(
                spec.model, revision=spec.revision, dtype=_torch_dtype(spec.dtype)
            )
        except (OSError, ValueError) as exc:
            raise load_error(self.name, "classifier", spec.model, exc) from exc
        device = resolve_device(spec.device)
        model.to(device).eval()
        self._label_index = self._resolve_label(model.config)
        self._max_length = effective_max_length(spec.max_length, tokenizer, model.config)
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
        num_labels = int(self._model.config.num_labels)
        out = torch.empty(len(texts), num_labels, dtype=torch.float32)
        if self.truncation is None or self.truncation.max_length != self._max_length:
            self.truncation = TruncationNotice(getattr(self, "name", "judge"), self._max_length)
        batches = length_sorted_batches(self._tokenizer, texts, pairs, max_length=self._max_length,
                                        batch_size=self.spec.batch_size, device=self._device,
                                        notice=self.truncation)
        with torch.inference_mode():
            for idx, batch in batches:
                logits = self._model(**batch).logits  # (B, num_labels)
                out[torch.tensor(idx)] = logits.float().cpu()
        return out

    def _score_sync(self, samples: Sequence[Sample]) -> list[Score]:
        import torch

        texts, pairs = sample_texts(samples, self.spec.input)
        logits = self.logits(texts, pairs)  # (N, num_labels)
        if self.spec.output == "prob":
            values = torch.softmax(logits, dim=-1)[:, self._label_index]
        elif self.spec.output == "logprob":
            values = torch.log_softmax(logits, dim=-1)[:, self._label_index]
        else:
            values = logits[:, self._label_index]
        return scores_from(logits, values, self.spec.output, self.scale, self.name)

    def close(self) -> None:
        """Drop the model and tokenizer (they load again on next use), then the judge's loop."""
        with self._lock:
            self._model = self._tokenizer = None
        super().close()

