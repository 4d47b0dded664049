"""Ensemble judge: normalisation x aggregation on hand-computed cases, running z-score,
missing-score policies, criterion selection, shared members judged once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlaif.judges.base import Judge, JudgeError, MemberScore, Sample, Scale, Score, Usage
from rlaif.judges.ensemble import EnsembleJudge
from rlaif.judges.registry import build_judge
from rlaif.judges.spec import EnsembleSpec, load_spec
from rlaif.stats import RunningMoments


class Table(Judge):
    """Looks each response up in a table: a number, None (failed) or a criteria dict."""

    def __init__(self, name: str, scale: tuple[float, float], table: dict[str, object] | None = None,
                 cost: Usage | None = None) -> None:
        self.name = name
        self.scale = Scale(*scale)
        self.table = table or {}
        self.cost = cost
        self.calls = 0
        self._usage = Usage()

    async def ascore(self, samples):
        self.calls += 1
        out = []
        for s in samples:
            v = self.table[s.response] if self.table else float(s.response)
            if self.cost is not None:
                self._usage = self._usage + self.cost
            if v is None:
                out.append(Score.failed(f"{self.name} could not read {s.response!r}", usage=self.cost))
            elif isinstance(v, dict):
                out.append(Score(sum(v.values()) / len(v), usage=self.cost, criteria=dict(v)))
            else:
                out.append(Score(float(v), usage=self.cost))
        return out

    def usage(self):
        return self._usage


def ensemble(members, judges, **kw) -> EnsembleJudge:
    spec = EnsembleSpec(name="ens", members=members, **kw)
    return EnsembleJudge(spec, judges=judges)


def samples(*responses: str) -> list[Sample]:
    return [Sample("p", r) for r in responses]


# Two samples, members a (scale 0..10, weight 3) and b (scale -5..5, weight 1):
#   sample 0: a=8, b=-1      sample 1: a=2, b=3
# range  -> a: 0.6, -0.6   b: -0.2, 0.6
# zscore -> a: mean 5, std 3 -> (1, -1);  b: mean 1, std 2 -> (-1, 1)
# none   -> raw values
A = {"s0": 8.0, "s1": 2.0}
B = {"s0": -1.0, "s1": 3.0}
CASES = [
    # normalize, aggregate, expected (sample 0, sample 1), declared scale
    # weighted mean: (3*0.6 - 0.2)/4 = 0.4 ; (3*-0.6 + 0.6)/4 = -0.3
    ("range", "weighted_mean", (0.4, -0.3), (-1, 1)),
    # worst case over members
    ("range", "min", (-0.2, -0.6), (-1, 1)),
    # var0 = (3*0.2^2 + 0.6^2)/4 = 0.12 ; var1 = (3*0.3^2 + 0.9^2)/4 = 0.27 ; low = -sqrt(1+1)
    ("range", "mean_minus_std", (0.4 - math.sqrt(0.12), -0.3 - math.sqrt(0.27)), (-math.sqrt(2), 1)),
    # (3*1 - 1)/4 = 0.5 ; (3*-1 + 1)/4 = -0.5 ; nominal band (-3, 3)
    ("zscore", "weighted_mean", (0.5, -0.5), (-3, 3)),
    ("zscore", "min", (-1.0, -1.0), (-3, 3)),
    # var = (3*0.5^2 + 1.5^2)/4 = 0.75 on both samples
    ("zscore", "mean_minus_std", (0.5 - math.sqrt(0.75), -0.5 - math.sqrt(0.75)), (-3 * math.sqrt(2), 3)),
    # (3*8 - 1)/4 = 5.75 ; (3*2 + 3)/4 = 2.25 ; hull of member scales (-5, 10)
    ("none", "weighted_mean", (5.75, 2.25), (-5, 10)),
    ("none", "min", (-1.0, 2.0), (-5, 10)),
    # var0 = (3*2.25^2 + 6.75^2)/4 = 15.1875 ; var1 = (3*0.25^2 + 0.75^2)/4 = 0.1875 ;
    # low = centre 2.5 - half-width 7.5 * sqrt(2)
    ("none", "mean_minus_std", (5.75 - math.sqrt(15.1875), 2.25 - math.sqrt(0.1875)), (2.5 - 7.5 * math.sqrt(2), 10)),
]


@pytest.mark.parametrize("normalize, aggregate, expected, scale", CASES)
def test_every_normalisation_and_aggregation_on_hand_computed_values(normalize, aggregate, expected, scale):
    judges = {"a": Table("a", (0, 10), A), "b": Table("b", (-5, 5), B)}
    ens = ensemble([{"judge": "a", "weight": 3}, {"judge": "b", "weight": 1}], judges,
                   normalize=normalize, aggregate=aggregate, std_coef=1.0)
    got = ens.score(samples("s0", "s1"))
    assert [s.value for s in got] == pytest.approx(expected, abs=1e-12)
    assert (ens.scale.low, ens.scale.high) == pytest.approx(scale)
    # member scores are logged raw and normalised; the rationale lists them
    assert got[0].members["a"].raw == 8.0
    assert got[0].rationale == "a=8, b=-1"


def test_std_coef_scales_the_penalty_and_range_clips_out_of_scale_members():
    judges = {"a": Table("a", (0, 10), {"x": 12.0}), "b": Table("b", (0, 10), {"x": 5.0})}
    ens = ensemble([{"judge": "a"}, {"judge": "b"}], judges, aggregate="mean_minus_std", std_coef=0.5)
    [got] = ens.score(samples("x"))
    # a=12 is past the scale top -> clipped to 1 (not 1.4); b=5 -> 0; mean 0.5, std 0.5
    assert got.members["a"] == MemberScore(raw=12.0, normalized=1.0, weight=1.0)
    assert got.value == pytest.approx(0.5 - 0.5 * 0.5)
    assert ens.scale.low == pytest.approx(-math.sqrt(1 + 0.5**2))


def test_running_zscore_over_batches_matches_numpy():
    batches = [[3.0], [1.0, 4.0], [1.0, 5.0, 9.0], [2.0, 6.0]]
    ens = ensemble([{"judge": "a"}], {"a": Table("a", (0, 10))}, normalize="zscore")
    seen: list[float] = []
    for batch in batches:
        got = ens.score([Sample("p", str(v)) for v in batch])
        seen += batch
        mean, std = np.mean(seen), np.std(seen)  # population std, this batch included
        want = [0.0 if len(seen) < 2 else (v - mean) / std for v in batch]
        assert [s.value for s in got] == pytest.approx(want, abs=1e-12)
    # warm-up: the very first value alone normalises to 0
    first = RunningMoments()
    first.push(3.0)
    assert first.zscore(7.0) == 0.0


@pytest.mark.parametrize(
    "policy, expected",
    [
        # sample 1 lacks a: skip fails it and names the member
        ("skip", (0.4, None)),
        # renormalize: b alone (weight 1 of 1) -> 0.6
        ("renormalize", (0.4, 0.6)),
    ],
)
def test_missing_policies_skip_and_renormalize(policy, expected):
    judges = {"a": Table("a", (0, 10), {"s0": 8.0, "s1": None}), "b": Table("b", (-5, 5), B)}
    ens = ensemble([{"judge": "a", "weight": 3}, {"judge": "b", "weight": 1}], judges, on_missing=policy)
    got = ens.score(samples("s0", "s1"))
    assert [s.value for s in got] == pytest.approx(expected)
    if policy == "skip":
        assert "a (a could not read 's1')" in got[1].error
    assert got[1].members["a"] == MemberScore(
        raw=None, normalized=None, weight=3.0, error="a could not read 's1'"
    )


def test_missing_policy_fail_raises_naming_member_and_sample_and_keeps_finished_scores():
    judges = {"a": Table("a", (0, 10), {"s0": 8.0, "s1": None}), "b": Table("b", (-5, 5), B)}
    ens = ensemble([{"judge": "a", "weight": 3}, {"judge": "b", "weight": 1}], judges, on_missing="fail")
    with pytest.raises(JudgeError, match=r"sample 1: member a \(a could not read") as err:
        ens.score(samples("s0", "s1"))
    assert err.value.partial[0].value == pytest.approx(0.4)
    assert err.value.partial[1] is None


def test_renormalize_with_no_member_fails_the_sample_and_weight_zero_never_counts():
    judges = {"a": Table("a", (0, 10), {"x": None}), "b": Table("b", (0, 10), {"x": None}),
              "log": Table("log", (0, 10), {"x": None, "y": 10.0})}
    ens = ensemble([{"judge": "a"}, {"judge": "b"}], judges)
    [got] = ens.score(samples("x"))
    assert got.value is None and got.error.startswith("no member scored: a (")
    # a weight-0 member is logged but neither aggregated nor a cause to skip
    judges["a"].table["y"] = 0.0
    ens = ensemble([{"judge": "a"}, {"judge": "log", "weight": 0}], judges, on_missing="skip")
    [x, y] = ens.score(samples("x", "y"))
    assert x.value is None and "log" not in x.error
    assert y.value == -1.0 and y.members["log"].normalized == 1.0


def test_criteria_come_from_the_score_and_a_shared_judge_is_called_once_per_batch():
    cost = Usage(requests=1, input_tokens=100, output_tokens=20, cost_usd=0.01)
    hhh = Table("hhh", (1, 5), {"r": {"helpfulness": 5.0, "honesty": 3.0}}, cost=cost)
    members = [{"judge": "hhh", "criterion": c} for c in ("helpfulness", "honesty", "harmlessness")]
    ens = ensemble(members, {"hhh": hhh})
    got = ens.score(samples("r", "r"))
    assert hhh.calls == 1  # three members, one judge call for the batch
    # helpfulness 5 -> 1, honesty 3 -> 0, harmlessness missing -> renormalised mean 0.5
    assert [s.value for s in got] == [0.5, 0.5]
    members_log = got[0].members
    assert members_log["helpfulness"].raw == 5.0
    assert "no criterion 'harmlessness'" in members_log["harmlessness"].error
    assert got[0].rationale == "helpfulness=5, honesty=3, harmlessness=missing"
    # usage counts the shared judge once per sample, and once per sample in total
    assert got[0].usage == cost
    assert ens.usage().requests == 2
    ens.score(samples("r"))
    assert hhh.calls == 2


def test_member_names_are_made_unique():
    table = {"r": {"x": 5.0}}
    judges = {"a": Table("a", (0, 10), table), "b": Table("a", (0, 10), table)}  # both named "a"
    ens = ensemble([{"judge": "a"}, {"judge": "b"}, {"judge": "a", "criterion": "x"},
                    {"judge": "b", "criterion": "x"}], judges)
    (score,) = ens.score(samples("r"))
    assert list(score.members) == ["a", "a#2", "a.x", "a.x#2"]


def test_a_failing_member_judge_raises_with_the_finished_ensemble_scores():
    class Broke(Table):
        async def ascore(self, samples):
            raise JudgeError("budget spent", partial=[Score(10.0), None])

    judges = {"a": Table("a", (0, 10)), "b": Broke("b", (0, 10))}
    ens = ensemble([{"judge": "a"}, {"judge": "b"}], judges)
    with pytest.raises(JudgeError, match="member judge 'b' failed: budget spent") as err:
        ens.score([Sample("p", "0"), Sample("p", "5")])
    # sample 0: a=0 -> -1, b=10 -> 1 -> mean 0; sample 1 never scored by b
    assert err.value.partial[0].value == 0.0
    assert err.value.partial[1] is None


def test_hhh_ensemble_spec_validates():
    spec = load_spec("hhh-ensemble")
    assert spec.type == "ensemble" and spec.normalize == "range"
    assert spec.aggregate == "weighted_mean" and spec.on_missing == "renormalize"
    crit = {m.criterion: m.weight for m in spec.members if m.judge == "hhh-claude"}
    assert crit == {"helpfulness": 0.4, "honesty": 0.2, "harmlessness": 0.4}
    assert [(m.judge, m.weight) for m in spec.members if m.judge != "hhh-claude"] == [("roberta-hate", 0.2)]
    assert load_spec("roberta-hate").type == "classifier"
    # every criterion the ensemble reads is one that hhh-claude asks Claude for
    assert set(crit) <= set(load_spec("hhh-claude").criteria)


def test_a_criterion_the_llm_judge_does_not_score_is_refused_when_built(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-never-sent")
    claude = load_spec("hhh-claude").model_dump(mode="json")
    claude.update(base_url="http://127.0.0.1:9")  # never contacted: building only
    spec = EnsembleSpec(name="ens", members=[{"judge": claude, "criterion": "wit"}])
    with pytest.raises(JudgeError, match=r"has no criterion 'wit'; its criteria are \['helpfulness'"):
        build_judge(spec)


@pytest.fixture
def built(monkeypatch) -> list[str]:
    """The names of the function judges built while the test runs, in order."""
    from rlaif.judges.local.function import FunctionJudge

    names: list[str] = []
    original_init = FunctionJudge.__init__

    def init(self, spec):
        names.append(spec.name)
        original_init(self, spec)

    monkeypatch.setattr(FunctionJudge, "__init__", init)
    return names


def test_the_registry_builds_shared_members_once_and_the_ensemble_closes_them(monkeypatch, built):
    from rlaif.judges.local.function import FunctionJudge

    closed = []
    monkeypatch.setattr(FunctionJudge, "close", lambda self: closed.append(self.name))
    polite = {"type": "function", "function": "judge_fns:politeness", "scale": [0, 2], "name": "polite"}
    ens = build_judge({"type": "ensemble", "name": "e", "members": [
        {"judge": polite}, {"judge": polite, "weight": 2}, {"judge": {**polite, "name": "other"}}]})
    assert isinstance(ens, EnsembleJudge) and built == ["polite", "other"]  # the shared one once
    (score,) = ens.score([Sample("p", "please")])
    assert list(score.members) == ["polite", "polite#2", "other"]
    assert score.value == 0.0  # all three at mid-scale
    ens.close()
    assert sorted(closed) == ["other", "polite"]


def test_an_ensemble_needs_a_judge_for_every_member():
    spec = EnsembleSpec(name="ens", members=[{"judge": "a"}, {"judge": "b"}])
    with pytest.raises(JudgeError, match=r"member 1: no judge given for 'b'.*registry.build_judge"):
        EnsembleJudge(spec, {"a": Table("a", (0, 10))})
    # judges handed in are the caller's: closing the ensemble leaves them open
    closed = []
    a = Table("a", (0, 10))
    a.close = lambda: closed.append("a")  # type: ignore[method-assign]
    EnsembleJudge(EnsembleSpec(members=[{"judge": "a"}]), {"a": a}).close()
    assert closed == []


def test_member_paths_resolve_next_to_the_ensemble_file_like_a_head(tmp_path, monkeypatch, built):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "polite.yaml").write_text("type: function\nfunction: judge_fns:politeness\nscale: [0, 2]\n")
    (folder / "ens.yaml").write_text(
        "type: ensemble\nmembers:\n  - judge: polite.yaml\n  - judge: roberta-hate\n  - judge:\n"
        "      {type: embedding, encoder: enc, head: heads/h.json, label: 1}\n    weight: 0\n")
    monkeypatch.chdir(tmp_path)  # polite.yaml is not in the working directory
    spec = load_spec(folder / "ens.yaml")
    assert spec.members[0].judge == str((folder / "polite.yaml").resolve())
    assert spec.members[1].judge == "roberta-hate"  # a built-in name stays a name
    assert spec.members[2].judge.head == str(folder / "heads/h.json")  # an inline member's head too
    (folder / "two.yaml").write_text("type: ensemble\nmembers:\n  - judge: polite.yaml\n  - judge: ./polite.yaml\n")
    with build_judge(folder / "two.yaml") as ens:  # two spellings of one file: one judge, built once
        assert built == ["polite"] and [s.value for s in ens.score([("p", "please")])] == [0.0]


def test_a_member_only_in_the_working_directory_still_loads_and_a_missing_one_names_both_places(
        tmp_path, monkeypatch, caplog):
    folder = tmp_path / "specs"
    folder.mkdir()
    (tmp_path / "old.yaml").write_text("type: function\nfunction: judge_fns:politeness\nscale: [0, 2]\n")
    (folder / "ens.yaml").write_text("type: ensemble\nmembers:\n  - judge: old.yaml\n")
    (folder / "bad.yaml").write_text("type: ensemble\nmembers:\n  - judge: gone.yaml\n")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="rlaif.judges.spec"):
        spec = load_spec(folder / "ens.yaml")
    assert spec.members[0].judge == str((tmp_path / "old.yaml").resolve())
    assert f"taken from the working directory ({tmp_path / 'old.yaml'})" in caplog.text
    with pytest.raises(FileNotFoundError) as err:
        load_spec(folder / "bad.yaml")
    assert str(err.value).startswith(
        f"{folder / 'bad.yaml'}: member 0: judge file 'gone.yaml' does not exist next to the ensemble "
        f"file ({folder / 'gone.yaml'}) nor in the working directory ({tmp_path / 'gone.yaml'})")
