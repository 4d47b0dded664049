"""`rlaif label`: HH pairs and policy samples labelled by a judge, TRL rows, agreement, resume.

Expected numbers come from scoring the same replies with the judge directly, never from the
labelling code itself.
"""

from __future__ import annotations

import json
import math

import pytest

from rlaif.cli import main
from rlaif.data.hh import load_hh
from rlaif.judges.registry import build_judge
from rlaif.workbench.journal import partial_path, read_rows_tolerant
from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

BAD = ("idiot", "stupid", "damn")


def politeness(texts: list[str]) -> list[float]:
    """Minus the number of bad words; NaN (unscored) for a text containing 'unscorable'."""
    return [math.nan if "unscorable" in t else -float(sum(t.lower().count(w) for w in BAD)) for t in texts]


POLITE_SPEC = {"type": "function", "function": "test_label:politeness", "scale": [-10, 0]}
ROWS = [  # (chosen reply, rejected reply): the human label prefers the first
    ("Thank you, happy to help.", "You idiot."),  # decided; chosen shown first -> verdict a
    ("Sure.", "Okay."),  # 0 vs 0 bad words: a tie
    ("An unscorable reply.", "Fine."),  # the judge cannot score one side: unscored
    ("No problem at all.", "Stupid idiot question."),  # chosen shown second -> verdict b
]


