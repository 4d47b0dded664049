"""HH data: transcripts and their real-data quirks, loading (files, gz, hub layout), sample."""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import sys
from pathlib import Path

import pytest

from rlaif.data.hh import (
    HHExample, HHFormatError, Turn, format_turns, load_hh, parse_transcript, sample_path,
    split_prompt_response,
)
from rlaif.data.rows import DataFileError

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
    # only Assistant turns (merged into one): still no Human turn first
    ("\n\nAssistant: a\n\nAssistant: b", "turn 1 is 'Assistant:' but 'Human:' was expected"),
    # a transcript of Human turns only (merged into one): no final Assistant turn
    ("\n\nHuman: a\n\nHuman: b", "missing final 'Assistant:' turn"),
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


H, A = "human", "assistant"


@pytest.mark.parametrize("text, expected", [
    # real quirk: an empty Assistant turn mid-dialogue (the human asks again) stays empty
    ("\n\nHuman: Can you help?\n\nAssistant:\n\nHuman: Hello?\n\nAssistant: Sorry, yes.",
     [(H, "Can you help?"), (A, ""), (H, "Hello?"), (A, "Sorry, yes.")]),
    # real quirk: an empty final Assistant turn; the reply is the empty string
    ("\n\nHuman: What is two plus two?\n\nAssistant:", [(H, "What is two plus two?"), (A, "")]),
    # the same with whitespace after the marker
    ("\n\nHuman: What is two plus two?\n\nAssistant:  \n", [(H, "What is two plus two?"), (A, "")]),
    # an empty Human turn stays empty too
    ("\n\nHuman:\n\nAssistant: Hello?", [(H, ""), (A, "Hello?")]),
    # real quirk: two consecutive Assistant turns mid-dialogue merge, joined by a blank line
    ("\n\nHuman: Tell me about owls.\n\nAssistant: Owls hunt at night.\n\nAssistant: They "
     "turn their heads far.\n\nHuman: Neat.\n\nAssistant: Yes.",
     [(H, "Tell me about owls."), (A, "Owls hunt at night.\n\nThey turn their heads far."),
      (H, "Neat."), (A, "Yes.")]),
    # real quirk: two consecutive Assistant turns at the end merge into one final reply
    ("\n\nHuman: Any tips?\n\nAssistant: Sleep well.\n\nAssistant: Drink water.",
     [(H, "Any tips?"), (A, "Sleep well.\n\nDrink water.")]),
    # two consecutive Human turns merge the same way
    ("\n\nHuman: Hi.\n\nHuman: Are you there?\n\nAssistant: I am.",
     [(H, "Hi.\n\nAre you there?"), (A, "I am.")]),
    # an empty turn merged with a non-empty one adds no blank line; three in a row make one
    ("\n\nHuman: Hi\n\nAssistant:\n\nAssistant: Hello!\n\nAssistant:  Welcome.",
     [(H, "Hi"), (A, "Hello!\n\nWelcome.")]),
    # consecutive empty turns merge into one empty turn
    ("\n\nHuman: Hi\n\nAssistant:\n\nAssistant:", [(H, "Hi"), (A, "")]),
])
def test_parse_transcript_real_data_quirks(text: str, expected: list[tuple[str, str]]) -> None:
    turns = parse_transcript(text)
    assert turns == [Turn(role, t) for role, t in expected]  # type: ignore[arg-type]
    # every result alternates, Human first; written back and parsed again it is unchanged
    assert [t.role for t in turns] == [H, A] * (len(turns) // 2)
    assert parse_transcript(format_turns(turns)) == turns


def test_format_turns_writes_an_empty_turn_as_its_bare_marker() -> None:
    turns = [Turn("human", "Can you help?"), Turn("assistant", ""), Turn("human", "Hello?")]
    assert format_turns(turns) == "\n\nHuman: Can you help?\n\nAssistant:\n\nHuman: Hello?"


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


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "jsonl.gz", "json.gz", "jsonl.xz"])
def test_load_local_files(tmp_path: Path, fmt: str) -> None:
    rows = [GOOD, {**GOOD, "chosen": T2, "rejected": T2.replace("Why not?", "Shut up.")}]
    path = tmp_path / f"hh.{fmt}"
    if fmt == "parquet":
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        # .json: one JSON array; .jsonl: one object per line; compressed as the hub ships them
        text = json.dumps(rows) if fmt.startswith("json.") or fmt == "json" else \
            "".join(json.dumps(r) + "\n" for r in rows)
        if fmt.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        elif fmt.endswith(".xz"):
            import lzma

            path.write_bytes(lzma.compress(text.encode()))
        else:
            path.write_text(text)
    data = load_hh(str(path))
    assert (len(data), data.skipped, data.source) == (2, 0, str(path))
    _check_good(data[0], 0, str(path))
    assert (data[1].chosen, data[1].rejected) == ("Why not?", "Shut up.")
    assert data[1].prompt.endswith("\n\nHuman: Tell me a joke.\n\nAssistant:")


