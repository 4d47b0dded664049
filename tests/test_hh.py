"""HH data: transcript parsing, row loading through `datasets`, prompts, length filter, split, sample."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.data.hh import (
    HHExample, HHFormatError, Turn, filter_by_length, load_hh, make_prompts, parse_transcript,
    sample_path, split_prompt_response, train_test_split,
)

REPO = Path(__file__).resolve().parents[1]
T1 = "\n\nHuman: How do I boil an egg?\n\nAssistant: Boil it for nine minutes."
T1_REJ = "\n\nHuman: How do I boil an egg?\n\nAssistant: Figure it out, idiot."
T2 = "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?\n\nHuman: Tell me a joke.\n\nAssistant: Why not?"


@pytest.mark.parametrize("text, expected", [
    # single turn, canonical HH form
    (T1, [("human", "How do I boil an egg?"), ("assistant", "Boil it for nine minutes.")]),
    # multi-turn: four alternating turns
    (T2, [("human", "Hi!"), ("assistant", "Hello, how can I help?"),
          ("human", "Tell me a joke."), ("assistant", "Why not?")]),
    # surrounding whitespace, no leading blank line, padded turns, spaces on the blank line
    ("  Human:   hi  \n \n Assistant:  yo \n\n ", [("human", "hi"), ("assistant", "yo")]),
    # a bare "Human:" inside a turn (no blank line before it) is text, not a marker
    ("\n\nHuman: Say Human: twice\n\nAssistant: Human: Human:",
     [("human", "Say Human: twice"), ("assistant", "Human: Human:")]),
    # a turn spanning several lines keeps its inner newlines
    ("\n\nHuman: line one\nline two\n\nAssistant: ok", [("human", "line one\nline two"),
                                                       ("assistant", "ok")]),
])
def test_parse_transcript_valid(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_transcript(text) == [Turn(role, t) for role, t in expected]


@pytest.mark.parametrize("text, message", [
    # missing Human: text before the first marker
    ("Hello\n\nAssistant: hi", "missing 'Human:' marker"),
    # missing Human: no marker at all
    ("just some text", "missing 'Human:' marker"),
    # missing Human: starts with Assistant
    ("\n\nAssistant: hi\n\nHuman: hey", "turn 1 is 'Assistant:' but 'Human:' was expected"),
    # missing Assistant: a lone Human turn
    ("\n\nHuman: anyone there?", "missing final 'Assistant:' turn"),
    # missing Assistant: ends with a Human turn
    ("\n\nHuman: a\n\nAssistant: b\n\nHuman: c", "missing final 'Assistant:' turn"),
    # out-of-order roles: two Human turns in a row
    ("\n\nHuman: a\n\nHuman: b\n\nAssistant: c", "turn 2 is 'Human:' but 'Assistant:' was expected"),
    # out-of-order roles: two Assistant turns in a row
    ("\n\nHuman: a\n\nAssistant: b\n\nAssistant: c", "turn 3 is 'Assistant:' but 'Human:'"),
    # empty Human turn
    ("\n\nHuman:   \n\nAssistant: hi", "turn 1 ('Human:') is empty"),
    # empty final Assistant turn (whitespace only)
    ("\n\nHuman: hi\n\nAssistant:  \n", "turn 2 ('Assistant:') is empty"),
    # empty transcript
    ("", "missing 'Human:' marker"),
    # non-string: None
    (None, "transcript must be a string, got NoneType"),
    # non-string: a number
    (3, "transcript must be a string, got int"),
    # non-string: a list of turns
    (["Human: hi", "Assistant: yo"], "transcript must be a string, got list"),
])
def test_parse_transcript_invalid(text: object, message: str) -> None:
    with pytest.raises(HHFormatError, match="^data.jsonl row 7 field 'chosen': ") as info:
        parse_transcript(text, "data.jsonl row 7 field 'chosen'")  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "Fix: write" in str(info.value)
    assert info.value.where == "data.jsonl row 7 field 'chosen'"


def test_split_prompt_response() -> None:
    prompt, response = split_prompt_response(T2)
    assert prompt == ("\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?"
                      "\n\nHuman: Tell me a joke.\n\nAssistant:")
    assert response == "Why not?"
    # whitespace quirks do not leak into the prompt the policy continues
    assert split_prompt_response("Human:  hi \n\nAssistant: yo ") == ("\n\nHuman: hi\n\nAssistant:", "yo")


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {"chosen": T1, "rejected": T1_REJ, "chosen_toxic": False, "rejected_toxic": True}
EXPECTED = HHExample(
    prompt="\n\nHuman: How do I boil an egg?\n\nAssistant:", chosen="Boil it for nine minutes.",
    rejected="Figure it out, idiot.", meta={},
)


def _check_good(example: HHExample, row: int, source: str) -> None:
    assert (example.prompt, example.chosen, example.rejected) == (
        EXPECTED.prompt, EXPECTED.chosen, EXPECTED.rejected)
    assert example.meta == {"row": row, "source": source, "chosen_toxic": False,
                            "rejected_toxic": True}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_load_local_files_through_datasets(tmp_path: Path, fmt: str) -> None:
    rows = [GOOD, {**GOOD, "chosen": T2, "rejected": T2.replace("Why not?", "Shut up.")}]
    path = tmp_path / f"hh.{fmt}"
    if fmt == "jsonl":
        _write_jsonl(path, rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    data = load_hh(str(path))
    assert (len(data), data.skipped, data.source) == (2, 0, str(path))
    _check_good(data[0], 0, str(path))
    assert (data[1].chosen, data[1].rejected) == ("Why not?", "Shut up.")
    assert data[1].prompt.endswith("\n\nHuman: Tell me a joke.\n\nAssistant:")


def test_load_folder_with_data_dir_and_split(tmp_path: Path) -> None:
    # The hub-id code path, load_dataset(source, data_dir=..., split=...), on a local folder
    # laid out like Anthropic/hh-rlhf.
    (tmp_path / "hh" / "harmless-base").mkdir(parents=True)
    _write_jsonl(tmp_path / "hh" / "harmless-base" / "train.jsonl", [GOOD, GOOD, GOOD])
    _write_jsonl(tmp_path / "hh" / "harmless-base" / "test.jsonl", [GOOD])
    train = load_hh(str(tmp_path / "hh"), data_dir="harmless-base", split="train")
    test = load_hh(str(tmp_path / "hh"), data_dir="harmless-base", split="test")
    assert (len(train), len(test)) == (3, 1)
    assert train.source == f"{tmp_path / 'hh'}/harmless-base [train]"
    assert train[2].meta["row"] == 2


def test_bad_row_error_names_file_row_and_field(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "rejected": "\n\nHuman: hi"}])
    with pytest.raises(HHFormatError) as info:
        load_hh(str(path))
    assert str(info.value).startswith(f"{path} row 1 field 'rejected': missing final 'Assistant:'")


@pytest.mark.parametrize("row, message", [
    # a field is missing altogether
    ({"chosen": T1}, "row 0: missing field 'rejected' (fields present: ['chosen'])"),
    # wrong type: null transcript
    ({"chosen": None, "rejected": T1}, "row 0 field 'chosen': transcript must be a string"),
    # chosen and rejected disagree before the final reply
    ({"chosen": T1, "rejected": T2}, "row 0: 'chosen' and 'rejected' differ before the final"),
])
def test_bad_row_kinds(tmp_path: Path, row: dict, message: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(HHFormatError, match="Fix: ") as info:
        load_hh(str(path))
    assert f"{path} {message}" in str(info.value)


def test_skip_mode_counts_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [GOOD, {**GOOD, "chosen": "\n\nHuman: \n\nAssistant: x"}, GOOD,
            {**GOOD, "rejected": "no markers"}, GOOD]
    path = _write_jsonl(tmp_path / "mixed.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="rlaif.data.hh"):
        data = load_hh(str(path), on_bad_row="skip")
    assert (len(data), data.skipped) == (3, 2)
    assert [row for row, _ in data.skipped_rows] == [1, 3]
    assert "field 'chosen': turn 1 ('Human:') is empty" in data.skipped_rows[0][1]
    assert [e.meta["row"] for e in data] == [0, 2, 4]
    assert f"{path}: skipped 2 bad row(s) of 5 read" in caplog.text


def test_limit_counts_good_examples(tmp_path: Path) -> None:
    rows = [GOOD, {"chosen": 1, "rejected": T1}, GOOD, GOOD]
    data = load_hh(str(_write_jsonl(tmp_path / "x.jsonl", rows)), on_bad_row="skip", limit=2)
    assert [e.meta["row"] for e in data] == [0, 2]
    assert data.skipped == 1


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        load_hh(str(tmp_path / "missing.jsonl"))
    (tmp_path / "rows.csv").write_text("chosen,rejected\n")
    with pytest.raises(ValueError, match="rows.csv: unsupported file type"):
        load_hh(str(tmp_path / "rows.csv"))
    with pytest.raises(ValueError, match="on_bad_row must be 'raise' or 'skip'"):
        load_hh("sample", on_bad_row="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="splits 'train' and 'test', got 'validation'"):
        sample_path("validation")  # type: ignore[arg-type]


def test_make_prompts_both_tasks() -> None:
    example = HHExample(prompt=split_prompt_response(T2)[0], chosen="Why not?", rejected="No.")
    assert make_prompts([example], "dialogue") == [
        "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?\n\nHuman: Tell me a joke.\n\nAssistant:"
    ]
    assert make_prompts([example, EXPECTED.prompt], "summarize") == [
        "Summarize the following conversation.\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?"
        "\n\nHuman: Tell me a joke.\n\nSummary:",
        "Summarize the following conversation.\n\nHuman: How do I boil an egg?\n\nSummary:",
    ]
    with pytest.raises(ValueError, match="task must be 'dialogue' or 'summarize', got 'chat'"):
        make_prompts([example], "chat")  # type: ignore[arg-type]


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
    code = ("from rlaif.data.hh import train_test_split;"
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


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_hh_sample", REPO / "scripts" / "make_hh_sample.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["make_hh_sample"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_bundled_sample() -> None:
    train, test = load_hh("sample", split="train"), load_hh("sample", split="test")
    assert (len(train), len(test), train.skipped, test.skipped) == (600, 160, 0, 0)
    for data in (train, test):
        assert {type(e.meta["chosen_toxic"]) for e in data} == {bool}
        labels = {(e.meta["chosen_toxic"], e.meta["rejected_toxic"]) for e in data}
        assert labels == {(False, True), (False, False), (True, True)}
        multi = sum(e.prompt.count("\n\nHuman:") > 1 for e in data) / len(data)
        assert 0.2 < multi < 0.45
        assert len({e.meta["topic"] for e in data}) == 7
        for e in data:
            assert all(8 <= len(r.split()) <= 40 for r in (e.chosen, e.rejected))
    assert not {e.prompt for e in test} & {e.prompt for e in train}
    assert sample_path("train").parent == REPO / "rlaif" / "data" / "sample"


def test_sample_generator_reproduces_files_and_labels_match_profanity_check() -> None:
    gen = _load_generator()
    rows = gen.make_rows(gen.N_TRAIN + gen.N_TEST)
    committed = [json.loads(line) for split in ("train", "test")
                 for line in sample_path(split).read_text().splitlines()]
    assert rows == committed
    stats = gen.check_profanity(rows)
    assert stats["toxic_mean"] > 0.9 and stats["polite_mean"] < 0.1
