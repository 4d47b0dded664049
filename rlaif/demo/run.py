"""`rlaif demo`: detoxify a small policy offline, end to end, and measure it honestly.

    1. assets     the cached demo policy (small GPT-2 trained on the sample's TRAIN dialogues,
                  polite and toxic) and evaluator (RoBERTa classifier trained on TRAIN replies)
    2. pipeline   `configs/demo.yaml` with those filled in, handed to the same
                  before -> PPO -> after flow as `rlaif train` (`rlaif.pipeline`): TRAIN
                  prompts, reward = profanity-check (alt-profanity-check's model, trained on
                  human labels); hold-out = the sample's TEST split; report + plots

The reward judge (profanity-check) and the evaluator (the classifier) are different models,
so a policy that games the reward does not also fool the measurement. Nothing is tuned on
the TEST prompts: they are read only by the evaluation steps.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlaif.demo.assets import DemoAssets, build_demo_assets, build_real_assets

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("runs/demo")
MARKER = "demo.json"
EVALUATOR_DIR = "evaluator"  # the run's copy of the evaluator spec and head  # marks a folder written by `rlaif demo`, so a re-run may replace it
# What `--fast` changes: a smaller run for CI and quick looks (same pipeline, same cached
# models, same settings otherwise); the test suite asserts the reduction it reaches.
FAST_OVERRIDES = ("ppo.steps=4", "eval.n=16", "eval.control_n=8")
TOY_FAST_OVERRIDES = ("ppo.steps=12", "eval.n=64")
_OUTPUTS = ("checkpoints", "metrics.jsonl", "config.yaml", "report.md", "report.json",
            "eval_before.json", "eval_control_before.json", EVALUATOR_DIR,
            "toxicity_hist.png", "training.png", "final", "tensorboard", "mlruns", "wandb",
            MARKER)


@dataclass
class DemoResult:
    """Where the run went, the report's numbers, and how long each stage took."""

    run_dir: Path
    report: dict[str, Any]
    paths: dict[str, Path]
    assets: DemoAssets
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def improvement(self) -> float | None:
        """(before - after) / before of the mean hold-out toxicity."""
        return self.report["stats"]["improvement_mean"]


def default_config_path(toy: bool = False) -> Path:
    """`configs/demo.yaml` (or `demo-toy.yaml`) of a checkout, or the copy inside the wheel."""
    name = "demo-toy.yaml" if toy else "demo.yaml"
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_builtin" / "configs" / name, package.parent / "configs" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"configs/{name} not found beside the rlaif package; reinstall rlaif, or pass "
        "--config PATH to a run config"
    )


def demo_config(assets: DemoAssets, out_dir: Path, config_path: Path | None = None,
                overrides: list[str] | tuple[str, ...] = (), evaluator: Any = None) -> Any:
    """The run config: `configs/demo.yaml` with the cached policy, evaluator (or `evaluator`)
    and run folder filled in."""
    from rlaif.config import load_config

    path = Path(config_path) if config_path else default_config_path(toy=assets.toy)
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("model", {})["name_or_path"] = str(assets.policy)
    data.setdefault("eval", {})["evaluator"] = evaluator or evaluator_spec(assets)
    data.setdefault("output", {})["dir"] = str(out_dir)
    return load_config(data=data, overrides=list(overrides))


def evaluator_spec(assets: DemoAssets) -> dict[str, Any] | str:
    """The hold-out evaluator: the MiniLM judge spec file the real build wrote (toxicity =
    1 - P(clean)), or for the toy demo its classifier (toxicity = P(hate))."""
    if not assets.toy:
        return str(assets.evaluator / "evaluator.yaml")
    return {"type": "classifier", "name": "demo-toxicity-classifier",
            "model": str(assets.evaluator), "label": "hate", "output": "prob",
            "max_length": 64, "batch_size": 64, "device": "cpu"}


def keep_evaluator(assets: DemoAssets, out_dir: Path) -> str:
    """Copy the evaluator's judge spec and head into `<run>/evaluator/`, so the run folder says
    what measured it and anyone can re-run it (`rlaif score <run>/evaluator/evaluator.yaml`)."""
    target = out_dir / EVALUATOR_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in ("evaluator.yaml", "head.safetensors"):
        shutil.copy2(assets.evaluator / name, target / name)
    return str(target / "evaluator.yaml")


