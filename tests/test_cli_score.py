"""`rlaif score` and `rlaif judges`, run in-process through `rlaif.cli.main`."""

from __future__ import annotations

import json
import math
import re

import pytest

from rlaif.cli import main
from rlaif.judges.registry import build_judge
from rlaif.overrides import parse_overrides
from rlaif.workbench.score_file import summarize

ROWS = [
    {"prompt": "Human: hi", "response": "I like you.", "id": 1},
    {"prompt": "Human: hey", "response": "You are terrible and i hate you.", "id": 2},
    {"prompt": "Human: bread?", "response": "Mix flour, water, salt and yeast, then knead.", "id": 3},
    {"prompt": "Human: joke", "response": "Why did the chicken cross the road?", "id": 4},
]


@pytest.fixture
def spec_file(tiny_models, tmp_path):
    path = tmp_path / "tiny-hate.yaml"
    path.write_text(f"type: classifier\nmodel: {tiny_models['roberta']}\nlabel: nothate\nbatch_size: 3\n")
    return path


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _answers(partial):
    """The answer rows of a `.partial` journal (its first line is the header)."""
    rows = _read_jsonl(partial)
    assert "_partial" in rows[0]
    return rows[1:]


def test_score_round_trip_matches_direct_judge_and_summary(spec_file, tmp_path, capsys):
    data = _write_jsonl(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "out" / "scored.jsonl"
    assert main(["score", str(spec_file), "--data", str(data), "--out", str(out)]) == 0
    got = _read_jsonl(out)
    want = [s.value for s in build_judge(spec_file).score([(r["prompt"], r["response"]) for r in ROWS])]
    assert [r["id"] for r in got] == [1, 2, 3, 4]  # input fields kept, in order
    assert [r["score"] for r in got] == pytest.approx(want, abs=1e-6)
    assert all(r["error"] is None and r["rationale"] is None for r in got)
    printed = capsys.readouterr().out
    s = summarize(want)
    assert (f"count 4  mean {s['mean']:.4f}  std {s['std']:.4f}  min {min(want):.4f}  "
            f"max {max(want):.4f}  unscored 0") in printed
    assert not list(out.parent.glob(".*tmp"))  # the temp file was renamed away


def test_hh_rows_score_chosen_and_rejected(tmp_path, capsys):
    rows = [
        {"chosen": "\n\nHuman: hi\n\nAssistant: Hello, how can I help?",
         "rejected": "\n\nHuman: hi\n\nAssistant: shut up you idiot, fuck off"},
        {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: thanks\n\nAssistant: You are welcome.",
         "rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: thanks\n\nAssistant: whatever, damn idiot"},
    ]
    data = _write_jsonl(tmp_path / "hh.jsonl", rows)
    out = tmp_path / "hh.out.jsonl"
    assert main(["score", "profanity-check", "--data", str(data), "--out", str(out)]) == 0
    got = _read_jsonl(out)
    judge = build_judge("profanity-check")
    replies = ["Hello, how can I help?", "shut up you idiot, fuck off", "You are welcome.",
               "whatever, damn idiot"]
    want = [s.value for s in judge.score([("", r) for r in replies])]
    assert [got[0]["chosen_score"], got[0]["rejected_score"], got[1]["chosen_score"],
            got[1]["rejected_score"]] == pytest.approx(want)
    assert got[1]["chosen"] == rows[1]["chosen"]
    assert "chosen > rejected in 2/2 pairs (100.0%), ties 0" in capsys.readouterr().out


def test_set_overrides_and_cache_second_run_hits(spec_file, tmp_path, capsys):
    data = _write_jsonl(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "prob.jsonl"
    argv = ["score", str(spec_file), "--data", str(data), "--out", str(out), "--limit", "3",
            "--set", "output=prob", "--cache", str(tmp_path / "c.sqlite")]
    assert main(argv) == 0
    assert "0 hits, 3 misses" in capsys.readouterr().out
    assert main(argv) == 0
    assert "3 hits, 0 misses" in capsys.readouterr().out
    got = [r["score"] for r in _read_jsonl(out)]
    want = [s.value for s in build_judge(spec_file, output="prob").score(
        [(r["prompt"], r["response"]) for r in ROWS[:3]])]
    assert got == pytest.approx(want, abs=1e-6) and all(0 < v < 1 for v in got)


def test_default_out_is_in_the_working_directory(spec_file, tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    data = _write_jsonl(tmp_path / "in" / "rows.jsonl", ROWS[:1])
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(spec_file), "--data", str(data)]) == 0
    assert len(_read_jsonl(tmp_path / "rows.scores.jsonl")) == 1


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "p"}', r"rows.jsonl: row 2: expected fields 'prompt' \+ 'response'.*found: prompt"),
        ("not json", r"rows.jsonl: row 2: not valid JSON"),
        ('{"chosen": "no markers", "rejected": "x"}', r"rows.jsonl: row 2, field 'chosen'"),
        ('{"prompt": "p", "response": 3}', r"row 2: 'prompt' and 'response' must be strings"),
        (json.dumps({"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Bye\n\nAssistant: Hello"}),
         r"row 2: 'chosen' and 'rejected' differ before the final assistant reply"),
    ],
)
def test_bad_rows_name_file_and_row(spec_file, tmp_path, capsys, line, message):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n" + line + "\n")
    assert main(["score", str(spec_file), "--data", str(data), "--out", str(tmp_path / "o")]) == 1
    assert re.search(message, capsys.readouterr().err)


