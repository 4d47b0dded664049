"""Shared query prefixes run once per batch (`rlaif.models.prefix`): the same logprobs, hidden
states, gradients, generations and PPO steps as the plain pass, to float rounding, while the
model sees the prefix once instead of once per row."""

from __future__ import annotations

import pytest
import torch
from ppo_helpers import PREAMBLE, LetterJudge, make_config, one_thread  # noqa: F401
from transformers import AutoTokenizer

from rlaif.config import LoraSettings
from rlaif.models import prefix
from rlaif.models.logprobs import response_forward
from rlaif.ppo.policy import PolicyWithValueHead
from rlaif.ppo.trainer import PPOTrainer

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = [PREAMBLE + "Human: " + q for q in ("hi", "How do I bake bread at home?", "why is the sky blue?",
                                   "what is a prime number, and why do they matter?")]
PAD = 0


def _left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def test_shared_prefix_length_counts_common_leading_real_tokens():
    ids, mask = _left_padded([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 9, 12], [5, 6, 7, 8, 9, 10, 13, 14]])
    assert prefix.shared_prefix_length(ids, mask) == 5
    # every row keeps one token of its own: a row that is all prefix caps it at its length - 1
    ids, mask = _left_padded([[5, 6, 7, 8, 9, 10], [5, 6, 7, 8, 9, 10, 11]])
    assert prefix.shared_prefix_length(ids, mask) == 5
    # fewer than MIN_SHARED_PREFIX common tokens, a batch of one, or right padding: plain path
    ids, mask = _left_padded([[5, 6, 7, 1, 2], [5, 6, 7, 3, 4]])
    assert prefix.MIN_SHARED_PREFIX == 4 and prefix.shared_prefix_length(ids, mask) == 0
    ids, mask = _left_padded([[5, 6, 7, 8, 9, 10]])
    assert prefix.shared_prefix_length(ids, mask) == 0
    ids, mask = _left_padded([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 9, 12]])
    assert prefix.shared_prefix_length(ids.flip(1), mask.flip(1)) == 0


def test_split_queries_puts_padding_between_prefix_and_remainder():
    ids, mask = _left_padded([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12], [5, 6, 7, 8, 9, 13, 14, 15]])
    first, rest, rest_mask = prefix.split_queries(ids, mask, 4)
    assert first.tolist() == [[5, 6, 7, 8]]
    assert rest_mask.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]]
    assert (rest * rest_mask).tolist() == [[0, 9, 10, 11], [0, 0, 0, 12], [9, 13, 14, 15]]


def _policy(path, lora: bool) -> tuple[PolicyWithValueHead, torch.Tensor, torch.Tensor, int]:
    settings = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]) if lora else None
    policy = PolicyWithValueHead.from_pretrained(str(path), lora=settings)
    if lora:  # a trained adapter, so that policy and reference differ
        torch.manual_seed(1)
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.2)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    return policy, enc.input_ids, enc.attention_mask, tok.pad_token_id


def _embedding_widths(lm) -> tuple[list[tuple[int, int]], object]:
    """(the (rows, columns) of every batch the model embeds, the hook handle)."""
    widths: list[tuple[int, int]] = []
    handle = lm.get_input_embeddings().register_forward_hook(
        lambda _m, args, _out: widths.append(tuple(args[0].shape)))
    return widths, handle


