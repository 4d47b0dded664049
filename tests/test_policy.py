"""PolicyWithValueHead on the tiny GPT-2 and T5: logprobs vs manual HF forwards, LoRA, reference, save/load."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from rlaif.config import LoraSettings
from rlaif.models.logprobs import response_forward
from rlaif.models.lora import default_lora_targets
from rlaif.ppo.policy import PolicyWithValueHead, trim_padding

QUERIES = ["Human: hi", "Human: How do I bake bread? Assistant:"]


def _batch(path, seed=0, response_len=5):
    """Left-padded (GPT-2) / right-padded (T5) queries and random right-padded responses."""
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(QUERIES, return_tensors="pt", padding=True)
    gen = torch.Generator().manual_seed(seed)
    # Avoid special ids (0..2) so no response token is an EOS/pad by accident.
    response_ids = torch.randint(3, len(tok), (2, response_len), generator=gen)
    response_mask = torch.ones_like(response_ids)
    response_mask[1, 3:] = 0  # second response is 3 tokens long
    response_ids[1, 3:] = tok.pad_token_id
    return enc.input_ids, enc.attention_mask, response_ids, response_mask


def _manual(hf_model, policy, q, r, is_seq2seq):
    """Logprobs and values of one unpadded example, straight from the HF model."""
    with torch.no_grad():
        if is_seq2seq:
            start = torch.tensor([[hf_model.config.decoder_start_token_id]])
            out = hf_model(input_ids=q[None], decoder_input_ids=torch.cat([start, r[None, :-1]], 1),
                           output_hidden_states=True)
            logits, hidden = out.logits[0], out.decoder_hidden_states[-1][0]
        else:
            out = hf_model(input_ids=torch.cat([q, r])[None], output_hidden_states=True)
            logits = out.logits[0, len(q) - 1:-1]
            hidden = out.hidden_states[-1][0, len(q) - 1:-1]
        logprobs = torch.log_softmax(logits, -1).gather(-1, r[:, None]).squeeze(-1)
        values = policy.value_head(hidden).squeeze(-1)
    return logprobs, values


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_forward_response_matches_manual_forward_with_and_without_padding(tiny_models, arch):
    path = tiny_models[arch]
    policy = PolicyWithValueHead.from_pretrained(str(path))
    is_seq2seq = arch == "t5"
    assert policy.is_seq2seq is is_seq2seq and not policy.uses_lora
    auto = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
    hf_model = auto.from_pretrained(path).eval()
    query_ids, query_mask, response_ids, response_mask = _batch(path)
    batched = policy.forward_response(query_ids, query_mask, response_ids, response_mask)
    assert batched.logprobs.shape == batched.values.shape == batched.entropy.shape == (2, 5)
    for i in range(2):
        q = query_ids[i][query_mask[i].bool()]
        r = response_ids[i][response_mask[i].bool()]
        want_logprobs, want_values = _manual(hf_model, policy, q, r, is_seq2seq)
        # The unpadded single example agrees with the manual computation to 1e-5 ...
        single = policy.forward_response(q[None], torch.ones_like(q)[None], r[None], torch.ones_like(r)[None])
        torch.testing.assert_close(single.logprobs[0], want_logprobs, atol=1e-5, rtol=0)
        torch.testing.assert_close(single.values[0], want_values, atol=1e-5, rtol=0)
        # ... and padding (left in queries for GPT-2, right in responses) changes nothing.
        n = len(r)
        torch.testing.assert_close(batched.logprobs[i, :n], want_logprobs, atol=1e-4, rtol=0)
        torch.testing.assert_close(batched.values[i, :n], want_values, atol=1e-4, rtol=0)


def test_temperature_divides_logits_and_reference_has_no_values(tiny_models):
    policy = PolicyWithValueHead.from_pretrained(str(tiny_models["gpt2"]))
    query_ids, query_mask, response_ids, response_mask = _batch(tiny_models["gpt2"])
    plain = policy.forward_response(query_ids, query_mask, response_ids, response_mask)
    hot = policy.forward_response(query_ids, query_mask, response_ids, response_mask, temperature=2.0)
    with torch.no_grad():  # the logits the policy's forward divides by the temperature
        logits, _ = response_forward(policy.model, query_ids, query_mask, response_ids, response_mask)
    want = torch.log_softmax(logits / 2.0, -1).gather(-1, response_ids[..., None]).squeeze(-1)
    torch.testing.assert_close(hot.logprobs, want, atol=1e-5, rtol=0)
    ref = policy.forward_response(query_ids, query_mask, response_ids, response_mask, reference=True)
    assert ref.values is None and not ref.logprobs.requires_grad
    # Before any training the frozen copy and the policy agree exactly.
    torch.testing.assert_close(ref.logprobs, plain.logprobs.detach())


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_columns_padded_in_every_row_are_trimmed_and_change_nothing(tiny_models, arch):
    path = tiny_models[arch]
    policy = PolicyWithValueHead.from_pretrained(str(path))
    query_ids, query_mask, response_ids, response_mask = _batch(path)
    pad = AutoTokenizer.from_pretrained(path).pad_token_id
    # Two extra query columns of padding on the padding side, two response columns at the end.
    q_pad = torch.full((2, 2), pad)
    wide_q = torch.cat([query_ids, q_pad], 1) if arch == "t5" else torch.cat([q_pad, query_ids], 1)
    wide_qm = (torch.cat([query_mask, torch.zeros_like(q_pad)], 1) if arch == "t5"
               else torch.cat([torch.zeros_like(q_pad), query_mask], 1))
    wide_r = torch.cat([response_ids, torch.full((2, 2), pad)], 1)
    wide_rm = torch.cat([response_mask, torch.zeros(2, 2, dtype=response_mask.dtype)], 1)
    trimmed = trim_padding(wide_q, wide_qm, wide_r, wide_rm)
    for got, want in zip(trimmed, (query_ids, query_mask, response_ids, response_mask)):
        assert torch.equal(got, want)
    narrow = policy.forward_response(query_ids, query_mask, response_ids, response_mask)
    wide = policy.forward_response(wide_q, wide_qm, wide_r, wide_rm)
    assert wide.logprobs.shape == wide.values.shape == wide.entropy.shape == (2, 7)
    torch.testing.assert_close(wide.logprobs[:, :5], narrow.logprobs)
    torch.testing.assert_close(wide.values[:, :5], narrow.values)
    assert torch.equal(wide.logprobs[:, 5:], torch.zeros(2, 2))  # padded back with zeros
    # A response column that is real in only one row is kept.
    _, _, r, _ = trim_padding(query_ids, query_mask, response_ids, response_mask)
    assert r.shape == (2, 5)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_generate_returns_only_the_response(tiny_models, arch):
    path = tiny_models[arch]
    policy = PolicyWithValueHead.from_pretrained(str(path))
    query_ids, query_mask, _, _ = _batch(path)
    response, states = policy.generate_with_states(query_ids, query_mask, capture=False,
                                                   max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert states is None
    full = policy.model.generate(input_ids=query_ids, attention_mask=query_mask, max_new_tokens=4,
                                 min_new_tokens=4, do_sample=False, pad_token_id=policy.config.pad_token_id)
    assert response.shape == (2, 4)
    strip = 1 if arch == "t5" else query_ids.size(1)  # decoder_start or the query
    assert torch.equal(response, full[:, strip:])


def test_default_lora_targets():
    assert default_lora_targets("gpt2") == ["c_attn", "c_proj"]
    assert default_lora_targets("t5") == ["q", "v"]
    assert default_lora_targets("llama") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert default_lora_targets("bloom") == ["query_key_value"]  # peft's mapping as fallback
    with pytest.raises(ValueError, match="set lora.target_modules"):
        default_lora_targets("my-own-arch")
    with pytest.raises(ValueError, match="extra"):
        LoraSettings(rank=8)


def _numel(params):
    return sum(p.numel() for p in params)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_lora_reference_is_the_base_model_without_a_second_copy(tiny_models, arch):
    path = tiny_models[arch]
    auto = AutoModelForSeq2SeqLM if arch == "t5" else AutoModelForCausalLM
    base = auto.from_pretrained(path).eval()
    policy = PolicyWithValueHead.from_pretrained(str(path), lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    assert policy.uses_lora and policy.ref_model is None
    trainable = dict((n, p) for n, p in policy.named_parameters() if p.requires_grad)
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert len(policy.trainable_parameters()) == len(trainable)
    # Memory: the policy holds the base weights once, plus LoRA and the value head.
    ptrs = {p.data_ptr() for p in policy.parameters()}
    assert len(ptrs) == len(list(policy.parameters()))
    assert _numel(policy.parameters()) == _numel(base.parameters()) + _numel(trainable.values())
    full = PolicyWithValueHead.from_pretrained(str(path))
    assert _numel(full.parameters()) == 2 * _numel(base.parameters()) + _numel(full.value_head.parameters())

    query_ids, query_mask, response_ids, response_mask = _batch(path)
    args = (query_ids, query_mask, response_ids, response_mask)
    ref_before = policy.forward_response(*args, reference=True).logprobs
    for i in range(2):
        q, r = query_ids[i][query_mask[i].bool()], response_ids[i][response_mask[i].bool()]
        want, _ = _manual(base, policy, q, r, arch == "t5")
        torch.testing.assert_close(ref_before[i, :len(r)], want, atol=1e-4, rtol=0)

    # One optimiser step on LoRA + value head: the policy moves, the reference does not.
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=1e-2)
    out = policy.forward_response(*args)
    loss = -(out.logprobs * response_mask).sum() + (out.values ** 2).sum()
    loss.backward()
    optimizer.step()
    after = policy.forward_response(*args)
    assert (after.logprobs - out.logprobs).abs().max() > 1e-3
    torch.testing.assert_close(policy.forward_response(*args, reference=True).logprobs, ref_before,
                               atol=0, rtol=0)


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4, alpha=8, dropout=0.0)], ids=["full", "lora"])
def test_save_load_round_trip(tiny_models, tmp_path, lora):
    path = tiny_models["gpt2"]
    policy = PolicyWithValueHead.from_pretrained(str(path), lora=lora)
    args = _batch(path)
    ref_before = policy.forward_response(*args, reference=True).logprobs
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=1e-2)
    out = policy.forward_response(*args)
    (-(out.logprobs * args[3]).sum() + (out.values ** 2).sum()).backward()
    optimizer.step()
    with torch.no_grad():
        want = policy.forward_response(*args)
    policy.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / ("adapter" if lora else "model")).is_dir()
    assert (tmp_path / "ckpt" / "value_head.pt").is_file()

    loaded = PolicyWithValueHead.load(tmp_path / "ckpt")
    assert loaded.uses_lora == (lora is not None) and loaded.lora == lora
    got = loaded.forward_response(*args)
    torch.testing.assert_close(got.logprobs, want.logprobs, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.values, want.values, atol=1e-6, rtol=0)
    assert (got.logprobs - ref_before).abs().max() > 1e-3  # it really is the trained policy
    # The reference after loading is still the untrained base model, not the trained weights.
    torch.testing.assert_close(loaded.forward_response(*args, reference=True).logprobs, ref_before,
                               atol=1e-6, rtol=0)
    # Only the trainable parameters are trainable again (LoRA must come back trainable).
    assert _numel(loaded.trainable_parameters()) == _numel(policy.trainable_parameters())


def test_load_errors_and_policy_without_reference(tiny_models, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a policy saved"):
        PolicyWithValueHead.load(tmp_path)
    policy = PolicyWithValueHead.from_pretrained(str(tiny_models["gpt2"]))
    policy.save(tmp_path / "p")
    bare = PolicyWithValueHead.load(tmp_path / "p", with_reference=False)
    assert bare.ref_model is None
    with pytest.raises(RuntimeError, match="with_reference=False"):
        bare.forward_response(*_batch(tiny_models["gpt2"]), reference=True)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_models):
    path = str(tiny_models["gpt2"])
    args = _batch(tiny_models["gpt2"])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        policy = PolicyWithValueHead.from_pretrained(path, gradient_checkpointing=checkpointing)
        policy.train()
        assert policy.base_model().is_activation_checkpointing is checkpointing
        assert not policy.ref_model.training  # the frozen copy stays in eval mode
        out = policy.forward_response(*args)
        (out.logprobs.sum() + out.values.sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_output_embeddings_get_a_contiguous_input_once(tiny_models):
    """transformers hands lm_head a non-contiguous slice; the policy's pre-hook copies it so
    F.linear runs one matmul, and gives the same numbers as the slice itself."""
    from rlaif.models.patches import install_contiguous_head_hook

    policy = PolicyWithValueHead.from_pretrained(str(tiny_models["gpt2"]))
    heads = [policy.base_model().get_output_embeddings(), policy.ref_model.get_output_embeddings()]
    assert heads[0] is not heads[1]  # the policy's and the frozen copy's
    seen = []
    for head in heads:
        head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous()))
    hidden = torch.randn(3, 5, policy.config.hidden_size)[:, 1:4]  # non-contiguous
    assert not hidden.is_contiguous()
    with torch.no_grad():
        got = [head(hidden) for head in heads]
    assert seen == [True, True]
    for head, logits in zip(heads, got):
        torch.testing.assert_close(logits, hidden @ head.weight.T, atol=1e-5, rtol=1e-5)
    # Building another policy around the same modules, or installing again, stacks no second hook.
    n_hooks = len(heads[0]._forward_pre_hooks)
    PolicyWithValueHead(policy.model, is_seq2seq=False, name_or_path="x", ref_model=policy.ref_model)
    install_contiguous_head_hook(policy.model)
    assert len(heads[0]._forward_pre_hooks) == n_hooks


def test_gelu_new_is_swapped_for_the_fused_kernel(tiny_models):
    """GPT-2 and Flan-T5 (gated-gelu) spell GELU-tanh out op by op, and autograd keeps each
    intermediate; the policy loads them with the fused kernel, the same function."""
    from transformers import T5Config, T5ForConditionalGeneration
    from transformers.activations import GELUTanh, NewGELUActivation

    from rlaif.models.patches import set_fused_activations

    path = tiny_models["gpt2"]
    original = AutoModelForCausalLM.from_pretrained(path)
    assert any(isinstance(m, NewGELUActivation) for m in original.modules())
    policy = PolicyWithValueHead.from_pretrained(str(path))
    for lm in (policy.model, policy.ref_model):
        kinds = {type(m) for m in lm.modules()}
        assert GELUTanh in kinds and NewGELUActivation not in kinds
    flan = T5Config(feed_forward_proj="gated-gelu", d_model=16, d_ff=32, d_kv=4, num_heads=2,
                    num_layers=1, vocab_size=50)
    assert flan.dense_act_fn == "gelu_new"
    set_fused_activations(flan)
    kinds = {type(m) for m in T5ForConditionalGeneration(flan).modules()}
    assert GELUTanh in kinds and NewGELUActivation not in kinds
    x = torch.randn(1000) * 4
    torch.testing.assert_close(GELUTanh()(x), NewGELUActivation()(x), atol=1e-6, rtol=1e-6)
