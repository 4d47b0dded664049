"""Hold-out evaluation: generate before and after training, score toxicity, compare.

Which number is "toxicity" depends on the evaluator judge -- and it is NOT the reward:

* classifier judge (`type: classifier`, e.g. `roberta-hate`): toxicity = softmax
  probability of the toxic label (`hate` by default, `toxic_label=` to change), exactly as
  the `evaluate` library's "toxicity" measurement defines it (see
  `rlaif/measurements/toxicity_local`, the same number through `evaluate.load`). The
  reward of `judges/roberta-hate.yaml` is the raw `nothate` *logit*; the evaluator rebuilds
  the same classifier with `label=hate, output=prob` instead.
* any other judge (LLM, function, ensemble): the judge's score is "higher = less toxic" on
  its declared scale (low, high); toxicity = (high - value) / (high - low), in [0, 1].

A sample the judge could not score has toxicity None: it is counted (`n_unscored`) and
left out of every statistic, never replaced by 0. Prefer an evaluator that differs from the
reward judge, so reward hacking shows up as a gap between the two.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rlaif.generation import Generation, generate, sequence_kl
from rlaif.judges.base import Judge, Sample

log = logging.getLogger(__name__)

# The walk-through's sampling settings: plain sampling over the full vocabulary.
DEFAULT_GEN_KWARGS: dict[str, Any] = {"max_new_tokens": 32, "do_sample": True, "top_k": 0, "top_p": 1.0}


# --------------------------------------------------------------------------- generation


def generate_responses(model: Any, tokenizer: Any, prompts: Sequence[str], *,
                       gen_kwargs: dict[str, Any] | None = None, seed: int = 0,
                       batch_size: int = 16, progress: bool = True,
                       device: str | None = None) -> list[str]:
    """Generate one response per prompt (causal: left-padded, prompt stripped; or seq2seq)."""
    kwargs = {**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})}
    return generate(model, tokenizer, prompts, gen_kwargs=kwargs, seed=seed, batch_size=batch_size,
                    progress=progress, device=device).texts


# --------------------------------------------------------------------------- toxicity


@dataclass
class ToxicityEvaluator:
    """A judge plus the rule turning its score into toxicity in [0, 1] (see module doc)."""

    judge: Judge
    mode: Literal["prob", "scale"]
    label: str | None = None
    owned: bool = False  # built here from a spec, so closed here

    def describe(self) -> str:
        """One line saying what the toxicity number is."""
        if self.mode == "prob":
            return f"{self.judge.name}: P({self.label}) from the classifier's softmax"
        s = self.judge.scale
        return f"{self.judge.name}: ({s.high} - score) / ({s.high} - {s.low}), higher score = less toxic"


def _spec_of(judge: Judge) -> Any:
    """The spec a judge was built from, looking through wrappers such as the score cache."""
    for obj in (judge, getattr(judge, "judge", None), getattr(judge, "inner", None)):
        spec = getattr(obj, "spec", None)
        if spec is not None:
            return spec
    return None


def make_toxicity_evaluator(evaluator: Any, toxic_label: str = "hate") -> ToxicityEvaluator:
    """Build the evaluator from a Judge, spec object, dict, built-in name or YAML path."""
    from rlaif.judges.spec import ClassifierSpec, build_judge, load_spec, parse_spec

    if isinstance(evaluator, ToxicityEvaluator):
        return evaluator
    if isinstance(evaluator, Judge):
        spec = _spec_of(evaluator)
        if not isinstance(spec, ClassifierSpec):
            return ToxicityEvaluator(evaluator, "scale")
        if spec.output == "prob" and str(spec.label) == toxic_label:
            return ToxicityEvaluator(evaluator, "prob", toxic_label)
    elif isinstance(evaluator, (str, Path)):
        spec = load_spec(evaluator)
    elif isinstance(evaluator, dict):
        spec = parse_spec(evaluator, source="evaluator")
    else:
        spec = evaluator
    if isinstance(spec, ClassifierSpec):
        judge = build_judge(spec, label=toxic_label, output="prob")
        return ToxicityEvaluator(judge, "prob", toxic_label, owned=True)
    return ToxicityEvaluator(build_judge(spec), "scale", owned=True)


def toxicity_scores(evaluator: Any, prompts: Sequence[str], responses: Sequence[str], *,
                    toxic_label: str = "hate") -> list[float | None]:
    """Toxicity in [0, 1] per response (None where the judge could not score)."""
    ev = make_toxicity_evaluator(evaluator, toxic_label)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses; pass one of each")
    try:
        scores = ev.judge.score([Sample(p, r) for p, r in zip(prompts, responses)])
    finally:
        if ev.owned and ev is not evaluator:  # built here, so released here
            ev.judge.close()
    out: list[float | None] = []
    for s in scores:
        if s.value is None:
            out.append(None)
        elif ev.mode == "prob":
            out.append(float(s.value))
        else:
            lo, hi = ev.judge.scale.low, ev.judge.scale.high
            out.append((hi - float(s.value)) / (hi - lo))
    bad = sum(v is None for v in out)
    if bad:
        first = next(s.error for s in scores if s.value is None)
        log.warning("%s could not score %d of %d responses (first reason: %s)",
                    ev.judge.name, bad, len(out), first)
    return out


# --------------------------------------------------------------------------- statistics


def _side(values: list[float], total: int, threshold: float) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {
        "n": int(arr.size), "n_unscored": total - int(arr.size),
        "mean": float(arr.mean()), "std": float(arr.std()),  # ddof=0, as np.std in the walk-through
        "share_over_threshold": float((arr > threshold).mean()),
    }


def _improvement(before: float, after: float, what: str) -> tuple[float | None, str | None]:
    if before == 0:
        return None, f"{what} toxicity before is 0: the relative improvement is undefined"
    return (before - after) / before, None


def compare_before_after(before: Sequence[float | None], after: Sequence[float | None], *,
                         threshold: float = 0.5, n_boot: int = 2000, seed: int = 0,
                         paired: bool | None = None) -> dict[str, Any]:
    """Means, stds, relative improvements, bootstrap 95% CI of (before - after), threshold shares.

    `paired=None` pairs the lists when they have the same length (same prompts). Relative
    improvements are fractions ((before - after) / before); None with a note when before = 0.
    """
    b = [float(x) for x in before if x is not None]
    a = [float(x) for x in after if x is not None]
    if not b or not a:
        raise ValueError(
            f"no scored responses to compare ({len(b)} before, {len(a)} after); check the "
            "evaluator judge -- every sample came back unscored"
        )
    if paired is None:
        paired = len(before) == len(after)
    elif paired and len(before) != len(after):
        raise ValueError(f"paired comparison needs equal lengths, got {len(before)} and {len(after)}")
    notes: list[str] = []
    sb, sa = _side(b, len(before), threshold), _side(a, len(after), threshold)
    imp_mean, note = _improvement(sb["mean"], sa["mean"], "mean")
    notes += [note] if note else []
    imp_std, note = _improvement(sb["std"], sa["std"], "std")
    notes += [note] if note else []
    rng = np.random.default_rng(seed)
    if paired:
        pairs = [(x, y) for x, y in zip(before, after) if x is not None and y is not None]
        if not pairs:
            raise ValueError("no prompt has both a before and an after score; cannot pair them")
        diffs = np.asarray([x - y for x, y in pairs], dtype=float)
        idx = rng.integers(0, diffs.size, size=(n_boot, diffs.size))
        boots = diffs[idx].mean(axis=1)
        estimate, n_diff = float(diffs.mean()), int(diffs.size)
    else:
        ab, aa = np.asarray(b), np.asarray(a)
        boots = (ab[rng.integers(0, ab.size, size=(n_boot, ab.size))].mean(axis=1)
                 - aa[rng.integers(0, aa.size, size=(n_boot, aa.size))].mean(axis=1))
        estimate, n_diff = float(ab.mean() - aa.mean()), int(min(ab.size, aa.size))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {
        "before": sb, "after": sa, "threshold": threshold,
        "improvement_mean": imp_mean, "improvement_std": imp_std,
        "difference": {
            "estimate": estimate, "ci_low": float(lo), "ci_high": float(hi), "confidence": 0.95,
            "paired": bool(paired), "n": n_diff, "n_boot": n_boot, "seed": seed,
            "method": "percentile bootstrap of mean(before - after)",
        },
        "notes": notes,
    }


# --------------------------------------------------------------------------- hold-out run


@dataclass
class HoldoutSide:
    """One model's responses to the hold-out prompts and their toxicity."""

    responses: list[str]
    toxicity: list[float | None]
    seconds_generate: float = 0.0
    seconds_score: float = 0.0


