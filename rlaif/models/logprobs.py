"""Per-response-token logprobs of (query, response) pairs (at a sampling temperature), entropy,
KL estimators, hold-out KL.

Shapes: B = batch, Q = query length, R = response length, V = vocabulary, H = hidden size.
Queries are padded on the tokenizer's side (left for causal LMs), responses on the right.
`response_forward` is the one forward pass the PPO policy and the hold-out KL both score with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from rlaif.batching import pad_rows
from rlaif.models import prefix
from rlaif.models.load import forward_parameters, is_seq2seq, unwrap_lm

KLKind = Literal["k1", "k3", "abs", "mse"]
KL_KINDS: tuple[str, ...] = ("k1", "k3", "abs", "mse")


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token under `logits`: (B, T, V), (B, T) -> (B, T)."""
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} disagree: "
            "logits must be (B, T, V) for tokens (B, T)"
        )
    if logits.dtype in (torch.float32, torch.float64):
        # log p(tok) = logit(tok) - logsumexp(logits): avoids materialising a full
        # (B, T, V) log_softmax copy; logsumexp row by row keeps the temporary to (T, V).
        picked = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
        lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])  # (B, T)
        return picked - lse
    # Half precision: logsumexp - logit loses digits, so take log_softmax in float32 one
    # row at a time (still only a (T, V) temporary).
    rows = []
    for row_logits, row_tokens in zip(logits, tokens):
        row_logp = F.log_softmax(row_logits.float(), dim=-1)  # (T, V)
        rows.append(torch.gather(row_logp, -1, row_tokens.unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows).to(logits.dtype)  # (B, T)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position: (B, T, V) -> (B, T)."""
    # H = logsumexp(z) - sum_v p_v z_v, the stable form of -sum p log p; row by row, so the
    # softmax and product temporaries are (T, V), not (B, T, V) (large for 50k vocabularies).
    def entropy(z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(z, dim=-1) - torch.sum(torch.softmax(z, dim=-1) * z, dim=-1)

    if logits.dim() < 3 or logits.size(0) == 0:
        return entropy(logits)
    return torch.stack([entropy(row) for row in logits])  # row: (T, V)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: KLKind = "k1") -> torch.Tensor:
    """Per-token KL(policy || reference) estimate from sampled-token logprobs: (B, T) -> (B, T).

    k1  = logp - ref                   unbiased, high variance, can be negative per token
    k3  = (r - 1) - log r, r = exp(ref - logp)
                                       Schulman's unbiased, low-variance, always >= 0
    abs = |logp - ref|                 biased, >= 0
    mse = 0.5 * (logp - ref)^2         biased ("k2"), >= 0, the gradient of KL near 0
    """
    log_ratio = logprobs - ref_logprobs  # (B, T)
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        # r - 1 - log r with log r = -log_ratio; expm1 keeps precision near r = 1.
        return torch.expm1(-log_ratio) + log_ratio
    if kind == "abs":
        return log_ratio.abs()
    if kind == "mse":
        return 0.5 * log_ratio.square()
    raise ValueError(f"kl_penalty kind {kind!r} is not one of {KL_KINDS}")


def accepts_logits_to_keep(lm: Any) -> bool:
    """Whether `lm` (or the transformers model inside a peft wrapper) can skip query-position logits."""
    return "logits_to_keep" in forward_parameters(lm)


def response_forward(lm: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                     response_ids: torch.Tensor, response_mask: torch.Tensor, *,
                     hidden_states: bool = False, logits: bool = True, share_prefix: bool = True
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One forward of `lm` over (query, response) pairs -> (logits (B, R, V), hidden (B, R, H)):
    at response position t, what predicts response token t.

    `hidden_states` returns the final hidden states (else None); `logits=False` lets a causal
    LM that supports it compute logits for the last position only and returns None for them.
    `share_prefix`: leading tokens common to every query run once for the batch
    (`rlaif.models.prefix`; the same results up to float rounding).
    """
    r_len = response_ids.size(1)
    if is_seq2seq(lm):
        start_id = lm.config.decoder_start_token_id
        if start_id is None:
            raise ValueError(f"seq2seq model {getattr(lm.config, 'name_or_path', '')!r} has no "
                             "decoder_start_token_id in its config; set it there")
        start = torch.full((response_ids.size(0), 1), int(start_id), dtype=response_ids.dtype,
                           device=response_ids.device)
        decoder_input_ids = torch.cat([start, response_ids[:, :-1]], dim=1)  # (B, R)
        decoder_mask = torch.cat([torch.ones_like(start), response_mask[:, :-1]], dim=1)  # (B, R)
        out = lm(input_ids=query_ids, attention_mask=query_mask, decoder_input_ids=decoder_input_ids,
                 decoder_attention_mask=decoder_mask, output_hidden_states=hidden_states,
                 use_cache=False)
        hidden = out.decoder_hidden_states[-1] if hidden_states else None  # (B, R, H)
        return (out.logits if logits else None), hidden  # (B, R, V)
    extra = {"logits_to_keep": r_len + 1 if logits else 1} if accepts_logits_to_keep(lm) else {}
    # The tokens every query starts with (a chat template's) run once for the batch.
    cached = prefix.cached_prefix(lm, query_ids, query_mask) if share_prefix else None
    if cached is not None:
        query_ids, query_mask = cached.rest_ids, cached.mask
        extra.update(cached.kwargs)
    input_ids = torch.cat([query_ids, response_ids], dim=1)  # (B, Q + R); (B, Q - n + R) after a prefix
    attention_mask = torch.cat([query_mask, response_mask], dim=1)  # (B, Q + R), a prefix included
    # Left padding: positions count only real tokens, as they did during generation.
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -input_ids.size(1):]
    q_len = query_ids.size(1)
    out = lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
             output_hidden_states=hidden_states, use_cache=cached is not None, **extra)
    # The token at position Q + t is predicted from position Q - 1 + t.
    hidden = out.hidden_states[-1][:, q_len - 1:-1] if hidden_states else None  # (B, R, H)
    return (out.logits[:, -(r_len + 1):-1] if logits else None), hidden  # (B, R, V)


def response_logprobs(lm: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                      response_ids: torch.Tensor, response_mask: torch.Tensor, *,
                      temperature: float = 1.0) -> torch.Tensor:
    """log p(response token | query, earlier response tokens) under `lm`, float32 (B, R), from
    log_softmax(logits / temperature): the distribution sampling at `temperature` draws from."""
    return response_logprobs_at(lm, query_ids, query_mask, response_ids, response_mask,
                                (temperature,))[0]


def response_logprobs_at(lm: Any, query_ids: torch.Tensor, query_mask: torch.Tensor,
                         response_ids: torch.Tensor, response_mask: torch.Tensor,
                         temperatures: Sequence[float]) -> list[torch.Tensor]:
    """`response_logprobs` at several temperatures from one forward pass: one (B, R) per temperature."""
    if any(t <= 0 for t in temperatures):
        raise ValueError(f"temperatures must be > 0 to score responses, got {list(temperatures)}")
    logits, _ = response_forward(lm, query_ids, query_mask, response_ids, response_mask)
    logits = logits.float()  # (B, R, V)
    # x / 1.0 == x: skip a (B, R, V) copy for the untempered distribution
    return [logprobs_from_logits(logits if t == 1.0 else logits / t, response_ids) for t in temperatures]


def generation_logprobs(lm: Any, gen: Any, *, batch_size: int = 16,
                        temperature: float = 1.0) -> list[torch.Tensor]:
    """Per response of `gen` (a `Generation`): the logprob of each of its tokens under `lm` at
    `temperature`, given its prompt; float32, on the CPU, one (len(response),) tensor per response."""
    return generation_logprobs_at(lm, gen, (temperature,), batch_size=batch_size)[0]


def generation_logprobs_at(lm: Any, gen: Any, temperatures: Sequence[float], *,
                           batch_size: int = 16) -> list[list[torch.Tensor]]:
    """`generation_logprobs` at several temperatures from one forward pass per batch: one list
    (a (len(response),) tensor per response) per temperature."""
    lm = unwrap_lm(lm)
    device = next(lm.parameters()).device
    pad = gen.tokenizer.pad_token_id if gen.tokenizer.pad_token_id is not None else 0
    out: list[list[torch.Tensor]] = [[] for _ in temperatures]
    for s in range(0, len(gen.texts), batch_size):
        responses = gen.response_ids[s:s + batch_size]
        query = pad_rows(gen.prompt_ids[s:s + batch_size], pad,
                         side="right" if gen.is_seq2seq else "left")
        response = pad_rows(responses, pad, side="right", min_width=1)
        with torch.inference_mode():
            per_t = response_logprobs_at(lm, *(t.to(device) for t in (*query, *response)),
                                         temperatures)  # each (B, R)
        for bucket, logprobs in zip(out, per_t):
            bucket.extend(row[:len(r)].cpu() for row, r in zip(logprobs, responses))
    return out


def kl_estimates(logprobs: Sequence[torch.Tensor], ref_logprobs: Sequence[torch.Tensor],
                 kinds: Sequence[KLKind] = ("k1", "k3")) -> dict[str, float]:
    """Per kind: the mean over responses of the summed per-token KL(policy || reference) estimate.

    `logprobs` and `ref_logprobs` come from `generation_logprobs` of the policy that sampled
    the responses and of the reference; k1 is unbiased, k3 never negative.
    """
    out = {}
    for kind in kinds:
        per_response = [float(kl_penalty(p, r, kind).sum()) for p, r in zip(logprobs, ref_logprobs)]
        out[kind] = sum(per_response) / len(per_response) if per_response else math.nan
    return out


def kl_summary(logprobs: Sequence[torch.Tensor], ref_logprobs: Sequence[torch.Tensor],
               kinds: Sequence[KLKind] = ("k1", "k3")) -> dict[str, dict[str, float]]:
    """Per kind: {"per_reply": mean over responses of the summed per-token estimate,
    "per_token": total over every token / number of tokens} (NaN when nothing was measured)."""
    tokens = sum(int(p.numel()) for p in logprobs)
    out = {}
    for kind in kinds:
        sums = [float(kl_penalty(p, r, kind).sum()) for p, r in zip(logprobs, ref_logprobs)]
        out[kind] = {"per_reply": sum(sums) / len(sums) if sums else math.nan,
                     "per_token": sum(sums) / tokens if tokens else math.nan}
    return out
