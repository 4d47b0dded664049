"""Pairwise contract: Preference rules, combining two orders, any pointwise judge as a pairwise one."""

from __future__ import annotations

import pytest

from rlaif.judges.base import BudgetExceeded, Judge, JudgeError, Sample, Scale, Score, Usage
from rlaif.judges.pairwise import (
    Pair, PairwiseBudgetExceeded, PairwiseError, PointwisePairwise, Preference, combine_orders,
    consistency_rate, unswap,
)
from rlaif.judges.registry import build_judge, load_pairwise_judge


class _Len(Judge):
    """value = len(response) on 0..100, one request each; 'bad' cannot be scored."""

    name = "len"
    scale = Scale(0, 100)

    def __init__(self, stop_after: int | None = None) -> None:
        self.seen: list[str] = []
        self.stop_after = stop_after

    async def ascore(self, samples):
        self.seen += [s.response for s in samples]
        scores = [Score(float(len(s.response)), usage=Usage(requests=1)) if s.response != "bad"
                  else Score.failed("cannot score 'bad'", usage=Usage(requests=1)) for s in samples]
        if self.stop_after is not None:
            partial = scores[: self.stop_after] + [None] * (len(samples) - self.stop_after)
            raise BudgetExceeded("budget reached", partial=partial)
        return scores


def test_pointwise_judge_compares_its_two_scores():
    pairs = [
        Pair("p", "aaaa", "aa"),  # 4 vs 2: a, strength 2/100
        Pair("p", "a", "aaaaaaaaaa"),  # 1 vs 10: b, strength 9/100
        Pair("p", "abc", "xyz"),  # equal: tie, strength 0
        Pair("p", "bad", "x"),  # a cannot be scored: unscored, naming the side
    ]
    judge = _Len()
    prefs = PointwisePairwise(judge).compare(pairs)
    assert [p.verdict for p in prefs] == ["a", "b", "tie", None]
    assert [p.strength for p in prefs[:3]] == pytest.approx([0.02, 0.09, 0.0])
    assert "a: cannot score 'bad'" in prefs[3].error and prefs[3].strength is None
    assert [p.consistent for p in prefs] == [None] * 4  # scored alone: no position to swap
    assert prefs[0].usage.requests == 2  # both sides' costs
    assert judge.seen == ["aaaa", "aa", "a", "aaaaaaaaaa", "abc", "xyz", "bad", "x"]  # one batch


def test_tie_margin_widens_ties_and_is_checked():
    prefs = PointwisePairwise(_Len(), tie_margin=2.0).compare([("p", "aaaa", "aa"), ("p", "aaaa", "a")])
    assert [p.verdict for p in prefs] == ["tie", "a"]  # |4-2| <= 2 is a tie; |4-1| is not
    with pytest.raises(ValueError, match="tie_margin"):
        PointwisePairwise(_Len(), tie_margin=-1)


def test_a_stop_mid_batch_keeps_every_pair_with_both_scores():
    with pytest.raises(PairwiseBudgetExceeded) as err:
        PointwisePairwise(_Len(stop_after=3)).compare([("p", "aa", "a"), ("p", "a", "aa"), ("p", "b", "c")])
    assert isinstance(err.value, BudgetExceeded) and isinstance(err.value, PairwiseError)
    got = err.value.partial
    assert got[0].verdict == "a" and got[1] is None and got[2] is None  # pair 2 had only its a scored
    assert "1 of 3 pairs compared" in str(err.value)


