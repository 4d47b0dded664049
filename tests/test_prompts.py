"""Prompts from HH examples: task rendering, length filter, seeded split, the prompt split, stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.config import DataConfig
from rlaif.data.hh import HHExample, load_hh, split_prompt_response
from rlaif.data.prompts import (
    PromptSplit, PromptStream, cluster_of_prompt, filter_by_length, load_prompt_split,
    load_split_clusters, load_split_prompts, make_prompts, train_test_split,
)

REPO = Path(__file__).resolve().parents[1]
T2 = "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?\n\nHuman: Tell me a joke.\n\nAssistant: Why not?"


def words_tokenizer(texts: list[str], **kwargs: object) -> dict[str, list[list[str]]]:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    assert kwargs == {"add_special_tokens": True, "truncation": False}
    return {"input_ids": [t.split() for t in texts]}


def test_make_prompts_every_task() -> None:
    example = HHExample(prompt=split_prompt_response(T2)[0], chosen="Why not?", rejected="No.")
    assert make_prompts([example], "dialogue") == [
        "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?\n\nHuman: Tell me a joke.\n\nAssistant:"
    ]
    assert make_prompts([example, "\n\nHuman: How do I boil an egg?\n\nAssistant:"], "summarize") == [
        "Summarize the following conversation.\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?"
        "\n\nHuman: Tell me a joke.\n\nSummary:",
        "Summarize the following conversation.\n\nHuman: How do I boil an egg?\n\nSummary:",
    ]
    # chat prompts stay the plain dialogue (what judges see); the template is applied when the
    # policy's input is tokenised (tests/test_chat.py)
    assert make_prompts([example], "chat") == make_prompts([example], "dialogue")
    with pytest.raises(ValueError, match="task must be 'dialogue', 'summarize' or 'chat', got 'qa'"):
        make_prompts([example], "qa")  # type: ignore[arg-type]


def test_filter_by_length(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    long_text = "Please be polite and respectful. " * 60  # far past model_max_length (128)
    texts = ["", "Hi", "How do I bake bread?", long_text]
    counts = [len(tokenizer(t)["input_ids"]) for t in texts[:3]]
    assert counts[0] == 0 and 0 < counts[1] < counts[2]
    assert filter_by_length(texts, tokenizer, max_tokens=counts[2]) == [1, 2]  # bounds inclusive
    assert filter_by_length(texts, tokenizer, max_tokens=counts[2] - 1) == [1]
    assert filter_by_length(texts, tokenizer, max_tokens=10_000, min_tokens=counts[2]) == [2, 3]
    # no truncation: the long text counts all its tokens, not model_max_length
    assert filter_by_length(texts, tokenizer, max_tokens=200, min_tokens=100) == []
    assert filter_by_length([], tokenizer, max_tokens=5) == []
    with pytest.raises(ValueError, match="min_tokens=5, max_tokens=4"):
        filter_by_length(texts, tokenizer, max_tokens=4, min_tokens=5)


def test_train_test_split_is_deterministic() -> None:
    items = [f"p{i}" for i in range(50)]
    train, test = train_test_split(items, 0.2, seed=0)
    assert (len(train), len(test)) == (40, 10)
    assert sorted(train + test) == sorted(items) and not set(train) & set(test)
    assert train == sorted(train, key=items.index)  # input order kept
    assert train_test_split(items, 0.2, seed=0) == (train, test)
    assert train_test_split(items, 0.2, seed=1)[1] != test
    assert len(train_test_split(items, 7, seed=0)[1]) == 7
    assert train_test_split(items, 0, seed=0) == (items, [])
    # another process (another hash seed) draws the same split
    code = ("from rlaif.data.prompts import train_test_split;"
            "print(train_test_split([f'p{i}' for i in range(50)], 0.2, seed=0)[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={"PYTHONHASHSEED": "7", "PATH": ""}).stdout
    assert out.strip() == repr(test)


@pytest.mark.parametrize("size, message", [
    (1.0, "test_size=1.0 as a fraction must lie in (0, 1)"),
    (-0.1, "must lie in (0, 1)"),
    (51, "asks for 51 test items out of 50"),
    ("10", "test_size must be a float in (0, 1) or an int count, got '10'"),
])
def test_train_test_split_rejects(size: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_test_split(list(range(50)), size, seed=0)  # type: ignore[arg-type]


def test_load_prompt_split_on_the_sample() -> None:
    data = DataConfig(source="sample", split="test", limit=50, max_prompt_tokens=40,
                      test_size=0.2, seed=3)
    split = load_prompt_split(data, words_tokenizer)
    # The same chain by hand: rows -> prompts -> word-count filter -> seeded split.
    prompts = make_prompts(load_hh("sample", split="test", limit=50))
    kept = [p for p in prompts if 1 <= len(p.split()) <= 40]
    assert 0 < len(kept) < len(prompts)  # the filter did something
    assert split == PromptSplit(*train_test_split(kept, 0.2, seed=3))
    assert load_prompt_split(data, words_tokenizer) == split  # seeded: the same every time
    # test_size 0: everything trains; task summarize renders the summary prompts
    whole = load_prompt_split(data.model_copy(update={"test_size": 0}), words_tokenizer)
    assert (whole.train, whole.test) == (kept, [])
    summaries = load_prompt_split(
        data.model_copy(update={"task": "summarize", "max_prompt_tokens": 1000}), words_tokenizer)
    assert all(p.startswith("Summarize the following conversation.\n\nHuman: ")
               and p.endswith("\n\nSummary:") for p in summaries.train + summaries.test)


def test_load_prompt_split_reads_skip_mode_and_local_files(tmp_path: Path) -> None:
    good = {"chosen": "\n\nHuman: a b\n\nAssistant: c", "rejected": "\n\nHuman: a b\n\nAssistant: d"}
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, {"chosen": 1}, good]))
    data = DataConfig(source=str(path), on_bad_row="skip", test_size=0)
    assert load_prompt_split(data, words_tokenizer).train == ["\n\nHuman: a b\n\nAssistant:"] * 2


def test_load_prompt_split_errors() -> None:
    data = DataConfig(source="sample", split="test", limit=20, max_prompt_tokens=2)
    with pytest.raises(ValueError, match=r"data: no prompt of 'sample' \(split 'test', task "
                       r"'dialogue'\) has between data.min_prompt_tokens=1 and "
                       r"data.max_prompt_tokens=2 tokens; widen that range"):
        load_prompt_split(data, words_tokenizer)
    tiny = DataConfig(source="sample", split="test", limit=1, test_size=0.9)
    with pytest.raises(ValueError, match=r"data.test_size=0.9 leaves no training prompt out of "
                       r"1; lower it"):
        load_prompt_split(tiny, words_tokenizer)


def test_load_split_prompts_takes_the_first_n_of_a_split(tmp_path: Path) -> None:
    first = make_prompts(load_hh("sample", split="test", limit=5), "summarize")
    assert load_split_prompts("sample", split="test", task="summarize", n=5) == first
    assert len(load_split_prompts("sample", split="test")) == 160  # n None: the whole split
    with pytest.raises(ValueError, match="n must be > 0, got 0"):
        load_split_prompts("sample", split="test", n=0)
    path = tmp_path / "bad.jsonl"
    path.write_text('{"chosen": "no markers", "rejected": "x"}\n')
    with pytest.raises(ValueError, match=f"{path} \\(split 'test'\\) holds no usable examples; "
                       f"1 bad row\\(s\\) skipped, first: {path} row 0 field 'chosen'"):
        load_split_prompts(str(path), split="test", on_bad_row="skip")


def test_prompt_stream_is_a_pure_function_of_seed_and_position() -> None:
    stream = PromptStream(7, seed=11)
    run = stream.indices(0, 30)  # four epochs and a bit
    for epoch in range(4):
        assert sorted(run[7 * epoch:7 * epoch + 7]) == list(range(7))  # each prompt once per epoch
    # resuming at any position (a checkpoint stores only the position) continues the same run
    assert PromptStream(7, seed=11).indices(12, 18) == run[12:]
    assert stream.indices(3, 2) == run[3:5]  # going back to an earlier epoch is fine too
    assert PromptStream(7, seed=12).indices(0, 7) != run[:7]
    assert PromptStream(1, seed=0).indices(0, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="the prompt stream needs at least one prompt"):
        PromptStream(0, seed=0)


def test_first_turn_context_keeps_the_opening_request_once() -> None:
    long = HHExample(prompt=split_prompt_response(T2)[0], chosen="Why not?", rejected="No.")
    again = "\n\nHuman:  Hi!\n\nAssistant: Hey.\n\nHuman: Bye\n\nAssistant:"  # same opening
    other = "\n\nHuman: How do I boil an egg?\n\nAssistant:"
    assert make_prompts([long, again, other, long], context="first_turn") == [
        "\n\nHuman: Hi!\n\nAssistant:", other]  # identical prompts once, the first kept
    assert make_prompts([long, again], context="full") == [long.prompt, again]  # default unchanged
    assert make_prompts([long], "summarize", context="first_turn") == [
        "Summarize the following conversation.\n\nHuman: Hi!\n\nSummary:"]
    with pytest.raises(ValueError, match="context must be 'full' or 'first_turn', got 'last'"):
        make_prompts([long], context="last")  # type: ignore[arg-type]
    # load_split_prompts: n counts distinct opening requests; the config threads it through
    firsts = load_split_prompts("hh-harmless", split="train", context="first_turn", n=40)
    assert len(firsts) == len(set(firsts)) == 40
    assert all(p.count("\n\nHuman:") == 1 and p.endswith("\n\nAssistant:") for p in firsts)
    data = DataConfig(source="hh-harmless", context="first_turn", test_size=0,
                      max_prompt_tokens=10_000)
    assert load_prompt_split(data, words_tokenizer).train[:40] == firsts


def test_cluster_of_prompt_is_the_normalised_first_human_turn() -> None:
    assert cluster_of_prompt(split_prompt_response(T2)[0]) == "hi!"
    assert cluster_of_prompt("\n\nHuman:  How do\n I   BOIL an egg?\n\nAssistant:") == (
        "how do i boil an egg?")


@pytest.mark.parametrize("source", ["hh-harmless", "redteam", "sample"])
@pytest.mark.parametrize("context", ["full", "first_turn"])
@pytest.mark.parametrize("n", [None, 7])
def test_split_clusters_align_with_split_prompts(source: str, context: str, n: int | None) -> None:
    for split in ("train", "test"):
        prompts = load_split_prompts(source, split=split, n=n, context=context)  # type: ignore[arg-type]
        clusters = load_split_clusters(source, split=split, n=n, context=context)  # type: ignore[arg-type]
        assert len(clusters) == len(prompts) and all(clusters)
        rows = load_hh(source, split=split).examples
        if context == "full":  # one prompt per row: the key is the row's field
            field = {"hh-harmless": "cluster", "redteam": "kind"}.get(source)
            expected = [e.meta[field] if field else cluster_of_prompt(e.prompt)
                        for e in rows[:n]]
            assert clusters == expected
        elif source != "redteam":  # first turn: one cluster per opening request
            assert len(set(clusters)) == len(clusters)
    if source == "sample":  # no cluster field: the prompt's own first turn
        assert clusters == [cluster_of_prompt(p) for p in prompts]
