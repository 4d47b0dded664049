"""Generation for evaluation: seeded, batched, left-padded, from any model reference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from dialogues import GREEDY
from dialogues import HOLDOUT_PROMPTS as PROMPTS

from rlaif.evaluation.holdout import DEFAULT_GEN_KWARGS
from rlaif.models.generate import generate


def generate_responses(model, tokenizer, prompts, *, gen_kwargs=None, **kw):
    """The responses the hold-out evaluation generates (its default sampling settings)."""
    return generate(model, tokenizer, prompts, gen_kwargs={**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})},
                    **kw).texts


def test_generate_same_seed_same_responses_and_rng_untouched(tiny_models):
    import torch

    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    kw = dict(gen_kwargs={"max_new_tokens": 8}, batch_size=2, progress=False)
    a = generate_responses(tiny_models["gpt2"], None, PROMPTS, seed=5, **kw)
    assert torch.equal(torch.rand(3), expected_next)  # caller's RNG stream is not disturbed
    b = generate_responses(tiny_models["gpt2"], None, PROMPTS, seed=5, **kw)
    c = generate_responses(tiny_models["gpt2"], None, PROMPTS, seed=6, **kw)
    assert a == b and len(a) == len(PROMPTS)
    assert a != c


def test_generate_causal_strips_prompt_and_matches_single_forward(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    got = generate_responses(model, tok, PROMPTS, gen_kwargs=GREEDY, seed=0, batch_size=8, progress=False)
    for prompt, response in zip(PROMPTS, got):
        enc = tok(prompt, return_tensors="pt")
        ids = model.generate(**enc, **GREEDY, pad_token_id=tok.pad_token_id)
        alone = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        assert response == alone  # left padding in a batch changes nothing


def test_generate_seq2seq(tiny_models):
    got = generate_responses(tiny_models["t5"], None, PROMPTS[:3], gen_kwargs=GREEDY, seed=0, progress=False)
    again = generate_responses(tiny_models["t5"], None, PROMPTS[:3], gen_kwargs=GREEDY, seed=1, progress=False)
    assert got == again and len(got) == 3 and all(isinstance(r, str) for r in got)


def test_generate_from_ppo_run_folder_and_policy(tiny_models, tmp_path):
    from rlaif.config import LoraSettings
    from rlaif.ppo.policy import PolicyWithValueHead

    base = generate_responses(tiny_models["gpt2"], None, PROMPTS, gen_kwargs=GREEDY, seed=0, progress=False)
    for lora in (None, LoraSettings()):
        policy = PolicyWithValueHead.from_pretrained(str(tiny_models["gpt2"]), lora=lora)
        run = tmp_path / ("lora" if lora else "full")
        policy.save(run / "checkpoints" / "step-3" / "policy")
        (run / "checkpoints" / "latest").write_text("step-3\n")
        # untrained policy (LoRA B = 0) generates exactly what the base model does
        from_run = generate_responses(run, None, PROMPTS, gen_kwargs=GREEDY, seed=0, progress=False)
        from_obj = generate_responses(policy, str(tiny_models["gpt2"]), PROMPTS, gen_kwargs=GREEDY,
                                      seed=0, progress=False)
        # as the trainer may hold it: inside a DDP-style wrapper (`.module`)
        from_ddp = generate_responses(SimpleNamespace(module=policy), str(tiny_models["gpt2"]), PROMPTS,
                                      gen_kwargs=GREEDY, seed=0, progress=False)
        assert from_run == base and from_obj == base and from_ddp == base
    with pytest.raises(FileNotFoundError, match="checkpoints/latest"):
        (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
        generate_responses(tmp_path / "empty", None, PROMPTS, seed=0, progress=False)


