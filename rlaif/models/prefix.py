"""Shared query prefixes: compute the tokens every row of a batch starts with once, not per row.

Chat templates put the same tokens in front of every prompt (SmolLM2's default system prompt
and user header are 24 tokens; Llama 3's header with its date lines about as many; a
`data.system_prompt` or a constitution can be hundreds). A causal LM's states at those
positions are the same in every row, so a batch can run them as one row, expand their
key/value cache over the batch (a view: no copy, and under autograd the gradient of the
expanded cache is summed back into the one row), and run only each row's remainder on top.

Layout: the prefix occupies columns 0..n-1 of every row; each row's remaining query tokens
follow left-padded to the longest remainder, so padding sits between the prefix and the rest
("middle padding"). The attention mask masks it and positions count only real tokens, so
every real token attends to exactly the tokens, at exactly the positions, it would in the
plain left-padded batch; results differ from the plain pass by float rounding only (the
prefix is a batch of one instead of B). Used for the rollout's reference pass, the PPO
update's forward and backward, the hold-out logprobs, and generation's prefill.

Applies to causal LMs whose forward takes a `cache` (or `past_key_values`) and whose cache
is a plain dynamic one (not sliding windows), with left-padded queries, no gradient
checkpointing (which drops the cache under autograd), a batch of two or more and a common
prefix of at least `MIN_SHARED_PREFIX` tokens. Anything else takes the plain path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlaif.models.load import forward_parameters, transformers_model

MIN_SHARED_PREFIX = 4  # below this the extra forward call costs more than it saves


def cache_argument(lm: Any) -> str | None:
    """The name under which `lm`'s forward takes a KV cache ("cache" in transformers >= 5.2x,
    "past_key_values" before), or None when it takes none (and for seq2seq models)."""
    if getattr(getattr(transformers_model(lm), "config", None), "is_encoder_decoder", False):
        return None
    parameters = forward_parameters(lm)
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def _checkpointing(lm: Any) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True for m in transformers_model(lm).modules())


def shared_prefix_length(query_ids: torch.Tensor, query_mask: torch.Tensor) -> int:
    """How many leading real tokens every row of a left-padded batch has in common, keeping at
    least one token of each row's own: 0 when below `MIN_SHARED_PREFIX`, for a batch of one,
    or when the queries are not left-padded."""
    batch, width = query_ids.shape
    if batch < 2 or width == 0:
        return 0
    mask = query_mask.bool()
    lengths = mask.sum(1)  # (B,)
    # Left padding: every row's mask is zeros then ones, so the ones are the last `length` columns.
    expected = torch.arange(width, device=mask.device)[None, :] >= (width - lengths)[:, None]
    if not bool(torch.equal(mask, expected)):
        return 0
    shortest = int(lengths.min())
    if shortest - 1 < MIN_SHARED_PREFIX:
        return 0
    # Row i's real tokens start at column width - length_i; gather the first `shortest - 1`.
    columns = (width - lengths)[:, None] + torch.arange(shortest - 1, device=mask.device)[None, :]
    starts = torch.gather(query_ids, 1, columns)  # (B, shortest - 1)
    same = (starts == starts[:1]).all(dim=0)  # (shortest - 1,)
    n = int(same.long().cumprod(0).sum())
    return n if n >= MIN_SHARED_PREFIX else 0


def usable(lm: Any, query_ids: torch.Tensor, query_mask: torch.Tensor) -> int:
    """The shared prefix length to use for `lm` on this batch (0: take the plain path)."""
    if cache_argument(lm) is None or _checkpointing(lm):
        return 0
    return shared_prefix_length(query_ids, query_mask)


def split_queries(query_ids: torch.Tensor, query_mask: torch.Tensor, n: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded queries (B, Q) with an `n`-token shared prefix -> the prefix (1, n) and each
    row's remainder, left-padded (B, Q - n) with its mask."""
    width = query_ids.size(1)
    lengths = query_mask.long().sum(1)  # (B,)
    start = width - lengths[0]  # row 0's first real column
    prefix = query_ids[:1, start:start + n]  # (1, n)
    # A left-padded row's remainder is its last length - n columns; in width - n columns,
    # right-aligned, they are the row's own columns shifted left by n.
    rest_mask = query_mask[:, :width - n]  # ones in the last length - n columns
    rest_ids = torch.where(rest_mask.bool(), query_ids[:, n:], query_ids[:, :width - n])
    return prefix, rest_ids, rest_mask


def prefix_cache(lm: Any, prefix_ids: torch.Tensor, batch: int) -> Any | None:
    """Run `prefix_ids` (1, n) through `lm` and return its KV cache expanded to `batch` rows
    (views), or None when the cache is not a plain dynamic one."""
    name = cache_argument(lm)
    one_logit = {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters(lm) else {}
    out = lm(input_ids=prefix_ids, use_cache=True, **one_logit)
    cache = getattr(out, name, None) if name else None
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    for layer in layers:
        layer.keys = layer.keys.expand(batch, -1, -1, -1)
        layer.values = layer.values.expand(batch, -1, -1, -1)
    return cache




@dataclass
class CachedPrefix:
    """A batch's shared prefix, already run: the prefix (1, n), each row's remainder (B, Q - n),
    the mask over prefix + remainder (B, Q), and `kwargs` passing the cache to a forward."""

    n: int
    prefix_ids: torch.Tensor
    rest_ids: torch.Tensor
    mask: torch.Tensor
    kwargs: dict[str, Any]

    def full_ids(self) -> torch.Tensor:
        """Prefix + remainder (B, Q): what `generate` takes (it skips the cached columns)."""
        return torch.cat([self.prefix_ids.expand(self.rest_ids.size(0), -1), self.rest_ids], dim=1)


def cached_prefix(lm: Any, query_ids: torch.Tensor, query_mask: torch.Tensor) -> CachedPrefix | None:
    """Run the batch's shared prefix through `lm` once, or None when the plain path applies."""
    n = usable(lm, query_ids, query_mask)
    if not n:
        return None
    first, rest_ids, rest_mask = split_queries(query_ids, query_mask, n)
    cache = prefix_cache(lm, first, query_ids.size(0))
    if cache is None:
        return None
    ones = torch.ones(query_ids.size(0), n, dtype=query_mask.dtype, device=query_mask.device)
    return CachedPrefix(n, first, rest_ids, torch.cat([ones, rest_mask], dim=1),
                        {cache_argument(lm): cache})


def generation_inputs(lm: Any, query_ids: torch.Tensor, query_mask: torch.Tensor, *, enabled: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Inputs for `lm.generate` with the shared prefix already in the cache: (ids, mask,
    extra generate kwargs). The ids keep their width Q (prefix, middle padding, remainder), so
    the response still starts at column Q; without a usable prefix, or not `enabled` (no
    sharing asked for, or generation without a cache), the queries as given."""
    cached = cached_prefix(lm, query_ids, query_mask) if enabled else None
    if cached is None:
        return query_ids, query_mask, {}
    return cached.full_ids(), cached.mask, cached.kwargs