@pytest.mark.parametrize("arch, lora", [("llama", True), ("llama", False), ("gpt2", False)])
def test_response_forward_with_a_shared_prefix_equals_the_plain_pass(tiny_models, tiny_llama, arch, lora):
    path = tiny_llama if arch == "llama" else tiny_models["gpt2"]
    policy, query_ids, query_mask, pad = _policy(path, lora)
    n = prefix.usable(policy.model, query_ids, query_mask)
    assert n >= 10  # the preamble is shared; the test would prove nothing otherwise
    torch.manual_seed(2)
    response_ids = torch.randint(3, 200, (len(PROMPTS), 6))
    response_mask = torch.ones_like(response_ids)
    response_mask[1, 3:] = 0  # a response that ended early
    response_ids[1, 3:] = pad
    results = {}
    policy.train()
    for share in (False, True):
        widths, handle = _embedding_widths(policy.base_model())
        policy.zero_grad()
        logits, hidden = response_forward(policy.model, query_ids, query_mask, response_ids, response_mask,
                                          hidden_states=True, share_prefix=share)
        (logits.logsumexp(-1) * response_mask).sum().backward()
        handle.remove()
        grads = {k: p.grad.clone() for k, p in policy.named_parameters() if p.grad is not None}
        with torch.no_grad(), policy.reference() as ref:
            ref_logits, _ = response_forward(ref, query_ids, query_mask, response_ids, response_mask,
                                             share_prefix=share)
        results[share] = (logits.detach(), hidden.detach(), grads, ref_logits, widths)
    plain, shared = results[False], results[True]
    q, r, b = query_ids.size(1), response_ids.size(1), len(PROMPTS)
    assert plain[4] == [(b, q + r)]
    assert shared[4] == [(1, n), (b, q - n + r)]  # the prefix once, then only each row's rest
    keep = response_mask.bool()
    assert plain[0].abs().max() > 1e-2
    torch.testing.assert_close(shared[0][keep], plain[0][keep], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(shared[1][keep], plain[1][keep], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(shared[3][keep], plain[3][keep], atol=2e-5, rtol=1e-5)
    if lora:  # policy and reference really differ, and both paths agree on each
        assert (plain[0] - plain[3])[keep].abs().max() > 1e-3
    assert shared[2].keys() == plain[2].keys() and plain[2]
    for name, grad in plain[2].items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(shared[2][name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_generation_prefills_the_prefix_once_and_samples_the_same_tokens(tiny_llama):
    policy, query_ids, query_mask, pad = _policy(tiny_llama, lora=True)
    policy.eval()
    n = prefix.usable(policy.model, query_ids, query_mask)
    kwargs = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=pad,
                  eos_token_id=pad, use_cache=True)
    out = {}
    for share in (False, True):
        policy.share_prefix = share
        widths, handle = _embedding_widths(policy.base_model())
        out[share] = (*policy.generate_with_states(query_ids, query_mask, capture=True, **kwargs), widths)
        handle.remove()
    q, b = query_ids.size(1), len(PROMPTS)
    assert out[False][2][0] == (b, q)
    assert out[True][2][:2] == [(1, n), (b, q - n)]  # prefix once, then the prefill of the rests
    assert len(out[True][2]) == len(out[False][2]) + 1  # one decode call per new token, as before
    assert torch.equal(out[True][0], out[False][0])
    torch.testing.assert_close(out[True][1], out[False][1], atol=2e-5, rtol=1e-5)


def test_gradient_checkpointing_takes_the_plain_pass(tiny_llama):
    policy, query_ids, query_mask, _ = _policy(tiny_llama, lora=False)
    assert prefix.usable(policy.model, query_ids, query_mask) > 0
    policy.model.gradient_checkpointing_enable()
    assert prefix.usable(policy.model, query_ids, query_mask) == 0


def test_ppo_steps_with_and_without_the_shared_prefix_agree(tiny_llama, tmp_path):
    """Same seed, same samples: sharing the prefix changes float rounding only, step after step."""
    runs = {}
    for share in (True, False):
        config = make_config(tiny_llama, tmp_path / str(share), f"ppo.share_prefix={str(share).lower()}")
        trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
        assert trainer.policy.share_prefix is share
        runs[share] = [trainer.step(PROMPTS) for _ in range(3)]
    for got, want in zip(runs[True], runs[False]):
        assert got["reward/mean"] == want["reward/mean"]  # the very same responses
        for key in ("objective/kl", "objective/entropy", "ppo/policy/approxkl", "ppo/loss/value",
                    "ppo/loss/policy"):
            assert got[key] == pytest.approx(want[key], abs=1e-4, rel=1e-3), key
    assert runs[True][-1]["objective/kl"] != 0.0  # the policy moved away from the reference
