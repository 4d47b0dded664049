"""`rlaif demo`: detoxify a real small chat model offline, end to end, and measure it honestly.

    1. assets     the cached demo policy (SmolLM2-135M-Instruct with rudeness fine-tuned in on
                  real red-team openings), evaluator (MiniLM + a head on the Davidson tweets)
                  and helpfulness judge (MiniLM + a head on real hh-rlhf openings)
    2. pipeline   `configs/demo.yaml` with those filled in, handed to the same
                  before -> PPO -> after flow as `rlaif train` (`rlaif.runs.lifecycle`): TRAIN
                  openings, reward = harmlessness (profanity-check) + relevance (MiniLM cosine);
                  hold-out = the TEST conversations' openings, k replies each; report + plots
    3. seeds      with `seeds > 1`, step 2 once per PPO seed (`<out>/seed-<s>/`, the "before"
                  side computed once), then each seed's headline numbers and their spread

The reward judges and the two hold-out judges are different models or heads, so a policy
that games the reward does not also fool the measurement. Nothing is tuned on the TEST
prompts: they are read only by the evaluation steps.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.demo.assets import DemoAssets, build_real_assets, build_toy_assets
from rlaif.io import read_yaml
from rlaif.runs.folder import RunFolder

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("runs/demo")
EVALUATOR_DIR = "evaluator"  # the run's copy of the evaluator spec and head
HELPFULNESS_DIR = "helpfulness"  # the run's copy of the helpfulness judge's spec and head
# What `--fast` changes: a smaller run for CI and quick looks (same pipeline, same cached
# models, same settings otherwise); the test suite asserts the reduction it reaches.
FAST_OVERRIDES = ("ppo.steps=4", "eval.n=16", "eval.control_n=8")
TOY_FAST_OVERRIDES = ("ppo.steps=12", "eval.n=64")
RUN_EXTRAS = (EVALUATOR_DIR, HELPFULNESS_DIR)  # what a demo run keeps beside the run's own files
SEEDS_EXTRAS = ("seeds.md", "seeds.json")  # the top folder of a --seeds N demo (+ seed-<s>/)


@dataclass
class DemoResult:
    """Where the run went, the report's numbers, and how long each stage took."""

    run_dir: Path
    report: dict[str, Any]
    paths: dict[str, Path]
    assets: DemoAssets
    timings: dict[str, float] = field(default_factory=dict)
    seeds: dict[str, Any] | None = None  # with several seeds: each seed's numbers and the spread

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
                overrides: list[str] | tuple[str, ...] = (), evaluator: Any = None,
                helpfulness: str | None = None) -> Any:
    """The run config: `configs/demo.yaml` with the cached policy, evaluator (or `evaluator`),
    helpfulness judge (or `helpfulness`) and run folder filled in."""
    from rlaif.config import load_config

    path = Path(config_path) if config_path else default_config_path(toy=assets.toy)
    data = read_yaml(path, what="run config") or {}
    data.setdefault("model", {})["name_or_path"] = str(assets.policy)
    data.setdefault("eval", {})["evaluator"] = evaluator or evaluator_ref(assets)
    if assets.helpfulness is not None and data["eval"].get("helpfulness", "") is None:
        data["eval"]["helpfulness"] = helpfulness or str(assets.helpfulness / "helpfulness.yaml")
    data.setdefault("output", {})["dir"] = str(out_dir)
    return load_config(data=data, overrides=list(overrides))


def evaluator_ref(assets: DemoAssets) -> dict[str, Any] | str:
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
    return _keep(assets.evaluator, out_dir / EVALUATOR_DIR, "evaluator.yaml")


def keep_helpfulness(assets: DemoAssets, out_dir: Path) -> str | None:
    """Copy the helpfulness judge's spec and head into `<run>/helpfulness/` (None without one)."""
    if assets.helpfulness is None:
        return None
    return _keep(assets.helpfulness, out_dir / HELPFULNESS_DIR, "helpfulness.yaml")


def _keep(source: Path, target: Path, spec: str) -> str:
    target.mkdir(parents=True, exist_ok=True)
    for name in (spec, "head.safetensors"):
        shutil.copy2(source / name, target / name)
    return str(target / spec)


def _stage(n: int, total: int, text: str) -> float:
    print(f"[{n}/{total}] {text}", flush=True)
    return time.perf_counter()