def test_parse_overrides_and_summary_math():
    assert parse_overrides(["a=1", "b.c=x", "d=[1, 2]", "e=null"]) == {
        "a": 1, "b": {"c": "x"}, "d": [1, 2], "e": None}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["novalue"])
    s = summarize([1.0, 3.0, None])
    assert (s["count"], s["mean"], s["std"], s["min"], s["max"], s["unscored"]) == (2, 2.0, 1.0, 1.0, 3.0, 1)
    assert math.isnan(summarize([None])["mean"])


def test_judges_lists_builtins(capsys):
    assert main(["judges"]) == 0
    lines = capsys.readouterr().out.splitlines()
    hate = next(line for line in lines if line.startswith("roberta-hate"))
    assert hate.split()[1] == "classifier" and "nothate logit" in hate
    assert any(line.startswith("profanity-check") and " function " in line for line in lines)
    assert any(line.startswith("claude-pairwise-anthropic") and " pairwise " in line for line in lines)
    assert "rlaif label NAME" in lines[-1]  # pairwise judges cannot go to rlaif score


def test_missing_model_fails_before_scoring_with_exit_1(tmp_path, capsys):
    spec = tmp_path / "gone.yaml"
    spec.write_text(f"type: classifier\nmodel: {tmp_path / 'no-model'}\nlabel: nothate\n")
    data = _write_jsonl(tmp_path / "rows.jsonl", ROWS[:1])
    out = tmp_path / "o.jsonl"
    assert main(["score", str(spec), "--data", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "cannot load classifier" in err and "no-model" in err and "while scoring" not in err
    assert not out.exists()


def test_exit_codes_say_whether_anything_was_scored(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "p", "response": "fine"}\n{"prompt": "p", "response": "also fine"}\n')
    nan_judge = tmp_path / "nan.yaml"
    nan_judge.write_text("type: function\nfunction: judge_fns:always_nan\nscale: [0, 1]\n")
    # every sample unscored: the rows (with their errors) are written, but the exit code says so
    assert main(["score", str(nan_judge), "--data", str(rows), "--out", str(tmp_path / "o.jsonl")]) == 3
    assert "no sample was scored" in capsys.readouterr().err
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["score", "profanity-check", "--data", str(empty)]) == 3
    assert "holds no rows" in capsys.readouterr().err
    assert main(["score", "profanity-check", "--data", str(rows), "--limit", "-1"]) == 1
    assert "--limit -1" in capsys.readouterr().err


def test_a_budget_stop_keeps_the_paid_rows_and_a_rerun_repeats_no_paid_request(tmp_path, capsys,
                                                                              monkeypatch):
    """#11: a budget stop after 7 of 20 requests used to leave no output file at all."""
    from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"prompt": "p", "response": f"reply number {i}"}) + "\n"
                            for i in range(20)))
    out, cache = tmp_path / "out.jsonl", tmp_path / "scores.sqlite"
    with FakeClaude() as fake:
        common = ["score", "claude-toxicity-anthropic", "--data", str(data), "--out", str(out),
                  "--cache", str(cache), "--set", f"base_url={fake.url}", "--set",
                  "requests_per_minute=null", "--set", "max_concurrency=1"]
        assert main([*common, "--set", "budget={max_requests: 7}"]) == 1
        err = capsys.readouterr().err
        assert fake.requests == 7
        partial = out.with_name("out.jsonl.partial")
        rows = _answers(partial)
        assert len(rows) == 7 and all(r["score"] is not None for r in rows)
        assert [r["row"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]  # rows numbered from 1
        assert f"7 of 20 samples (7 of 20 rows with an answer) are kept in {partial}" in err
        assert "rows 8-8" in err and "--resume" in err
        assert not out.exists()  # the complete file exists only once every row is scored
        # the rerun sends only the 13 requests not yet paid for
        assert main([*common, "--resume"]) == 0
        assert fake.requests == 20
    assert len(out.read_text().splitlines()) == 20


def test_an_unusable_out_is_refused_before_any_request(tmp_path, capsys, monkeypatch):
    from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    with FakeClaude() as fake:
        base = ["score", "claude-toxicity-anthropic", "--data", str(data), "--set", f"base_url={fake.url}"]
        assert main([*base, "--out", str(tmp_path)]) == 1  # a folder
        assert "is a folder" in capsys.readouterr().err
        assert main([*base, "--out", str(data / "o.jsonl")]) == 1  # "folder" is a file
        assert "cannot be created" in capsys.readouterr().err
        assert fake.requests == 0


def test_rows_stream_to_the_partial_file_so_even_a_killed_run_keeps_them(tmp_path):
    """The first chunk's rows are on disk before the second chunk is scored: a SIGKILL in the
    second chunk (no handler can run) leaves them in <out>.partial."""
    import os
    import subprocess
    import sys

    from rlaif.workbench.score_file import SAMPLES_PER_CALL as CHUNK

    (tmp_path / "dies.py").write_text(
        "import os, signal\n"
        "calls = 0\n"
        "def score(texts):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return [float(len(t)) for t in texts]\n")
    spec = tmp_path / "dies.yaml"
    spec.write_text("type: function\nfunction: dies:score\nscale: [0, 1000]\n")
    data, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(data, [{"prompt": "p", "response": "x" * (i % 7)} for i in range(CHUNK + 10)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "rlaif.cli", "score", str(spec), "--data", str(data),
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    rows = _answers(out.with_name("out.jsonl.partial"))
    assert [r["score"] for r in rows] == [float(i % 7) for i in range(CHUNK)]
    assert not out.exists()