def prepare_run_dir(out_dir: Path) -> None:
    """Create `out_dir`; a previous demo's outputs there are replaced, anything else is refused."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise ValueError(
                f"{out_dir} exists and holds files that `rlaif demo` did not write; pass "
                "--out to an empty or new folder"
            )
        for name in _OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text(json.dumps({"written_by": "rlaif demo"}))


def _stage(n: int, total: int, text: str) -> float:
    print(f"[{n}/{total}] {text}", flush=True)
    return time.perf_counter()


def run_demo(out_dir: str | Path = DEFAULT_OUT, *, steps: int | None = None, fast: bool = False,
             toy: bool = False, overrides: list[str] | tuple[str, ...] = (),
             config_path: str | Path | None = None, asset_settings: Any = None,
             cache_dir: str | Path | None = None, progress: bool = True) -> DemoResult:
    """Run the whole offline demo; returns the report's numbers and where it was written."""
    from rlaif.evaluation.report import summary_table
    from rlaif.pipeline import train_and_evaluate

    out = Path(out_dir)
    all_overrides = [*((TOY_FAST_OVERRIDES if toy else FAST_OVERRIDES) if fast else ()), *overrides]
    if steps is not None:
        all_overrides.append(f"ppo.steps={steps}")
    t_start = time.perf_counter()

    t0 = _stage(1, 2, "demo assets: " + ("small GPT-2 policy + RoBERTa evaluator" if toy else
                "SmolLM2-135M-Instruct + rudeness (LoRA on TRAIN dialogues), MiniLM evaluator")
                + " (built once, cached)")
    assets = build_demo_assets(asset_settings, cache_dir=cache_dir) if toy else \
        build_real_assets(asset_settings, cache_dir=cache_dir)
    timings = {"assets": time.perf_counter() - t0}
    print(f"      {'cache hit' if assets.cache_hit else 'built'} {assets.root} "
          f"({timings['assets']:.0f}s)", flush=True)
    _print_evaluator(assets.manifest["evaluator"], assets)

    prepare_run_dir(out)
    evaluator = None if toy else keep_evaluator(assets, out)
    config = demo_config(assets, out, config_path, all_overrides, evaluator=evaluator)
    _stage(2, 2, f"before -> PPO ({config.ppo.steps} steps x {config.ppo.batch_size} TRAIN "
                 f"prompts, reward = {config.judge.ref}) -> after, on the held-out TEST prompts")
    extra = {"demo": {
        "toy": toy, "reward_judge": config.judge.ref,
        "evaluator": ("classifier trained from scratch on the sample's TRAIN replies (P(hate))"
                      if toy else "all-MiniLM-L6-v2 embeddings + a logistic head fitted on the "
                      "TRAIN replies of the sample and the red-team sample (1 - P(clean))"),
        "assets": {"policy_dir": str(assets.policy), "evaluator_dir": str(assets.evaluator),
                   "cache_hit": assets.cache_hit, **assets.manifest},
        "overrides": all_overrides,
        "assets_s": round(timings["assets"], 1),
    }}
    result = train_and_evaluate(config, extra=extra, progress=progress)
    timings.update(result.timings)
    timings["total"] = time.perf_counter() - t_start
    report = json.loads(result.paths["json"].read_text())
    print()
    print(summary_table(report))
    _print_views(report)
    paths = result.paths
    print(f"report: {paths['md']} (+ report.json, "
          f"{', '.join(p.name for k, p in paths.items() if k.endswith('plot'))})")
    if "final" in paths:
        print(f"model: {paths['final']} (a transformers model folder; card {paths['card'].name})")
    print(f"total {timings['total']:.0f}s (assets {timings['assets']:.0f}s, before "
          f"{timings.get('before', 0):.0f}s, PPO {timings['ppo']:.0f}s, after "
          f"{timings.get('after', 0):.0f}s)")
    return DemoResult(out, report, paths, assets, timings)


def _print_evaluator(ev: dict[str, Any], assets: DemoAssets) -> None:
    """The evaluator's validation, as the build measured it."""
    if "validation_auc" in ev:
        print(f"      evaluator {assets.evaluator / 'evaluator.yaml'}: TEST replies accuracy {ev['test_accuracy']:.1%}"
              f" AUC {ev['test_auc']:.3f}; hand-written validation texts (never trained on) "
              f"accuracy {ev['validation_accuracy']:.1%} AUC {ev['validation_auc']:.3f}", flush=True)
        for text, p in ev.get("examples_p_toxic", {}).items():
            print(f"      evaluator P(toxic) {p:.3f} for {text!r}", flush=True)
    else:
        print(f"      evaluator accuracy on the {ev['test_replies']} TEST replies "
              f"{ev['test_accuracy']:.1%}, on pieces of clean TEST replies "
              f"{ev['test_clean_fragment_accuracy']:.1%}", flush=True)


def _print_views(report: dict[str, Any]) -> None:
    """The reward judge's view of the same replies, and the control prompts."""
    extra = report.get("extra", {})
    view = extra.get("reward_judge")
    if view:
        print(f"\nreward judge ({view['judge']}) toxicity: before {_fmt(view['toxicity_mean_before'])}, "
              f"after {_fmt(view['toxicity_mean_after'])} (the evaluator is a different model)")
    control = extra.get("control")
    if control:
        tox, length = control["toxicity_mean"], control.get("response_tokens_mean") or {}
        print(f"control ({control['source']} of ordinary requests): toxicity before "
              f"{_fmt(tox['before'])}, after {_fmt(tox['after'])}; reply length before "
              f"{length.get('before', 0):.1f}, after {length.get('after', 0):.1f} tokens")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
