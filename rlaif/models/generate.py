"""Generation shared by training and evaluation: query tokenisation, batched seeded `generate`,
and the one EOS rule.

Prompts are plain text; with `chat=True` they are HH dialogues that `rlaif.data.chat` renders
through the tokenizer's chat template for the model (responses are decoded without it).

EOS rule: a response ends at the first token of `eos_token_ids(lm, tokenizer)` (every id the
generation config declares, Llama 3 declares several, plus the tokenizer's own); that token
is part of the response, whatever follows it is padding. Generation stops at the same ids.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlaif.data.chat import encode_prompts
from rlaif.models import prefix
from rlaif.models.load import load_lm, prepare_tokenizer


@dataclass
class Generation:
    """Decoded responses plus the token ids behind them (for KL estimates), and the LM used."""

    texts: list[str]
    prompt_ids: list[list[int]]  # unpadded, as the model saw them (after truncation)
    response_ids: list[list[int]]  # up to and including the first EOS, no padding
    lm: Any = None
    tokenizer: Any = None
    is_seq2seq: bool = False


def eos_token_ids(lm: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a response: the generation config's (an int or a list) and the tokenizer's."""
    declared = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
    if declared is None:
        declared = getattr(lm.config, "eos_token_id", None)
    ids = set(declared) if isinstance(declared, (list, tuple)) else {declared}
    ids.add(tokenizer.eos_token_id)
    return {int(i) for i in ids if i is not None}


def cut_at_eos(ids: list[int], eos_ids: Collection[int]) -> list[int]:
    """`ids` up to and including the first EOS (what follows it is padding)."""
    for k, token in enumerate(ids):
        if token in eos_ids:
            return ids[: k + 1]
    return ids


def truncate_response(response_ids: torch.Tensor, eos_token_id: int | Collection[int],
                      pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad everything after the first EOS: (B, R) -> (response_ids, response_mask); EOS stays valid."""
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    eos_ids = torch.tensor(ids, dtype=response_ids.dtype, device=response_ids.device)  # (E,)
    is_eos = torch.isin(response_ids, eos_ids)  # (B, R)
    # A position is padding once an EOS came strictly before it.
    eos_before = is_eos.long().cumsum(dim=1) - is_eos.long()  # (B, R)
    response_mask = (eos_before == 0).long()  # (B, R)
    response_ids = torch.where(response_mask.bool(), response_ids, pad_token_id)
    return response_ids, response_mask


def tokenize_queries(tokenizer: Any, prompts: Sequence[str], max_tokens: int, device: Any, *,
                     chat: bool = False, system_prompt: str | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of prompts (chat: rendered) on the tokenizer's side -> (ids, mask) (B, Q)."""
    enc = encode_prompts(tokenizer, prompts, chat=chat, system_prompt=system_prompt, padding=True,
                         truncation=True, max_length=max_tokens, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def max_prompt_tokens(lm: Any, tokenizer: Any, max_new_tokens: int, is_seq2seq: bool) -> int:
    """Longest prompt that still leaves room for the new tokens in the model's window."""
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else 1024
    positions = getattr(lm.config, "n_positions", None) or getattr(lm.config, "max_position_embeddings", None)
    if positions and not is_seq2seq:
        limit = min(limit, positions - max_new_tokens)
    if limit <= 0:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for the prompt in a context of "
            f"{positions} positions; lower max_new_tokens"
        )
    return limit


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], *, gen_kwargs: dict[str, Any],
             seed: int = 0, batch_size: int = 16, progress: bool = True, device: str | None = None,
             chat: bool = False, system_prompt: str | None = None) -> Generation:
    """Generate one response per prompt (causal: left-padded, prompt stripped; or seq2seq).

    `model` and `tokenizer` are anything `load_lm` accepts; the tokenizer is used through a
    prepared copy, and the caller's RNG stream is left as it was. `chat`: the prompts are HH
    dialogues rendered through the chat template (with `system_prompt`) for the model.
    """
    from tqdm.auto import tqdm

    lm, tok, seq2seq = load_lm(model, tokenizer, device=device)
    tok = prepare_tokenizer(tok, seq2seq)
    if not seq2seq:
        # Causal LMs continue the right end: truncate on the left (as they pad) so the
        # dialogue's end is kept.
        tok.truncation_side = "left"
    kwargs = dict(gen_kwargs)
    kwargs.setdefault("pad_token_id", tok.pad_token_id)
    eos = eos_token_ids(lm, tok)
    if eos:
        kwargs.setdefault("eos_token_id", sorted(eos))
    stop = kwargs.get("eos_token_id")
    stop_ids = set(stop) if isinstance(stop, (list, tuple, set)) else {stop} - {None}
    max_len = max_prompt_tokens(lm, tok, int(kwargs.get("max_new_tokens", 32)), seq2seq)
    param_device = next(lm.parameters()).device
    # Length-sorted batches waste less compute on padding; results go back in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = Generation([""] * len(prompts), [[] for _ in prompts], [[] for _ in prompts], lm, tok, seq2seq)
    was_training = lm.training
    lm.eval()
    try:
        # fork_rng: the caller's RNG stream (e.g. the PPO trainer's) is left untouched, and the
        # same seed gives the same samples before and after training.
        with torch.random.fork_rng(devices=[param_device] if param_device.type == "cuda" else []):
            torch.manual_seed(seed)
            batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
            for idx in tqdm(batches, desc="generate", unit="batch", disable=not progress):
                ids, mask = tokenize_queries(tok, [prompts[i] for i in idx], max_len, param_device,
                                             chat=chat, system_prompt=system_prompt)
                with torch.inference_mode():
                    # The tokens every prompt starts with (the chat template's) run once.
                    gen_ids, gen_mask, cached = prefix.generation_inputs(
                        lm, ids, mask, enabled=kwargs.get("use_cache", True))
                    gen = lm.generate(input_ids=gen_ids, attention_mask=gen_mask, **kwargs, **cached)  # (B, Q + R) or (B, R)
                # seq2seq output starts with the decoder start token; causal with the prompt
                new = gen[:, 1:] if seq2seq else gen[:, ids.shape[1]:]
                for row, i in enumerate(idx):
                    out.prompt_ids[i] = ids[row][mask[row].bool()].tolist()
                    out.response_ids[i] = cut_at_eos(new[row].tolist(), stop_ids)
                for i, text in zip(idx, tok.batch_decode(new, skip_special_tokens=True)):
                    out.texts[i] = text.strip()
    finally:
        lm.train(was_training)
    return out
