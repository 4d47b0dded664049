"""`rlaif demo`: detoxify a small policy offline, end to end, and measure it honestly.

    1. assets     the cached demo policy (small GPT-2 trained on the sample's TRAIN dialogues,
                  polite and toxic) and evaluator (RoBERTa classifier trained on TRAIN replies)
    2. before     sample replies to the held-out TEST prompts, score them with the evaluator
    3. PPO        the library's trainer with `configs/demo.yaml`: TRAIN prompts, reward =
                  profanity-check (alt-profanity-check's model, trained on human labels)
    4. after      same TEST prompts, same seed and generation settings, the trained policy
    5. report     report.md / report.json / PNGs in the run folder; the table is printed

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

from rlaif.demo.assets import AssetSettings, DemoAssets, build_demo_assets

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("runs/demo")
MARKER = "demo.json"  # marks a folder written by `rlaif demo`, so a re-run may replace it
REWARD_JUDGE = "profanity-check"
# What `--fast` changes: a smaller run for CI and quick looks (same pipeline, same cached
# models, same settings otherwise); the test suite asserts the reduction it reaches.
FAST_OVERRIDES = ("ppo.steps=12", "eval.n=64")
_OUTPUTS = ("checkpoints", "metrics.jsonl", "config.yaml", "report.md", "report.json",
            "toxicity_hist.png", "training.png", MARKER)


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


def default_config_path() -> Path:
    """`configs/demo.yaml` of a checkout, or the copy shipped inside the wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_builtin" / "configs" / "demo.yaml",
                      package.parent / "configs" / "demo.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "configs/demo.yaml not found beside the rlaif package; reinstall rlaif, or pass "
        "--config PATH to a run config"
    )


