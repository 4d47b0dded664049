"""`rlaif train` with hold-out evaluation: before on the start policy, after on the trained one."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import fmean

import pytest

from rlaif.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_cli_writes_before_after_report(tiny_models, tmp_path):
    run = tmp_path / "run"
    evaluator = f"{{type: classifier, model: {tiny_models['roberta']}, label: nothate}}"
    helpfulness = "{type: function, function: 'eval_fns:words', scale: [0, 50], name: words}"
    rc = main([
        "train", str(ROOT / "configs" / "tiny.yaml"),
        f"model.name_or_path={tiny_models['gpt2']}", "ppo.steps=2", "eval.enabled=true",
        "eval.n=8", f"eval.evaluator={evaluator}", "eval.split=test", f"eval.helpfulness={helpfulness}",
        "generation.temperature=0.7", "--out", str(run),
    ])
    assert rc == 0
    report = json.loads((run / "report.json").read_text())
    rows = report["rows"]
    assert len(rows) == 8
    stats = report["stats"]
    # The report's numbers are the per-prompt toxicities it lists.
    assert stats["before"]["mean"] == pytest.approx(fmean(r["tox_before"] for r in rows))
    assert stats["after"]["mean"] == pytest.approx(fmean(r["tox_after"] for r in rows))
    before, after = stats["before"]["mean"], stats["after"]["mean"]
    assert stats["improvement_mean"] == pytest.approx((before - after) / before)

    # "before" really is the start policy: regenerating from the untouched model folder with
    # the same seed and settings gives the same responses.
    # (Sampled tokens, so a rounding-level difference between the trainer's loaded policy and
    # a plain load could only flip a token whose probability sits on a draw's boundary.)
    from rlaif.config import load_config
    from rlaif.evaluation.holdout import DEFAULT_GEN_KWARGS
    from rlaif.models.generate import generate

    config = load_config(run / "config.yaml")
    again = generate(str(tiny_models["gpt2"]), None, [r["query"] for r in rows],
                     gen_kwargs={**DEFAULT_GEN_KWARGS, **config.generation.generate_kwargs()},
                     seed=config.data.seed, batch_size=config.ppo.batch_size, progress=False).texts
    assert again == [r["response_before"] for r in rows]
    # and "after" is not: two PPO steps at lr 1e-3 moved the policy.
    assert [r["response_after"] for r in rows] != again
    assert (run / "toxicity_hist.png").stat().st_size > 0
    assert (run / "length_hist.png").stat().st_size > 0
    assert (run / "training.png").stat().st_size > 0
    md = (run / "report.md").read_text()
    assert f"{before:.4f}" in md
    # The same report fields as `rlaif demo` and `rlaif evaluate`: training KL and hold-out KL.
    per = ("per reply (sum over tokens)", "per token (total / tokens)")
    assert set(report["kl"]) == {
        "training objective/kl: KL(policy || start) at T=0.7, k1, per reply (sum over tokens), on each "
        "step's rollout; mean of the last 2 steps",
        *(f"hold-out KL(after || start) at T=0.7, {kind}, {p}" for kind in ("k1", "k3") for p in per)}
    assert all(math.isfinite(v) for v in report["kl"].values())
    # k3 is non-negative per token
    assert report["kl"]["hold-out KL(after || start) at T=0.7, k3, per reply (sum over tokens)"] >= 0
    # eval.split: the interval resamples clusters of prompts (load_split_clusters)
    from rlaif.data.prompts import load_split_clusters

    clusters = load_split_clusters("sample", split="test", n=8)
    d = stats["difference"]
    assert d["resampled"] == "clusters" and d["n_clusters"] == len(set(clusters))
    # the helpfulness judge (words per reply) on both sides, and every floor's numbers
    h = stats["helpfulness"]
    assert h["judge"] == "words" and h["difference"]["resampled"] == "clusters"
    m = report["metrics"]
    assert m["before"]["helpfulness_mean"] == pytest.approx(fmean(len(r["response_before"].split()) for r in rows))
    assert [f["label"] for f in m["floors"]] == ["empty reply", '"I\'m sorry to hear that."']
    assert m["floors"][0]["helpfulness_mean"] == 0.0 and m["floors"][1]["deflection_share"] == 1.0
    assert m["before"]["perplexity"]["value"] > 1 and m["after"]["perplexity"]["value"] > 1
    assert "| floor: empty reply | floor: \"I'm sorry to hear that.\" |" in md
    # timings_s.total runs from setup to final/ written (report.json is rewritten after final/),
    # and compare-runs takes it as the run's wall-clock, with the judge's logged cost ($0 offline).
    from rlaif.runs.comparison import read_run

    timings = report["extra"]["timings_s"]
    assert timings["total"] + 0.2 >= timings["before"] + timings["ppo"] + timings["after"]
    assert (run / "final" / "README.md").stat().st_mtime_ns <= (run / "report.json").stat().st_mtime_ns
    assert '"total":' in md  # report.md's extra section was rewritten with it too
    summary = read_run(run)
    assert summary.total_seconds == timings["total"] and summary.cost_usd == 0.0


def test_control_summary_and_reward_judge_view_hold_helpfulness_and_floors():
    """The control set gets the helpfulness judge's means and interval; the reward judge's view
    scores each floor text once per prompt."""
    from rlaif.evaluation.holdout import Holdout, HoldoutSide
    from rlaif.runs.finish import reward_judge_view
    from rlaif.runs.holdout import control_summary

    clean = {"type": "function", "function": "eval_fns:clean", "scale": [0.0, 1.0], "name": "clean"}
    words = {"type": "function", "function": "eval_fns:words", "scale": [0.0, 50.0], "name": "words"}
    with Holdout(["p1", "p2"], clean, helpfulness=words, n_boot=100, floors=()) as control:
        before = HoldoutSide(["one two three", "you idiot"], [0.0, 1.0], helpfulness=[3.0, 2.0],
                             helpfulness_judge="words")
        after = HoldoutSide(["one", "fine thanks"], [0.0, 0.0], helpfulness=[1.0, 2.0],
                            helpfulness_judge="words")
        summary = control_summary(control, before, after)
        before.floors = {"": HoldoutSide(["", ""], [0.0, 0.0]),
                         "you idiot": HoldoutSide(["you idiot"] * 2, [1.0, 1.0])}
        view = reward_judge_view(clean, control, before, after)
    h = summary["helpfulness"]
    assert h["judge"] == "words" and h["mean"] == {"before": 2.5, "after": 1.5}
    assert h["difference"]["estimate"] == pytest.approx(((1 - 3) + (2 - 2)) / 2)  # after - before
    assert summary["toxicity_mean"] == {"before": 0.5, "after": 0.0}
    assert view["toxicity_mean_before"] == 0.5 and view["toxicity_mean_after"] == 0.0
    assert view["floors"] == {"": 0.0, "you idiot": 1.0}


def test_a_helpfulness_judge_that_is_the_reward_judge_is_warned_about(caplog):
    from rlaif.config import load_config
    from rlaif.runs.holdout import make_holdout

    words = "{type: function, function: 'eval_fns:words', scale: [0, 50], name: words}"
    clean = "{type: function, function: 'eval_fns:clean', scale: [0, 1], name: clean}"
    config = load_config(ROOT / "configs" / "tiny.yaml", [
        f"judge.ref={words}", f"eval.helpfulness={words}", f"eval.evaluator={clean}", "eval.split=test",
        "eval.n=4", "eval.floors=[]"])
    with caplog.at_level("WARNING", logger="rlaif.runs.holdout"):
        holdout = make_holdout(config, [], progress=False, batch_size=config.ppo.batch_size,
                               reward_judge=config.judge.ref)
    holdout.close()
    assert "eval.helpfulness is the reward judge" in caplog.text
    assert holdout.floors == [] and holdout.helpfulness.name == "words"
    assert holdout.clusters is not None and len(holdout.clusters) == len(holdout.prompts) == 4
