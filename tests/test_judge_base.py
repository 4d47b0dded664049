"""The judge contract and spec loading."""

from __future__ import annotations

import pytest

from rlaif.judges.base import Judge, Sample, Scale, Score, as_samples
from rlaif.judges.spec import JudgeError, load_spec, parse_spec


class _Len(Judge):
    name = "len"
    scale = Scale(0, 100)

    async def ascore(self, samples):
        return [Score(float(len(s.response))) for s in samples]


def test_score_sync_wrapper_keeps_order_and_accepts_tuples_and_dicts():
    got = _Len().score([("p", "abc"), {"prompt": "p", "response": "a"}, Sample("p", "ab")])
    assert [s.value for s in got] == [3.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": None}, "must say why"),  # None without a reason is refused
        ({"value": float("nan")}, "finite"),  # NaN never passes as a score
    ],
)
def test_score_rejects_silent_failures(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Score(**kwargs)


def test_scale_rules_and_unit_mapping():
    assert Scale(-5, 5).to_unit(0) == 0.0
    assert Scale(1, 5).to_unit(5) == 1.0
    with pytest.raises(ValueError, match="low < high"):
        Scale(3, 3)


def test_as_samples_names_the_bad_item():
    with pytest.raises(TypeError, match="sample 1"):
        as_samples([("p", "r"), 42])


def test_builtin_spec_resolves_by_name():
    spec = load_spec("roberta-hate")
    assert spec.type == "classifier"
    assert spec.model == "facebook/roberta-hate-speech-dynabench-r4-target"
    assert spec.label == "nothate" and spec.output == "logit"
    assert spec.name == "roberta-hate"


def test_unknown_key_and_missing_type_fail_with_field_names(tmp_path):
    with pytest.raises(JudgeError, match="labell"):
        parse_spec({"type": "classifier", "model": "m", "labell": "x"}, source="x.yaml")
    with pytest.raises(JudgeError, match="missing field 'type'"):
        parse_spec({"model": "m"}, source="x.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml' does not exist"):
        load_spec(tmp_path / "nope.yaml")  # a path is never looked up among the built-ins
    with pytest.raises(FileNotFoundError, match="no judge named 'nope'"):
        load_spec("nope")


def test_fingerprint_ignores_runtime_fields():
    a = parse_spec({"type": "classifier", "model": "m", "batch_size": 8})
    b = parse_spec({"type": "classifier", "model": "m", "batch_size": 64, "device": "cpu"})
    c = parse_spec({"type": "classifier", "model": "m", "output": "prob"})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_fingerprint_follows_template_text_and_member_specs(tmp_path):
    prompt = tmp_path / "p.yaml"
    member = tmp_path / "m.yaml"
    member.write_text("type: classifier\nmodel: a\n")
    prompt.write_text("one")
    llm = parse_spec({"type": "llm", "provider": "anthropic", "model": "c", "prompt": str(prompt)})
    ens = parse_spec({"type": "ensemble", "members": [{"judge": str(member)}]})
    before = (llm.fingerprint(), ens.fingerprint())
    prompt.write_text("two")  # same template name, new wording
    member.write_text("type: classifier\nmodel: b\n")  # same member path, new model
    assert llm.fingerprint() != before[0]
    assert ens.fingerprint() != before[1]
