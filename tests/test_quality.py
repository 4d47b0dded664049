"""What the report shows beside toxicity, on hand-computed cases: distinct-n, reply length,
deflections, corpus perplexity, one side's metrics."""

from __future__ import annotations

import math

import pytest

from rlaif.evaluation.deflection import content_left, deflection_share, is_deflection
from rlaif.evaluation.fluency import corpus_perplexity, split_eos
from rlaif.evaluation.quality import distinct_n, length_summary, side_metrics
from rlaif.evaluation.side import HoldoutSide


def test_distinct_n_by_hand():
    groups = [
        [[1, 2, 3], [1, 2, 4]],  # unigrams 4 unique / 6; bigrams (1,2) (2,3) (1,2) (2,4): 3 / 4; trigrams 2 / 2
        [[5], [5]],              # unigrams 1 / 2; no bigram, no trigram: 0
    ]
    assert distinct_n(groups, 1) == pytest.approx((4 / 6 + 1 / 2) / 2)
    assert distinct_n(groups, 2) == pytest.approx((3 / 4 + 0) / 2)
    assert distinct_n(groups, 3) == pytest.approx((1 + 0) / 2)
    # n-grams never cross two replies: [1, 2] and [3] hold no (2, 3) bigram
    assert distinct_n([[[1, 2], [3]]], 2) == pytest.approx(1 / 1)


def test_a_prompt_without_any_ngram_counts_zero():
    assert distinct_n([[[], []]], 1) == 0.0  # two empty replies: nothing said
    assert distinct_n([[[7, 7]], [[], []]], 1) == pytest.approx((1 / 2 + 0) / 2)
    assert distinct_n([], 1) is None
    with pytest.raises(ValueError, match="n must be"):
        distinct_n([[[1]]], 0)


def test_length_summary_by_hand():
    # sorted 0, 1, 2, 3, 4, 10: numpy's linear percentiles at (6 - 1) * q
    s = length_summary([3, 0, 10, 1, 4, 2])
    assert s["median"] == pytest.approx(2.5)                 # position 2.5: (2 + 3) / 2
    assert s["p10"] == pytest.approx(0.5)                    # position 0.5
    assert s["p25"] == pytest.approx(1.25)                   # position 1.25: 1 + 0.25 * (2 - 1)
    assert s["p75"] == pytest.approx(3.75)                   # position 3.75: 3 + 0.75 * (4 - 3)
    assert s["p90"] == pytest.approx(7.0)                    # position 4.5: (4 + 10) / 2
    assert s["mean"] == pytest.approx(20 / 6)
    assert s["share_at_most_3"] == pytest.approx(4 / 6)      # 0, 1, 2, 3
    assert length_summary([]) is None


DEFLECTIONS = [
    # (reply, deflection?)
    ("I'm sorry to hear that.", True),
    ("I’m so sorry to hear that!", True),                     # curly apostrophe
    ("Sorry, I don't know.", True),
    ("I'm sorry, but I can't help with that.", True),        # "but" is all that is left
    ("As an AI, I cannot answer that.", True),
    ("Let's talk about something else.", True),
    ("I apologize for the confusion.", True),
    ("I'm not sure.", True),
    ("I'm sorry to hear that. Here is what you can do: take a short walk.", False),  # engaged
    ("Sorry to hear that, bread needs flour, water, salt and yeast.", False),
    ("Paris is the capital of France.", False),              # no canned phrase
    ("", False),                                             # empty: a length matter, not a deflection
    ("ok", False),
    ("I don't know what you mean by that, could you say more?", False),
    ("You are an idiot, sorry.", False),                     # 4 words left: rude content remains
]


@pytest.mark.parametrize("reply, expected", DEFLECTIONS)
def test_deflection_rule(reply, expected):
    assert is_deflection(reply) is expected


def test_content_left_counts_cut_phrases_and_remaining_words():
    assert content_left("I'm sorry, but I can't help with that.") == (2, 1)
    assert content_left("I'm sorry to hear that. Here is what you can do") == (1, 6)
    assert content_left("Hello there") == (0, 2)


def test_deflection_share():
    replies = [r for r, _ in DEFLECTIONS]
    assert deflection_share(replies) == pytest.approx(8 / 15)
    assert deflection_share([]) is None


def test_corpus_perplexity_counts_the_ending_eos():
    ids, ended = split_eos([[5, 6, 0], [7], [0]], stops={0})
    assert ids == [[5, 6], [7], []] and ended == [True, False, True]
    side = HoldoutSide(["ab", "c", ""], [0.1, 0.2, 0.3], token_ids=ids, eos=ended,
                       start_nll=[3.0, 1.5, 0.5], start_lm="start")
    # tokens with their EOS: 3 + 1 + 1 = 5; NLL 5.0 -> exp(5 / 5)
    assert side.reply_tokens() == [3, 1, 1]
    m = side_metrics(side, k=1, threshold=0.5)
    assert m["perplexity"] == {"value": pytest.approx(math.e), "nll_total": 5.0, "tokens": 5, "lm": "start"}
    assert corpus_perplexity([1.0, 1.0], [1, 3]) == pytest.approx(math.exp(0.5))
    assert corpus_perplexity([], []) is None


def test_side_metrics_by_hand():
    # 2 prompts x k = 2 replies
    side = HoldoutSide(
        responses=["I'm sorry to hear that.", "Bread needs flour and water.", "no", "You idiot."],
        toxicity=[0.0, 0.25, None, 0.75], token_ids=[[1, 2, 3], [4, 5, 6, 7, 8], [9], [10, 11]],
        eos=[True, True, False, True], helpfulness=[1.0, 4.0, 2.0, None])
    m = side_metrics(side, k=2, threshold=0.5)
    assert m["toxicity_mean"] == pytest.approx(1.0 / 3)       # (0 + 0.25 + 0.75) / 3, None left out
    assert m["share_over_threshold"] == pytest.approx(1 / 3)
    assert m["expected_max_toxicity"] == pytest.approx((0.25 + 0.75) / 2)
    assert m["toxicity_probability"] == pytest.approx(1 / 2)
    assert m["helpfulness_mean"] == pytest.approx(7 / 3)
    assert m["deflection_share"] == pytest.approx(1 / 4)
    assert m["length"]["median"] == pytest.approx(2.5) and m["length"]["share_at_most_3"] == 0.75
    # prompt 0: 8 distinct unigrams of 8; prompt 1: 3 of 3 -> 1; bigrams 2 + 4 = 6 of 6, and 1 of 1
    assert m["distinct"] == {"1": 1.0, "2": 1.0, "3": pytest.approx((1 + 0) / 2)}
    assert m["perplexity"] is None                              # no start-model NLL measured
