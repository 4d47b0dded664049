"""The model layer: checkpoint resolution, loading a saved policy without rlaif.ppo, tokenizer
preparation on a copy, and the one EOS rule (generation and training cut responses alike)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from rlaif.models.generate import cut_at_eos, eos_token_ids, generate, truncate_response
from rlaif.models.load import load_lm, load_model, prepare_tokenizer, resolve_checkpoint

ROOT = Path(__file__).resolve().parent.parent
GREEDY = {"do_sample": False, "top_k": None, "top_p": None, "max_new_tokens": 6}
PROMPTS = ["Human: hello there. Assistant:", "Human: Tell me a joke. Assistant:"]


@pytest.mark.parametrize(
    "ids, eos, pad, want_ids, want_mask",
    [
        # EOS in the middle: it stays valid, everything after becomes pad
        ([[5, 6, 2, 7, 8]], 2, 0, [[5, 6, 2, 0, 0]], [[1, 1, 1, 0, 0]]),
        # no EOS: nothing changes
        ([[5, 6, 7]], 2, 0, [[5, 6, 7]], [[1, 1, 1]]),
        # EOS first: a one-token response
        ([[2, 6, 7]], 2, 0, [[2, 0, 0]], [[1, 0, 0]]),
        # GPT-2: eos == pad, generation already padded with it after the EOS
        ([[5, 9, 9, 9]], 9, 9, [[5, 9, 9, 9]], [[1, 1, 0, 0]]),
        # several EOS ids (Llama 3): the first of any counts
        ([[5, 4, 6, 3]], [3, 4], 0, [[5, 4, 0, 0]], [[1, 1, 0, 0]]),
        # rows are independent
        ([[2, 5], [5, 2]], 2, 0, [[2, 0], [5, 2]], [[1, 0], [1, 1]]),
    ],
)
def test_truncate_response(ids, eos, pad, want_ids, want_mask):
    got_ids, got_mask = truncate_response(torch.tensor(ids), eos, pad)
    assert got_ids.tolist() == want_ids and got_mask.tolist() == want_mask


@pytest.mark.parametrize("ids, eos, want", [
    ([5, 6, 2, 7], {2}, [5, 6, 2]),   # cut after the first EOS, which stays
    ([5, 6, 7], {2}, [5, 6, 7]),      # no EOS: unchanged
    ([5, 4, 3, 3], {3, 4}, [5, 4]),   # several EOS ids: the first of any
    ([], {2}, []),
])
def test_cut_at_eos(ids, eos, want):
    assert cut_at_eos(ids, eos) == want
    # The list rule and the tensor rule agree on where a response ends.
    if ids:
        _, mask = truncate_response(torch.tensor([ids]), eos, 0)
        assert int(mask.sum()) == len(want)


def test_eos_token_ids_take_every_declared_id(tiny_models):
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    assert eos_token_ids(lm, tok) == {tok.eos_token_id}
    lm.generation_config.eos_token_id = [7, 9]  # Llama 3 style: a list, every one ends a response
    assert eos_token_ids(lm, tok) == {7, 9, tok.eos_token_id}


def test_prepare_tokenizer_works_on_a_copy(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["t5"])
    tok.padding_side = "left"
    prepared = prepare_tokenizer(tok, is_seq2seq=True)
    assert prepared is not tok and prepared.padding_side == "right" and tok.padding_side == "left"
    gpt2 = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    gpt2.pad_token = None
    gpt2.padding_side = "right"
    prepared = prepare_tokenizer(gpt2, is_seq2seq=False)
    assert prepared.pad_token_id == gpt2.eos_token_id and prepared.padding_side == "left"
    assert gpt2.pad_token is None and gpt2.padding_side == "right"  # the caller's is untouched


def test_generate_leaves_the_callers_tokenizer_alone(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    tok.padding_side, tok.truncation_side = "right", "right"
    gen = generate(tiny_models["gpt2"], tok, PROMPTS, gen_kwargs=GREEDY, progress=False)
    assert (tok.padding_side, tok.truncation_side) == ("right", "right")
    assert gen.tokenizer is not tok and len(gen.texts) == 2


def test_resolve_checkpoint_finds_the_policy_folder(tmp_path):
    run = tmp_path / "run"
    policy = run / "checkpoints" / "step-3" / "policy"
    policy.mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text("step-3\n")
    assert resolve_checkpoint(run) == policy  # a run folder: its latest checkpoint's policy
    assert resolve_checkpoint(run / "checkpoints" / "step-3") == policy  # a step-N folder
    assert resolve_checkpoint(tmp_path) == tmp_path  # anything else: itself
    (run / "checkpoints" / "latest").write_text("step-9\n")
    with pytest.raises(FileNotFoundError, match="checkpoints/latest names no checkpoint.*step-3"):
        resolve_checkpoint(run)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_a_saved_policy_loads_without_importing_rlaif_ppo(tiny_models, tmp_path, lora):
    from rlaif.config import LoraSettings
    from rlaif.ppo.policy import PolicyWithValueHead

    policy = PolicyWithValueHead.from_pretrained(str(tiny_models["gpt2"]),
                                                 lora=LoraSettings(r=4, alpha=8) if lora else None)
    with torch.no_grad():  # move the weights off the base model so the load is checked
        for name, p in policy.model.named_parameters():
            if p.requires_grad and ("lora_B" in name or not lora):
                p.add_(0.05)
    run = tmp_path / "run"
    policy.save(run / "checkpoints" / "step-1" / "policy")
    (run / "checkpoints" / "latest").write_text("step-1\n")
    code = (
        "import sys; from rlaif.models.load import load_lm; "
        f"lm, tok, s2s = load_lm({str(run)!r}, device='cpu'); "
        "assert 'rlaif.ppo' not in sys.modules, sorted(m for m in sys.modules if m.startswith('rlaif'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lm = load_model(run, device="cpu")
    policy.eval()  # no LoRA dropout in the comparison
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(lm(input_ids=ids).logits, policy.model(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)
    _, tok, is_seq2seq = load_lm(run, device="cpu")
    assert not is_seq2seq and tok.eos_token_id is not None


@pytest.mark.parametrize("ref, message", [
    ("/no/such/model", "no such file or folder"),            # an absolute path that is not there
    ("./models/mine", "no such file or folder"),             # a relative one
    ("weights/smol.gguf", "no such file or folder"),         # a GGUF file that is not there
    ("someone/some-model", "the hub is off"),                # a hub id while offline (tests run so)
])
def test_a_model_that_cannot_load_is_one_clear_error(ref, message):
    from rlaif.models.load import load_model

    with pytest.raises(FileNotFoundError, match=message):
        load_model(ref)


def test_train_with_a_missing_model_path_is_a_message_not_a_traceback(tmp_path, capsys):
    from pathlib import Path

    from rlaif.cli import main

    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    assert main(["train", str(config), "model.name_or_path=/no/such/model", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "rlaif train: error: model '/no/such/model': no such file or folder" in err
    assert "Traceback" not in err
