"""Trackers (`output.report_to`), offline: the event files and the mlflow file store read back
hold exactly what metrics.jsonl holds; a missing package names the extra to install."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from ppo_helpers import make_config

from rlaif.cli import main
from rlaif.tracking import Tracker, TrackerMissing, flat_config, metric_name

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tracked_run(tiny_models, tmp_path_factory):
    """2 PPO steps of a tiny GPT-2 with hold-out evaluation, reported to tensorboard and mlflow."""
    from rlaif.runs.lifecycle import train_ppo

    run = tmp_path_factory.mktemp("tracking") / "run"
    evaluator = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate"}
    config = make_config(tiny_models["gpt2"], run, "output.report_to=[tensorboard, mlflow]",
                         eval={"enabled": True, "n": 4, "evaluator": evaluator}, data={"test_size": 0.2})
    train_ppo(config, progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return run, rows


def _logged(rows):
    """(step, key, value) of every number metrics.jsonl holds (null = not measured)."""
    return [(row["step"], key, value) for row in rows for key, value in row.items()
            if key != "step" and isinstance(value, (int, float))]


@pytest.mark.slow
def test_tensorboard_event_files_hold_every_metric(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, rows = tracked_run
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    logged = _logged(rows)
    assert len(rows) == 2 and len(logged) > 40
    for step, key, value in logged:
        by_step = {e.step: e.value for e in events.Scalars(key)}
        # Event files store float32.
        assert by_step[step] == pytest.approx(float(np.float32(value)), rel=1e-6, abs=1e-30), key
    assert {e.step for e in events.Scalars("reward/mean")} == {1, 2}
    # The hold-out result at the last step: its numbers, and the report's plots.
    report = json.loads((run / "report.json").read_text())
    mean_after = events.Scalars("holdout.after.mean")
    assert [e.step for e in mean_after] == [2]
    assert mean_after[0].value == pytest.approx(report["stats"]["after"]["mean"], rel=1e-6)
    assert {"holdout/toxicity_plot", "holdout/training_plot"} <= set(events.Tags()["images"])


@pytest.mark.slow
def test_mlflow_file_store_holds_every_metric_and_the_config(tracked_run):
    from mlflow.tracking import MlflowClient

    from rlaif.evaluation.report import summary_table

    run, rows = tracked_run
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("rlaif")
    (found,) = client.search_runs([experiment.experiment_id])
    run_id = found.info.run_id
    for step, key, value in _logged(rows):
        history = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        assert history[step] == pytest.approx(value, rel=1e-12, abs=1e-300), key
    params = found.data.params
    assert params["ppo.learning_rate"] == "0.001" and params["output.report_to"] == "['tensorboard', 'mlflow']"
    report = json.loads((run / "report.json").read_text())
    kl_key = "hold-out KL(after || start) at T=1, k3, per reply (sum over tokens)"
    history = client.get_metric_history(run_id, metric_name(f"holdout_kl.{kl_key}"))
    assert [m.value for m in history] == [pytest.approx(report["kl"][kl_key], rel=1e-12)]
    table = Path(client.download_artifacts(run_id, "holdout/table.md", str(run / "dl")))
    assert table.read_text() == summary_table(report)
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    assert plots == {"toxicity_hist.png", "length_hist.png", "training.png"}


def test_a_missing_tracker_package_names_the_extra(tiny_models, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrackerMissing, match=r"pip install rlaif\[tracking\]"):
        Tracker(["wandb"], tmp_path)
    # `rlaif train` refuses before any training step, without a traceback.
    run = tmp_path / "run"
    rc = main(["train", str(ROOT / "configs" / "tiny.yaml"), f"model.name_or_path={tiny_models['gpt2']}",
               "output.report_to=[wandb]", "--out", str(run)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "'wandb'" in err and "pip install rlaif[tracking]" in err
    assert not (run / "checkpoints").exists()


def test_report_to_accepts_only_known_trackers(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="output.report_to"):
        make_config(tiny_models["gpt2"], tmp_path, "output.report_to=[comet]")
    assert make_config(tiny_models["gpt2"], tmp_path).output.report_to == []  # default: none


def test_no_tracker_is_a_no_op(tmp_path):
    tracker = Tracker([], tmp_path / "run")
    assert not tracker.active and tracker.where() == []
    tracker.log({"reward/mean": 1.0}, step=1)
    tracker.log_report("| table |", {"a": 1.0}, step=1)
    tracker.finish()
    assert not (tmp_path / "run").exists()  # nothing written anywhere
    # A process other than the main one logs nothing either, whatever report_to says.
    assert not Tracker(["tensorboard"], tmp_path / "rank1", enabled=False).active


def test_flat_config_redacts_secrets_and_keeps_numbers():
    flat = flat_config({"judge": {"ref": {"type": "llm", "api_key": "sk-ant-abcdefgh12345678"}},
                        "ppo": {"learning_rate": 1e-3, "steps": 2}, "model": {"lora": None},
                        "output": {"report_to": ["tensorboard"]}})
    assert flat == {"judge.ref.type": "llm", "judge.ref.api_key": "<redacted>",
                    "ppo.learning_rate": 1e-3, "ppo.steps": 2, "model.lora": "None",
                    "output.report_to": "['tensorboard']"}


@pytest.mark.parametrize("key,expected", [
    ("reward/mean", "reward/mean"),                                    # already valid
    ("holdout_kl.hold-out KL(after || before), k1", "holdout_kl.hold-out KL_after_before_k1"),
    ("a,b", "a_b"),
])
def test_metric_names_trackers_accept(key, expected):
    assert metric_name(key) == expected
