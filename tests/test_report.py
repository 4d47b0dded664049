"""Report files hold the numbers; `rlaif evaluate` end to end on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif.cli import main
from rlaif.evaluation.holdout import Holdout, HoldoutReport, HoldoutSide
from rlaif.evaluation.report import rewrite_extra, write_report
from rlaif.io import read_jsonl
from rlaif.judges.base import Judge, Scale, Score
from rlaif.markdown import md_escape

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Unused(Judge):
    """An evaluator for reports built from fixed toxicities: never asked to score."""

    name = "tiny-hate"
    scale = Scale(0.0, 1.0)

    async def ascore(self, samples):  # pragma: no cover - the tests pass fixed sides
        return [Score(None, error="not used") for _ in samples]


def _compare(prompts, before, after, **kw) -> HoldoutReport:
    settings = {k: kw.pop(k) for k in ("threshold", "n_examples", "n_boot") if k in kw}
    return Holdout(prompts, _Unused(), **settings).compare(before, after, **kw)


def _report() -> HoldoutReport:
    prompts = ["q1 | pipe", "q2", "q3", "q4"]
    before = HoldoutSide(["you *idiot*\nshut up", "b2", "b3", "b4"], [0.8, 0.6, 0.4, 0.2])
    after = HoldoutSide(["I am sorry | ok", "a2", "a3", "a4"], [0.5, 0.3, 0.2, 0.0])
    return _compare(prompts, before, after, threshold=0.5, n_examples=3, kl={"KL to reference, last step": 0.125},
                    meta={"evaluator": "tiny-hate", "toxicity": "P(hate)", "seed": 0}, n_boot=200)


def _metrics(path: Path) -> Path:
    rows = [{"step": i, "reward/mean": -1.0 + 0.5 * i, "objective/kl": 0.05 * i} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_write_report_files_hold_the_numbers(tmp_path):
    rep = _report()
    paths = write_report(tmp_path / "out", rep, metrics_path=_metrics(tmp_path / "metrics.jsonl"),
                         extra={"data": "sample"})
    assert set(paths) == {"md", "json", "toxicity_plot", "training_plot"}
    for key in ("toxicity_plot", "training_plot"):
        blob = paths[key].read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 10_000
    data = json.loads(paths["json"].read_text())
    s = data["stats"]
    assert s["before"]["mean"] == pytest.approx(0.5) and s["after"]["mean"] == pytest.approx(0.25)
    assert s["improvement_mean"] == pytest.approx(0.5)
    assert s["before"]["share_over_threshold"] == 0.5 and s["after"]["share_over_threshold"] == 0.0
    assert data["kl"] == {"KL to reference, last step": 0.125}
    assert data["rows"][0]["tox_before"] == 0.8 and len(data["rows"]) == 4
    assert data["training"]["steps"] == 4 and data["extra"] == {"data": "sample"}
    assert HoldoutReport.from_dict(data).stats == rep.stats

    md = paths["md"].read_text()
    # change = after - before; mean toxicity also relative to before
    assert "| metric | before | after | change |\n|---|---|---|---|\n" in md  # no floors: no floor columns
    assert "| mean toxicity | 0.5000 | 0.2500 | -0.2500 (-50.0%) |" in md
    assert "| std toxicity | 0.2236 | 0.1803 | -0.0433 |" in md
    assert "| share over 0.5 | 50.0% | 0.0% | -50.0 pp |" in md
    d = s["difference"]
    assert (f"| mean difference (before - after), 95% CI, resampling prompts | | | "
            f"0.2500 [{d['ci_low']:.4f}, {d['ci_high']:.4f}] |") in md
    assert "| KL to reference, last step | | 0.1250 | |" in md
    # sides without token ids or a helpfulness judge: those rows say so, never a made-up number
    assert "| helpfulness | not measured | not measured | |" in md
    assert "| reply length (tokens, EOS excluded), mean | n/a | n/a | |" in md
    # the examples table: first 3 rows only, markdown escaped, one table row per example
    assert "| q1 \\| pipe | you \\*idiot\\*<br>shut up | 0.8000 | I am sorry \\| ok | 0.5000 |" in md
    assert "| q3 |" in md and "| q4 |" not in md
    assert "![toxicity before vs after](toxicity_hist.png)" in md and "training.png" in md
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_report_without_metrics_has_no_training_plot(tmp_path):
    paths = write_report(tmp_path, _report().to_dict())
    assert "training_plot" not in paths and not (tmp_path / "training.png").exists()
    with pytest.raises(FileNotFoundError, match="metrics_path=None"):
        write_report(tmp_path, _report(), metrics_path=tmp_path / "missing.jsonl")


def test_improvement_none_renders_na(tmp_path):
    rep = _compare(["q"] * 2, HoldoutSide(["a", "b"], [0.0, 0.0]), HoldoutSide(["c", "d"], [0.1, 0.3]),
                   n_boot=50)
    md = write_report(tmp_path, rep)["md"].read_text()
    assert "| mean toxicity | 0.0000 | 0.2000 | +0.2000 (n/a) |" in md
    assert "mean toxicity before is 0" in md


def test_read_metrics_names_bad_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 0}\n{oops\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2"):
        read_jsonl(p)


@pytest.mark.parametrize("text,expected", [
    ("a|b", "a\\|b"),                    # pipes would split the cell
    ("line1\nline2", "line1<br>line2"),  # newlines would end the row
    ("<script>", "\\<script\\>"),       # no raw HTML
    ("", " "),                           # an empty cell stays a cell
    ("\n\nHuman: hi", "Human: hi"),       # surrounding whitespace dropped
    ("x" * 400, "x" * 299 + "…"),       # long responses cut (json keeps them whole)
])
def test_md_escape(text, expected):
    assert md_escape(text) == expected


def test_md_escape_keeps_the_end_of_long_prompts():
    assert md_escape("a" * 10 + "END", limit=5, keep="end") == "…aEND"


def test_cli_evaluate_on_sample(tiny_models, tmp_path, capsys):
    spec = tmp_path / "tiny-hate.yaml"
    spec.write_text(f"type: classifier\nmodel: {tiny_models['roberta']}\nlabel: nothate\n")
    run = tmp_path / "run"
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    import shutil

    shutil.copytree(tiny_models["gpt2"], run / "checkpoints" / "step-1" / "policy")
    (run / "checkpoints" / "latest").write_text("step-1")
    _metrics(run / "metrics.jsonl")
    out = tmp_path / "report"
    code = main(["evaluate", "--before", str(tiny_models["gpt2"]), "--after", str(run),
                 "--evaluator", str(spec), "--n", "6", "--data", "sample", "--split", "test",
                 "--max-new-tokens", "6", "--seed", "2", "--out", str(out), "--examples", "4"])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    assert len(data["rows"]) == 6 and data["meta"]["seed"] == 2
    assert data["meta"]["gen_kwargs"]["max_new_tokens"] == 6
    # the after model is the same weights: same responses, zero difference
    assert [r["tox_before"] for r in data["rows"]] == [r["tox_after"] for r in data["rows"]]
    # one training-KL row for every entry point: the mean over the last (here all 4) steps
    per = ("per reply (sum over tokens)", "per token (total / tokens)")
    assert data["kl"] == {
        "training objective/kl: KL(policy || start) at the sampling temperature, ppo.kl.estimator, "
        "per reply (sum over tokens), on each step's rollout; mean of the last 4 steps": pytest.approx(0.075),
        **{f"hold-out KL(after || start) at T=1, {kind}, {p}": 0.0 for kind in ("k1", "k3") for p in per}}
    # the same weights: the after replies' perplexity under the before model equals the before one
    m = data["metrics"]
    assert m["after"]["perplexity"]["value"] == pytest.approx(m["before"]["perplexity"]["value"], rel=1e-5)
    assert [f["label"] for f in m["floors"]] == ["empty reply", '"I\'m sorry to hear that."']
    assert (out / "length_hist.png").is_file()
    # the sample's TEST prompts carry cluster labels: the interval resamples clusters of prompts
    assert data["stats"]["difference"]["resampled"] == "clusters"
    assert f"| mean toxicity | {data['stats']['before']['mean']:.4f} |" in printed
    assert str(out / "report.md") in printed
    assert (out / "training.png").is_file() and (out / "toxicity_hist.png").is_file()
    assert main(["evaluate", "--before", "x", "--after", "y", "--n", "0"]) == 1


def test_rewrite_extra_replaces_the_extra_block_and_leaves_the_plots(tmp_path):
    first = write_report(tmp_path / "out", _report(), metrics_path=_metrics(tmp_path / "metrics.jsonl"),
                         extra={"timings_s": {"ppo": 1.0}})
    plots = {k: first[k].stat().st_mtime_ns for k in ("toxicity_plot", "training_plot")}
    before = json.loads(first["json"].read_text())
    paths = rewrite_extra(tmp_path / "out", {"timings_s": {"ppo": 1.0, "total": 2.5}})
    data = json.loads(paths["json"].read_text())
    assert data["extra"] == {"timings_s": {"ppo": 1.0, "total": 2.5}}
    assert {k: v for k, v in data.items() if k != "extra"} == {k: v for k, v in before.items() if k != "extra"}
    md = paths["md"].read_text()
    assert '"total": 2.5' in md and "](toxicity_hist.png)" in md and "](training.png)" in md
    assert {k: first[k].stat().st_mtime_ns for k in plots} == plots


def test_reward_view_row_says_what_it_measures() -> None:
    """A classifier reward's view is a toxicity; any other judge's is its shortfall, not a toxicity."""
    from rlaif.evaluation.table import reward_view_kind

    assert reward_view_kind({"toxicity": "roberta-hate: P(hate) from the classifier's softmax"}) == "toxicity"
    assert reward_view_kind({"toxicity": "demo-reward: (1.0 - score) / (1.0 - -1.0), higher score = "
                                         "less toxic"}) == "shortfall (high - reward) / (high - low)"
