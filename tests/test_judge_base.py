"""The judge contract and spec loading."""

from __future__ import annotations

import pytest

from rlaif.evaluation.toxicity import make_toxicity_evaluator
from rlaif.judges.base import Judge, JudgeStats, Sample, Scale, Score, Usage, as_samples
from rlaif.judges.cache import CachedJudge
from rlaif.judges.pairwise import PointwisePairwise
from rlaif.judges.registry import build_judge
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


def test_a_hand_built_judge_has_the_whole_contract_with_defaults():
    judge = _Len()
    judge.load()  # nothing to load
    assert (judge.spec, judge.stats(), judge.usage()) == (None, None, Usage())


def test_wrappers_forward_spec_load_stats_and_usage(tmp_path):
    polite = {"type": "function", "name": "polite", "function": "judge_fns:politeness", "scale": [0, 10],
              "cache": str(tmp_path / "c.sqlite")}
    cached = build_judge(polite)
    assert isinstance(cached, CachedJudge) and cached.spec.name == "polite" and cached.spec is cached.judge.spec
    cached.score([("p", "please"), ("p", "thanks")])
    cached.score([("p", "please")])
    assert cached.stats() == JudgeStats(str(tmp_path / "c.sqlite"), hits=1, misses=2, entries=2, key=cached.key)
    cached.close()
    # an ensemble sums its members' caches and names both files
    other = {**polite, "name": "other", "cache": str(tmp_path / "d.sqlite")}
    with build_judge({"type": "ensemble", "name": "e", "members": [{"judge": polite}, {"judge": other}]}) as ens:
        ens.score([("p", "please"), ("p", "thank you")])  # polite has "please" cached, other nothing
        assert ens.spec.name == "e" and ens.usage() == Usage()
        assert ens.stats() == JudgeStats(f"{tmp_path / 'c.sqlite'}, {tmp_path / 'd.sqlite'}", hits=1,
                                         misses=3, entries=5)
    with PointwisePairwise(build_judge(polite)) as pair:
        pair.compare([("p", "please", "no")])
        assert pair.spec.name == "polite" and pair.usage() == Usage()
        assert (pair.stats().hits, pair.stats().misses) == (1, 1)


def test_load_through_a_wrapper_fails_early_for_a_missing_model(tmp_path):
    spec = {"type": "classifier", "model": str(tmp_path / "no-model"), "cache": str(tmp_path / "c.sqlite")}
    with build_judge(spec) as judge, pytest.raises(JudgeError, match="cannot load classifier"):
        judge.load()


def test_the_toxicity_evaluator_reads_the_spec_through_the_cache(tmp_path):
    cache = str(tmp_path / "c.sqlite")
    prob = build_judge({"type": "classifier", "model": "m", "label": "hate", "output": "prob", "cache": cache,
                        "description": "a hate classifier"})
    evaluator = make_toxicity_evaluator(prob)  # the model is never loaded: only its spec is read
    assert (evaluator.mode, evaluator.label, evaluator.about()) == ("prob", "hate", "a hate classifier")
    scale = build_judge({"type": "function", "function": "judge_fns:politeness", "scale": [0, 10], "cache": cache})
    assert make_toxicity_evaluator(scale).mode == "scale"
