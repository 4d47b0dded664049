"""`rlaif compare-runs`: runs side by side, from the files the hold-out flow writes."""

from __future__ import annotations

import json

import pytest

from rlaif.cli import main
from rlaif.runs.comparison import compare_runs, read_run
from rlaif.evaluation.comparison import compare_before_after
from rlaif.evaluation.holdout import HoldoutReport
from rlaif.evaluation.report import write_report

BEFORE = [0.9, 0.8, 0.7, 0.6]


def _run(folder, after, *, method, extra=None, metrics=None, kl=None, headline=None, helpfulness=None):
    """A run folder as `rlaif train` / `rlaif dpo` leave it: report.json (+ metrics.jsonl)."""
    stats = compare_before_after(BEFORE, after, paired=True)
    rows = [{"query": f"q{i}", "response_before": "x", "tox_before": b, "response_after": "y",
             "tox_after": a} for i, (b, a) in enumerate(zip(BEFORE, after))]
    report = HoldoutReport(rows, stats, {"evaluator": "ev", "n_prompts": 4, "helpfulness_judge": helpfulness},
                           kl, metrics=headline)
    metrics_path = None
    if metrics:
        metrics_path = folder / "metrics.jsonl"
        folder.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("".join(json.dumps(m) + "\n" for m in metrics))
    write_report(folder, report, metrics_path=metrics_path, extra={"method": method, **(extra or {})})
    return stats


def test_the_table_holds_each_runs_numbers(tmp_path, capsys):
    kl = {"hold-out KL(after || start) at T=0.7, k1, per reply (sum over tokens)": 0.12,
          "hold-out KL(after || start) at T=0.7, k1, per token (total / tokens)": 0.01,
          "hold-out KL(after || start) at T=0.7, k3, per reply (sum over tokens)": 0.11}
    side = {"helpfulness_mean": 2.5, "deflection_share": 0.25, "perplexity": {"value": 12.5},
            "distinct": {"2": 0.8}, "length": {"median": 14.0}}
    headline = {"before": side, "after": {"helpfulness_mean": 2.0, "deflection_share": 0.5,
                                          "perplexity": {"value": 9.0}, "distinct": {"2": 0.6},
                                          "length": {"median": 5.5}}, "floors": []}
    ppo_stats = _run(tmp_path / "ppo", [0.5, 0.4, 0.3, 0.2], method="ppo", kl=kl, headline=headline,
                     helpfulness="words",
                     metrics=[{"step": s, "reward/mean": 0.5, "objective/kl": 0.1 * s, "batch/size": 16}
                              for s in range(1, 7)],
                     extra={"timings_s": {"before": 10.0, "ppo": 100.0, "after": 12.0},
                            "reward_judge": {"judge": "profanity-check", "toxicity_mean_before": 0.3,
                                             "toxicity_mean_after": 0.1}})
    dpo_stats = _run(tmp_path / "dpo", [0.85, 0.8, 0.7, 0.6], method="dpo",
                     extra={"timings_s": {"before": 9.0, "dpo": 50.0, "after": 11.0, "total": 80.0},
                            "labels": {"judge_calls": 96, "cost_usd": 0.0, "seconds_total": 30.0}})
    out = tmp_path / "cmp"
    assert main(["compare-runs", str(tmp_path / "ppo"), str(tmp_path / "dpo"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = {line.split(" | ")[0].strip("| "): line for line in printed.splitlines() if line.startswith("| ")}
    ppo, dpo = lines["ppo"].split(" | "), lines["dpo"].split(" | ")
    d = ppo_stats["difference"]
    assert ppo[1:5] == ["ppo", "0.7500", "0.3500", f"{d['estimate']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]"]
    assert ppo[6] == "0.1200 / 0.1100"
    assert ppo[7] == "0.4000"  # mean objective/kl of the last 5 steps: (0.2 + ... + 0.6) / 5
    assert ppo[8] == "profanity-check: 0.3000 -> 0.1000"
    # helpfulness, deflections, perplexity, distinct-2, median reply tokens: before -> after
    assert ppo[9:14] == ["words: 2.5000 -> 2.0000", "25.0% -> 50.0%", "12.50 -> 9.00", "0.8000 -> 0.6000",
                         "14 -> 5.5"]
    assert ppo[14:] == ["96", "n/a", "122 |"]  # 6 steps x 16 replies scored; no cost logged; 10+100+12 s
    assert dpo[1:4] == ["dpo", "0.7500", f"{dpo_stats['after']['mean']:.4f}"]
    assert dpo[6] == "n/a / n/a"  # no hold-out KL recorded
    assert dpo[9:14] == ["not measured", "n/a", "n/a", "n/a", "n/a"]  # a report without those metrics
    assert dpo[14:] == ["96", "$0.0000", "110 |"]  # label calls; run total 80 s + labelling 30 s
    assert (out / "compare_runs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "compare_runs.json").read_text())
    assert [r["name"] for r in saved["runs"]] == ["ppo", "dpo"]
    (note,) = saved["notes"]  # one run measured helpfulness, the other did not
    assert "the runs differ in helpfulness judge" in note


def test_runs_measured_differently_get_a_note(tmp_path):
    _run(tmp_path / "a", [0.5] * 4, method="ppo")
    _run(tmp_path / "b", [0.5] * 4, method="dpo")
    data = json.loads((tmp_path / "b" / "report.json").read_text())
    data["meta"]["evaluator"] = "another"
    (tmp_path / "b" / "report.json").write_text(json.dumps(data))
    (note,) = compare_runs([tmp_path / "a", tmp_path / "b"])["notes"]
    assert "differ in evaluator" in note


def test_a_folder_that_is_not_a_run_is_named(tmp_path, capsys):
    _run(tmp_path / "good", [0.5] * 4, method="ppo")
    (tmp_path / "empty").mkdir()
    assert main(["compare-runs", str(tmp_path / "good"), str(tmp_path / "empty"), "--out",
                 str(tmp_path / "cmp")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'empty'} is not an evaluated rlaif run folder: it has no report.json" in err
    with pytest.raises(FileNotFoundError, match="missing: no such run folder"):
        read_run(tmp_path / "missing")
    with pytest.raises(ValueError, match="at least two run folders"):
        compare_runs([tmp_path / "good"])


def test_ppo_cost_comes_from_the_logged_judge_cost_and_time_from_the_total(tmp_path):
    """`judge/cost_usd` per step (rlaif train logs it) sums to the run's cost; timings_s.total
    (setup to final/ written) is the wall-clock when the run recorded it, for PPO and DPO."""
    steps = [{"step": s, "reward/mean": 0.5, "batch/size": 8, "judge/requests": 9, "judge/cost_usd": 0.0125}
             for s in (1, 2, 3)]
    _run(tmp_path / "ppo", [0.5] * 4, method="ppo", metrics=steps,
         extra={"timings_s": {"before": 10.0, "ppo": 100.0, "after": 12.0, "total": 131.0}})
    _run(tmp_path / "offline", [0.5] * 4, method="ppo", metrics=[{**m, "judge/cost_usd": 0.0} for m in steps])
    ppo, offline = read_run(tmp_path / "ppo"), read_run(tmp_path / "offline")
    assert ppo.cost_usd == pytest.approx(0.0375) and ppo.judge_calls == 24
    assert ppo.total_seconds == 131.0  # not 10 + 100 + 12: setup and final/ count too
    assert offline.cost_usd == 0.0 and offline.total_seconds is None
    table = compare_runs([tmp_path / "ppo", tmp_path / "offline"])["table"]
    assert "| $0.0375 | 131 |" in table and "| $0.0000 | n/a |" in table
