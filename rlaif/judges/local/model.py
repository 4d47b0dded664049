"""What the local transformer judges (classifier, embedding) share, so they behave alike:
the threaded `ascore`, the device, the load error, the truncation limit, length-sorted
batches and turning outputs into Scores.

Why it is fast: every text is tokenized once, then sorted by token length and cut into
batches padded only to their own longest member (dynamic padding), so a batch of short
texts never pays for one long text. Callers put each batch's output back at the batch's
input indices, so results come back in input order whatever the batch size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from rlaif.batching import pad_rows
from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# The score range of each `output:` a local model judge may give, unless the spec sets `scale:`.
DEFAULT_SCALES = {"prob": (0.0, 1.0), "logprob": (-20.0, 0.0), "logit": (-10.0, 10.0)}
# Tokenizers whose model_max_length was never set report ~1e30: treat that as "unknown".
_UNSET_MAX_LENGTH = 1_000_000
# RoBERTa-style models number positions from pad_token_id + 1, so two position slots are
# never usable for tokens.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}


class LocalModelJudge(Judge):
    """A judge whose work is one blocking forward pass per batch (`_score_sync`)."""

    @abstractmethod
    def _score_sync(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch on this thread; one Score per sample, in input order."""

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch in a worker thread, so other judges' requests keep flowing."""
        if not samples:
            return []
        return await asyncio.to_thread(self._score_sync, list(samples))


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; anything else as torch spells it."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_error(judge: str, what: str, ref: str, exc: Exception) -> JudgeError:
    """The JudgeError for a model or tokenizer that would not load, naming the likely causes."""
    return JudgeError(
        f"judge {judge!r}: cannot load {what} {ref!r} ({exc}). "
        "If it is a hub id, the hub may be offline (HF_HUB_OFFLINE is set, or no "
        "network) and the model is not in the local cache; if it is a local folder, "
        "check that it exists and holds config.json, the weights and the tokenizer."
    )


def sample_texts(samples: Sequence[Sample], input_mode: Literal["response", "prompt_response"],
                 ) -> tuple[list[str], list[str] | None]:
    """(texts, second segments): responses alone, or (prompt, response) text pairs."""
    if input_mode == "prompt_response":
        return [s.prompt for s in samples], [s.response for s in samples]
    return [s.response for s in samples], None


def effective_max_length(limit: int, tokenizer: Any, config: Any) -> int:
    """`limit` capped by what the tokenizer and the model's position table allow."""
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max is not None and tok_max < _UNSET_MAX_LENGTH:
        limit = min(limit, int(tok_max))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        limit = min(limit, int(positions) - _POSITION_OFFSET.get(config.model_type, 0))
    return limit


class TruncationNotice:
    """Counts texts cut at `max_length`; says so once per judge (the first time), with the count."""

    def __init__(self, judge: str, max_length: int) -> None:
        self.judge, self.max_length = judge, max_length
        self.cut = self.seen = 0

    def record(self, lengths: Sequence[int]) -> None:
        """Count the texts of one batch that reached the limit (cut there, or exactly that long)."""
        cut = sum(n >= self.max_length for n in lengths)
        if cut and not self.cut:
            logger.warning("judge %s: %d of %d texts reached max_length=%d tokens and were cut "
                           "there (later cuts are counted in .truncation.cut, not logged again); "
                           "raise max_length if the end of a reply matters", self.judge, cut,
                           len(lengths), self.max_length)
        self.cut += cut
        self.seen += len(lengths)


def length_sorted_batches(tokenizer: Any, texts: list[str], pairs: list[str] | None, *,
                          max_length: int, batch_size: int, device: Any,
                          notice: TruncationNotice | None = None,
                          ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """(input indices, model inputs on `device`) per batch, longest texts first.

    Longest first: the biggest batch runs first (memory errors show at once) and each
    batch holds texts of similar length, so padding is minimal."""
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs; they must match")
    if not texts:
        return
    # Tokenize once, without padding; transformers 5 truncates only when both
    # truncation=True and an explicit max_length are given.
    enc = tokenizer(list(texts), list(pairs) if pairs is not None else None,
                    truncation=True, max_length=max_length, padding=False)
    ids: list[list[int]] = enc["input_ids"]
    if notice is not None:
        notice.record([len(r) for r in ids])
    type_ids: list[list[int]] | None = enc.get("token_type_ids")
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id or 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        side = "left" if left else "right"
        input_ids, mask = pad_rows([ids[i] for i in idx], pad_id, side=side)
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if type_ids is not None:
            batch["token_type_ids"] = pad_rows([type_ids[i] for i in idx], 0, side=side)[0]
        yield idx, {k: v.to(device) for k, v in batch.items()}


def scores_from(logits: torch.Tensor, values: torch.Tensor, output: str, scale: Scale,
                judge: str) -> list[Score]:
    """One Score per row: the value, or a failure for a non-finite one or one outside `scale`
    (never a silently used value); raw = the row's logits."""
    fix = (f"set `scale:` in the judge spec to the range this model's {output} really takes "
           "(the default is only a convention)")
    scores = []
    for row, value in zip(logits.tolist(), values.tolist()):
        raw = json.dumps(row)
        if not math.isfinite(value):
            scores.append(Score.failed(f"model produced a non-finite {output} ({value})", raw=raw))
            continue
        refusal = scale.refusal(value, judge, fix)
        scores.append(Score(value=value, raw=raw) if refusal is None else Score.failed(refusal, raw=raw))
    return scores
