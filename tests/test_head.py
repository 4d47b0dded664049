"""Logprobs through a frozen head without (N, V) logits: values and gradients as autograd's."""

from __future__ import annotations

import pytest
import torch

from rlaif.config import LoraSettings
from rlaif.ppo import head as head_module
from rlaif.ppo.head import frozen_head_logprobs
from rlaif.ppo.policy import PolicyWithValueHead


@pytest.mark.parametrize("temperature, bias", [(1.0, False), (0.7, True)])
def test_matches_log_softmax_and_its_gradient(monkeypatch, temperature, bias):
    monkeypatch.setattr(head_module, "CHUNK_ELEMENTS", 3 * 50)  # 3 rows per chunk: 5 chunks
    torch.manual_seed(0)
    lm_head = torch.nn.Linear(8, 50, bias=bias).requires_grad_(False)
    hidden = torch.randn(2, 7, 8, requires_grad=True)
    tokens = torch.randint(0, 50, (2, 7))
    upstream = torch.randn(2, 7)  # an arbitrary downstream loss: sum(upstream * logprobs)

    got = frozen_head_logprobs(hidden, lm_head, tokens, temperature)
    (got * upstream).sum().backward()
    got_grad, hidden.grad = hidden.grad, None
    want = torch.log_softmax(lm_head(hidden) / temperature, -1).gather(-1, tokens[..., None])[..., 0]
    (want * upstream).sum().backward()

    assert got.shape == (2, 7) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_grad, hidden.grad, atol=1e-5, rtol=1e-5)
    assert hidden.grad.abs().max() > 1e-3


def test_a_trainable_head_is_refused():
    with pytest.raises(ValueError, match="frozen head"):
        frozen_head_logprobs(torch.randn(2, 4), torch.nn.Linear(4, 9), torch.zeros(2, dtype=torch.long))


def test_lora_update_pass_takes_the_fused_path_with_the_same_gradients(tiny_models):
    """The update's forward (grad on, no entropy) on a LoRA policy skips the logits; its
    logprobs, values and LoRA gradients equal those of the ordinary path (entropy on)."""
    tok_path = tiny_models["gpt2"]
    policy = PolicyWithValueHead.from_pretrained(str(tok_path), lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    assert policy._head_fusable()
    gen = torch.Generator().manual_seed(0)
    query_ids = torch.randint(3, 200, (3, 6), generator=gen)
    query_mask = torch.ones_like(query_ids)
    query_mask[0, :2] = 0  # left padding
    response_ids = torch.randint(3, 200, (3, 5), generator=gen)
    response_mask = torch.ones_like(response_ids)
    response_mask[2, 3:] = 0
    with torch.no_grad():  # give the adapters non-zero B so gradients reach them everywhere
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    runs = []
    for with_entropy in (False, True):
        policy.zero_grad()
        out = policy.forward_response(query_ids, query_mask, response_ids, response_mask,
                                      with_entropy=with_entropy, temperature=0.8)
        assert (out.entropy is None) is (not with_entropy)  # None: the fused path ran
        ((out.logprobs * response_mask).sum() + out.values.sum()).backward()
        grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
        runs.append((out.logprobs.detach(), out.values.detach(), grads))
    (lp_fused, v_fused, g_fused), (lp_plain, v_plain, g_plain) = runs
    torch.testing.assert_close(lp_fused, lp_plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_fused, v_plain, atol=1e-6, rtol=1e-6)
    assert g_fused.keys() == g_plain.keys() and any("lora_A" in n for n in g_fused)
    for name in g_fused:
        torch.testing.assert_close(g_fused[name], g_plain[name], atol=1e-5, rtol=1e-4, msg=name)
    # A full fine-tune trains the head, so it keeps the ordinary path.
    assert not PolicyWithValueHead.from_pretrained(str(tok_path))._head_fusable()
