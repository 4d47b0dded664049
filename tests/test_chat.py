"""Chat prompts (`data.task: chat`): HH turns -> messages -> the tokenizer's own template, for the
policy only; judges see the plain dialogue and the reply text. And generation stops at every EOS id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ppo_helpers import LetterJudge, make_config, one_thread  # noqa: F401

from rlaif.data.chat import (
    ChatTemplateError,
    chat_messages,
    encode_prompts,
    render_chat,
)
from rlaif.data.hh import HHFormatError
from rlaif.data.prompts import filter_by_length
from rlaif.models.generate import generate, tokenize_queries
from rlaif.models.tiny import CHATML_TEMPLATE

pytestmark = pytest.mark.usefixtures("one_thread")
DIALOGUE = "\n\nHuman: Hi!\n\nAssistant: Hello.\n\nHuman: Tell me a joke.\n\nAssistant:"
# One id per word; the template's special tokens first; <s> is the BOS the template writes.
WORDS = ["<unk>", "<s>", "<|im_start|>", "<|im_end|>", "system", "user", "assistant", "Hi!",
         "Hello.", "Tell", "me", "a", "joke.", "Be", "kind."]
S, START, END, SYSTEM, USER, ASSISTANT = 1, 2, 3, 4, 5, 6
HI, HELLO, TELL, ME, A, JOKE, BE, KIND = 7, 8, 9, 10, 11, 12, 13, 14
CHAT_SPECIALS = ["<|im_start|>", "<|im_end|>"]


def word_tokenizer():
    """A word-level tokenizer (ids = positions in WORDS) that adds <s> itself, and a ChatML
    template that writes <s> too (as Llama 3's writes <|begin_of_text|>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", S)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<unk>", padding_side="left",
                                  chat_template="{{ bos_token }}" + CHATML_TEMPLATE)
    tok.add_special_tokens({"additional_special_tokens": CHAT_SPECIALS})
    return tok