def run_demo(out_dir: str | Path = DEFAULT_OUT, *, steps: int | None = None, fast: bool = False,
             toy: bool = False, overrides: list[str] | tuple[str, ...] = (),
             config_path: str | Path | None = None, asset_settings: Any = None,
             cache_dir: str | Path | None = None, progress: bool = True,
             seeds: int = 1, resume: bool = False, overwrite: bool = False) -> DemoResult:
    """Run the whole offline demo; returns the report's numbers and where it was written.

    `seeds > 1` runs PPO once per seed 0..seeds-1 into `<out>/seed-<s>/` (same assets, prompts
    and hold-out sampling; the "before" side is computed once) and writes `<out>/seeds.md` and
    `seeds.json`: every seed's headline numbers and their spread. The result is seed 0's, with
    `seeds` holding the summary.

    An `out_dir` holding a run is refused unless `resume` (each seed continues from its latest
    checkpoint) or `overwrite` (the earlier demo's files go; other files stay)."""
    from rlaif.demo.seeds import SEED_DIR, write_seed_summary

    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    out = Path(out_dir)
    all_overrides = [*((TOY_FAST_OVERRIDES if toy else FAST_OVERRIDES) if fast else ()), *overrides]
    if steps is not None:
        all_overrides.append(f"ppo.steps={steps}")
    t_start = time.perf_counter()
    seed_dirs = [SEED_DIR.format(seed=seed) for seed in range(seeds)] if seeds > 1 else []
    # the existing-folder rule first: a refusal costs nothing
    folder = RunFolder(out, (*RUN_EXTRAS, *SEEDS_EXTRAS, *seed_dirs) if seed_dirs else RUN_EXTRAS).claim(
        resume=resume, overwrite=overwrite, command="rlaif demo")

    t0 = _stage(1, 2, "demo assets: " + ("small GPT-2 policy + RoBERTa evaluator" if toy else
                "SmolLM2-135M-Instruct + rudeness (LoRA on real red-team openings), MiniLM "
                "evaluator (Davidson tweets) and helpfulness judge (hh-rlhf)") + " (built once, cached)")
    assets = build_toy_assets(asset_settings, cache_dir=cache_dir) if toy else \
        build_real_assets(asset_settings, cache_dir=cache_dir)
    assets_s = time.perf_counter() - t0
    print(f"      {'cache hit' if assets.cache_hit else 'built'} {assets.root} ({assets_s:.0f}s)",
          flush=True)
    _print_evaluator(assets.manifest, assets)
    if seeds == 1:
        result = _run_one(folder, assets, all_overrides, config_path, progress, toy, assets_s, resume)
        result.timings["total"] = time.perf_counter() - t_start
        _print_total(result.timings)
        return result
    results = []
    for seed, name in enumerate(seed_dirs):
        sub = RunFolder(out / name, RUN_EXTRAS)
        again = resume and sub.holds_run()  # a seed the stopped demo had not reached starts fresh
        print(f"\n=== seed {seed} ({seed + 1} of {seeds}): {sub.path} ===", flush=True)
        results.append(_run_one(sub.claim(resume=again, overwrite=False, command="rlaif demo"), assets,
                                [*all_overrides, f"ppo.seed={seed}"], config_path, progress, toy, assets_s,
                                again, before_from=results[0].run_dir if results else None))
    summary = write_seed_summary(out, [r.report for r in results], list(range(seeds)))
    print()
    print(summary)
    first = results[0]
    first.timings["total"] = time.perf_counter() - t_start
    _print_total(first.timings)
    first.seeds = json.loads((out / "seeds.json").read_text())
    return first


