"""Classifier judge: values equal a direct model forward, in input order, whatever the batching."""

from __future__ import annotations

import json
import re

import pytest
import torch

from rlaif.judges.base import JudgeError, Sample
from rlaif.judges.local.classifier import ClassifierJudge
from rlaif.judges.spec import ClassifierSpec

# Mixed lengths on purpose: sorting by length must not change which score goes where.
TEXTS = [
    "I like you.",
    "You are terrible and i hate you. " * 12,
    "ok",
    "Please be polite and respectful. Have a wonderful day, friend.",
    "You idiot, shut up.",
    "Mix flour, water, salt and yeast, then knead. " * 3,
    "Thank you, that is kind.",
]


def _judge(folder, **fields) -> ClassifierJudge:
    return ClassifierJudge(ClassifierSpec(model=str(folder), name="tiny", **{"label": "nothate", **fields}))


@pytest.fixture(scope="module")
def direct(tiny_models):
    """Reference: one unpadded forward per text, straight through transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tiny_models["roberta"]
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    def forward(texts, pairs=None, max_length=128):
        rows = []
        with torch.no_grad():
            for i, text in enumerate(texts):
                enc = tok(text, pairs[i] if pairs else None, truncation=True,
                          max_length=max_length, return_tensors="pt")
                rows.append(model(**enc).logits[0])
        return torch.stack(rows)  # (N, 2)

    return forward


@pytest.mark.parametrize("batch_size", [1, 3, 64])
@pytest.mark.parametrize(
    "output, transform",
    [
        ("logit", lambda x: x),
        ("prob", lambda x: torch.softmax(x, -1)),
        ("logprob", lambda x: torch.log_softmax(x, -1)),
    ],
)
def test_values_equal_direct_forward_in_input_order(tiny_models, direct, batch_size, output, transform):
    judge = _judge(tiny_models["roberta"], output=output, batch_size=batch_size)
    got = [s.value for s in judge.score([("p", t) for t in TEXTS])]
    want = transform(direct(TEXTS))[:, 0].tolist()
    assert got == pytest.approx(want, abs=1e-5)
    assert len(set(round(v, 4) for v in got)) == len(TEXTS)  # distinct, so order is tested


def test_raw_is_the_logits_row_and_logits_method(tiny_models, direct):
    judge = _judge(tiny_models["roberta"], batch_size=2)
    scores = judge.score([("", t) for t in TEXTS[:3]])
    want = direct(TEXTS[:3])
    assert torch.tensor([json.loads(s.raw) for s in scores]) == pytest.approx(want, abs=1e-5)
    assert judge.logits(TEXTS[:3]).shape == (3, 2)
    assert judge.logits([]).shape == (0, 2)


def test_label_by_name_equals_label_by_index(tiny_models, direct):
    by_name = _judge(tiny_models["roberta"], label="hate").score([("", t) for t in TEXTS])
    by_index = _judge(tiny_models["roberta"], label=1).score([("", t) for t in TEXTS])
    want = direct(TEXTS)[:, 1].tolist()
    assert [s.value for s in by_name] == pytest.approx(want, abs=1e-5)
    assert [s.value for s in by_index] == [s.value for s in by_name]


@pytest.mark.parametrize(
    "label, message",
    [
        ("toxic", r"label 'toxic' is not one of .*: nothate, hate"),  # unknown name lists labels
        (2, r"label index 2 is out of range .* use 0\.\.1"),  # index past num_labels
        (None, r"has 2 outputs \(nothate, hate\).*label: null"),  # null only for 1-logit models
    ],
)
def test_label_errors_list_the_labels(tiny_models, label, message):
    judge = _judge(tiny_models["roberta"], label=label)
    with pytest.raises(JudgeError, match=message) as err:
        judge.score([("", "hi")])
    assert "judge 'tiny' (spec field `label`)" in str(err.value)


@pytest.fixture(scope="module")
def reward_model(tiny_models, tmp_path_factory):
    """A single-logit reward model: the tiny RoBERTa re-headed with num_labels=1."""
    from transformers import AutoConfig, AutoTokenizer, RobertaForSequenceClassification

    folder = tiny_models["roberta"]
    config = AutoConfig.from_pretrained(folder)
    config.num_labels = 1
    config.id2label, config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("reward-model")
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out, model


def test_single_logit_reward_model_scores_logit_zero(reward_model):
    folder, model = reward_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    judge = _judge(folder, label=None)
    got = [s.value for s in judge.score([("", t) for t in TEXTS[:4]])]
    with torch.no_grad():
        want = [model(**tok(t, return_tensors="pt")).logits[0, 0].item() for t in TEXTS[:4]]
    assert got == pytest.approx(want, abs=1e-5)


def test_prompt_response_is_scored_as_a_text_pair(tiny_models, direct):
    samples = [Sample("Human: hi", "Hello there."), Sample("Human: you suck", "You idiot.")]
    judge = _judge(tiny_models["roberta"], input="prompt_response")
    got = [s.value for s in judge.score(samples)]
    want = direct([s.prompt for s in samples], [s.response for s in samples])[:, 0].tolist()
    assert got == pytest.approx(want, abs=1e-5)
    alone = [s.value for s in _judge(tiny_models["roberta"]).score(samples)]
    assert got != pytest.approx(alone, abs=1e-3)  # the prompt really changes the input


def test_truncation_at_max_length(tiny_models, direct):
    long_texts = ["word " * 2000, "You are terrible. " * 400]
    # Default max_length 512 is capped at the tokenizer's 128: no position-table overflow.
    judge = _judge(tiny_models["roberta"])
    got = [s.value for s in judge.score([("", t) for t in long_texts])]
    assert got == pytest.approx(direct(long_texts, max_length=128)[:, 0].tolist(), abs=1e-5)
    short = _judge(tiny_models["roberta"], max_length=16)
    got16 = [s.value for s in short.score([("", t) for t in long_texts])]
    assert got16 == pytest.approx(direct(long_texts, max_length=16)[:, 0].tolist(), abs=1e-5)


@pytest.mark.parametrize(
    "output, scale, expected",
    [
        ("prob", None, (0.0, 1.0)),  # documented defaults per output
        ("logprob", None, (-20.0, 0.0)),
        ("logit", None, (-10.0, 10.0)),
        ("logit", (-3.0, 3.0), (-3.0, 3.0)),  # the spec's own scale wins
    ],
)
def test_scale_defaults(tiny_models, output, scale, expected):
    judge = _judge(tiny_models["roberta"], output=output, scale=scale)
    assert (judge.scale.low, judge.scale.high) == expected


def test_missing_model_is_a_judge_error_naming_it(tmp_path):
    judge = _judge(tmp_path / "no-such-model")
    with pytest.raises(JudgeError, match=r"no-such-model.*offline.*local folder"):
        judge.score([("", "hi")])


def test_truncation_is_said_once_with_the_count(tiny_models, caplog):
    # #11: classifiers used to cut long replies silently.
    judge = _judge(tiny_models["roberta"], max_length=16)
    texts = ["word " * 200, "short", "You are terrible. " * 40]
    with caplog.at_level("WARNING", logger="rlaif.judges.local.model"):
        judge.score([("", t) for t in texts])
        judge.score([("", t) for t in texts])
    warnings = [r.getMessage() for r in caplog.records if "max_length=16" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 3 texts" in warnings[0]  # said once, with the count
    assert (judge.truncation.cut, judge.truncation.seen) == (4, 6)  # and counted every time


def test_a_value_outside_the_declared_scale_is_unscored_never_used(tiny_models, direct):
    want = direct(TEXTS)[:, 0].tolist()  # the nothate logits
    high = sorted(want)[len(want) // 2]  # the median: the larger half lies above the scale
    judge = _judge(tiny_models["roberta"], scale=(min(want) - 1.0, high))
    got = judge.score([("", t) for t in TEXTS])
    for value, score in zip(want, got):
        if value <= high:
            assert score.value == pytest.approx(value, abs=1e-5)
        else:  # the error names the judge, the value and the scale
            assert score.value is None
            said = re.fullmatch(r"judge 'tiny': value (\S+) is outside its declared scale "
                                r"\[(\S+), (\S+)\]; set `scale:` .*", score.error)
            assert said is not None, score.error
            assert [float(x) for x in said.groups()] == pytest.approx([value, min(want) - 1.0, high], abs=1e-4)
    assert sum(s.value is None for s in got) == sum(v > high for v in want) >= 1
