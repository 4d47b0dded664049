"""Fluency: perplexity of the replies under a named frozen LM, the start model (the model the
hold-out "before" side was generated with; for PPO the policy's reference, adapters off).

    perplexity = exp(total NLL of reply tokens / total reply tokens)      (corpus level)

with untempered logprobs (log_softmax(logits): the model's own distribution, not the sampling
temperature's), each reply's tokens including the EOS that ended it (a reply cut at
max_new_tokens has none). The before side is scored at before time by the start model itself;
the after side's NLL comes from the same forward pass as the hold-out KL (`Holdout.kl`), which
already runs the start model on the after replies. A floor text (`floors.py`) is tokenised as
generation would have produced it (`floor_reply_ids`) and followed by EOS.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any


def corpus_perplexity(nll: Sequence[float], tokens: Sequence[int]) -> float | None:
    """exp(sum of per-reply NLL / sum of per-reply tokens); None when there is no token."""
    total = sum(tokens)
    return math.exp(sum(nll) / total) if total else None


def reply_nll(lm: Any, gen: Any, *, batch_size: int = 16) -> list[float]:
    """Per reply of `gen` (a `Generation`): -sum of its tokens' untempered logprobs under `lm`."""
    from rlaif.models.logprobs import generation_logprobs

    return [-float(lp.sum()) for lp in generation_logprobs(lm, gen, batch_size=batch_size)]


def stop_ids(lm: Any, tokenizer: Any, gen_kwargs: dict[str, Any]) -> set[int]:
    """The ids that ended a reply in `generate`: gen_kwargs' `eos_token_id`, else the model's EOS ids."""
    from rlaif.models.generate import eos_token_ids

    given = gen_kwargs.get("eos_token_id")
    if given is None:
        return eos_token_ids(lm, tokenizer)
    return {int(i) for i in (given if isinstance(given, (list, tuple, set)) else [given])}


def split_eos(response_ids: Sequence[Sequence[int]], stops: Collection[int]) -> tuple[list[list[int]], list[bool]]:
    """Responses cut at their first EOS (EOS included) -> (token ids without that EOS, ended by EOS)."""
    ids, ended = [], []
    for r in response_ids:
        end = bool(r) and r[-1] in stops
        ids.append(list(r[:-1]) if end else list(r))
        ended.append(end)
    return ids, ended


def floor_eos_id(lm: Any, tokenizer: Any, gen_kwargs: dict[str, Any]) -> int:
    """The EOS a floor reply ends with: the tokenizer's own when it stops generation, else the
    smallest stop id (models that declare several, e.g. Llama 3, end a chat turn with the
    tokenizer's)."""
    stops = stop_ids(lm, tokenizer, gen_kwargs)
    if tokenizer.eos_token_id is not None and int(tokenizer.eos_token_id) in stops:
        return int(tokenizer.eos_token_id)
    if not stops:
        raise ValueError("the model declares no EOS token: a floor reply cannot end")
    return min(stops)


def floor_reply_ids(tokenizer: Any, text: str, prompt_ids: Sequence[int], eos_id: int, *,
                    seq2seq: bool) -> list[int]:
    """`text` as the reply to a prompt, the way sampling would have produced it, then EOS.

    Replies are decoded and stripped of surrounding spaces, so the text is re-tokenised without
    special tokens; for a causal LM whose rendered prompt ends in a non-space character (a
    dialogue's "Assistant:"), the reply continues after a space, as sampled replies do (" I'm"),
    so a space goes in front; after a chat template's header ("assistant\\n") none does. An
    empty text is EOS alone."""
    ids: list[int] = []
    if text:
        lead = ""
        if not seq2seq and prompt_ids:
            last = tokenizer.decode([prompt_ids[-1]])
            lead = " " if last and not last[-1].isspace() else ""
        ids = list(tokenizer(lead + text, add_special_tokens=False)["input_ids"])
    return ids + [eos_id]