def test_preference_refuses_silent_or_out_of_range_values():
    with pytest.raises(ValueError, match="must say why"):
        Preference(None, None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Preference("a", 1.5)
    with pytest.raises(ValueError, match="one of"):
        Preference("A", 0.5)  # type: ignore[arg-type]
    p = Preference("tie", 0.0, "same", usage=Usage(requests=2), consistent=True)
    assert p.ok and p.to_dict()["usage"]["requests"] == 2 and p.to_dict()["verdict"] == "tie"


def _order(order, verdict, strength=0.5, error=None):
    return {"order": order, "verdict": verdict, "strength": strength if verdict else None, "error": error}


@pytest.mark.parametrize(
    "asked, disagreement, verdict, strength, consistent",
    [
        ([_order("ab", "a", 0.6), _order("ba", "a", 0.8)], "tie", "a", 0.7, True),  # agree: mean strength
        ([_order("ab", "tie", 0.2), _order("ba", "tie", 0.4)], "tie", "tie", 0.3, True),  # agreeing ties
        ([_order("ab", "a"), _order("ba", "b")], "tie", "tie", 0.0, False),  # disagree -> tie, strength 0
        ([_order("ab", "a"), _order("ba", "tie")], "tie", "tie", 0.0, False),  # a vs tie is a disagreement
        ([_order("ab", "a"), _order("ba", "b")], "unscored", None, None, False),  # disagree -> unscored
        ([_order("ab", "a"), _order("ba", None, error="500")], "tie", None, None, None),  # one order failed
        ([_order("ab", "b", 0.9)], "tie", "b", 0.9, None),  # single order: no consistency
    ],
)
def test_combine_orders_rules(asked, disagreement, verdict, strength, consistent):
    pref = combine_orders(asked, Usage(requests=len(asked)), disagreement)
    assert pref.verdict == verdict and pref.consistent is consistent
    assert pref.strength == (pytest.approx(strength) if strength is not None else None)
    assert len(pref.orders) == len(asked) and pref.usage.requests == len(asked)
    if verdict is None:
        assert pref.error


def test_unswap_and_consistency_rate():
    assert [unswap(v, "ba") for v in ("a", "b", "tie")] == ["b", "a", "tie"]
    assert [unswap(v, "ab") for v in ("a", "b", "tie")] == ["a", "b", "tie"]
    prefs = [Preference("a", 1.0, consistent=True), Preference("tie", 0.0, consistent=False),
             Preference("b", 1.0, consistent=True), Preference("b", 1.0),  # asked once: not counted
             Preference.failed("x")]
    assert consistency_rate(prefs) == pytest.approx(2 / 3)
    assert consistency_rate(prefs[3:]) is None


def test_load_pairwise_judge_wraps_any_pointwise_ref_and_refuses_pairwise_as_pointwise(tmp_path):
    polite = {"type": "function", "function": "judge_fns:politeness", "scale": [0, 10]}
    judge = load_pairwise_judge(polite, overrides={"tie_margin": 1})
    assert isinstance(judge, PointwisePairwise) and judge.tie_margin == 1.0
    # politeness = count of "please"/"thank": 1 vs 0 is within the margin, 3 vs 0 is not.
    (near, far) = judge.compare([("p", "please", "no"), ("p", "please, please, thanks", "no")])
    assert (near.verdict, far.verdict) == ("tie", "a") and far.strength == pytest.approx(0.3)
    with pytest.raises(JudgeError, match="pairwise judge"):
        build_judge({"type": "pairwise", "provider": "anthropic"})
    with pytest.raises(JudgeError, match="tie_margin"):
        load_pairwise_judge("profanity-check", overrides={"tie_margin": "wide"})
    with pytest.raises(FileNotFoundError):
        load_pairwise_judge(str(tmp_path / "nope.yaml"))


def test_samples_carry_the_pair_prompt_and_meta():
    class Seen(_Len):
        async def ascore(self, samples: list[Sample]):
            self.samples = samples
            return await super().ascore(samples)

    inner = Seen()
    PointwisePairwise(inner).compare([Pair("the prompt", "x", "yy", {"row": 3})])
    assert [(s.prompt, s.response, s.meta) for s in inner.samples] == [
        ("the prompt", "x", {"row": 3}), ("the prompt", "yy", {"row": 3})]
