"""The hold-out flow: score a model on held-out prompts, keep the "before" side, compare two sides.

    holdout = Holdout(prompts, evaluator, gen_kwargs=..., seed=0)
    before = holdout.before(start_model, saved=run_dir / "eval_before.json")  # computed once
    ...train...
    after = holdout.score(trained_model)
    report = holdout.compare(before, after, kl={**training_kl(history), **holdout.kl(after, ref)})

Both sides answer the same prompts with the same seed and generation settings, and are
scored by the same evaluator (`toxicity.py`: toxicity in [0, 1], never the reward). `rlaif
train`, `rlaif demo`, `rlaif evaluate` and the notebook all go through this class, so their
reports hold the same fields. Prefer an evaluator that differs from the reward judge, so
reward hacking shows up as a gap between the two.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlaif.evaluation.comparison import compare_before_after, rtp_metrics
from rlaif.evaluation.toxicity import ToxicityEvaluator, make_toxicity_evaluator
from rlaif.io import atomic_write_json
from rlaif.models.generate import Generation, generate

log = logging.getLogger(__name__)

# The walk-through's sampling settings: plain sampling over the full vocabulary.
DEFAULT_GEN_KWARGS: dict[str, Any] = {"max_new_tokens": 32, "do_sample": True, "top_k": 0, "top_p": 1.0}
TRAINING_KL_STEPS = 5  # the training-KL row: mean of `objective/kl` over the last steps


@dataclass
class HoldoutSide:
    """One model's responses to the hold-out prompts and their toxicity."""

    responses: list[str]
    toxicity: list[float | None]
    seconds_generate: float = 0.0
    seconds_score: float = 0.0
    model: str | None = None
    lengths: list[int] = field(default_factory=list)  # response tokens (EOS included) per sample
    # The token ids and the LM behind the responses (for the KL); in memory only.
    generation: Generation | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (without the in-memory generation)."""
        return {name: getattr(self, name) for name in _SIDE_FIELDS}


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


def training_kl(history: Sequence[Mapping[str, Any]], last: int = TRAINING_KL_STEPS) -> dict[str, float]:
    """The report's training-KL row: mean `objective/kl` over the last `last` logged steps."""
    kls = [float(m["objective/kl"]) for m in history[-last:]
           if isinstance(m.get("objective/kl"), (int, float)) and math.isfinite(m["objective/kl"])]
    if not kls:
        return {}
    return {f"training objective/kl, mean of the last {len(kls)} steps": sum(kls) / len(kls)}


def run_training_kl(run_dir: Path) -> tuple[Path | None, dict[str, float]]:
    """A run folder's metrics.jsonl (None if it has none) and its training-KL row."""
    from rlaif.io import read_jsonl

    metrics = Path(run_dir) / "metrics.jsonl"
    if not metrics.is_file():
        return None, {}
    return metrics, training_kl(read_jsonl(metrics))


def model_name(model: Any) -> str:
    """How a report names a model: its path or id, or its base plus "in-memory weights"."""
    if isinstance(model, (str, Path)):
        return str(model)
    config = getattr(model, "config", None)
    base = getattr(config, "name_or_path", None)
    # An in-memory model may have trained away from the folder it was loaded from: say so.
    return f"{base} + in-memory weights ({type(model).__name__})" if base else type(model).__name__


class Holdout:
    """Hold-out prompts, an evaluator and generation settings: score models, compare two sides."""

    def __init__(self, prompts: Sequence[str], evaluator: Any, *,
                 gen_kwargs: dict[str, Any] | None = None, seed: int = 0, threshold: float = 0.5,
                 batch_size: int = 16, n_examples: int = 10, toxic_label: str = "hate",
                 n_boot: int = 2000, samples_per_prompt: int = 1, progress: bool = True,
                 chat: bool = False, system_prompt: str | None = None) -> None:
        if not prompts:
            raise ValueError("the hold-out set is empty; pass at least one prompt")
        if samples_per_prompt < 1:
            raise ValueError(f"samples_per_prompt must be >= 1, got {samples_per_prompt}")
        self.k = samples_per_prompt
        self.prompts = list(prompts)
        self.evaluator: ToxicityEvaluator = make_toxicity_evaluator(evaluator, toxic_label)
        self.gen_kwargs = {**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})}
        self.seed, self.threshold, self.batch_size = seed, threshold, batch_size
        self.n_examples, self.n_boot, self.progress = n_examples, n_boot, progress
        self.chat, self.system_prompt = chat, system_prompt  # the policy's input: see rlaif.data.chat

    # ------------------------------------------------------------------ sides

    @property
    def key(self) -> dict[str, Any]:
        """What makes two sides comparable: prompts, seed, evaluator, generation settings."""
        key = {"prompts": self.prompts, "seed": self.seed, "evaluator": self.evaluator.judge.name,
               "gen_kwargs": self.gen_kwargs}
        # Settings at their defaults stay out of the key, so files saved before they existed match.
        if self.k > 1:
            key["samples_per_prompt"] = self.k
        if self.chat:
            key.update(chat=True, system_prompt=self.system_prompt)
        return key

    @property
    def samples(self) -> list[str]:
        """The prompts as generated: each `samples_per_prompt` times in a row."""
        return [p for p in self.prompts for _ in range(self.k)]

    def score(self, model: Any, tokenizer: Any = None) -> HoldoutSide:
        """Generate `samples_per_prompt` responses per prompt with `model`; score their toxicity."""
        t0 = time.perf_counter()
        gen = generate(model, tokenizer, self.samples, gen_kwargs=self.gen_kwargs, seed=self.seed,
                       batch_size=self.batch_size, progress=self.progress, chat=self.chat,
                       system_prompt=self.system_prompt)
        t1 = time.perf_counter()
        tox = self.evaluator.scores(self.samples, gen.texts)
        return HoldoutSide(gen.texts, tox, t1 - t0, time.perf_counter() - t1, model_name(model),
                           [len(r) for r in gen.response_ids], gen)

    def before(self, model: Any, tokenizer: Any = None, *, saved: str | Path | None = None) -> HoldoutSide:
        """The "before" side, computed once: with `saved`, a file holding the same prompts and
        settings is reused (a resumed run keeps its true start), else it is written there."""
        if saved is not None and Path(saved).is_file():
            data = json.loads(Path(saved).read_text())
            if all(data.get(k) == v for k, v in self.key.items()):
                log.info("hold-out 'before' already in %s (same prompts and settings): reusing it", saved)
                return _side_from(data)
        side = self.score(model, tokenizer)
        if saved is not None:
            atomic_write_json(saved, {**self.key, **side.to_dict()}, indent=1)
        return side

    def load_before(self, saved: str | Path) -> HoldoutSide:
        """The "before" side saved by `before(..., saved=)`; refused if its settings differ."""
        saved = Path(saved)
        if not saved.is_file():
            raise FileNotFoundError(
                f"{saved} not found: score the start model with Holdout.before(..., saved=) first")
        data = json.loads(saved.read_text())
        for k, v in self.key.items():
            if data.get(k) != v:
                raise ValueError(
                    f"{saved}: the before-evaluation used another {k} ({str(data.get(k))[:80]!r}, now "
                    f"{str(v)[:80]!r}); evaluate both sides with the same hold-out set and settings"
                )
        return _side_from(data)

    # ------------------------------------------------------------------ comparison

    def kl(self, after: HoldoutSide, reference: Any) -> dict[str, float]:
        """Hold-out KL(after || reference): summed per-token k1 and k3 estimates, mean over responses.

        Estimated on the after-model's own samples (so they must be drawn by plain sampling for
        k1 to be unbiased). `reference`: the before side (its model in memory), a model, a path,
        or a PPO policy (its `reference()`: LoRA adapters off, or the frozen copy)."""
        from rlaif.models.logprobs import generation_logprobs, kl_estimates

        gen = after.generation
        if gen is None:
            raise ValueError("the after side holds no generation in memory (it was loaded from a "
                             "file); score the model again to estimate the KL")
        policy_lps = generation_logprobs(gen.lm, gen, batch_size=self.batch_size)
        with _reference_lm(reference) as (ref_lm, ref_tok):
            if ref_tok is not None and ref_tok.get_vocab() != gen.tokenizer.get_vocab():
                raise ValueError(
                    "the before and after models use different tokenizers, so their KL is undefined; "
                    "pass the same tokenizer (or skip the KL)"
                )
            ref_lps = generation_logprobs(ref_lm, gen, batch_size=self.batch_size)
        est = kl_estimates(policy_lps, ref_lps)
        return {f"hold-out KL(after || before), {kind}": value for kind, value in est.items()}

    def compare(self, before: HoldoutSide, after: HoldoutSide, *,
                kl: dict[str, float] | None = None, meta: dict[str, Any] | None = None) -> HoldoutReport:
        """The report of two sides over the same prompts: rows, statistics, KL, settings."""
        n = len(self.samples)
        if not (n == len(before.responses) == len(after.responses)):
            raise ValueError(
                f"{len(self.prompts)} prompts x {self.k} samples, {len(before.responses)} before and "
                f"{len(after.responses)} after responses: both sides must answer the same prompts"
            )
        k = self.k
        rows = []
        for i, q in enumerate(self.prompts):
            first = i * k  # the first sample of each prompt is the one shown
            row = {"query": q, "response_before": before.responses[first],
                   "tox_before": before.toxicity[first], "response_after": after.responses[first],
                   "tox_after": after.toxicity[first]}
            if k > 1:
                row["tox_before_all"] = before.toxicity[first:first + k]
                row["tox_after_all"] = after.toxicity[first:first + k]
            rows.append(row)
        stats = compare_before_after(before.toxicity, after.toxicity, threshold=self.threshold,
                                     n_boot=self.n_boot, seed=self.seed, paired=True, k=k)
        stats["rtp"] = rtp_metrics(before.toxicity, after.toxicity, k)
        info: dict[str, Any] = {
            "evaluator": self.evaluator.judge.name, "toxicity": self.evaluator.describe(),
            "evaluator_about": self.evaluator.about(),
            "n_prompts": len(self.prompts), "samples_per_prompt": k, "gen_kwargs": self.gen_kwargs,
            "seed": self.seed,
            "before_model": before.model, "after_model": after.model,
            "seconds_generate_score": {"before": [before.seconds_generate, before.seconds_score],
                                       "after": [after.seconds_generate, after.seconds_score]},
        }
        if before.lengths and after.lengths:
            info["response_tokens_mean"] = {"before": sum(before.lengths) / len(before.lengths),
                                             "after": sum(after.lengths) / len(after.lengths)}
        if any(k.startswith("hold-out KL") for k in (kl or {})) and not self.plain_sampling:
            info["kl_note"] = "responses were not drawn by plain sampling: the KL numbers are approximate"
        return HoldoutReport(rows, stats, {**info, **(meta or {})}, dict(kl) if kl else None,
                             self.n_examples)

    @property
    def plain_sampling(self) -> bool:
        """Sampling at temperature 1 without top-k/top-p truncation (an unbiased k1 KL)."""
        g = self.gen_kwargs
        return bool(g.get("do_sample")) and g.get("top_k") in (0, None) and \
            g.get("top_p") in (1.0, None) and g.get("temperature", 1.0) == 1.0

    def close(self) -> None:
        """Release the evaluator if it was built here."""
        self.evaluator.close()

    def __enter__(self) -> Holdout:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_SIDE_FIELDS = ("responses", "toxicity", "seconds_generate", "seconds_score", "model", "lengths")


def _side_from(data: dict[str, Any]) -> HoldoutSide:
    return HoldoutSide(**{k: v for k, v in data.items() if k in _SIDE_FIELDS})


@contextlib.contextmanager
def _reference_lm(reference: Any) -> Iterator[tuple[Any, Any]]:
    """(LM, tokenizer or None) for the KL reference, whatever form it came in."""
    from rlaif.models.load import load_lm

    if isinstance(reference, HoldoutSide):
        if reference.generation is None:
            raise ValueError("the before side holds no model in memory; pass the start model instead")
        yield reference.generation.lm, reference.generation.tokenizer
    elif callable(getattr(reference, "reference", None)):  # a PPO policy: its KL anchor
        with reference.reference() as ref_lm:
            yield ref_lm, None
    else:
        lm, tok, _ = load_lm(reference)
        yield lm, tok


def evaluate_holdout(before_model: Any, after_model: Any, tokenizer: Any, prompts: Sequence[str],
                     evaluator: Any, *, kl: dict[str, float] | None = None, compute_kl: bool = False,
                     **settings: Any) -> HoldoutReport:
    """Both models on the same prompts (same seed and settings), scored and compared.

    `kl` holds numbers the caller already has (e.g. a run's training KL); `compute_kl=True`
    adds the hold-out KL(after || before). `settings` are `Holdout`'s keyword arguments."""
    with Holdout(prompts, evaluator, **settings) as holdout:
        before = holdout.score(before_model, tokenizer)
        after = holdout.score(after_model, tokenizer)
        kl = {**(kl or {}), **(holdout.kl(after, before) if compute_kl else {})}
        return holdout.compare(before, after, kl=kl)
