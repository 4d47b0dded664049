"""Token logprobs through a frozen vocabulary projection without keeping (N, V) logits.

The PPO update needs log p(token) for every response token and its gradient with respect to
the final hidden states. Through `lm_head` + log-softmax autograd keeps the (N, V) logits and
builds an (N, V) gradient in backward: 2 x 26 MB for a gpt2-small minibatch of 4 x 32 tokens,
2 x 1 GB for Llama 3 (128k vocabulary) at 4 x 512. When the projection is frozen (LoRA) the
gradient of each logprob depends on its own row only:

    d log p_i / d h_i = (W[t_i] - sum_v p_iv W_v) / T = ((onehot(t_i) - p_i) @ W) / T

so the forward computes it chunk by chunk alongside the logprob and keeps that (N, H) matrix;
backward scales it by the incoming gradient. Same FLOPs as autograd's path, no (N, V) tensor
outlives a chunk.
"""

from __future__ import annotations

from typing import Any

import torch

# Rows per chunk are chosen so that one chunk's logits hold about this many floats (16 MB).
CHUNK_ELEMENTS = 2**22


class _FrozenHeadLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                tokens: torch.Tensor, temperature: float) -> torch.Tensor:
        rows = max(1, CHUNK_ELEMENTS // weight.size(0))
        logprobs = torch.empty(hidden.size(0), dtype=torch.float32, device=hidden.device)
        direction = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
        for s in range(0, hidden.size(0), rows):
            logits = torch.nn.functional.linear(hidden[s:s + rows], weight, bias).float()  # (c, V)
            if temperature != 1.0:
                logits /= temperature
            tok = tokens[s:s + rows, None]  # (c, 1)
            picked = logits.gather(1, tok)  # (c, 1)
            # Softmax in place (logsumexp would allocate a second (c, V) buffer).
            top = logits.amax(dim=-1, keepdim=True)  # (c, 1)
            probs = logits.sub_(top).exp_()  # unnormalised
            total = probs.sum(dim=-1, keepdim=True)  # (c, 1)
            logprobs[s:s + rows] = (picked - top - total.log()).squeeze(1)
            probs.div_(total).neg_().scatter_add_(1, tok, torch.ones_like(tok, dtype=probs.dtype))
            # (onehot - p) @ W in the weight's dtype: no float32 copy of a bf16 (V, H) matrix.
            direction[s:s + rows] = (probs.to(weight.dtype) @ weight).float() / temperature
        ctx.save_for_backward(direction)
        ctx.hidden_dtype = hidden.dtype
        return logprobs

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (direction,) = ctx.saved_tensors
        return (grad[:, None] * direction).to(ctx.hidden_dtype), None, None, None, None


def frozen_head_logprobs(hidden: torch.Tensor, head: torch.nn.Module, tokens: torch.Tensor,
                         temperature: float = 1.0) -> torch.Tensor:
    """log softmax(head(hidden) / temperature)[token] for hidden (..., H), tokens (...) -> (...).

    `head` must be a frozen `nn.Linear` (no parameter requiring grad); gradients flow to
    `hidden` only. The result is float32.
    """
    weight, bias = head.weight, head.bias
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("frozen_head_logprobs needs a frozen head; train it through autograd")
    flat = hidden.reshape(-1, hidden.size(-1))
    out = _FrozenHeadLogprobs.apply(flat, weight, bias, tokens.reshape(-1), float(temperature))
    return out.view(tokens.shape)