def test_chat_messages_from_hh_turns() -> None:
    assert chat_messages(DIALOGUE) == [
        {"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Tell me a joke."}]
    assert chat_messages("\n\nHuman: Hi!\n\nAssistant:", "Be kind.") == [
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi!"}]
    # a whole transcript is not a prompt: the final reply would be fed to the policy as given
    with pytest.raises(HHFormatError, match="ends with an Assistant reply"):
        chat_messages("\n\nHuman: Hi!\n\nAssistant: Hello.")
    with pytest.raises(HHFormatError, match="missing 'Human:' marker"):
        chat_messages("Summarize the following conversation.\n\nHuman: Hi!\n\nSummary:")


@pytest.mark.parametrize("system, ids", [
    # <s> once (written by the template; add_special_tokens=False keeps the tokenizer's own off)
    (None, [S, START, USER, HI, END, START, ASSISTANT, HELLO, END, START, USER, TELL, ME, A, JOKE,
            END, START, ASSISTANT]),
    ("Be kind.", [S, START, SYSTEM, BE, KIND, END, START, USER, HI, END, START, ASSISTANT, HELLO,
                  END, START, USER, TELL, ME, A, JOKE, END, START, ASSISTANT]),
])
def test_rendered_two_turn_dialogue_exact_ids(system: str | None, ids: list[int]) -> None:
    tok = word_tokenizer()
    text = render_chat(tok, DIALOGUE, system)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")  # the generation prompt
    assert encode_prompts(tok, [DIALOGUE], chat=True, system_prompt=system)["input_ids"] == [ids]
    query_ids, mask = tokenize_queries(tok, [DIALOGUE], 64, "cpu", chat=True, system_prompt=system)
    assert query_ids.tolist() == [ids] and mask.tolist() == [[1] * len(ids)]
    # the length filter counts what the policy gets
    assert filter_by_length([DIALOGUE], tok, max_tokens=len(ids), chat=True, system_prompt=system) == [0]
    assert filter_by_length([DIALOGUE], tok, max_tokens=len(ids) - 1, chat=True,
                            system_prompt=system) == []


def test_prompt_split_filters_on_the_rendered_length() -> None:
    from rlaif.config import DataConfig
    from rlaif.data.hh import load_hh
    from rlaif.data.prompts import load_prompt_split, make_prompts

    tok = word_tokenizer()
    prompts = make_prompts(load_hh("sample", split="train", limit=30), "chat")
    rendered = [len(ids) for ids in encode_prompts(tok, prompts, chat=True, system_prompt="Be kind.")["input_ids"]]
    plain = [len(ids) for ids in tok(prompts)["input_ids"]]
    limit = sorted(rendered)[len(rendered) // 2]
    data = DataConfig(task="chat", system_prompt="Be kind.", limit=30, test_size=0, max_prompt_tokens=limit)
    kept = load_prompt_split(data, tok).train
    assert kept == [p for p, n in zip(prompts, rendered) if n <= limit]
    assert kept != [p for p, n in zip(prompts, plain) if n <= limit]  # the template's tokens count


def test_missing_template_is_a_clear_error(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    with pytest.raises(ChatTemplateError, match=r"has no chat template.*data\.task=dialogue"):
        render_chat(tok, DIALOGUE)
    with pytest.raises(ChatTemplateError, match="tiny-gpt2"):  # names the model's tokenizer
        filter_by_length([DIALOGUE], tok, max_tokens=64, chat=True)
    with pytest.raises(ValueError, match="only used with chat prompts"):
        encode_prompts(tok, [DIALOGUE], system_prompt="Be kind.")


def test_system_prompt_needs_chat_task() -> None:
    from rlaif.config import DataConfig

    assert DataConfig(task="chat", system_prompt="Be kind.").system_prompt == "Be kind."
    with pytest.raises(ValueError, match="data.system_prompt is set but data.task='dialogue'"):
        DataConfig(system_prompt="Be kind.")


@pytest.fixture(scope="module")
def chat_gpt2(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT-2 with ChatML tokens and template attached; its generation config declares
    two EOS ids, <|endoftext|> and <|im_end|> (as Llama 3 declares several)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("chat-gpt2")
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    tok.add_special_tokens({"additional_special_tokens": CHAT_SPECIALS})
    tok.chat_template = CHATML_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
    model.resize_token_embeddings(len(tok))
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_generation_replies_hold_no_template_tokens(chat_gpt2: Path) -> None:
    gen = generate(chat_gpt2, None, [DIALOGUE, "\n\nHuman: Hi!\n\nAssistant:"], progress=False,
                   gen_kwargs={"max_new_tokens": 12, "min_new_tokens": 12, "do_sample": True},
                   chat=True, system_prompt="Be kind.")
    rendered = encode_prompts(gen.tokenizer, [DIALOGUE, "\n\nHuman: Hi!\n\nAssistant:"], chat=True,
                              system_prompt="Be kind.")["input_ids"]
    assert gen.prompt_ids == rendered  # the model saw the template
    for text, response_ids in zip(gen.texts, gen.response_ids):
        assert "<|im_" not in text and "Human:" not in text  # the reply is text only
        assert text == gen.tokenizer.decode(response_ids, skip_special_tokens=True).strip()


def _stop_position(seq: list[int], eos: set[int]) -> int:
    """Where to put a second EOS: the first sampled token after the first not seen before it."""
    return next(k for k in range(1, len(seq)) if seq[k] not in eos and seq[k] not in seq[:k])


def test_generation_stops_at_the_second_eos_id(chat_gpt2: Path, tmp_path: Path) -> None:
    import torch

    from rlaif.ppo.rollout import sample_responses
    from rlaif.ppo.trainer import PPOTrainer

    # Sampling (greedy decoding of the random tiny model repeats one token); the same seed
    # draws the same tokens until generation stops.
    sampled = {"max_new_tokens": 10, "min_new_tokens": 0, "do_sample": True, "top_k": 0,
               "top_p": 1.0, "temperature": 1.0}
    seq = generate(chat_gpt2, None, [DIALOGUE], gen_kwargs=sampled, seed=3, progress=False).response_ids[0]
    model = tmp_path / "two-eos"
    shutil.copytree(chat_gpt2, model)
    gen_config = json.loads((model / "generation_config.json").read_text())
    eos = set(gen_config["eos_token_id"])
    k = _stop_position(seq, eos)
    # Declare [<|endoftext|>, stop]: the model's second EOS id is the token sampled at k.
    gen_config["eos_token_id"] = [min(eos), seq[k]]
    (model / "generation_config.json").write_text(json.dumps(gen_config))
    # evaluation's path
    out = generate(model, None, [DIALOGUE], gen_kwargs=sampled, seed=3, progress=False)
    assert len(seq) > k + 1 and out.response_ids[0] == seq[:k + 1]
    # the trainer's path: every declared id is passed to generate, and cuts the response
    config = make_config(model, tmp_path / "run", "generation.min_new_tokens=0",
                         "generation.max_new_tokens=10", "generation.sampler=multinomial")
    trainer = PPOTrainer.build(config, [DIALOGUE] * 4, judge=LetterJudge())
    assert trainer.gen_kwargs["eos_token_id"] == sorted({min(eos), seq[k]})
    torch.manual_seed(3)
    batch = sample_responses(trainer.policy, trainer.tokenizer, [DIALOGUE], gen_kwargs=trainer.gen_kwargs,
                             max_prompt_tokens=64, capture=False, accelerator=trainer.accelerator)
    assert batch.response_mask.sum().item() == k + 1
    assert batch.response_ids[0, :k + 1].tolist() == seq[:k + 1]


def test_ppo_step_with_chat_prompts(chat_gpt2: Path, tmp_path: Path) -> None:
    from rlaif.ppo.trainer import PPOTrainer

    prompts = [DIALOGUE, "\n\nHuman: Hi!\n\nAssistant:", "\n\nHuman: Tell me a joke.\n\nAssistant:",
               "\n\nHuman: Hello.\n\nAssistant: Hi!\n\nHuman: Be kind.\n\nAssistant:"]
    config = make_config(chat_gpt2, tmp_path / "run", "data.task=chat", "data.system_prompt=Be kind.")
    judge = LetterJudge()
    trainer = PPOTrainer.build(config, prompts, judge=judge)
    metrics = trainer.step(prompts)
    assert metrics["step"] == 1 and metrics["reward/scored"] == 4
    (samples, _), = judge.calls
    assert [s.prompt for s in samples] == prompts  # the judge sees the plain dialogue
    assert all("<|im_" not in s.response and "Be kind." not in s.response for s in samples)
