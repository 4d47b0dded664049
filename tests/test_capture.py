"""Rollout logprobs and values from generation's own hidden states (`ppo.rollout_logprobs`):
equal to a full forward pass to float rounding, refused where logits are not lm_head(hidden)."""

from __future__ import annotations

import pytest
import torch
from ppo_helpers import PROMPTS, LetterJudge, make_config, one_thread  # noqa: F401
from transformers import AutoTokenizer, LlamaConfig, T5Config

from rlaif.config import LoraSettings
from rlaif.models.generate import truncate_response
from rlaif.ppo.capture import capture_unsupported_reason, stack_states
from rlaif.ppo.policy import PolicyWithValueHead
from rlaif.ppo.trainer import PPOTrainer

pytestmark = pytest.mark.usefixtures("one_thread")
QUERIES = ["Human: hi", "Human: How do I bake bread? Assistant:", "Human: why is the sky blue?"]


def _generate_and_score(path, lora, temperature):
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    policy = PolicyWithValueHead.from_pretrained(str(path), lora=lora).eval()
    enc = tok(QUERIES, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    raw, states = policy.generate_with_states(
        enc.input_ids, enc.attention_mask, max_new_tokens=10, min_new_tokens=10, do_sample=True,
        top_k=0, top_p=1.0, temperature=temperature, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, use_cache=True)
    assert states.shape == (3, 10, policy.config.hidden_size)
    # Truncate at an "EOS" inside the second response: the scored positions up to it keep the
    # states that generated them, and everything after it is padding.
    response_ids, response_mask = truncate_response(raw, [int(raw[1, 4])], tok.pad_token_id)
    assert int(response_mask[1].sum()) <= 5
    with torch.no_grad():
        captured = policy.score_states(states, response_ids, temperature=temperature)
        full = policy.forward_response(enc.input_ids, enc.attention_mask, response_ids,
                                       response_mask, temperature=temperature)
    return captured, full, response_mask.bool()


@pytest.mark.parametrize("arch, lora", [("gpt2", None), ("gpt2", LoraSettings(r=4, alpha=8)),
                                        ("llama", None)])
def test_captured_states_score_like_a_full_forward(tiny_models, tiny_llama, arch, lora):
    path = tiny_llama if arch == "llama" else tiny_models["gpt2"]
    captured, full, mask = _generate_and_score(path, lora, temperature=0.7)
    for name in ("logprobs", "values", "entropy"):
        got, want = getattr(captured, name)[mask], getattr(full, name)[mask]
        assert want.abs().max() > 1e-3  # real numbers, not zeros agreeing with zeros
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5, msg=name)


def test_architectures_that_transform_logits_are_refused(tiny_models):
    from transformers import AutoConfig

    assert capture_unsupported_reason(AutoConfig.from_pretrained(tiny_models["gpt2"]), False) is None
    assert "seq2seq" in capture_unsupported_reason(T5Config(), is_seq2seq=True)
    softcapped = LlamaConfig(final_logit_softcapping=30.0)
    assert "final_logit_softcapping=30.0" in capture_unsupported_reason(softcapped, False)
    unknown = LlamaConfig()
    unknown.model_type = "my-own-arch"
    assert "'my-own-arch'" in capture_unsupported_reason(unknown, False)


def test_each_token_needs_one_forward_call():
    states = [torch.zeros(2, 1, 4)] * 3
    assert stack_states(states, 3).shape == (2, 3, 4)
    with pytest.raises(RuntimeError, match="3 forward calls for 4 new tokens.*rollout_logprobs=forward"):
        stack_states(states, 4)


def test_generate_mode_on_a_seq2seq_policy_names_the_option(tiny_models, tmp_path):
    config = make_config(tiny_models["t5"], tmp_path / "run", "ppo.rollout_logprobs=generate")
    with pytest.raises(ValueError, match="ppo.rollout_logprobs=generate cannot be used: seq2seq"):
        PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)


def test_generate_and_forward_modes_train_alike(tiny_models, tmp_path):
    """Same seed, same samples: the two modes differ only by float rounding, step after step."""
    runs = {}
    for mode in ("generate", "forward"):
        config = make_config(tiny_models["gpt2"], tmp_path / mode, f"ppo.rollout_logprobs={mode}")
        trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
        assert trainer.capture_states is (mode == "generate")
        runs[mode] = [trainer.step(PROMPTS) for _ in range(3)]
    assert runs["forward"][0]["objective/kl"] == 0.0  # bit-exact: policy == reference at step 1
    for got, want in zip(runs["generate"], runs["forward"]):
        assert got["reward/mean"] == want["reward/mean"]  # the very same responses
        for key in ("objective/kl", "objective/entropy", "ppo/policy/approxkl", "ppo/loss/value"):
            assert got[key] == pytest.approx(want[key], abs=1e-4), key
