"""Hold-out evaluator: statistics on fixed scores, toxicity mapping, the Holdout flow, KL."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dialogues import GREEDY
from dialogues import HOLDOUT_PROMPTS as PROMPTS

from rlaif.evaluation.comparison import compare_before_after
from rlaif.evaluation.holdout import Holdout, evaluate_holdout, training_kl
from rlaif.evaluation.toxicity import make_toxicity_evaluator, toxicity_scores
from rlaif.judges.base import Judge, Sample, Scale, Score


# ------------------------------------------------------------------ statistics


def test_compare_before_after_hand_computed():
    before = [0.8, 0.6, 0.4, 0.2]  # mean 0.5, std sqrt(0.05) = 0.223607
    after = [0.5, 0.3, 0.2, 0.0]   # mean 0.25, std sqrt(0.0325) = 0.180278
    s = compare_before_after(before, after, threshold=0.5, n_boot=500, seed=1)
    assert s["before"]["mean"] == pytest.approx(0.5)
    assert s["after"]["mean"] == pytest.approx(0.25)
    assert s["before"]["std"] == pytest.approx(math.sqrt(0.05))
    assert s["after"]["std"] == pytest.approx(math.sqrt(0.0325))
    assert s["improvement_mean"] == pytest.approx(0.5)  # (0.5 - 0.25) / 0.5
    assert s["improvement_std"] == pytest.approx((math.sqrt(0.05) - math.sqrt(0.0325)) / math.sqrt(0.05))
    # "over" is strict: 0.5 itself is not over a 0.5 threshold
    assert s["before"]["share_over_threshold"] == 0.5
    assert s["after"]["share_over_threshold"] == 0.0
    d = s["difference"]
    assert d["paired"] and d["n"] == 4
    assert d["estimate"] == pytest.approx(0.25)
    # paired differences are 0.3, 0.3, 0.2, 0.2: every bootstrap mean lies in [0.2, 0.3]
    assert 0.2 - 1e-12 <= d["ci_low"] <= 0.25 <= d["ci_high"] <= 0.3 + 1e-12
    assert s["notes"] == []


def test_bootstrap_ci_contains_true_difference_and_is_deterministic():
    rng = np.random.default_rng(123)
    base = rng.uniform(0.2, 0.8, size=300)
    before = list(base + 0.2 + rng.normal(0, 0.05, size=300))
    after = list(base)
    s1 = compare_before_after(before, after, seed=7)
    s2 = compare_before_after(before, after, seed=7)
    s3 = compare_before_after(before, after, seed=8)
    d = s1["difference"]
    assert d["ci_low"] < 0.2 < d["ci_high"]
    assert d["ci_high"] - d["ci_low"] < 0.03  # paired: the shared base cancels out
    assert s1 == s2
    assert s3["difference"]["ci_low"] != d["ci_low"]


def test_unpaired_when_lengths_differ():
    s = compare_before_after([0.9, 0.7, 0.8], [0.1, 0.3], n_boot=300)
    d = s["difference"]
    assert not d["paired"]
    assert d["estimate"] == pytest.approx(0.8 - 0.2)
    assert 0.4 <= d["ci_low"] <= d["ci_high"] <= 0.8  # resampled means: before in [0.7, 0.9], after in [0.1, 0.3]
    with pytest.raises(ValueError, match="equal lengths"):
        compare_before_after([0.1], [0.1, 0.2], paired=True)


def test_unscored_excluded_and_counted_never_zeroed():
    s = compare_before_after([None, 0.5, 0.7], [0.1, None, 0.2], n_boot=100)
    assert (s["before"]["n"], s["before"]["n_unscored"]) == (2, 1)
    assert (s["after"]["n"], s["after"]["n_unscored"]) == (2, 1)
    assert s["before"]["mean"] == pytest.approx(0.6)
    assert s["after"]["mean"] == pytest.approx(0.15)
    # only prompt 2 has both scores: the paired difference is 0.7 - 0.2
    assert s["difference"]["n"] == 1
    assert s["difference"]["estimate"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no scored responses"):
        compare_before_after([None, None], [0.1, 0.2])


def test_improvement_undefined_when_before_is_zero():
    s = compare_before_after([0.0, 0.0], [0.1, 0.3], n_boot=50)
    assert s["improvement_mean"] is None and s["improvement_std"] is None
    assert any("mean toxicity before is 0" in n for n in s["notes"])
    assert any("std toxicity before is 0" in n for n in s["notes"])


# ------------------------------------------------------------------ toxicity mapping


def _hate_probs(model_dir: Path, texts: list[str]) -> list[float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for t in texts:  # one at a time: no padding involved
            logits = model(**tok(t, return_tensors="pt")).logits[0]
            out.append(logits.softmax(-1)[model.config.label2id["hate"]].item())
    return out


TEXTS = ["I like you.", "You are terrible and I hate you.", "Thank you, that is kind.", "You idiot, shut up."]


def test_classifier_toxicity_is_prob_of_hate_not_reward_logit(tiny_models):
    from rlaif.judges.registry import build_judge

    expected = _hate_probs(tiny_models["roberta"], TEXTS)
    reward_spec = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate",
                   "output": "logit", "name": "tiny-hate"}
    # from a spec dict, and from an already built reward judge (nothate logit): both rebuilt
    for ev in (reward_spec, build_judge(reward_spec)):
        tox = toxicity_scores(ev, ["p"] * len(TEXTS), TEXTS)
        assert tox == pytest.approx(expected, abs=1e-5)
    ev = make_toxicity_evaluator(reward_spec)
    assert ev.mode == "prob" and ev.label == "hate"
    assert ev.judge.spec.output == "prob" and ev.judge.spec.label == "hate"
    assert "P(hate)" in ev.describe()


def test_toxicity_local_measurement_loads_offline_and_agrees(tiny_models):
    import evaluate

    import rlaif.evaluation

    folder = Path(rlaif.__file__).parent / "measurements" / "toxicity_local"
    spec = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate"}
    ours = toxicity_scores(spec, ["p"] * len(TEXTS), TEXTS)
    tox = evaluate.load(str(folder), module_type="measurement")
    got = tox.compute(predictions=TEXTS, model_path=str(tiny_models["roberta"]))["toxicity"]
    assert got == pytest.approx(ours, abs=1e-5)
    by_config = evaluate.load(str(folder), config_name=str(tiny_models["roberta"]), module_type="measurement")
    ratio = by_config.compute(predictions=TEXTS, aggregation="ratio", threshold=0.5)["toxicity_ratio"]
    assert ratio == pytest.approx(sum(t >= 0.5 for t in ours) / len(ours))
    with pytest.raises(ValueError, match="labels are"):
        tox.compute(predictions=TEXTS, model_path=str(tiny_models["roberta"]), toxic_label="toxic")


class ScaleJudge(Judge):
    """An LLM-like judge on (-5, 5), higher = less toxic; 'refuse' cannot be scored."""

    name = "fake-llm"
    scale = Scale(-5.0, 5.0)
    table = {"kind": 5.0, "rude": -5.0, "meh": 0.0, "ok": 3.0}

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        return [Score(self.table[s.response]) if s.response in self.table else Score.failed("no verdict")
                for s in samples]


def test_generic_judge_toxicity_from_declared_scale():
    tox = toxicity_scores(ScaleJudge(), ["p"] * 5, ["kind", "rude", "meh", "ok", "refuse"])
    # (high - value) / (high - low) = (5 - v) / 10
    assert tox == [0.0, 1.0, 0.5, pytest.approx(0.2), None]
    assert make_toxicity_evaluator(ScaleJudge()).mode == "scale"


# ------------------------------------------------------------------ hold-out


def test_evaluate_holdout_same_model_no_change(tiny_models):
    spec = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate"}
    rep = evaluate_holdout(tiny_models["gpt2"], tiny_models["gpt2"], None, PROMPTS, spec,
                           gen_kwargs={"max_new_tokens": 8}, seed=3, n_examples=2,
                           kl={"final": 0.0}, progress=False)
    assert len(rep.rows) == 5 and len(rep.examples()) == 2
    assert [r["response_before"] for r in rep.rows] == [r["response_after"] for r in rep.rows]
    assert [r["tox_before"] for r in rep.rows] == [r["tox_after"] for r in rep.rows]
    tox = toxicity_scores(spec, PROMPTS, [r["response_before"] for r in rep.rows])
    assert [r["tox_before"] for r in rep.rows] == pytest.approx(tox, abs=1e-6)
    assert rep.stats["improvement_mean"] == pytest.approx(0.0)
    assert rep.stats["difference"]["estimate"] == pytest.approx(0.0)
    d = rep.to_dict()
    assert d["kl"] == {"final": 0.0} and d["meta"]["seed"] == 3 and d["meta"]["gen_kwargs"]["top_k"] == 0


def test_holdout_before_is_saved_once_and_after_must_match(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM

    spec = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate"}
    kw = dict(gen_kwargs={"max_new_tokens": 6}, seed=1, progress=False)
    saved = tmp_path / "eval_before.json"
    with Holdout(PROMPTS, spec, **kw) as holdout:
        side = holdout.before(tiny_models["gpt2"], saved=saved)
        assert saved.is_file() and len(side.toxicity) == 5
        # a resumed run asks for "before" again with a changed policy: the saved start is kept
        changed = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
        changed.transformer.wte.weight.data.normal_()
        again = holdout.before(changed, str(tiny_models["gpt2"]), saved=saved)
        assert again == side
        after = holdout.score(tiny_models["gpt2"])
        rep = holdout.compare(again, after, kl={"objective/kl": 0.1})
    # other prompts or another seed: the saved side is not reused, it is computed anew
    with Holdout(PROMPTS[:2], spec, **kw) as other:
        assert len(other.before(changed, str(tiny_models["gpt2"]), saved=saved).toxicity) == 2
    assert json.loads(saved.read_text())["prompts"] == PROMPTS[:2]
    assert [r["tox_before"] for r in rep.rows] == side.toxicity
    assert [r["tox_after"] for r in rep.rows] == side.toxicity  # same weights, same seed
    assert rep.kl == {"objective/kl": 0.1} and rep.meta["seed"] == 1


def test_training_kl_is_the_mean_of_the_last_steps():
    history = [{"objective/kl": float(i)} for i in range(8)] + [{"objective/kl": None}]
    # 4..7; the null row is not a step with a KL
    assert training_kl(history) == {
        "training objective/kl: KL(policy || start) at the sampling temperature, ppo.kl.estimator, "
        "per reply (sum over tokens), on each step's rollout; mean of the last 4 steps": pytest.approx(5.5)}
    assert training_kl(history[:3], last=5, temperature=0.7, estimator="k3") == {
        "training objective/kl: KL(policy || start) at T=0.7, k3, per reply (sum over tokens), "
        "on each step's rollout; mean of the last 3 steps": pytest.approx(1.0)}
    assert training_kl([]) == {}


# ------------------------------------------------------------------ KL to the reference


def test_evaluate_holdout_reports_holdout_kl(tiny_models):
    spec = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate"}
    rep = evaluate_holdout(tiny_models["gpt2"], tiny_models["gpt2"], None, PROMPTS[:3], spec,
                           gen_kwargs={"max_new_tokens": 4}, kl={"objective/kl": 0.5},
                           compute_kl=True, progress=False)
    per = ("per reply (sum over tokens)", "per token (total / tokens)")
    assert rep.kl == {"objective/kl": 0.5, **{f"hold-out KL(after || start) at T=1, {kind}, {p}": 0.0
                                              for kind in ("k1", "k3") for p in per}}
    assert "kl_note" not in rep.meta
    # the same model on both sides: the after replies' perplexity under the start model is theirs
    m = rep.metrics
    assert m["after"]["perplexity"]["value"] == pytest.approx(m["before"]["perplexity"]["value"], rel=1e-5)


# ------------------------------------------------------------------ RealToxicityPrompts metrics


def test_expected_max_toxicity_and_toxicity_probability_on_fixed_scores():
    from rlaif.evaluation.comparison import expected_max_toxicity, per_prompt, toxicity_probability

    # three prompts, k = 3 samples each (prompt-major)
    flat = [0.1, 0.7, 0.2,   # max 0.7, has one >= 0.5
            0.5, 0.0, 0.0,   # max 0.5: counts (>= 0.5, the RTP definition)
            0.2, None, 0.4]  # max 0.4 (the unscored sample is left out)
    groups = per_prompt(flat, 3)
    assert expected_max_toxicity(groups) == pytest.approx((0.7 + 0.5 + 0.4) / 3)
    assert toxicity_probability(groups) == pytest.approx(2 / 3)
    assert toxicity_probability(groups, threshold=0.6) == pytest.approx(1 / 3)
    assert expected_max_toxicity([[None, None]]) is None and toxicity_probability([[None]]) is None
    with pytest.raises(ValueError, match="groups of k=3"):
        per_prompt([0.1] * 4, 3)


def test_k_samples_per_prompt_in_the_holdout_report():
    class Fixed(Judge):
        """Toxicity read off the response text: 'tox=0.30' -> score 0.70 on (0, 1)."""

        name = "fixed"
        scale = Scale(0.0, 1.0)

        async def ascore(self, samples):
            return [Score(1.0 - float(s.response.split("=")[1])) for s in samples]

    from rlaif.evaluation.holdout import HoldoutSide

    holdout = Holdout(["p1", "p2"], Fixed(), samples_per_prompt=2, n_boot=200)
    assert holdout.samples == ["p1", "p1", "p2", "p2"]
    before_tox, after_tox = [0.9, 0.1, 0.2, 0.6], [0.3, 0.1, 0.0, 0.2]
    before = HoldoutSide([f"tox={t}" for t in before_tox], before_tox)
    after = HoldoutSide([f"tox={t}" for t in after_tox], after_tox)
    rep = holdout.compare(before, after)
    rtp = rep.stats["rtp"]
    assert rtp["samples_per_prompt"] == 2
    assert rtp["before"]["expected_max_toxicity"] == pytest.approx((0.9 + 0.6) / 2)
    assert rtp["after"]["expected_max_toxicity"] == pytest.approx((0.3 + 0.2) / 2)
    assert rtp["before"]["toxicity_probability"] == 1.0 and rtp["after"]["toxicity_probability"] == 0.0
    # the mean is over every sample; the interval resamples the two prompts' mean differences
    assert rep.stats["before"]["mean"] == pytest.approx(sum(before_tox) / 4)
    assert rep.stats["difference"]["estimate"] == pytest.approx(((0.6 + 0.0) / 2 + (0.2 + 0.4) / 2) / 2)
    assert rep.stats["difference"]["n"] == 2
    assert [r["tox_before_all"] for r in rep.rows] == [[0.9, 0.1], [0.2, 0.6]]
    assert rep.rows[1]["response_after"] == "tox=0.0"  # the first sample of each prompt is shown
    from rlaif.evaluation.report import summary_table

    table = summary_table(rep.to_dict())
    assert "| expected max toxicity (k=2) | 0.7500 | 0.2500 | -0.5000 |" in table
    assert "| toxicity probability (k=2) | 100.0% | 0.0% | -100.0 pp |" in table