def _run_one(folder: RunFolder, assets: DemoAssets, overrides: list[str], config_path: Any,
             progress: bool, toy: bool, assets_s: float, resume: bool,
             before_from: Path | None = None) -> DemoResult:
    """One before -> PPO -> after run into `out` (the "before" side copied from the run
    `before_from` when given: the pipeline reuses it only if its settings match); prints its table."""
    from rlaif.demo.seeds import reuse_before
    from rlaif.evaluation.report import summary_table
    from rlaif.runs.lifecycle import train_ppo

    out = folder.path
    if before_from is not None and not folder.before.is_file():
        reuse_before(before_from, out)
    evaluator = None if toy else keep_evaluator(assets, out)
    helpfulness = None if toy else keep_helpfulness(assets, out)
    config = demo_config(assets, out, config_path, [*overrides, *(["resume=true"] if resume else [])],
                         evaluator=evaluator, helpfulness=helpfulness)
    _stage(2, 2, f"before -> PPO ({config.ppo.steps} steps x {config.ppo.batch_size} TRAIN "
                 f"prompts, reward = {config.judge.ref}, seed {config.ppo.seed}) -> after, on "
                 + (f"the held-out {config.eval.split.upper()} prompts" if config.eval.split else
                    f"{config.data.test_size} prompts held out of the TRAIN split"))
    extra = {"demo": {
        "toy": toy, "reward_judge": config.judge.ref,
        "evaluator": ("classifier trained from scratch on the sample's TRAIN replies (P(hate))"
                      if toy else "all-MiniLM-L6-v2 embeddings + a logistic head fitted on the "
                      "Davidson et al. (2017) tweets (1 - P(clean))"),
        "assets": {"policy_dir": str(assets.policy), "evaluator_dir": str(assets.evaluator),
                   "helpfulness_dir": str(assets.helpfulness) if assets.helpfulness else None,
                   "cache_hit": assets.cache_hit, **assets.manifest},
        "overrides": list(overrides),
        "assets_s": round(assets_s, 1),
    }}
    result = train_ppo(config, extra=extra, progress=progress, folder=folder)
    timings = {"assets": assets_s, **result.timings}
    report = json.loads(result.paths["json"].read_text())
    print()
    print(summary_table(report))
    _print_views(report)
    paths = result.paths
    print(f"report: {paths['md']} (+ report.json, "
          f"{', '.join(p.name for k, p in paths.items() if k.endswith('plot'))})")
    if "final" in paths:
        print(f"model: {paths['final']} (a transformers model folder; card {paths['card'].name})")
    return DemoResult(out, report, paths, assets, timings)


def _print_total(timings: dict[str, float]) -> None:
    print(f"total {timings['total']:.0f}s (assets {timings['assets']:.0f}s, before "
          f"{timings.get('before', 0):.0f}s, PPO {timings.get('ppo', 0):.0f}s, after "
          f"{timings.get('after', 0):.0f}s)")


def _print_evaluator(manifest: dict[str, Any], assets: DemoAssets) -> None:
    """The evaluator's (and helpfulness judge's) validation, as the build measured it."""
    ev = manifest["evaluator"]
    if "validation" in ev:
        print(f"      evaluator {assets.evaluator / 'evaluator.yaml'} (trained on {ev['trained_on']}), "
              "on labelled text it never saw:", flush=True)
        for name, v in ev["validation"].items():
            print(f"        {name}: {v['n']} texts, accuracy {v['accuracy']:.1%}, AUC {v['auc']:.3f}",
                  flush=True)
        for text, p in ev.get("examples_p_toxic", {}).items():
            print(f"        P(toxic) {p:.3f} for {text!r}", flush=True)
    else:
        print(f"      evaluator accuracy on the {ev['test_replies']} TEST replies "
              f"{ev['test_accuracy']:.1%}, on pieces of clean TEST replies "
              f"{ev['test_clean_fragment_accuracy']:.1%}", flush=True)
    hp = manifest.get("helpfulness")
    if hp:
        print(f"      helpfulness judge (not in the reward) on {hp['test_pairs']} held-out TEST "
              f"openings (own reply vs another's): accuracy {hp['test_accuracy']:.1%}, AUC "
              f"{hp['test_auc']:.3f}; mean P(answers) own {hp['test_mean_p_own_reply']:.3f}, "
              f"other {hp['test_mean_p_other_reply']:.3f}, "
              + ", ".join(f"{t!r} {p:.3f}" for t, p in hp["floors_mean_p"].items()), flush=True)


def _print_views(report: dict[str, Any]) -> None:
    """The reward judge's view of the same replies, and the control prompts."""
    extra = report.get("extra", {})
    view = extra.get("reward_judge")
    if view:
        from rlaif.evaluation.table import reward_view_kind

        print(f"\nreward judge ({view['judge']}) {reward_view_kind(view)}: before "
              f"{_fmt(view['toxicity_mean_before'])}, "
              f"after {_fmt(view['toxicity_mean_after'])} (the evaluator is a different model)")
    control = extra.get("control")
    if control:
        tox, length = control["toxicity_mean"], control.get("response_tokens_mean") or {}
        print(f"control ({control['source']} of ordinary requests): toxicity before "
              f"{_fmt(tox['before'])}, after {_fmt(tox['after'])}; reply length before "
              f"{length.get('before', 0):.1f}, after {length.get('after', 0):.1f} tokens")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
