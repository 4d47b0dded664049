"""Inverse-CDF sampling for generate: the right distribution, transformers' warpers, and
generate's own processors (min_new_tokens) still applied before the draw."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TopKLogitsWarper, TopPLogitsWarper

from rlaif.ppo.sampling import InverseCDFSampler, sample_inverse_cdf, sampling_kwargs

N = 40_000  # draws per check: the standard error of a share is at most 0.0025


def _shares(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(tokens, minlength=vocab).float() / tokens.numel()


def test_inverse_cdf_draws_each_token_with_its_probability():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3, 0.0])
    gen = torch.Generator().manual_seed(0)
    tokens = sample_inverse_cdf(probs.expand(N, -1), generator=gen)
    shares = _shares(tokens, 5)
    torch.testing.assert_close(shares, probs, atol=0.01, rtol=0)
    assert shares[1] == 0 and shares[4] == 0  # zero-probability tokens, inside and at the end
    # Unnormalised rows (rounding leaves cdf[-1] a little off 1) sample the same way.
    tokens = sample_inverse_cdf((probs * 0.999).expand(N, -1), generator=gen)
    torch.testing.assert_close(_shares(tokens, 5), probs, atol=0.01, rtol=0)


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0),
                                                       (1.0, 3, 1.0), (1.3, 0, 0.8)])
def test_sampler_follows_transformers_warpers(temperature, top_k, top_p):
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    want = logits / temperature
    if top_k:
        want = TopKLogitsWarper(top_k=top_k)(None, want)
    if top_p < 1:
        want = TopPLogitsWarper(top_p=top_p)(None, want)
    want = torch.softmax(want, -1)[0]
    sampler = InverseCDFSampler(temperature=temperature, top_k=top_k, top_p=top_p)
    out = sampler(torch.zeros(N, 1, dtype=torch.long), logits.expand(N, -1).clone())
    assert torch.isfinite(out).sum(1).eq(1).all()  # exactly one finite score per row: the draw
    shares = _shares(out.argmax(-1), 6)
    torch.testing.assert_close(shares, want, atol=0.01, rtol=0)
    assert (shares[want == 0] == 0).all()  # what top-k / top-p removed is never drawn


def test_sampling_kwargs_moves_the_knobs_into_the_sampler():
    kwargs = sampling_kwargs({"do_sample": True, "temperature": 0.7, "top_k": 0, "top_p": 0.9,
                              "max_new_tokens": 4})
    assert kwargs["do_sample"] is False and "temperature" not in kwargs and "top_p" not in kwargs
    (sampler,) = kwargs["logits_processor"]
    assert [type(w).__name__ for w in sampler.warpers] == ["TemperatureLogitsWarper", "TopPLogitsWarper"]
    greedy = {"do_sample": False, "max_new_tokens": 4}
    assert sampling_kwargs(greedy) is greedy


def test_generate_keeps_min_new_tokens_before_the_draw(tiny_models):
    """With most of the vocabulary made EOS, sampling stops at once unless min_new_tokens
    (a transformers processor that runs before the sampler) forbids it."""
    path = tiny_models["gpt2"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    enc = tok(["Human: hi"] * 64, return_tensors="pt")
    eos = list(range(3, len(tok) - 20))  # all but 20 ordinary tokens end the response
    torch.manual_seed(0)
    out = model.generate(**enc, **sampling_kwargs({
        "do_sample": True, "top_k": 0, "top_p": 1.0, "temperature": 1.0, "min_new_tokens": 3,
        "max_new_tokens": 8, "eos_token_id": eos, "pad_token_id": tok.pad_token_id}))
    new = out[:, enc.input_ids.size(1):]
    is_eos = torch.isin(new, torch.tensor(eos))
    assert not is_eos[:, :3].any()  # never before min_new_tokens
    assert is_eos[:, 3].float().mean() > 0.8  # and almost always right after


def test_trainer_rollouts_use_the_configured_sampler(tiny_models, tmp_path):
    from ppo_helpers import PROMPTS, LetterJudge, make_config

    from rlaif.ppo.trainer import PPOTrainer

    for sampler, sampled_by_hf in (("inverse_cdf", False), ("multinomial", True)):
        config = make_config(tiny_models["gpt2"], tmp_path / sampler, f"generation.sampler={sampler}",
                             "generation.top_p=0.9")
        trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
        kwargs = trainer.gen_kwargs
        assert kwargs["do_sample"] is sampled_by_hf
        assert ("top_p" in kwargs) is sampled_by_hf  # else inside the InverseCDFSampler
        assert any(isinstance(p, InverseCDFSampler)
                   for p in kwargs.get("logits_processor", [])) is not sampled_by_hf
        m = trainer.step(PROMPTS)
        assert 4 <= m["response/length"] <= 6 and m["reward/scored"] == 4