def _write_gz(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    return path


def test_gz_round_trip_matches_the_plain_file(tmp_path: Path) -> None:
    rows = [GOOD, {"chosen": "\n\nHuman: Hi\n\nAssistant:",
                   "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}]
    plain = load_hh(str(_write_jsonl(tmp_path / "test.jsonl", rows)))
    packed = load_hh(str(_write_gz(tmp_path / "test.jsonl.gz", rows)))
    strip = [(e.prompt, e.chosen, e.rejected, e.meta["row"]) for e in plain]
    assert [(e.prompt, e.chosen, e.rejected, e.meta["row"]) for e in packed] == strip
    assert packed[1].meta["source"] == str(tmp_path / "test.jsonl.gz")


def test_load_folder_laid_out_like_the_hub(tmp_path: Path) -> None:
    # Anthropic/hh-rlhf ships <subset>/<split>.jsonl.gz; data_dir picks the subset.
    root = tmp_path / "hh-rlhf"
    _write_gz(root / "harmless-base" / "train.jsonl.gz", [GOOD, GOOD, GOOD])
    _write_gz(root / "harmless-base" / "test.jsonl.gz", [GOOD])
    _write_gz(root / "helpful-base" / "test.jsonl.gz", [GOOD, GOOD])
    train = load_hh(str(root), data_dir="harmless-base", split="train")
    test = load_hh(str(root), data_dir="harmless-base", split="test")
    assert (len(train), len(test)) == (3, 1)
    assert train.source == f"{root}/harmless-base [train]"
    assert train[2].meta == {**train[2].meta, "row": 2,
                             "source": str(root / "harmless-base" / "train.jsonl.gz")}
    # no data_dir: every subset's split, as the hub combines them; rows counted per file
    both = load_hh(str(root), split="test")
    assert [(Path(e.meta["source"]).parent.name, e.meta["row"]) for e in both] == [
        ("harmless-base", 0), ("helpful-base", 0), ("helpful-base", 1)]
    assert len(load_hh(str(root), split="test", limit=1)) == 1
    with pytest.raises(FileNotFoundError, match=r"has no folder data_dir='harmless'; folders "
                       r"present: \['harmless-base', 'helpful-base'\]"):
        load_hh(str(root), data_dir="harmless", split="test")
    # a bad row names the file inside the folder
    _write_gz(root / "red-team" / "test.jsonl.gz", [GOOD, {**GOOD, "chosen": "oops"}])
    with pytest.raises(HHFormatError, match=f"^{root / 'red-team' / 'test.jsonl.gz'} row 1 "
                       "field 'chosen': missing 'Human:' marker"):
        load_hh(str(root), data_dir="red-team", split="test")


def test_other_folder_layouts_go_through_datasets(tmp_path: Path) -> None:
    # No <split>.<ext> file: load_dataset(source, data_dir=..., split=...) resolves the split,
    # the code path of a hub id.
    _write_jsonl(_mkdir(tmp_path / "hh" / "harmless-base") / "train-00000.jsonl", [GOOD, GOOD])
    data = load_hh(str(tmp_path / "hh"), data_dir="harmless-base", split="train")
    assert len(data) == 2 and data.source == f"{tmp_path / 'hh'}/harmless-base [train]"
    _check_good(data[1], 1, data.source)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


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
    # a quirk only in rejected, mid-dialogue, changes its prompt: the pair no longer shares one
    ({"chosen": T2, "rejected": T2.replace("Hello, how can I help?", "Hello,\n\nAssistant: how?")},
     "row 0: 'chosen' and 'rejected' differ before the final"),
    # not an HH transcript: no role markers
    ({"chosen": T1, "rejected": "I refuse."}, "row 0 field 'rejected': missing 'Human:' marker"),
    # wrong type: a list of turns
    ({"chosen": T1, "rejected": ["Human: a", "Assistant: b"]},
     "row 0 field 'rejected': transcript must be a string, got list"),
    # the row itself is not an object
    (["chosen", "rejected"], "row 0: row must be an object with 'chosen' and 'rejected', got list"),
])
def test_bad_row_kinds(tmp_path: Path, row: object, message: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(HHFormatError, match="Fix: ") as info:
        load_hh(str(path))
    assert f"{path} {message}" in str(info.value)


def test_skip_mode_counts_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Rows 1 and 3 are not HH transcripts; row 2 has an empty turn, which is data, not an error.
    rows = [GOOD, {**GOOD, "chosen": "\n\nAssistant: x"},
            {"chosen": "\n\nHuman:\n\nAssistant: x", "rejected": "\n\nHuman:\n\nAssistant: y"},
            {**GOOD, "rejected": "no markers"},
            GOOD] + [{"chosen": 7, "rejected": 7}] * 6
    path = _write_jsonl(tmp_path / "mixed.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="rlaif.data.hh"):
        data = load_hh(str(path), on_bad_row="skip")
    assert (len(data), data.skipped) == (3, 8)
    assert [row for row, _ in data.skipped_rows] == [1, 3, 5, 6, 7, 8, 9, 10]
    assert data.skip_reasons == [reason for _, reason in data.skipped_rows[:5]]
    assert data.skip_reasons[0].startswith(f"{path} row 1 field 'chosen': turn 1 is 'Assistant:'")
    assert data.skip_reasons[1].startswith(f"{path} row 3 field 'rejected': missing 'Human:'")
    assert [e.meta["row"] for e in data] == [0, 2, 4]
    assert data[1].prompt == "\n\nHuman:\n\nAssistant:"
    assert f"{path}: skipped 8 bad row(s) of 11 read; first: {data.skip_reasons[0]}" in caplog.text


# Rows written for these tests, each reproducing one quirk of the real harmless-base files.
Q_MID = "\n\nHuman: Can you help?\n\nAssistant:\n\nHuman: Hello?\n\nAssistant:"
Q_TWICE = "\n\nHuman: Tips?\n\nAssistant: Sleep.\n\nAssistant: Eat.\n\nHuman: More?\n\nAssistant:"
Q_HUMANS = "\n\nHuman: Hi.\n\nHuman: Hello?\n\nAssistant:"


@pytest.mark.parametrize("row, expected", [
    # an empty Assistant turn mid-dialogue, in both transcripts (they share the prompt)
    ({"chosen": Q_MID + " Sorry, yes.", "rejected": Q_MID + " No."},
     (Q_MID, "Sorry, yes.", "No.")),
    # an empty final Assistant turn in chosen: the chosen reply is ""
    ({"chosen": "\n\nHuman: Two plus two?\n\nAssistant:",
      "rejected": "\n\nHuman: Two plus two?\n\nAssistant: Five."},
     ("\n\nHuman: Two plus two?\n\nAssistant:", "", "Five.")),
    # two consecutive Assistant turns mid-dialogue, in both transcripts
    ({"chosen": Q_TWICE + " Walk.",
      "rejected": Q_TWICE + " No."},
     ("\n\nHuman: Tips?\n\nAssistant: Sleep.\n\nEat.\n\nHuman: More?\n\nAssistant:",
      "Walk.", "No.")),
    # two consecutive Human turns, in both transcripts
    ({"chosen": Q_HUMANS + " Hi!", "rejected": Q_HUMANS + " What?"},
     ("\n\nHuman: Hi.\n\nHello?\n\nAssistant:", "Hi!", "What?")),
    # a quirk only in rejected: its final reply comes as two Assistant turns
    ({"chosen": T1, "rejected": T1_REJ + "\n\nAssistant: Seriously."},
     (EXPECTED.prompt, EXPECTED.chosen, "Figure it out, idiot.\n\nSeriously.")),
])
def test_real_data_quirks_load(tmp_path: Path, row: dict, expected: tuple[str, str, str]) -> None:
    data = load_hh(str(_write_jsonl(tmp_path / "quirks.jsonl", [GOOD, row])))
    assert (len(data), data.skipped) == (2, 0)
    assert (data[1].prompt, data[1].chosen, data[1].rejected) == expected


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes((json.dumps(GOOD) + "\n" + '{"chosen": "caf\xe9"}\n').encode("latin-1"))
    with pytest.raises(DataFileError, match=f"^{latin1} row 1 \\(line 2\\): is not UTF-8 text "
                       "\\(byte b'\\\\xe9' at column 16\\). Fix: re-encode the file as UTF-8"):
        load_hh(str(latin1))
    array = tmp_path / "latin1.json"
    array.write_bytes(b'[\n{"chosen": "a"},\n{"chosen": "caf\xe9"}]')
    with pytest.raises(DataFileError, match=f"^{array}: is not UTF-8 text .* at line 3 column 16"):
        load_hh(str(array))
    for empty in (tmp_path / "empty.jsonl", tmp_path / "blank.json", tmp_path / "empty.jsonl.gz"):
        empty.write_bytes(gzip.compress(b"") if empty.suffix == ".gz" else
                          b"\n  \n" if empty.name.startswith("blank") else b"")
        with pytest.raises(DataFileError, match=f"^{empty}: holds no rows"):
            load_hh(str(empty), on_bad_row="skip")
    broken = _write_jsonl(tmp_path / "broken.jsonl", [GOOD])
    broken.write_text(broken.read_text() + '{"chosen": \n')
    with pytest.raises(DataFileError, match=f"^{broken} row 1 \\(line 2\\): not valid JSON"):
        load_hh(str(broken))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode() * 50)[:-20])
    with pytest.raises(DataFileError, match=f"^{truncated}: cannot be read"):
        load_hh(str(truncated))


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
