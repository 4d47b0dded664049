"""Floor rows and the start-model metrics of the hold-out flow, on a tiny GPT-2 with
function-type judges whose verdicts are known by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
from dialogues import HOLDOUT_PROMPTS as PROMPTS

from rlaif.evaluation.floors import DEFAULT_FLOORS, floor_label
from rlaif.evaluation.holdout import Holdout

EVALUATOR = {"type": "function", "function": "eval_fns:clean", "scale": [0.0, 1.0], "name": "clean"}
HELPFUL = {"type": "function", "function": "eval_fns:words", "scale": [0.0, 50.0], "name": "words"}
RUDE = "You idiot, go away"


def _nll(lm, prompt_ids: list[int], reply_ids: list[int]) -> float:
    """-sum log p(reply token | prompt, earlier reply tokens), one unpadded sequence, by hand."""
    ids = torch.tensor([prompt_ids + reply_ids])
    with torch.no_grad():
        logp = lm(input_ids=ids).logits[0].log_softmax(-1)
    return -sum(logp[len(prompt_ids) - 1 + i, t].item() for i, t in enumerate(reply_ids))


def test_default_floors_match_the_config_default():
    from rlaif.config import EvalConfig

    assert list(DEFAULT_FLOORS) == EvalConfig().floors == ["", "I'm sorry to hear that."]
    assert EvalConfig().helpfulness is None
    assert floor_label("") == "empty reply" and floor_label("I'm sorry to hear that.") == '"I\'m sorry to hear that."'


def test_floor_rows_by_hand(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    k = 2
    saved = tmp_path / "eval_before.json"
    with Holdout(PROMPTS, EVALUATOR, helpfulness=HELPFUL, floors=["", "I'm sorry to hear that.", RUDE],
                 samples_per_prompt=k, gen_kwargs={"max_new_tokens": 12}, seed=0, n_boot=100,
                 progress=False) as holdout:
        before = holdout.before(tiny_models["gpt2"], saved=saved)
        report = holdout.compare(before, before)
    floors = {f["text"]: f for f in report.metrics["floors"]}
    assert [f["label"] for f in report.metrics["floors"]] == ["empty reply", '"I\'m sorry to hear that."',
                                                               f'"{RUDE}"']
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    lm = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    eos = tok.eos_token_id

    empty = floors[""]
    assert (empty["toxicity_mean"], empty["expected_max_toxicity"], empty["toxicity_probability"]) == (0, 0, 0)
    assert empty["helpfulness_mean"] == 0.0 and empty["deflection_share"] == 0.0
    assert empty["length"]["median"] == 0 and empty["length"]["share_at_most_3"] == 1.0
    assert empty["distinct"] == {"1": 0.0, "2": 0.0, "3": 0.0}  # no n-gram: 0 per prompt
    # perplexity: each prompt's EOS alone, under the start model (k copies do not change the ratio)
    prompt_ids = [tok(p)["input_ids"] for p in PROMPTS]
    nll = [_nll(lm, ids, [eos]) for ids in prompt_ids]
    assert empty["perplexity"]["value"] == pytest.approx(math.exp(sum(nll) / len(PROMPTS)), rel=1e-4)
    assert empty["perplexity"]["tokens"] == len(PROMPTS) * k

    sorry = floors["I'm sorry to hear that."]
    assert sorry["toxicity_mean"] == 0.0 and sorry["helpfulness_mean"] == 5.0  # five words
    assert sorry["deflection_share"] == 1.0
    # dialogue prompts end in "Assistant:": a sampled reply starts after a space, and so does the floor
    ids = tok(" I'm sorry to hear that.", add_special_tokens=False)["input_ids"]
    assert sorry["length"]["median"] == len(ids) and sorry["length"]["share_at_most_3"] == 0.0
    # k = 2 identical replies: every n-gram twice
    for n in (1, 2, 3):
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        assert sorry["distinct"][str(n)] == pytest.approx(len(set(grams)) / (2 * len(grams)))
    nll = [_nll(lm, p, ids + [eos]) for p in prompt_ids]
    assert sorry["perplexity"]["value"] == pytest.approx(math.exp(sum(nll) / (len(PROMPTS) * (len(ids) + 1))),
                                                         rel=1e-4)

    rude = floors[RUDE]
    assert (rude["toxicity_mean"], rude["expected_max_toxicity"], rude["toxicity_probability"]) == (1, 1, 1)
    assert rude["share_over_threshold"] == 1.0 and rude["deflection_share"] == 0.0

    # the before side's perplexity: its own replies under the model that wrote them
    gen_ids = [ids for ids in before.generation.response_ids]
    want = sum(_nll(lm, prompt_ids[i // k], r) for i, r in enumerate(gen_ids))
    assert sum(before.start_nll) == pytest.approx(want, rel=1e-4)
    # saved with the before side: a resumed run gets the floors back without the model
    data = json.loads(saved.read_text())
    assert set(data["floors"]) == {"", "I'm sorry to hear that.", RUDE}
    with Holdout(PROMPTS, EVALUATOR, helpfulness=HELPFUL, floors=["", "I'm sorry to hear that.", RUDE],
                 samples_per_prompt=k, gen_kwargs={"max_new_tokens": 12}, seed=0, progress=False) as again:
        assert again.before("no-such-model", saved=saved) == before


def test_report_table_has_the_floor_columns(tiny_models, tmp_path):
    from rlaif.evaluation.report import write_report

    with Holdout(PROMPTS, EVALUATOR, helpfulness=HELPFUL, gen_kwargs={"max_new_tokens": 5}, seed=0,
                 n_boot=100, progress=False) as holdout:
        before = holdout.before(tiny_models["gpt2"])
        after = holdout.score(tiny_models["gpt2"])
        report = holdout.compare(before, after, kl=holdout.kl(after, before))
    paths = write_report(tmp_path, report)
    md = paths["md"].read_text()
    assert ("| metric | before | after | change | floor: empty reply | "
            "floor: \"I'm sorry to hear that.\" |\n|---|---|---|---|---|---|") in md
    assert "| deflections (canned apology / refusal / subject change), share | " in md
    assert "| 0.0% | 100.0% |" in md  # the deflection row's floor cells
    assert "| helpfulness (words), mean | " in md
    assert "| replies with <= 3 tokens | " in md and "| distinct-2 (over each prompt's replies) | " in md
    assert "| perplexity under the start model (untempered, EOS included) | " in md
    assert "hold-out KL(after \\|\\| start) at T=1, k1, per reply (sum over tokens)" in md
    assert paths["length_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "length_hist.png" in md
    data = json.loads(paths["json"].read_text())
    # max_new_tokens 5: the 10-token floor is cut after 5 tokens, without EOS, as sampling would cut it
    sorry = data["metrics"]["floors"][1]
    assert sorry["length"]["median"] == 5 and sorry["perplexity"]["tokens"] == 5 * len(PROMPTS)
    # the same weights and seed on both sides: the after perplexity (from the KL pass) is the before one
    m = data["metrics"]
    assert m["after"]["perplexity"]["value"] == pytest.approx(m["before"]["perplexity"]["value"], rel=1e-5)
    assert data["stats"]["helpfulness"]["difference"]["estimate"] == pytest.approx(0.0)
    assert data["meta"]["helpfulness_judge"] == "words" and data["meta"]["floors"] == [
        "empty reply", '"I\'m sorry to hear that."']
