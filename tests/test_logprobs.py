"""Per-token logprobs, entropy and KL estimators against plain torch; the shared response
forward pass against manual Hugging Face forwards; hold-out sequence KL."""

from __future__ import annotations

import math

import pytest
import torch
from ppo_helpers import PROMPTS

from rlaif.batching import pad_rows
from rlaif.models.generate import generate
from rlaif.models.logprobs import (
    entropy_from_logits,
    kl_estimates,
    kl_penalty,
    kl_summary,
    logprobs_from_logits,
    response_logprobs,
)

T = torch.tensor
LN2 = math.log(2.0)


@pytest.mark.parametrize(
    "logp, ref, expected",
    [
        # policy twice as likely as the reference: log ratio = ln 2, r = 0.5
        (math.log(0.5), math.log(0.25), {"k1": LN2, "k3": -0.5 + LN2, "abs": LN2, "mse": 0.5 * LN2**2}),
        # policy half as likely: log ratio = -ln 2, r = 2
        (math.log(0.25), math.log(0.5), {"k1": -LN2, "k3": 1.0 - LN2, "abs": LN2, "mse": 0.5 * LN2**2}),
        # equal: every estimator is 0
        (-1.3, -1.3, {"k1": 0.0, "k3": 0.0, "abs": 0.0, "mse": 0.0}),
    ],
)
def test_kl_estimators_by_hand(logp, ref, expected):
    for kind, value in expected.items():
        got = kl_penalty(T([[logp]]), T([[ref]]), kind)
        assert got.item() == pytest.approx(value, abs=1e-6), kind


def test_k1_and_k3_are_unbiased_estimators_of_kl():
    # Under samples x ~ p, E[k1] = E[k3] = KL(p || q); the expectation is exact over 4 tokens.
    p, q = T([0.1, 0.2, 0.3, 0.4]), T([0.4, 0.3, 0.2, 0.1])
    kl = torch.sum(p * (p.log() - q.log()))
    for kind in ("k1", "k3"):
        estimate = torch.sum(p * kl_penalty(p.log()[None], q.log()[None], kind)[0])
        assert estimate.item() == pytest.approx(kl.item(), rel=1e-5), kind
    assert (kl_penalty(p.log()[None], q.log()[None], "k3") >= 0).all()
    with pytest.raises(ValueError, match="not one of"):
        kl_penalty(p[None], q[None], "k2")  # type: ignore[arg-type]


def test_kl_estimates_average_the_summed_estimates_over_responses():
    # Response 0: log ratios [0.5, 0.0]; response 1: [-0.25] (responses of different lengths).
    logprobs, ref_logprobs = [T([-1.0, -2.0]), T([-0.5])], [T([-1.5, -2.0]), T([-0.25])]
    k3 = [math.exp(-0.5) - 1 + 0.5, math.exp(0.25) - 1 - 0.25]  # (r - 1) - log r per token
    est = kl_estimates(logprobs, ref_logprobs)
    assert est["k1"] == pytest.approx((0.5 - 0.25) / 2)
    assert est["k3"] == pytest.approx(sum(k3) / 2)
    assert math.isnan(kl_estimates([], [])["k1"])  # nothing measured: NaN, not 0


def test_logprobs_and_entropy_match_a_plain_loop():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11) * 3
    tokens = torch.randint(0, 11, (2, 5))
    got = logprobs_from_logits(logits, tokens)
    expected = torch.empty(2, 5)
    expected_entropy = torch.empty(2, 5)
    for b in range(2):
        for t in range(5):
            p = torch.softmax(logits[b, t].double(), -1)
            expected[b, t] = p[tokens[b, t]].log()
            expected_entropy[b, t] = -(p * p.log()).sum()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(entropy_from_logits(logits), expected_entropy)
    # Half precision goes through float32 log_softmax, close to the float32 result.
    got_bf16 = logprobs_from_logits(logits.bfloat16(), tokens)
    assert got_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(got_bf16.float(), expected, atol=0.1, rtol=0.02)
    with pytest.raises(ValueError, match="disagree"):
        logprobs_from_logits(logits, tokens[:, :4])


def test_entropy_of_known_distributions():
    logits = torch.log(T([[[0.25, 0.25, 0.25, 0.25], [0.5, 0.25, 0.25, 1e-30]]]))
    torch.testing.assert_close(entropy_from_logits(logits), T([[math.log(4), 1.5 * LN2]]))


