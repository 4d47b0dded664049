"""Built-in judges and templates are used only for a bare name; a path that does not exist is an error."""

from __future__ import annotations

import pytest

from rlaif.judges.spec import load_spec
from rlaif.resources import builtin_dir, looks_like_path, resolve


@pytest.mark.parametrize("ref,is_path", [
    ("profanity-check", False),               # a bare name: may be a built-in
    ("nodir/profanity-check.yaml", True),     # a folder part: a path
    ("profanity-check.yaml", True),           # a file suffix: a path
    ("./profanity-check", True),              # explicitly relative
    ("~/judges/mine", True),                  # home folder
])
def test_looks_like_path(ref, is_path):
    assert looks_like_path(ref) is is_path


def test_a_bare_name_finds_the_built_in():
    assert resolve("judges", "profanity-check") == builtin_dir("judges") / "profanity-check.yaml"


def test_a_mistyped_path_is_an_error_not_the_built_in_of_that_name(tmp_path, monkeypatch):
    # The defect: `judge.ref=nodir/profanity-check.yaml` trained with the built-in and exited 0.
    monkeypatch.chdir(tmp_path)
    for ref in ("nodir/profanity-check.yaml", "profanity-check.yaml"):
        with pytest.raises(FileNotFoundError, match=r"does not exist.*bare name: .*profanity-check"):
            load_spec(ref)


def test_an_existing_path_wins_over_a_built_in_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profanity-check.yaml").write_text(
        "type: function\nfunction: judge_fns:politeness\nname: mine\n")
    assert load_spec("profanity-check.yaml").name == "mine"


def test_train_refuses_a_mistyped_judge_path(tiny_models, tmp_path, capsys):
    from pathlib import Path

    from rlaif.cli import main

    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    code = main(["train", str(config), f"model.name_or_path={tiny_models['gpt2']}",
                 "judge.ref=nodir/profanity-check.yaml", "--out", str(tmp_path / "run")])
    assert code != 0
    err = capsys.readouterr().err
    assert "nodir/profanity-check.yaml" in err and "does not exist" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained
