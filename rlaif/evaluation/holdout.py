"""The hold-out flow: score a model on held-out prompts, keep the "before" side, compare two sides.

    holdout = Holdout(prompts, evaluator, gen_kwargs=..., seed=0)
    before = holdout.before(start_model, saved=run_dir / "eval_before.json")  # computed once
    ...train...
    after = holdout.score(trained_model)
    report = holdout.compare(before, after, kl={**training_kl(history), **holdout.kl(after, ref)})

Both sides answer the same prompts with the same seed and generation settings, and are
scored by the same evaluator (`toxicity.py`: toxicity in [0, 1], never the reward). `rlaif
train`, `rlaif demo`, `rlaif dpo`, `rlaif evaluate` and the notebook all go through this class,
so their reports hold the same fields. Prefer an evaluator that differs from the reward judge,
so reward hacking shows up as a gap between the two.

Next to toxicity (what it cannot show, `quality.py`): an optional helpfulness judge
(`helpfulness.py`), deflections (`deflection.py`), reply length, distinct-n, and perplexity
under the start model (`fluency.py`); the floor texts (`floors.py`) get every metric as if
they were every reply. `before()` measures what needs the start model (perplexity, floors)
while the model is the start model, and saves it with the before side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlaif.evaluation.comparison import compare_before_after, paired_difference, rtp_metrics
from rlaif.evaluation.deflection import RULE as DEFLECTION_RULE
from rlaif.evaluation.floors import DEFAULT_FLOORS, build_floor, floor_label
from rlaif.evaluation.fluency import reply_nll, split_eos, stop_ids
from rlaif.evaluation.helpfulness import make_helpfulness_judge
from rlaif.evaluation.kl_rows import (  # noqa: F401 - training_kl & co. re-exported from here
    TRAINING_KL_STEPS, holdout_kl_name, kl_note, run_training_kl, training_kl,
)
from rlaif.evaluation.quality import side_metrics
from rlaif.evaluation.side import HoldoutSide
from rlaif.evaluation.toxicity import ToxicityEvaluator, make_toxicity_evaluator
from rlaif.io import atomic_write_json
from rlaif.models.generate import generate

log = logging.getLogger(__name__)

# The walk-through's sampling settings: plain sampling over the full vocabulary.
DEFAULT_GEN_KWARGS: dict[str, Any] = {"max_new_tokens": 32, "do_sample": True, "top_k": 0, "top_p": 1.0}


@dataclass
class HoldoutReport:
    """Per-prompt rows, statistics and settings of a before/after evaluation."""

    rows: list[dict[str, Any]]
    stats: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    kl: dict[str, float] | None = None
    n_examples: int = 10
    # Headline numbers per side: {"before": ..., "after": ..., "floors": [...]} (quality.side_metrics)
    metrics: dict[str, Any] | None = None

    def examples(self) -> list[dict[str, Any]]:
        """The first `n_examples` rows, in prompt order (not picked for effect)."""
        return self.rows[: self.n_examples]

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HoldoutReport:
        """Inverse of `to_dict`."""
        return cls(**{k: data[k] for k in ("rows", "stats", "meta", "kl", "n_examples", "metrics")
                      if k in data})


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
                 chat: bool = False, system_prompt: str | None = None, helpfulness: Any = None,
                 floors: Sequence[str] = DEFAULT_FLOORS, clusters: Sequence[str] | None = None,
                 fluency: bool = True) -> None:
        """`helpfulness`: a judge (ref, spec or Judge) read as helpfulness; `floors`: texts scored
        as if they were every reply; `clusters`: one label per prompt (its template or
        conversation), so intervals resample clusters; `fluency`: perplexity under the start model."""
        if not prompts:
            raise ValueError("the hold-out set is empty; pass at least one prompt")
        if samples_per_prompt < 1:
            raise ValueError(f"samples_per_prompt must be >= 1, got {samples_per_prompt}")
        if clusters is not None and len(clusters) != len(prompts):
            raise ValueError(f"{len(clusters)} cluster labels for {len(prompts)} hold-out prompts; "
                             "pass one label per prompt")
        self.k = samples_per_prompt
        self.prompts = list(prompts)
        self.clusters = list(clusters) if clusters is not None else None
        self.floors, self.fluency = list(dict.fromkeys(floors)), fluency
        self.evaluator: ToxicityEvaluator = make_toxicity_evaluator(evaluator, toxic_label)
        self.helpfulness = make_helpfulness_judge(helpfulness)
        self.gen_kwargs = {**DEFAULT_GEN_KWARGS, **(gen_kwargs or {})}
        self.seed, self.threshold, self.batch_size = seed, threshold, batch_size
        self.n_examples, self.n_boot, self.progress = n_examples, n_boot, progress
        self.chat, self.system_prompt = chat, system_prompt  # the policy's input: see rlaif.data.chat
        # What writes the replies: `generate` (the model's own), or a stand-in with its arguments
        # and a `name` (the run's vLLM engine: rlaif.ppo.vllm_generate), set by the run
        self.generator: Any = None

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
        if self.generator is not None:
            key["engine"] = self.generator.name
        return key

    @property
    def samples(self) -> list[str]:
        """The prompts as generated: each `samples_per_prompt` times in a row."""
        return [p for p in self.prompts for _ in range(self.k)]

    def score(self, model: Any, tokenizer: Any = None) -> HoldoutSide:
        """Generate `samples_per_prompt` responses per prompt with `model`; score their toxicity."""
        t0 = time.perf_counter()
        gen = (self.generator or generate)(
            model, tokenizer, self.samples, gen_kwargs=self.gen_kwargs, seed=self.seed,
            batch_size=self.batch_size, progress=self.progress, chat=self.chat,
            system_prompt=self.system_prompt)
        t1 = time.perf_counter()
        tox = self.evaluator.scores(self.samples, gen.texts)
        token_ids, eos = split_eos(gen.response_ids, stop_ids(gen.lm, gen.tokenizer, self.gen_kwargs))
        side = HoldoutSide(gen.texts, tox, t1 - t0, 0.0, model_name(model),
                           [len(r) for r in gen.response_ids], token_ids, eos, generation=gen)
        self._score_helpfulness(side)
        side.seconds_score = time.perf_counter() - t1
        return side

    def _score_helpfulness(self, side: HoldoutSide) -> bool:
        """Helpfulness of `side`'s replies when a judge is set and they lack its scores."""
        judge = self.helpfulness
        if judge is None or (side.helpfulness and side.helpfulness_judge == judge.name):
            return False
        side.helpfulness = judge.scores(self.samples, side.responses)
        side.helpfulness_judge = judge.name
        return True

    def before(self, model: Any, tokenizer: Any = None, *, saved: str | Path | None = None) -> HoldoutSide:
        """The "before" side, computed once: with `saved`, a file holding the same prompts and
        settings is reused (a resumed run keeps its true start), else it is written there.

        `model` is the start model: the replies' perplexity under it and the floors are measured
        here, and saved with the side. A reused file gets what it lacks that needs no start
        model (helpfulness, a floor added since; that floor without perplexity) and is rewritten."""
        if saved is not None and Path(saved).is_file():
            data = json.loads(Path(saved).read_text())
            if all(data.get(k) == v for k, v in self.key.items()):
                log.info("hold-out 'before' already in %s (same prompts and settings): reusing it", saved)
                side = HoldoutSide.from_dict(data)
                if self._complete(side):
                    atomic_write_json(saved, {**self.key, **side.to_dict()}, indent=1)
                return side
        side = self.score(model, tokenizer)
        self._measure_start(side)
        if saved is not None:
            atomic_write_json(saved, {**self.key, **side.to_dict()}, indent=1)
        return side

    def _measure_start(self, side: HoldoutSide) -> None:
        """What needs the start model (`side`'s, in memory): perplexity of its replies, the floors."""
        gen = side.generation
        if self.fluency:
            side.start_nll = reply_nll(gen.lm, gen, batch_size=self.batch_size)
            side.start_lm = side.model
        for text in self.floors:
            side.floors[text] = build_floor(
                text, self.prompts, k=self.k, evaluator=self.evaluator, helpfulness=self.helpfulness,
                gen=gen, gen_kwargs=self.gen_kwargs, start_lm=side.model, fluency=self.fluency,
                batch_size=self.batch_size)

    def _complete(self, side: HoldoutSide) -> bool:
        """Add to a saved before side what it lacks and can still get; whether anything was added."""
        changed = self._score_helpfulness(side)
        for text in self.floors:
            if text not in side.floors:
                log.warning("the saved hold-out 'before' has no floor %s: scoring it now, without "
                            "perplexity (the start model is gone)", floor_label(text))
                side.floors[text] = build_floor(text, self.prompts, k=self.k, evaluator=self.evaluator,
                                                helpfulness=self.helpfulness, batch_size=self.batch_size)
                changed = True
            elif self.helpfulness is not None:
                floor = side.floors[text]
                if not (floor.helpfulness and floor.helpfulness_judge == self.helpfulness.name):
                    floor.helpfulness = [v for v in self.helpfulness.scores(self.prompts, [text] * len(
                        self.prompts)) for _ in range(self.k)]
                    floor.helpfulness_judge, changed = self.helpfulness.name, True
        return changed

    # ------------------------------------------------------------------ comparison

    @property
    def temperature(self) -> float:
        """The sampling temperature the replies were drawn at (1 for greedy decoding)."""
        g = self.gen_kwargs
        return float(g.get("temperature") or 1.0) if g.get("do_sample") else 1.0

    def kl(self, after: HoldoutSide, reference: Any) -> dict[str, float]:
        """Hold-out KL(after || start): k1 and k3, per reply (sum over its tokens, mean over
        replies) and per token (total / tokens), both logprobs at the sampling temperature
        (log_softmax(logits / T), the distribution the replies were drawn from).

        Estimated on the after-model's own samples. `reference` is the start model: the before
        side (its model in memory), a model, a path, or a PPO policy (its `reference()`: LoRA
        adapters off, or the frozen copy). The same forward pass gives the start model's
        untempered NLL of each after reply, recorded on `after` (its perplexity, `fluency.py`)."""
        from rlaif.models.logprobs import generation_logprobs, generation_logprobs_at, kl_summary

        gen = after.generation
        if gen is None:
            raise ValueError("the after side holds no generation in memory (it was loaded from a "
                             "file); score the model again to estimate the KL")
        t = self.temperature
        policy_lps = generation_logprobs(gen.lm, gen, batch_size=self.batch_size, temperature=t)
        with _reference_lm(reference) as (ref_lm, ref_tok, ref_name):
            if ref_tok is not None and ref_tok.get_vocab() != gen.tokenizer.get_vocab():
                raise ValueError(
                    "the before and after models use different tokenizers, so their KL is undefined; "
                    "pass the same tokenizer (or skip the KL)"
                )
            temps = (t, 1.0) if t != 1.0 else (1.0,)
            ref_lps = generation_logprobs_at(ref_lm, gen, temps, batch_size=self.batch_size)
        after.start_nll = [-float(lp.sum()) for lp in ref_lps[-1]]  # untempered: T = 1
        after.start_lm = ref_name
        est = kl_summary(policy_lps, ref_lps[0])
        return {holdout_kl_name(t, kind, per): value[f"per_{per}"]
                for kind, value in est.items() for per in ("reply", "token")}

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
            for name, side in (("before", before), ("after", after)):
                if side.token_ids:  # reply tokens, EOS left out (the length plot)
                    row[f"tokens_{name}_all"] = [len(ids) for ids in side.token_ids[first:first + k]]
            rows.append(row)
        stats = compare_before_after(before.toxicity, after.toxicity, threshold=self.threshold,
                                     n_boot=self.n_boot, seed=self.seed, paired=True, k=k,
                                     clusters=self.clusters)
        stats["rtp"] = rtp_metrics(before.toxicity, after.toxicity, k)
        if before.helpfulness and after.helpfulness and before.helpfulness_judge == after.helpfulness_judge:
            stats["helpfulness"] = {
                "judge": after.helpfulness_judge,
                "describe": self.helpfulness.describe() if self.helpfulness is not None else None,
                "difference": paired_difference(after.helpfulness, before.helpfulness, k=k,
                                                clusters=self.clusters, n_boot=self.n_boot,
                                                seed=self.seed, what="after - before")}
        metrics = {name: side_metrics(side, k=k, threshold=self.threshold)
                   for name, side in (("before", before), ("after", after))}
        metrics["floors"] = [{"text": text, "label": floor_label(text),
                              **side_metrics(side, k=k, threshold=self.threshold)}
                             for text, side in before.floors.items()]
        info: dict[str, Any] = {
            "evaluator": self.evaluator.judge.name, "toxicity": self.evaluator.describe(),
            "evaluator_about": self.evaluator.about(),
            "n_prompts": len(self.prompts), "samples_per_prompt": k, "gen_kwargs": self.gen_kwargs,
            "seed": self.seed,
            "before_model": before.model, "after_model": after.model,
            "seconds_generate_score": {"before": [before.seconds_generate, before.seconds_score],
                                       "after": [after.seconds_generate, after.seconds_score]},
            **self._measured(before, after),
        }
        if before.lengths and after.lengths:
            info["response_tokens_mean"] = {"before": sum(before.lengths) / len(before.lengths),
                                             "after": sum(after.lengths) / len(after.lengths)}
        note = kl_note(self.gen_kwargs)
        if any(key.startswith("hold-out KL") for key in (kl or {})) and note:
            info["kl_note"] = note
        return HoldoutReport(rows, stats, {**info, **(meta or {})}, dict(kl) if kl else None,
                             self.n_examples, metrics)

    def _measured(self, before: HoldoutSide, after: HoldoutSide) -> dict[str, Any]:
        """Report meta saying how the metrics beside toxicity were measured (None: not measured)."""
        return {
            "helpfulness_judge": after.helpfulness_judge if before.helpfulness and after.helpfulness else None,
            "fluency": {"lm": before.start_lm, "after_lm": after.start_lm,
                        "definition": "perplexity = exp(total NLL of reply tokens / total reply tokens) "
                                      "under the start model, untempered logprobs; reply tokens include "
                                      "the EOS that ended a reply"} if before.start_nll else None,
            "diversity": "distinct-n: unique / total n-grams of reply token ids among the k replies of "
                         "each prompt, mean over prompts (a prompt without an n-gram counts 0)",
            "length": "reply tokens, the ending EOS left out",
            "deflection_rule": DEFLECTION_RULE,
            "floors": [floor_label(t) for t in before.floors],
            "clusters": len(set(self.clusters)) if self.clusters is not None else None,
        }

    def close(self) -> None:
        """Release the evaluator and the helpfulness judge if they were built here."""
        self.evaluator.close()
        if self.helpfulness is not None:
            self.helpfulness.close()

    def __enter__(self) -> Holdout:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def _reference_lm(reference: Any) -> Iterator[tuple[Any, Any, str | None]]:
    """(LM, tokenizer or None, its name) for the KL reference, whatever form it came in."""
    from rlaif.models.load import load_lm

    if isinstance(reference, HoldoutSide):
        if reference.generation is None:
            raise ValueError("the before side holds no model in memory; pass the start model instead")
        yield reference.generation.lm, reference.generation.tokenizer, reference.model
    elif callable(getattr(reference, "reference", None)):  # a PPO policy: its KL anchor
        with reference.reference() as ref_lm:
            yield ref_lm, None, f"{model_name(ref_lm)}: the policy's reference (the start model)"
    else:
        lm, tok, _ = load_lm(reference)
        yield lm, tok, model_name(reference)


def evaluate_holdout(before_model: Any, after_model: Any, tokenizer: Any, prompts: Sequence[str],
                     evaluator: Any, *, kl: dict[str, float] | None = None, compute_kl: bool = False,
                     **settings: Any) -> HoldoutReport:
    """Both models on the same prompts (same seed and settings), scored and compared.

    `kl` holds numbers the caller already has (e.g. a run's training KL); `compute_kl=True`
    adds the hold-out KL(after || before) and the after replies' perplexity under the before
    model. `settings` are `Holdout`'s keyword arguments."""
    with Holdout(prompts, evaluator, **settings) as holdout:
        before = holdout.before(before_model, tokenizer)  # the start model: perplexity, floors
        after = holdout.score(after_model, tokenizer)
        kl = {**(kl or {}), **(holdout.kl(after, before) if compute_kl else {})}
        return holdout.compare(before, after, kl=kl)