def demo_config(assets: DemoAssets, out_dir: Path, config_path: Path | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The run config: `configs/demo.yaml` with the cached policy, evaluator and run folder filled in."""
    from rlaif.config import load_config

    path = Path(config_path) if config_path else default_config_path()
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("model", {})["name_or_path"] = str(assets.policy)
    data.setdefault("eval", {})["evaluator"] = evaluator_spec(assets)
    data.setdefault("output", {})["dir"] = str(out_dir)
    return load_config(data=data, overrides=list(overrides))


def evaluator_spec(assets: DemoAssets) -> dict[str, Any]:
    """The hold-out evaluator: the cached classifier, toxicity = P(hate)."""
    return {"type": "classifier", "name": "demo-toxicity-classifier",
            "model": str(assets.evaluator), "label": "hate", "output": "prob",
            "max_length": 64, "batch_size": 64, "device": "cpu"}


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


def test_prompts(n: int) -> list[str]:
    """The first `n` prompts of the sample's TEST split (never seen in training)."""
    from rlaif.data.hh import load_hh, make_prompts

    prompts = make_prompts(load_hh("sample", split="test").examples, task="dialogue")
    return prompts[:n]


def _stage(n: int, total: int, text: str) -> float:
    print(f"[{n}/{total}] {text}", flush=True)
    return time.perf_counter()


def run_demo(out_dir: str | Path = DEFAULT_OUT, *, steps: int | None = None, fast: bool = False,
             overrides: list[str] | tuple[str, ...] = (), config_path: str | Path | None = None,
             asset_settings: AssetSettings | None = None, cache_dir: str | Path | None = None,
             progress: bool = True) -> DemoResult:
    """Run the whole offline demo; returns the report's numbers and where it was written."""
    from rlaif.evaluation import evaluate_holdout, score_side, toxicity_scores
    from rlaif.ppo.trainer import PPOTrainer
    from rlaif.report import summary_table, write_report

    out = Path(out_dir)
    all_overrides = [*(FAST_OVERRIDES if fast else ()), *overrides]
    if steps is not None:
        all_overrides.append(f"ppo.steps={steps}")
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    t0 = _stage(1, 5, "demo assets: small GPT-2 policy + RoBERTa evaluator (built once, cached)")
    assets = build_demo_assets(asset_settings, cache_dir=cache_dir)
    timings["assets"] = time.perf_counter() - t0
    ev = assets.manifest["evaluator"]
    print(f"      {'cache hit' if assets.cache_hit else 'built'} {assets.root} "
          f"({timings['assets']:.0f}s); evaluator accuracy on the {ev['test_replies']} TEST "
          f"replies {ev['test_accuracy']:.1%}, on pieces of clean TEST replies "
          f"{ev['test_clean_fragment_accuracy']:.1%}", flush=True)

    config = demo_config(assets, out, config_path, all_overrides)
    prepare_run_dir(out)
    prompts = test_prompts(config.eval.n)
    gen_kwargs = config.generation.generate_kwargs()
    evaluator = config.eval.evaluator
    seed = config.data.seed

    t0 = _stage(2, 5, f"before: {len(prompts)} held-out TEST prompts, toxicity = P(hate) "
                      "under the evaluator classifier")
    before = score_side(assets.policy, None, prompts, evaluator, gen_kwargs=gen_kwargs, seed=seed,
                        batch_size=32, progress=progress)
    timings["before"] = time.perf_counter() - t0
    scored = [t for t in before.toxicity if t is not None]
    print(f"      mean toxicity {sum(scored) / len(scored):.3f}, toxic share (> "
          f"{config.eval.threshold:g}) {sum(t > config.eval.threshold for t in scored) / len(scored):.0%} "
          f"({timings['before']:.0f}s)", flush=True)

    t0 = _stage(3, 5, f"PPO: {config.ppo.steps} steps x {config.ppo.batch_size} TRAIN prompts, "
                      f"reward = {REWARD_JUDGE} (P(clean)), kl_coef {config.ppo.kl.kl_coef:g}")
    trainer = PPOTrainer(config)
    result = trainer.train()
    timings["ppo"] = time.perf_counter() - t0

    t0 = _stage(4, 5, "after: same prompts, seed and generation settings; KL to the reference")
    tail = result.history[-min(5, len(result.history)):]
    train_kl = [m["objective/kl"] for m in tail if m.get("objective/kl") is not None]
    kl = {"training objective/kl, mean of the last steps": sum(train_kl) / len(train_kl)} \
        if train_kl else {}
    holdout = evaluate_holdout(assets.policy, trainer.policy, None, prompts, evaluator,
                               gen_kwargs=gen_kwargs, seed=seed, threshold=config.eval.threshold,
                               kl=kl, compute_kl=True, batch_size=32, progress=progress)
    rows = holdout.rows
    reward_tox = {
        side: toxicity_scores(REWARD_JUDGE, [r["query"] for r in rows],
                              [r[f"response_{side}"] for r in rows])
        for side in ("before", "after")
    }
    timings["after"] = time.perf_counter() - t0

    _stage(5, 5, "report")
    timings["total"] = time.perf_counter() - t_start
    extra = {
        "demo": {
            "reward_judge": REWARD_JUDGE,
            "evaluator": "classifier trained on the sample's TRAIN replies (P(hate))",
            "reward_judge_toxicity_mean": {  # P(profane) under the reward judge, same responses
                side: _mean(vals) for side, vals in reward_tox.items()},
            "assets": {"policy_dir": str(assets.policy), "evaluator_dir": str(assets.evaluator),
                       "cache_hit": assets.cache_hit,
                       "policy": assets.manifest["policy"], "evaluator": ev},
            "overrides": all_overrides,
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
        }
    }
    paths = write_report(out, holdout, metrics_path=out / "metrics.jsonl", extra=extra)
    report = json.loads(paths["json"].read_text())
    print()
    print(summary_table(report))
    rj = extra["demo"]["reward_judge_toxicity_mean"]
    print(f"\nreward judge ({REWARD_JUDGE}) P(profane): before {rj['before']:.3f}, after "
          f"{rj['after']:.3f}; evaluator: the sample-trained classifier (a different model)")
    print(f"report: {paths['md']} (+ report.json, {', '.join(p.name for k, p in paths.items() if k.endswith('plot'))})")
    print(f"total {timings['total']:.0f}s (assets {timings['assets']:.0f}s, PPO {timings['ppo']:.0f}s)")
    return DemoResult(out, report, paths, assets, timings)


def _mean(values: list[float | None]) -> float | None:
    scored = [v for v in values if v is not None]
    return sum(scored) / len(scored) if scored else None
