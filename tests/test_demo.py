"""`rlaif demo`: asset caching, the run config, and the demo's toxicity reduction at `--fast` size."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rlaif.demo import assets as demo_assets
from rlaif.demo.assets import asset_key
from rlaif.demo.settings import EvaluatorSettings, PolicySettings


def test_asset_key_follows_sample_bytes_and_settings(tmp_path: Path) -> None:
    files = demo_assets.sample_files()
    copies = []
    for f in files:
        copies.append(tmp_path / f.name)
        shutil.copy(f, copies[-1])
    base = asset_key(PolicySettings(), copies)
    # Same bytes, same settings: same key (the cache is found again).
    assert asset_key(PolicySettings(), copies) == base
    assert asset_key(PolicySettings(), files) == base
    # A changed setting, another model kind, or a changed sample file builds afresh.
    assert asset_key(PolicySettings(steps=7), copies) != base
    assert asset_key(EvaluatorSettings(), copies) != base
    copies[1].write_text(copies[1].read_text() + "\n")
    assert asset_key(PolicySettings(), copies) != base


def test_asset_key_names_a_missing_sample(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make_hh_sample.py"):
        asset_key(PolicySettings(), [tmp_path / "hh_sample_train.jsonl"])


def test_demo_config_fills_in_the_cached_models(tmp_path: Path) -> None:
    from rlaif.demo.assets import DemoAssets
    from rlaif.demo.run import demo_config

    fake = DemoAssets(tmp_path, tmp_path / "policy", tmp_path / "evaluator", "k", True, {}, toy=True)
    config = demo_config(fake, tmp_path / "run", overrides=["ppo.steps=3"])
    assert config.model.name_or_path == str(tmp_path / "policy")
    assert config.eval.evaluator["model"] == str(tmp_path / "evaluator")
    assert config.eval.evaluator["label"] == "hate" and config.eval.evaluator["output"] == "prob"
    assert config.judge.ref == "profanity-check"  # reward judge != evaluator
    assert config.data.split == "train" and config.data.test_size == 0
    assert config.ppo.steps == 3 and config.output.dir == str(tmp_path / "run")


@pytest.mark.slow
def test_fast_demo_reduces_holdout_toxicity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole toy demo at --fast size (12 PPO steps, 64 hold-out prompts), through the CLI."""
    from rlaif.cli import main

    # A fresh cache unless RLAIF_CACHE names one (then a warm cache skips the model builds).
    cache = Path(os.environ.get("RLAIF_CACHE") or tmp_path / "cache")
    out = tmp_path / "run"
    assert main(["demo", "--toy", "--fast", "--out", str(out), "--cache-dir", str(cache)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    stats = report["stats"]
    # A real reduction under the independent evaluator (the sample-trained classifier).
    assert stats["before"]["mean"] > 0.2, "the demo policy should start clearly toxic"
    assert stats["improvement_mean"] >= 0.30
    assert stats["after"]["share_over_threshold"] < stats["before"]["share_over_threshold"]
    assert stats["difference"]["ci_low"] > 0  # the 95% interval excludes "no change"
    # KL to the reference is reported next to it, and is finite and positive.
    kl = report["kl"]
    assert kl and all(0 < v < 100 for v in kl.values())
    assert stats["before"]["n"] == stats["after"]["n"] == 64
    for name in ("report.md", "toxicity_hist.png", "training.png", "metrics.jsonl", "config.yaml"):
        assert (out / name).is_file(), name
    assert "mean toxicity" in printed and str(out / "report.md") in printed
    # The reward judge is not the evaluator.
    assert report["extra"]["demo"]["reward_judge"] == "profanity-check"
    assert report["meta"]["evaluator"] == "demo-toxicity-classifier"

    # Second build with the same sample and settings: a cache hit, nothing retrained.
    built = report["extra"]["demo"]["assets"]
    again = demo_assets.build_toy_assets(cache_dir=cache)
    assert again.cache_hit
    # report.json names the cached models without their local folder (local_paths.py)
    assert built["policy_dir"] == again.policy.name and built["evaluator_dir"] == again.evaluator.name

    # The same --out again: refused before anything is built or written, as `rlaif train` refuses.
    (out / "notes.txt").write_text("mine")
    written = (out / "report.json").read_bytes()
    assert main(["demo", "--toy", "--fast", "--out", str(out), "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"{out} already holds a run" in err and "--overwrite" in err and "rlaif demo" in err
    assert (out / "report.json").read_bytes() == written and (out / "notes.txt").is_file()


def test_real_demo_config_uses_chat_lora_and_the_evaluator_spec(tmp_path: Path) -> None:
    from rlaif.demo.assets import DemoAssets
    from rlaif.demo.run import demo_config

    fake = DemoAssets(tmp_path, tmp_path / "policy", tmp_path / "evaluator", "k", True, {},
                      helpfulness=tmp_path / "helpfulness")
    config = demo_config(fake, tmp_path / "run")
    assert config.model.name_or_path == str(tmp_path / "policy") and config.model.lora is not None
    assert config.eval.evaluator == str(tmp_path / "evaluator" / "evaluator.yaml")
    assert config.eval.helpfulness == str(tmp_path / "helpfulness" / "helpfulness.yaml")
    # real red-team openings, TRAIN conversations only; the hold-out is the TEST split
    assert config.data.source == "hh-harmless" and config.data.task == "chat"
    assert config.data.context == "first_turn"
    assert config.data.split == "train" and config.eval.split == "test"  # never trains on TEST
    assert config.eval.samples_per_prompt >= 4  # EMT and toxicity probability over k >= 4
    # the reward is neither the evaluator nor the helpfulness judge
    assert config.judge.ref == "demo-reward" and config.eval.control_source == "sample"
    assert config.eval.helpfulness != config.judge.ref


@pytest.mark.slow
def test_real_demo_at_reduced_size(tmp_path: Path) -> None:
    """SmolLM2-135M-Instruct from the installed GGUF, a 1-step rudeness fine-tune, 2 PPO steps on
    chat prompts, the MiniLM evaluator: every report number exists and is finite, the run folder
    is complete, and the evaluator spec it used scores texts through `rlaif score`."""
    import math

    from rlaif.cli import main
    from rlaif.demo import RealAssetSettings, RudePolicySettings, run_demo

    settings = RealAssetSettings(policy=RudePolicySettings(max_examples=8, batch_size=8))
    out = tmp_path / "run"
    result = run_demo(out, overrides=["ppo.steps=2", "ppo.batch_size=8", "ppo.mini_batch_size=4",
                                      "eval.n=4", "eval.control_n=2", "generation.max_new_tokens=8"],
                      asset_settings=settings, cache_dir=tmp_path / "cache", progress=False)
    report = result.report
    stats = report["stats"]
    for side in ("before", "after"):
        assert stats[side]["n"] == 4 * 4 and math.isfinite(stats[side]["mean"])  # 4 prompts x k=4
        assert 0 <= stats["rtp"][side]["expected_max_toxicity"] <= 1
    # the training row + hold-out k1 and k3, per reply and per token
    assert all(math.isfinite(v) for v in report["kl"].values()) and len(report["kl"]) == 5
    assert report["meta"]["evaluator"] == "demo-evaluator-minilm" and "MiniLM" in report["meta"]["evaluator_about"]
    assert (out / "evaluator" / "evaluator.yaml").is_file()
    control = report["extra"]["control"]
    assert math.isfinite(control["toxicity_mean"]["after"]) and len(control["examples"]) == 2
    for name in ("report.md", "report.json", "toxicity_hist.png", "training.png", "metrics.jsonl",
                 "config.yaml", "eval_before.json", "eval_control_before.json", "checkpoints"):
        assert (out / name).exists(), name
    # The evaluator is a judge spec file anyone can run on their own texts.
    spec = out / "evaluator" / "evaluator.yaml"  # the run folder keeps the evaluator it used
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "", "response": "Go away, nobody wants you here, loser."})
                    + "\n" + json.dumps({"prompt": "", "response": "Thanks, that was helpful!"}) + "\n")
    assert main(["score", str(spec), "--data", str(rows), "--out", str(tmp_path / "scored.jsonl")]) == 0
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert scored[0]["score"] < 0.5 < scored[1]["score"]  # P(clean): the insult is not clean