@pytest.mark.parametrize("side, want_ids, want_mask", [
    ("left", [[0, 5, 6], [7, 8, 9]], [[0, 1, 1], [1, 1, 1]]),
    ("right", [[5, 6, 0], [7, 8, 9]], [[1, 1, 0], [1, 1, 1]]),
])
def test_pad_rows(side, want_ids, want_mask):
    ids, mask = pad_rows([[5, 6], [7, 8, 9]], 0, side=side)
    assert ids.tolist() == want_ids and mask.tolist() == want_mask
    ids, mask = pad_rows([[], [4]], 0, side="right", min_width=3)  # an empty row stays all padding
    assert ids.tolist() == [[0, 0, 0], [4, 0, 0]] and mask.tolist() == [[0, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_response_logprobs_match_the_policy_forward(tiny_models, kind):
    """The hold-out KL and the PPO policy score (query, response) pairs with the same forward."""
    from transformers import AutoTokenizer

    from rlaif.ppo.policy import PolicyWithValueHead

    policy = PolicyWithValueHead.from_pretrained(str(tiny_models[kind]))
    tok = AutoTokenizer.from_pretrained(tiny_models[kind])
    tok.padding_side = "right" if kind == "t5" else "left"
    enc = tok(PROMPTS[:3], padding=True, return_tensors="pt")
    response_ids, response_mask = pad_rows([[5, 6, 7], [8], [9, 10]], tok.pad_token_id, side="right")
    with torch.no_grad():
        want = policy.forward_response(enc.input_ids, enc.attention_mask, response_ids,
                                       response_mask).logprobs
        got = response_logprobs(policy.model, enc.input_ids, enc.attention_mask, response_ids,
                                response_mask)
    torch.testing.assert_close(got * response_mask, want * response_mask, atol=1e-5, rtol=0)


def _manual_kl(policy, reference, tok, prompt: str, response_ids: list[int], seq2seq: bool,
               temperature: float = 1.0) -> float:
    """sum over response tokens of log p_policy - log p_reference, both log_softmax(logits / T),
    one sequence, no padding."""
    p_ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        if seq2seq:
            start = policy.config.decoder_start_token_id
            enc = torch.tensor([p_ids])
            dec = torch.tensor([[start] + response_ids[:-1]])
            lps = [(m(input_ids=enc, decoder_input_ids=dec).logits[0] / temperature).log_softmax(-1)
                   for m in (policy, reference)]
            pos = list(range(len(response_ids)))
        else:
            ids = torch.tensor([p_ids + response_ids])
            lps = [(m(input_ids=ids).logits[0] / temperature).log_softmax(-1) for m in (policy, reference)]
            pos = [len(p_ids) - 1 + k for k in range(len(response_ids))]
    return sum((lps[0][t, tok_id] - lps[1][t, tok_id]).item() for t, tok_id in zip(pos, response_ids))


def test_kl_summary_per_reply_and_per_token_by_hand():
    # log ratios: response 0 [0.5, 0.0], response 1 [-0.25]; 3 tokens in all
    logprobs, ref_logprobs = [T([-1.0, -2.0]), T([-0.5])], [T([-1.5, -2.0]), T([-0.25])]
    k3 = [math.exp(-0.5) - 1 + 0.5, math.exp(0.25) - 1 - 0.25]
    est = kl_summary(logprobs, ref_logprobs)
    assert est["k1"]["per_reply"] == pytest.approx((0.5 - 0.25) / 2)
    assert est["k1"]["per_token"] == pytest.approx((0.5 - 0.25) / 3)
    assert est["k3"]["per_token"] == pytest.approx(sum(k3) / 3)
    assert math.isnan(kl_summary([], [])["k1"]["per_token"])


def test_tempered_logprobs_by_hand():
    """log_softmax(logits / T) at the sampled token, T = 0.5: logits [0, ln 2] become [0, 2 ln 2],
    probabilities [1/5, 4/5]."""
    from rlaif.models.logprobs import response_logprobs_at

    class Fixed(torch.nn.Module):  # a causal LM whose every position predicts logits [0, ln 2]
        config = type("C", (), {"is_encoder_decoder": False})()

        def forward(self, input_ids, **_):
            logits = torch.tensor([0.0, LN2]).expand(*input_ids.shape, 2)
            return type("Out", (), {"logits": logits})()

    ids, mask = T([[0, 1]]), T([[1, 1]])
    cold, plain = response_logprobs_at(Fixed(), ids, mask, T([[1, 0]]), T([[1, 1]]), (0.5, 1.0))
    torch.testing.assert_close(cold, T([[math.log(4 / 5), math.log(1 / 5)]]))
    torch.testing.assert_close(plain, T([[math.log(2 / 3), math.log(1 / 3)]]))


def test_holdout_kl_is_tempered_and_gives_the_after_perplexity(tiny_models, tmp_path):
    """Holdout.kl at T = 0.7 against a hand computation: per reply (sum over tokens, mean over
    replies), per token (total / tokens); the same pass records the start model's untempered NLL."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlaif.evaluation.holdout import Holdout
    from rlaif.judges.base import Judge, Scale, Score
    from rlaif.testing.tiny import build_tiny_gpt2

    class Zero(Judge):
        name, scale = "zero", Scale(0.0, 1.0)

        async def ascore(self, samples):
            return [Score(1.0) for _ in samples]

    start = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    after_lm = AutoModelForCausalLM.from_pretrained(build_tiny_gpt2(tmp_path / "other", seed=1)).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    with Holdout(PROMPTS, Zero(), gen_kwargs={"max_new_tokens": 5, "temperature": 0.7}, floors=(),
                 progress=False) as holdout:
        after = holdout.score(after_lm, tok)
        rows = holdout.kl(after, start)
    replies = after.generation.response_ids
    sums = [_manual_kl(after_lm, start, tok, p, r, False, temperature=0.7) for p, r in zip(PROMPTS, replies)]
    tokens = sum(len(r) for r in replies)
    assert rows["hold-out KL(after || start) at T=0.7, k1, per reply (sum over tokens)"] == pytest.approx(
        sum(sums) / len(sums), abs=1e-4)
    assert rows["hold-out KL(after || start) at T=0.7, k1, per token (total / tokens)"] == pytest.approx(
        sum(sums) / tokens, abs=1e-4)
    assert rows["hold-out KL(after || start) at T=0.7, k3, per reply (sum over tokens)"] >= 0
    # untempered: differs from the tempered estimate, so the rows really are at T = 0.7
    plain = [_manual_kl(after_lm, start, tok, p, r, False) for p, r in zip(PROMPTS, replies)]
    assert abs(sum(plain) - sum(sums)) > 1e-3
    nll = []
    for p, r in zip(PROMPTS, replies):
        ids = tok(p)["input_ids"]
        with torch.no_grad():
            logp = start(input_ids=torch.tensor([ids + r])).logits[0].log_softmax(-1)
        nll.append(-sum(logp[len(ids) - 1 + i, t].item() for i, t in enumerate(r)))
    assert after.start_nll == pytest.approx(nll, abs=1e-4)