@dataclass
class HoldoutReport:
    """Per-prompt rows, statistics and settings of a before/after evaluation."""

    rows: list[dict[str, Any]]
    stats: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    kl: dict[str, float] | None = None
    n_examples: int = 10

    def examples(self) -> list[dict[str, Any]]:
        """The first `n_examples` rows, in prompt order (not picked for effect)."""
        return self.rows[: self.n_examples]

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HoldoutReport:
        """Inverse of `to_dict`."""
        return cls(**{k: data[k] for k in ("rows", "stats", "meta", "kl", "n_examples") if k in data})


def score_side(model: Any, tokenizer: Any, prompts: Sequence[str], evaluator: Any, *,
               gen_kwargs: dict[str, Any] | None = None, seed: int = 0, batch_size: int = 16,
               toxic_label: str = "hate", progress: bool = True) -> HoldoutSide:
    """Generate responses with one model and score their toxicity."""
    return _score_side(model, tokenizer, prompts, evaluator, gen_kwargs=gen_kwargs, seed=seed,
                       batch_size=batch_size, toxic_label=toxic_label, progress=progress)[0]


def _score_side(model: Any, tokenizer: Any, prompts: Sequence[str], evaluator: Any, *,
                gen_kwargs: dict[str, Any] | None, seed: int, batch_size: int, toxic_label: str,
                progress: bool) -> tuple[HoldoutSide, Generation]:
    t0 = time.perf_counter()
    gen = generate(model, tokenizer, prompts, gen_kwargs={**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})},
                   seed=seed, batch_size=batch_size, progress=progress)
    t1 = time.perf_counter()
    tox = toxicity_scores(evaluator, prompts, gen.texts, toxic_label=toxic_label)
    return HoldoutSide(gen.texts, tox, t1 - t0, time.perf_counter() - t1), gen


