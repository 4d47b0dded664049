"""GGUF models: a tiny Llama written with the `gguf` package's writer loads back through every
model argument (dequantised, a plain model), generates, saves as safetensors, and a LoRA run on
it checkpoints and reloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from ppo_helpers import LetterJudge, make_config, one_thread  # noqa: F401

from rlaif.models.generate import generate
from rlaif.models.gguf import find_gguf
from rlaif.models.load import load_base_model, load_lm, load_model, load_tokenizer
from rlaif.models.tiny import LlamaSettings, build_llama, write_llama_gguf
from rlaif.testing.tiny import DEFAULT_CORPUS

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = LlamaSettings(vocab_size=320, context_length=128, hidden_size=32, intermediate_size=64,
                         num_layers=2, num_heads=4, num_kv_heads=2, seed=0)
SENTENCE = "Human: What is the capital of France? Assistant: Paris, I think."
PROMPTS = ["\n\nHuman: Tell me a joke.\n\nAssistant:", "\n\nHuman: Hi!\n\nAssistant:"] * 2


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """(folder holding tiny.gguf, the Llama model written, its tokenizer)."""
    folder = tmp_path_factory.mktemp("gguf")
    model, tokenizer = build_llama(DEFAULT_CORPUS * 4, SETTINGS)
    write_llama_gguf(folder / "tiny.gguf", model, tokenizer)
    return folder, model, tokenizer


def test_gguf_loads_as_the_model_written(written) -> None:
    folder, model, tokenizer = written
    lm = load_model(folder / "tiny.gguf", device="cpu")
    cfg = lm.config
    assert type(lm).__name__ == "LlamaForCausalLM" and cfg.tie_word_embeddings
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.vocab_size) == (2, 32, 64, 4, 2, len(tokenizer))
    assert lm.dtype == torch.float32 and not getattr(lm, "is_quantized", False)
    assert getattr(lm, "hf_quantizer", None) is None and cfg.name_or_path == str(folder / "tiny.gguf")
    written_state = model.state_dict()
    for name, tensor in lm.state_dict().items():  # q/k rows come back in transformers' order
        torch.testing.assert_close(tensor, written_state[name], rtol=0, atol=1e-6, msg=name)
    # the tokenizer rebuilt from the metadata: the same ids, the same text, the chat template
    tok = load_tokenizer(folder)  # a folder holding one .gguf file
    assert tok(SENTENCE)["input_ids"] == tokenizer(SENTENCE)["input_ids"]
    assert tok.decode(tok(SENTENCE)["input_ids"]) == SENTENCE
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert tok.chat_template == tokenizer.chat_template
    assert tok.model_max_length > 1e6  # unset in a GGUF file: generation caps it


def test_gguf_generates_and_saves_as_a_plain_model(written, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    folder, _, _ = written
    lm, tok, seq2seq = load_lm(folder / "tiny.gguf", device="cpu")
    gen = generate(lm, tok, PROMPTS, gen_kwargs={"max_new_tokens": 6, "do_sample": True},
                   chat=True, progress=False)
    assert not seq2seq and all(0 < len(r) <= 6 for r in gen.response_ids)
    assert all("<|im_" not in text for text in gen.texts)
    lm.save_pretrained(tmp_path / "saved")  # refused while the model carries the quantizer marker
    assert (tmp_path / "saved" / "model.safetensors").is_file()
    assert "quantization_config" not in (tmp_path / "saved" / "config.json").read_text()
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    ids = torch.tensor([tok(SENTENCE)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, lm(ids).logits, rtol=1e-5, atol=1e-5)


def test_gguf_folder_with_two_files_is_refused(written, tmp_path) -> None:
    folder, _, _ = written
    shutil.copy(folder / "tiny.gguf", tmp_path / "a.gguf")
    shutil.copy(folder / "tiny.gguf", tmp_path / "b.gguf")
    with pytest.raises(ValueError, match=r"2 GGUF files \(a\.gguf, b\.gguf\)"):
        load_model(tmp_path)
    assert find_gguf(tmp_path / "b.gguf").name == "b.gguf"  # naming the file resolves it
    with pytest.raises(FileNotFoundError, match="c.gguf"):
        load_base_model(str(tmp_path / "c.gguf"))


def test_lora_run_on_a_gguf_base_checkpoints_and_reloads(written, tmp_path) -> None:
    from rlaif.ppo.policy import PolicyWithValueHead
    from rlaif.ppo.trainer import PPOTrainer

    folder, _, _ = written
    config = make_config(folder / "tiny.gguf", tmp_path / "run", "data.task=chat", "ppo.steps=1",
                         "model.lora.r=4")
    result = PPOTrainer.build(config, PROMPTS, judge=LetterJudge()).train()
    meta = (result.checkpoint / "policy" / "policy.json").read_text()
    assert str(folder / "tiny.gguf") in meta  # the base is the GGUF file
    policy = PolicyWithValueHead.load(result.checkpoint / "policy").eval()  # eval: no LoRA dropout
    lm = load_model(tmp_path / "run", device="cpu")  # the run folder: adapter on the GGUF base
    tok = load_tokenizer(tmp_path / "run")  # found through policy.json's base
    ids = torch.tensor([tok(SENTENCE)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits, policy.model(ids).logits, rtol=1e-5, atol=1e-5)


def test_a_truncated_gguf_and_an_empty_folder_say_what_is_wrong(written, tmp_path) -> None:
    """#21: both used to end in "no tokenizer found ... Pass tokenizer=" (or a traceback)."""
    from rlaif.models.gguf import GGUFUnreadable
    from rlaif.models.load import load_tokenizer

    folder, _, _ = written
    data = (folder / "tiny.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(GGUFUnreadable, match=r"cut.gguf: not a readable GGUF file.*truncated or damaged"):
        load_tokenizer(cut)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"model folder .*empty is empty"):
        load_tokenizer(tmp_path / "empty")