def _hh_file(path, rows=ROWS):
    lines = []
    for i, (chosen, rejected) in enumerate(rows):
        prompt = f"\n\nHuman: question {i}?\n\nAssistant:"
        lines.append(json.dumps({"chosen": f"{prompt} {chosen}", "rejected": f"{prompt} {rejected}"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hh_sample_agreement_with_an_offline_judge_matches_its_own_scores(tmp_path, capsys):
    out = tmp_path / "labels.jsonl"
    assert main(["label", "profanity-check", "--data", "sample", "--limit", "40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    examples = load_hh("sample", split="train", limit=40).examples
    judge = build_judge("profanity-check")
    chosen = [s.value for s in judge.score([(e.prompt, e.chosen) for e in examples])]
    rejected = [s.value for s in judge.score([(e.prompt, e.rejected) for e in examples])]
    agree = [c > r for c, r in zip(chosen, rejected)]
    first, second = agree[0::2], agree[1::2]  # even rows show the human-chosen reply first
    assert (f"agreement with the human label: {sum(agree) / 40:.1%} ({sum(agree)}/40 decided pairs)"
            in printed)
    assert (f"human-chosen shown first: {sum(first) / 20:.1%} ({sum(first)}/20); shown second: "
            f"{sum(second) / 20:.1%} ({sum(second)}/20)") in printed
    assert sum(agree) < 40  # the judge is not an oracle: the check can tell agreement apart
    rows = _read(out)
    assert len(rows) == 40
    for i, (row, ex, c, r) in enumerate(zip(rows, examples, chosen, rejected)):
        assert row["human_chosen"] == ("a" if i % 2 == 0 else "b")
        assert (row["a"], row["b"]) == ((ex.chosen, ex.rejected) if i % 2 == 0 else (ex.rejected, ex.chosen))
        better, worse = (ex.chosen, ex.rejected) if c > r else (ex.rejected, ex.chosen)
        assert (row["chosen"], row["rejected"]) == (better, worse)
        assert row["strength"] == pytest.approx(abs(c - r), abs=1e-9)
        assert row["prompt"] == ex.prompt and row["judge_calls"] == 2 and row["cost_usd"] == 0.0


def test_ties_and_unscored_pairs_are_counted_kept_and_left_out_of_the_dpo_set(tmp_path, capsys):
    import datasets

    from rlaif.dpo.config import PreferenceConfig
    from rlaif.dpo.data import load_preferences

    spec = tmp_path / "polite.yaml"
    spec.write_text(json.dumps(POLITE_SPEC))
    out, folder = tmp_path / "labels.jsonl", tmp_path / "ds"
    data = _hh_file(tmp_path / "hh.jsonl")
    assert main(["label", str(spec), "--data", str(data), "--out", str(out), "--dataset", str(folder)]) == 0
    printed = capsys.readouterr().out
    rows = _read(out)
    assert [r["verdict"] for r in rows] == ["a", "tie", None, "b"]
    assert [r["chosen"] for r in rows] == [ROWS[0][0], None, None, ROWS[3][0]]
    assert [r["agrees_with_human"] for r in rows] == [True, None, None, True]
    assert "could not score a" in rows[2]["error"] and rows[1]["strength"] == 0.0
    assert "decided 2 (a 1, b 1), ties 1, unscored 1; 2 usable for DPO, 2 left out" in printed
    assert "agreement with the human label: 100.0% (2/2 decided pairs)" in printed
    table = datasets.load_from_disk(str(folder))
    assert table["chosen"] == [ROWS[0][0], ROWS[3][0]] and table["rejected"] == [ROWS[0][1], ROWS[3][1]]
    prefs = load_preferences(PreferenceConfig(path=str(out)), chat=False)
    assert len(prefs.rows) == 2 and prefs.left_out["ties or unscored"] == 2


@pytest.fixture
def _credentials(monkeypatch):
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def test_resume_after_a_budget_stop_repeats_no_paid_call(tmp_path, capsys, _credentials):
    data = _hh_file(tmp_path / "hh.jsonl", [(f"Kind reply number {i}.", f"You idiot number {i}.")
                                            for i in range(6)])
    out, cache = tmp_path / "labels.jsonl", str(tmp_path / "cache.sqlite")
    with FakeClaude() as fake:
        base = ["label", "claude-toxicity-anthropic", "--data", str(data), "--out", str(out),
                "--cache", cache, "--chunk", "2", "--set", f"base_url={fake.url}",
                "--set", "requests_per_minute=null", "--set", "max_concurrency=1"]
        # 5 requests: chunk 1 (2 pairs = 4 replies) is finished, chunk 2 stops after 1 reply.
        assert main([*base, "--set", "budget.max_requests=5"]) == 1
        assert fake.requests == 5
        err = capsys.readouterr().err
        assert "2 of 6 pairs are kept in" in err and "pairs 3-3 of 6" in err and "--resume" in err
        assert not out.exists() and len(_read(partial_path(out))) == 3  # the header + 2 pairs

        assert main(base) == 1  # the .partial is neither resumed nor overwritten unasked
        assert "--resume to continue it" in capsys.readouterr().err and fake.requests == 5
        assert main([*base, "--resume"]) == 0
        # 12 distinct replies in all: each reached the server exactly once.
        assert fake.requests == 12
        assert "4 labelled now, 2 kept from an earlier run" in capsys.readouterr().out
        assert not partial_path(out).exists()
        rows = _read(out)
        assert [r["verdict"] for r in rows] == ["a", "b"] * 3  # the kind reply wins either way round
        # Rows carry what their own run paid: the reply asked before the stop comes from the
        # cache now, so 12 requests reached the server but the rows account for 11.
        assert sum(r["requests"] for r in rows) == 11

        assert main(base) == 0  # nothing left to label: zero requests
        assert fake.requests == 12
        assert "0 labelled now, 6 kept" in capsys.readouterr().out
        assert _read(out) == rows


def test_a_last_line_cut_by_a_kill_is_dropped_and_labelled_again(tmp_path):
    path = tmp_path / "x.partial"
    path.write_text(json.dumps({"key": "k1", "verdict": "a"}) + "\n" + '{"key": "k2", "verd')
    assert read_rows_tolerant(path) == [{"key": "k1", "verdict": "a"}]
    path.write_text('{"key": "k2", "verd\n' + json.dumps({"key": "k1"}) + "\n")
    with pytest.raises(ValueError, match="line 1 is not valid JSON"):
        read_rows_tolerant(path)


def test_policy_pairs_are_two_chat_samples_per_prompt(tmp_path, tiny_llama):
    from rlaif.workbench.pairs import policy_items
    from rlaif.models.generate import generate

    prompts = ["\n\nHuman: Tell me a joke.\n\nAssistant:", "\n\nHuman: Hi!\n\nAssistant:"]
    gen = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": True, "top_k": 0, "top_p": 1.0}
    items = policy_items(str(tiny_llama), None, prompts, gen_kwargs=gen, seed=3, progress=False)
    want = [generate(str(tiny_llama), None, prompts, gen_kwargs=gen, seed=s, chat=True, progress=False).texts
            for s in (3, 4)]
    assert [(it.pair.prompt, it.pair.a, it.pair.b) for it in items] == list(zip(prompts, *want))
    assert any(it.pair.a != it.pair.b for it in items)  # two draws, not one answer twice
    with pytest.raises(ValueError, match="need sampling"):
        policy_items(str(tiny_llama), None, prompts, gen_kwargs={**gen, "do_sample": False})


def test_label_cli_with_a_policy_labels_its_two_samples(tmp_path, tiny_llama, capsys):
    from rlaif.data.prompts import load_split_prompts

    out = tmp_path / "labels.jsonl"
    assert main(["label", "profanity-check", "--data", "sample", "--limit", "3", "--policy", str(tiny_llama),
                 "--max-new-tokens", "5", "--out", str(out)]) == 0
    assert "sampling 2 replies to each of 3 prompts" in capsys.readouterr().out
    rows = _read(out)
    assert [r["prompt"] for r in rows] == load_split_prompts("sample", split="train", n=3)
    judge = build_judge("profanity-check")
    for r in rows:
        va, vb = (s.value for s in judge.score([(r["prompt"], r["a"]), (r["prompt"], r["b"])]))
        assert r["verdict"] == ("a" if va > vb else "b" if vb > va else "tie")
        assert r["source"] == "policy" and "human_chosen" not in r
    meta = json.loads((tmp_path / "labels.jsonl.meta.json").read_text())
    assert meta["policy"] == str(tiny_llama) and meta["judge_calls"] == 6


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A tiny Llama with a ChatML chat template, saved to disk."""
    from rlaif.models.tiny import LlamaSettings, build_llama, save_model
    from rlaif.testing.tiny import DEFAULT_CORPUS

    settings = LlamaSettings(vocab_size=320, context_length=256, hidden_size=32, intermediate_size=64,
                             num_layers=2, num_heads=4, num_kv_heads=2, seed=0)
    return save_model(tmp_path_factory.mktemp("llama") / "llama", *build_llama(DEFAULT_CORPUS * 4, settings))


def test_a_pairwise_claude_judge_with_position_bias_gives_the_fakes_verdicts(tmp_path, capsys, _credentials):
    from rlaif.judges.pairwise import unswap
    from rlaif.testing.fake_rules import fake_preference

    # Reply values on the fake's -5..5 rule: clean 5, one bad word 3, two bad words 1.
    rows = [("Glad to help.", "You idiot."), ("Happy to help.", "You stupid idiot.")] * 2
    data = _hh_file(tmp_path / "hh.jsonl", rows)
    out = tmp_path / "labels.jsonl"
    with FakeClaude(position_bias=3.0) as fake:
        assert main(["label", "claude-pairwise-anthropic", "--data", str(data), "--out", str(out),
                     "--set", f"base_url={fake.url}", "--set", "requests_per_minute=null"]) == 0
        assert fake.requests == 8  # every pair asked in both orders
    printed = capsys.readouterr().out
    got = _read(out)
    want, consistent = [], []
    for row in got:  # the fake's documented rule, asked as (a, b) and as (b, a)
        ab = fake_preference(row["a"], row["b"], 3.0)[0].lower()
        ba = unswap(fake_preference(row["b"], row["a"], 3.0)[0].lower(), "ba")
        consistent.append(ab == ba)
        want.append(ab if ab == ba else "tie")  # disagreement: tie
    assert [r["verdict"] for r in got] == want
    assert [r["consistent"] for r in got] == consistent
    assert 0 < sum(consistent) < 4  # the scripted bias flips some pairs, not all
    assert f"position consistency (both orders agree): {sum(consistent) / 4:.1%}" in printed
    agree = [v == r["human_chosen"] for v, r in zip(want, got) if v in ("a", "b")]
    assert f"agreement with the human label: {sum(agree) / len(agree):.1%}" in printed
    assert all(r["judge_calls"] == 2 and r["requests"] == 2 and r["cost_usd"] > 0 for r in got)
