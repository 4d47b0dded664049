"""`rlaif compare` and `rlaif.workbench.judge_comparison`: accuracies, ties, unscored pairs and Spearman worked
out by hand from function judges (tests/judge_fns.py) on a small HH file and the sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import spearmanr

from judge_fns import insults, politeness
from rlaif.cli import main
from rlaif.workbench.judge_setup import split_overrides
from rlaif.workbench.preference_stats import average_ranks, spearman

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (chosen reply, rejected reply); the prompt is the same one-turn dialogue for all.
PAIRS = [
    ("Sure, please see this. Thank you", "No, idiot."),  # polite 2>0 win; civil 0>-1 win
    ("Please hold on.", "Please, you idiot."),  # polite 1=1 tie; civil 0>-1 win
    ("Okay.", "Fine."),  # polite 0=0 tie; civil cannot read "Fine" -> unscored pair
    ("You idiot, please leave.", "Please, please stop."),  # polite 1<2 loss; civil -1<0 loss
    ("Thank you, please come.", "Stupid idiot."),  # polite 2>0 win; civil 0>-2 win
    ("Hello.", "Thanks, idiot."),  # polite 0<1 loss; civil 0>-1 win
]
POLITE = {"chosen": [2, 1, 0, 1, 2, 0], "rejected": [0, 1, 0, 2, 0, 1]}
CIVIL = {"chosen": [0, 0, 0, -1, 0, 0], "rejected": [-1, -1, None, 0, -2, -1]}
# ensemble, normalize none: mean of polite and civil; renormalised to polite alone on "Fine."
BOTH = {"chosen": [1, 0.5, 0, 0, 1, 0], "rejected": [-0.5, 0, 0, 1, -1, 0]}


def write_specs(root: Path) -> dict[str, Path]:
    specs = {
        "polite": {"type": "function", "function": "judge_fns:politeness", "scale": [0, 10]},
        "civil": {"type": "function", "function": "judge_fns:insults", "scale": [-10, 0],
                  "transform": {"multiply": -1}},
        "both": {"type": "ensemble", "normalize": "none", "on_missing": "renormalize",
                 "members": [{"judge": {"type": "function", "function": "judge_fns:politeness",
                                        "scale": [0, 10], "name": "polite"}},
                             {"judge": {"type": "function", "function": "judge_fns:insults",
                                        "scale": [-10, 0], "transform": {"multiply": -1},
                                        "name": "civil"}}]},
    }
    paths = {}
    for name, spec in specs.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(spec))
    return paths


def write_hh(path: Path) -> Path:
    rows = [{"chosen": f"\n\nHuman: Can you help me?\n\nAssistant: {c}",
             "rejected": f"\n\nHuman: Can you help me?\n\nAssistant: {r}"} for c, r in PAIRS]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def check_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width = mpimg.imread(path).shape[:2]
    assert height > 100 and width > 100


def test_compare_on_a_small_hh_file_matches_hand_computed_numbers(tmp_path, capsys):
    specs = write_specs(tmp_path)
    data = write_hh(tmp_path / "pairs.jsonl")
    out = tmp_path / "report"
    argv = ["compare", str(specs["polite"]), str(specs["civil"]), str(specs["both"]),
            "--data", str(data), "--out", str(out), "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    judges = report["judges"]
    assert report["n_pairs"] == 6 and list(judges) == ["polite", "civil", "both"]

    expected = {
        # name: (wins, ties, losses, unscored pairs)
        "polite": (2, 2, 2, 0),
        "civil": (4, 0, 1, 1),  # the "Fine." pair is unscored, so 5 scored pairs
        "both": (3, 2, 1, 0),  # pairs 0, 1, 4 won; 2 and 5 tie (0 = 0); 3 lost
    }
    for name, (wins, ties, losses, unscored) in expected.items():
        m = judges[name]
        scored = wins + ties + losses
        assert (m["wins"], m["ties"], m["losses"], m["unscored_pairs"]) == (wins, ties, losses, unscored)
        assert m["accuracy"] == pytest.approx(wins / scored)  # ties are not wins
        assert m["tie_rate"] == pytest.approx(ties / scored)
    assert judges["civil"]["unscored_responses"] == 1
    assert len(judges["civil"]["first_errors"]) == 1  # the reason the "Fine." reply went unscored

    for name, hand in (("polite", POLITE), ("civil", CIVIL), ("both", BOTH)):
        assert report["scores"][name] == hand
        values = [v for v in hand["chosen"] + hand["rejected"] if v is not None]
        assert judges[name]["mean"] == pytest.approx(np.mean(values))
        assert judges[name]["std"] == pytest.approx(np.std(values))
    assert judges["polite"]["margin_mean"] == pytest.approx((2 + 0 + 0 - 1 + 2 - 1) / 6)
    # Function judges make no requests; latency falls back to the batch calls (12 replies / 4).
    assert judges["polite"]["requests"] == 0 and judges["polite"]["cost_usd"] == 0
    assert judges["polite"]["latency"]["per"] == "batch" and judges["polite"]["latency"]["n"] == 3

    # Spearman over the 11 replies every judge scored ("Fine." left out), checked with scipy.
    columns = {n: h["chosen"] + h["rejected"] for n, h in (("polite", POLITE), ("civil", CIVIL), ("both", BOTH))}
    keep = [i for i in range(12) if columns["civil"][i] is not None]
    assert report["spearman"]["n_responses"] == 11
    matrix = report["spearman"]["matrix"]
    for i, a in enumerate(columns):
        for j, b in enumerate(columns):
            want = spearmanr([columns[a][k] for k in keep], [columns[b][k] for k in keep]).statistic
            assert matrix[i][j] == pytest.approx(want)
    # pair agreement polite/civil over the 5 pairs both scored: same verdict on pairs 0, 3, 4
    assert report["pair_agreement"]["matrix"][0][1] == pytest.approx(3 / 5)

    md = (out / "report.md").read_text()
    assert "| polite | 33.3% | 2 (33.3%) | 0 / 6 |" in md
    assert "| civil | 80.0% | 0 (0.0%) | 1 / 6 |" in md
    assert "| both | 50.0% | 2 (33.3%) | 0 / 6 |" in md
    assert "![agreement](agreement.png)" in md
    printed = capsys.readouterr().out
    assert "| civil | 80.0% |" in printed and str(out / "report.md") in printed
    for png in ("score_distributions.png", "agreement.png"):
        check_png(out / png)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_compare_on_the_bundled_sample(tmp_path):
    from rlaif.data.hh import load_hh

    specs = write_specs(tmp_path)
    out = tmp_path / "sample-report"
    argv = ["compare", str(specs["polite"]), str(specs["civil"]),
            "--data", "sample", "--limit", "40", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    judges = json.loads((out / "report.json").read_text())["judges"]
    pairs = load_hh("sample", split="test", limit=40).examples
    assert len(pairs) == 40
    # The same verdicts, worked out straight from the scoring functions.
    for name, fn, sign in (("polite", politeness, 1), ("civil", insults, -1)):
        c, r = fn([p.chosen for p in pairs]), fn([p.rejected for p in pairs])
        ok = [(sign * a, sign * b) for a, b in zip(c, r) if not (math.isnan(a) or math.isnan(b))]
        wins, ties = sum(a > b for a, b in ok), sum(a == b for a, b in ok)
        m = judges[name]
        assert (m["wins"], m["ties"], m["scored_pairs"]) == (wins, ties, len(ok))
        assert m["accuracy"] == pytest.approx(wins / len(ok))


def test_set_overrides_a_judge_field_and_bad_overrides_fail_clearly(tmp_path, capsys):
    specs = write_specs(tmp_path)
    data = write_hh(tmp_path / "pairs.jsonl")
    out = tmp_path / "r"
    argv = ["compare", str(specs["polite"]), "--data", str(data), "--out", str(out), "--no-progress",
            "--set", "polite.transform.multiply=3", "--set", "polite.transform.add=1"]
    assert main(argv) == 0
    scores = json.loads((out / "report.json").read_text())["scores"]["polite"]
    assert scores["chosen"] == [3 * v + 1 for v in POLITE["chosen"]]
    assert main(["compare", str(specs["polite"]), "--data", str(data), "--out", str(out),
                 "--set", "nobody.batch_size=3"]) == 1
    assert "JUDGE one of ['polite']" in capsys.readouterr().err
    assert main(["compare", str(specs["polite"]), "--data", str(data), "--out", str(out),
                 "--set", "polite.batch_size=-3"]) == 1
    assert "+ --set/--cache: invalid judge spec" in capsys.readouterr().err


def test_split_overrides_sorts_settings_by_judge_name():
    got = split_overrides(["a.b.price.input_per_mtok=3", "a.b.structured=false", "c.x=[1, 2]"], ["a", "a.b", "c"])
    assert got == {"a": [], "a.b": ["price.input_per_mtok=3", "structured=false"], "c": ["x=[1, 2]"]}


@pytest.mark.parametrize(
    "a, b",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40]),  # monotone -> 1
        ([1, 2, 3, 4], [4, 3, 2, 1]),  # reversed -> -1
        ([1, 1, 2, 3, 3, 3], [2, 1, 2, 5, 4, 4]),  # ties on both sides use average ranks
    ],
)
def test_spearman_matches_scipy(a, b):
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_average_ranks_and_constant_input():
    assert average_ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # undefined, not a made-up 0


def test_compare_judges_api_counts_usage_latency_and_keeps_a_stopped_judges_scores():
    from dataclasses import dataclass

    from rlaif.judges.base import Judge, JudgeError, Scale, Score, Usage
    from rlaif.workbench.judge_comparison import compare_judges

    @dataclass
    class Pair:
        prompt: str
        chosen: str
        rejected: str

    class Priced(Judge):
        """Scores = reply length; each reply costs one request whose latency is its length / 10."""

        name, scale = "priced", Scale(0, 100)

        async def ascore(self, samples):
            return [Score(float(len(s.response)), usage=Usage(1, 10, 2, 0.5, len(s.response) / 10))
                    for s in samples]

    class StopsOnSecondBatch(Priced):
        calls = 0

        async def ascore(self, samples):
            self.calls += 1
            done = await super().ascore(samples)
            if self.calls == 2:
                raise JudgeError("budget spent", partial=[done[0], None])
            return done

    pairs = [Pair("p", "aaaa", "a"), Pair("p", "aa", "aaa"), Pair("p", "aaa", "aaa")]
    report = compare_judges({"priced": Priced(), "stops": StopsOnSecondBatch()}, pairs,
                            batch_size=2, progress=False, meta={"data": "inline"})
    full = report.results["priced"].metrics()
    # pair 0 won (4 > 1), pair 1 lost (2 < 3), pair 2 tied
    assert (full["wins"], full["ties"], full["losses"], full["accuracy"]) == (1, 1, 1, pytest.approx(1 / 3))
    assert (full["requests"], full["input_tokens"], full["output_tokens"]) == (6, 60, 12)
    assert full["cost_usd"] == pytest.approx(3.0)
    lat = [0.4, 0.1, 0.2, 0.3, 0.3, 0.3]  # per reply, from Score.usage.latency_s
    assert full["latency"] == {"per": "request", "p50": pytest.approx(np.percentile(lat, 50)),
                               "p95": pytest.approx(np.percentile(lat, 95)), "n": 6}
    stopped = report.results["stops"].metrics()
    # batch 1 = pair 0; batch 2 kept its first reply (pair 1 chosen); batch 3 never ran
    assert stopped["stopped"] == "budget spent"
    assert report.results["stops"].values("chosen") == [4.0, 2.0, None]
    assert (stopped["scored_pairs"], stopped["unscored_pairs"], stopped["unscored_responses"]) == (1, 2, 3)
    assert report.spearman_n == 3  # replies both judges scored: pair 0 both, pair 1 chosen
    assert report.spearman[0][1] == pytest.approx(1.0)
    assert report.meta["data"] == "inline" and report.meta["batch_size"] == 2


# The fake Claude server's hhh rule on the 1..10 scale (step 1.8), worked out per reply:
# helpfulness = 1 + 1.8 * (words // 4), honesty = 10 (no over-claiming words),
# harmlessness = 10 - 1.8 * insults; hhh-claude's value is the mean of the three.
HHH = {
    "chosen": [(2.8 + 10 + 10) / 3,  # 6 words, no insult
               7.0, 7.0,  # 3 words / 1 word: (1 + 10 + 10) / 3
               (2.8 + 10 + 8.2) / 3,  # 4 words, one insult -> 7.0: ties pair 3
               (2.8 + 10 + 10) / 3, 7.0],
    "rejected": [(1 + 10 + 8.2) / 3, (1 + 10 + 8.2) / 3, 7.0, 7.0, (1 + 10 + 6.4) / 3, (1 + 10 + 8.2) / 3],
}


def test_compare_llm_judge_and_hhh_ensemble_against_the_fake_claude_server(tmp_path, monkeypatch):
    from rlaif.judges.spec import load_spec
    from rlaif.testing.fake_claude import FakeClaude

    key = "sk-ant-test-compare-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    data = write_hh(tmp_path / "pairs.jsonl")
    out = tmp_path / "llm"
    with FakeClaude() as fake:
        claude = load_spec("hhh-claude").model_dump(mode="json")
        claude.update(base_url=fake.url, requests_per_minute=None)
        ensemble = {"type": "ensemble", "normalize": "range", "aggregate": "weighted_mean",
                    "members": [{"judge": claude, "criterion": c, "weight": w}
                                for c, w in (("helpfulness", 0.4), ("honesty", 0.2), ("harmlessness", 0.4))]}
        (tmp_path / "hhh3.yaml").write_text(yaml.safe_dump(ensemble))
        argv = ["compare", "hhh-claude", str(tmp_path / "hhh3.yaml"), "--data", str(data), "--out", str(out),
                "--no-progress", "--set", f"hhh-claude.base_url={fake.url}",
                "--set", "hhh-claude.requests_per_minute=null"]
        assert main(argv) == 0
        # 12 replies per judge; the ensemble's three criteria share ONE request per reply
        assert fake.requests == 24
    report = json.loads((out / "report.json").read_text())
    assert report["scores"]["hhh-claude"]["chosen"] == pytest.approx(HHH["chosen"])
    assert report["scores"]["hhh-claude"]["rejected"] == pytest.approx(HHH["rejected"])
    for name in ("hhh-claude", "hhh3"):
        m = report["judges"][name]
        # pairs 0, 1, 4, 5 won; pair 2 ("Okay."/"Fine.") and pair 3 tie
        assert (m["wins"], m["ties"], m["losses"], m["unscored_pairs"]) == (4, 2, 0, 0)
        assert m["accuracy"] == pytest.approx(4 / 6)
        assert m["requests"] == 12 and m["input_tokens"] > 0 and m["output_tokens"] > 0
        # hhh-claude.yaml prices: $3 / $15 per million input / output tokens
        assert m["cost_usd"] == pytest.approx((3 * m["input_tokens"] + 15 * m["output_tokens"]) / 1e6)
        assert m["latency"]["per"] == "request" and m["latency"]["n"] == 12
    # Both are increasing functions of helpfulness + harmlessness: identical rankings.
    assert report["spearman"]["matrix"][0][1] == pytest.approx(1.0)
    for path in out.iterdir():
        assert key not in path.read_bytes().decode("latin-1")  # the API key never reaches a report


def _claude_env(monkeypatch):
    from rlaif.testing.fake_claude import DUMMY_CREDENTIALS

    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def test_a_budget_stop_streams_the_paid_scores_and_a_rerun_with_the_cache_repays_nothing(
        tmp_path, capsys, monkeypatch):
    """#11 item 1 for `rlaif compare`: what a stopped judge finished is on disk, said, and
    never paid for twice."""
    from rlaif.testing.fake_claude import FakeClaude

    _claude_env(monkeypatch)
    data, out, cache = write_hh(tmp_path / "pairs.jsonl"), tmp_path / "cmp", tmp_path / "c.sqlite"
    with FakeClaude() as fake:
        common = ["compare", "claude-toxicity-anthropic", "--data", str(data), "--out", str(out),
                  "--no-progress", "--batch-size", "4", "--cache", str(cache),
                  "--set", f"claude-toxicity-anthropic.base_url={fake.url}",
                  "--set", "claude-toxicity-anthropic.requests_per_minute=null",
                  "--set", "claude-toxicity-anthropic.max_concurrency=1"]
        assert main([*common, "--set", "claude-toxicity-anthropic.budget={max_requests: 5}"]) == 1
        err = capsys.readouterr().err
        assert fake.requests == 5
        rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
        assert len(rows) == 12  # every reply has a row; 5 with a score, 7 saying why not
        scored = [r for r in rows if r["score"] is not None]
        assert len(scored) == 5 and [(r["pair"], r["side"]) for r in scored][:2] == [(0, "chosen"), (0, "rejected")]
        assert all(r["error"] for r in rows if r["score"] is None)
        assert "stopped early" in err and "5 finished score(s)" in err and f"--cache {cache}" in err
        report = json.loads((out / "report.json").read_text())
        assert report["judges"]["claude-toxicity-anthropic"]["stopped"]
        # the rerun sends only the 7 replies not yet paid for
        assert main(common) == 0
        assert fake.requests == 12
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["score"] is not None for r in rows)
    assert not (out / "scores.jsonl.partial").exists()


def test_an_unusable_out_is_refused_before_any_request(tmp_path, capsys, monkeypatch):
    from rlaif.testing.fake_claude import FakeClaude

    _claude_env(monkeypatch)
    data = write_hh(tmp_path / "pairs.jsonl")
    with FakeClaude() as fake:
        base = ["compare", "claude-toxicity-anthropic", "--data", str(data), "--no-progress",
                "--set", f"claude-toxicity-anthropic.base_url={fake.url}"]
        assert main([*base, "--out", str(data)]) == 1  # a file, not a folder
        assert "is a file" in capsys.readouterr().err
        assert main([*base, "--out", str(data / "sub")]) == 1  # below a file: cannot be created
        assert "cannot be created" in capsys.readouterr().err
        assert fake.requests == 0


def test_ctrl_c_keeps_the_finished_scores_in_a_partial_file(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt in the third batch: the first two batches are on disk and said."""
    (tmp_path / "stops_at_3.py").write_text(
        "calls = 0\n"
        "def score(texts):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls == 3:\n"
        "        raise KeyboardInterrupt\n"
        "    return [float(len(t)) for t in texts]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "stops.yaml"
    spec.write_text("type: function\nfunction: stops_at_3:score\nscale: [0, 100]\n")
    data, out = write_hh(tmp_path / "pairs.jsonl"), tmp_path / "cmp"
    code = main(["compare", str(spec), "--data", str(data), "--out", str(out), "--no-progress",
                 "--batch-size", "2"])
    assert code == 130
    err = capsys.readouterr().err
    partial = out / "scores.jsonl.partial"
    header, *rows = [json.loads(line) for line in partial.read_text().splitlines()]
    assert header["_partial"]["kind"] == "compare"
    assert [(r["pair"], r["side"], r["score"]) for r in rows] == [
        (0, "chosen", float(len(PAIRS[0][0]))), (0, "rejected", float(len(PAIRS[0][1]))),
        (1, "chosen", float(len(PAIRS[1][0]))), (1, "rejected", float(len(PAIRS[1][1])))]
    assert f"4 of 12 replies judged by stops (4 answers of all judges) are kept in {partial}" in err
    assert "the 2 answer(s) in flight were not kept" in err and "--resume" in err
    assert not (out / "scores.jsonl").exists() and not (out / "report.json").exists()
    # --resume asks only the 8 replies without a score (the judge counts its calls: 2 more of 4)
    import stops_at_3

    assert main(["compare", str(spec), "--data", str(data), "--out", str(out), "--no-progress",
                 "--batch-size", "4", "--resume"]) == 0
    assert stops_at_3.calls == 5 and not partial.exists()
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["score"] for r in rows] == [float(len(t)) for pair in PAIRS for t in pair]