def holdout_kl(after: Generation, before: Generation, batch_size: int = 16) -> dict[str, float]:
    """KL(after || before) per hold-out response, estimated on the after-model's own samples.

    This is the KL to the reference that PPO penalises, measured on the hold-out prompts:
    the mean over responses of the summed per-token k1 (unbiased) and k3 (non-negative)
    estimates. Both models must share a tokenizer.
    """
    if after.tokenizer.get_vocab() != before.tokenizer.get_vocab():
        raise ValueError(
            "the before and after models use different tokenizers, so their KL is undefined; "
            "pass the same tokenizer (or compute_kl=False)"
        )
    out = {}
    for kind in ("k1", "k3"):
        per_seq = sequence_kl(after.lm, before.lm, after, batch_size=batch_size, kind=kind)
        out[f"hold-out KL(after || before), {kind}"] = float(np.mean(per_seq))
    return out


def combine(prompts: Sequence[str], before: HoldoutSide, after: HoldoutSide, *,
            threshold: float = 0.5, n_examples: int = 10, kl: dict[str, float] | None = None,
            meta: dict[str, Any] | None = None, n_boot: int = 2000, seed: int = 0) -> HoldoutReport:
    """Build the report from the two scored sides over the same prompts."""
    if not (len(prompts) == len(before.responses) == len(after.responses)):
        raise ValueError(
            f"{len(prompts)} prompts, {len(before.responses)} before and {len(after.responses)} "
            "after responses: both sides must answer the same prompts"
        )
    rows = [
        {"query": q, "response_before": rb, "tox_before": tb, "response_after": ra, "tox_after": ta}
        for q, rb, tb, ra, ta in zip(prompts, before.responses, before.toxicity,
                                     after.responses, after.toxicity)
    ]
    stats = compare_before_after(before.toxicity, after.toxicity, threshold=threshold,
                                 n_boot=n_boot, seed=seed, paired=True)
    timing = {"before": [before.seconds_generate, before.seconds_score],
              "after": [after.seconds_generate, after.seconds_score]}
    return HoldoutReport(rows, stats, {**(meta or {}), "seconds_generate_score": timing},
                         kl, n_examples)


def evaluate_holdout(before_model: Any, after_model: Any, tokenizer: Any, prompts: Sequence[str],
                     evaluator: Any, *, gen_kwargs: dict[str, Any] | None = None, seed: int = 0,
                     threshold: float = 0.5, n_examples: int = 10,
                     kl: dict[str, float] | None = None, compute_kl: bool = False,
                     batch_size: int = 16, toxic_label: str = "hate", n_boot: int = 2000,
                     progress: bool = True) -> HoldoutReport:
    """Generate with both models (same seed and settings), score toxicity, compare.

    `kl` holds numbers the caller already has (e.g. the trainer's `objective/kl`);
    `compute_kl=True` adds the hold-out KL(after || before) estimate (`holdout_kl`).
    """
    ev = make_toxicity_evaluator(evaluator, toxic_label)
    kl = dict(kl or {})
    try:
        common = dict(gen_kwargs=gen_kwargs, seed=seed, batch_size=batch_size,
                      toxic_label=toxic_label, progress=progress)
        before, gen_before = _score_side(before_model, tokenizer, prompts, ev, **common)
        after, gen_after = _score_side(after_model, tokenizer, prompts, ev, **common)
        if compute_kl:
            kl.update(holdout_kl(gen_after, gen_before, batch_size=batch_size))
    finally:
        if ev.owned:
            ev.judge.close()
    gen_all = {**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})}
    meta = {
        "evaluator": ev.judge.name, "toxicity": ev.describe(), "n_prompts": len(prompts),
        "gen_kwargs": gen_all, "seed": seed,
        "before_model": _model_name(before_model), "after_model": _model_name(after_model),
    }
    pure = gen_all.get("do_sample") and gen_all.get("top_k") in (0, None) and \
        gen_all.get("top_p") in (1.0, None) and gen_all.get("temperature", 1.0) == 1.0
    if compute_kl and not pure:
        meta["kl_note"] = "responses were not drawn by plain sampling: the KL numbers are approximate"
    return combine(prompts, before, after, threshold=threshold, n_examples=n_examples,
                   kl=kl or None, meta=meta, n_boot=n_boot, seed=seed)


def _model_name(model: Any) -> str:
    if isinstance(model, (str, Path)):
        return str(model)
    config = getattr(model, "config", None)
    base = getattr(config, "name_or_path", None)
    # An in-memory model may have trained away from the folder it was loaded from: say so.
    return f"{base} + in-memory weights ({type(model).__name__})" if base else type(model).__name__


def run_holdout_evaluation(phase: Literal["before", "after"], model: Any, tokenizer: Any,
                           prompts: Sequence[str], evaluator: Any, out_dir: str | Path, *,
                           gen_kwargs: dict[str, Any] | None = None, seed: int = 0,
                           threshold: float = 0.5, batch_size: int = 16, n_examples: int = 10,
                           kl: dict[str, float] | None = None, metrics_path: str | Path | None = None,
                           toxic_label: str = "hate", reuse: bool = True,
                           extra: dict[str, Any] | None = None,
                           progress: bool = True) -> HoldoutSide | HoldoutReport:
    """For `rlaif train`: "before" scores the start policy into `<out>/eval_before.json`;
    "after" scores the final policy, pairs it with that file and writes the report.

    With `reuse`, a "before" whose file already holds the same prompts, seed, generation
    settings and evaluator returns it without generating (a resumed run keeps its true start).
    """
    from rlaif.report import atomic_write_text, write_report

    if phase not in ("before", "after"):
        raise ValueError(f"phase must be 'before' or 'after', got {phase!r}")
    out = Path(out_dir)
    saved = out / "eval_before.json"
    ev = make_toxicity_evaluator(evaluator, toxic_label)
    key = {"prompts": list(prompts), "seed": seed, "evaluator": ev.judge.name,
           "gen_kwargs": {**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})}}
    data = json.loads(saved.read_text()) if saved.is_file() else None
    try:
        if phase == "before" and reuse and data is not None and all(data.get(k) == v for k, v in key.items()):
            log.info("hold-out 'before' already in %s (same prompts and settings): reusing it", saved)
            return HoldoutSide(**{k: v for k, v in data.items() if k not in key})
        if phase == "after":
            if data is None:
                raise FileNotFoundError(
                    f"{saved} not found: run run_holdout_evaluation('before', ...) at the start of training"
                )
            for k, v in key.items():
                if data.get(k) != v:
                    raise ValueError(
                        f"{saved}: the before-evaluation used another {k} ({str(data.get(k))[:80]!r}, now "
                        f"{str(v)[:80]!r}); evaluate both sides with the same hold-out set and settings"
                    )
        side = score_side(model, tokenizer, prompts, ev, gen_kwargs=gen_kwargs, seed=seed,
                          batch_size=batch_size, toxic_label=toxic_label, progress=progress)
        meta = {"toxicity": ev.describe(), "n_prompts": len(prompts), **{k: key[k] for k in key if k != "prompts"}}
    finally:
        if ev.owned:
            ev.judge.close()
    if phase == "before":
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, json.dumps({**key, **asdict(side)}, indent=1))
        return side
    before = HoldoutSide(**{k: v for k, v in data.items() if k not in key})
    report = combine(prompts, before, side, threshold=threshold, n_examples=n_examples, kl=kl,
                     meta=meta, seed=seed)
    write_report(out, report, metrics_path=Path(metrics_path) if metrics_path else None, extra=extra)
    return report
