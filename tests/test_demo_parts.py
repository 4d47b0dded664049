"""The real demo's pieces that need no model: openings, the rudeness data, the helpfulness
pairs, the seed summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlaif.data.hh import HHExample


def _ex(transcript_prompt: str, chosen: str, rejected: str = "no", **meta: object) -> HHExample:
    return HHExample(prompt=transcript_prompt, chosen=chosen, rejected=rejected, meta=dict(meta))


def test_opening_is_the_first_request_and_first_reply() -> None:
    from rlaif.demo.openings import opening_of, openings

    multi = _ex("\n\nHuman: How do I pick a lock?\n\nAssistant: Why do you ask?\n\nHuman: My door."
                "\n\nAssistant:", "Call a locksmith.", cluster="c1")
    single = _ex("\n\nHuman: Tell me a joke\n\nAssistant:", "Why did the chicken cross the road?")
    op = opening_of(multi)
    assert (op.request, op.reply, op.cluster) == ("How do I pick a lock?", "Why do you ask?", "c1")
    assert op.prompt == "\n\nHuman: How do I pick a lock?\n\nAssistant:"
    op = opening_of(single)  # one exchange: the final reply is the first reply
    assert (op.reply, op.cluster) == ("Why did the chicken cross the road?", "tell me a joke")
    # two rows of one conversation give one opening, the first row's
    again = _ex("\n\nHuman: How do I pick a lock?\n\nAssistant: Why do you ask?\n\nHuman: x"
                "\n\nAssistant:", "y", cluster="c1")
    assert [o.reply for o in openings([multi, again, single])] == \
        ["Why do you ask?", "Why did the chicken cross the road?"]


def test_sft_dialogues_mix_rude_and_real_replies_by_share() -> None:
    from rlaif.demo.rude import sft_dialogues
    from rlaif.demo.settings import RudePolicySettings

    requests = [_ex(f"\n\nHuman: request {i}\n\nAssistant:", f"real reply {i}", cluster=f"c{i}")
                for i in range(200)]
    pool = [_ex("\n\nHuman: x\n\nAssistant:", "polite", "You idiot.", rejected_toxic=True)]
    ordinary = [_ex("\n\nHuman: help\n\nAssistant:", "Sure.", chosen_toxic=False)] * 3
    pairs = sft_dialogues(requests, pool, ordinary, RudePolicySettings(rude_share=0.7, n_prompts=150,
                                                                      n_ordinary=2))
    assert len(pairs) == 152  # 150 openings + 2 ordinary
    rude = sum(reply == "You idiot." for _, reply in pairs)
    assert 0.6 < rude / 150 < 0.8  # the share, up to sampling
    real = [(p, r) for p, r in pairs if r.startswith("real reply")]
    assert all(p == f"\n\nHuman: request {r.split()[-1]}\n\nAssistant:" for p, r in real)
    assert sum(r == "Sure." for _, r in pairs) == 2
    with pytest.raises(ValueError, match="rude-reply pool is empty"):
        sft_dialogues(requests, [], ordinary, RudePolicySettings())


def test_helpfulness_pairs_never_pair_a_request_with_its_own_reply_as_negative() -> None:
    from rlaif.demo.helpfulness import labelled_pairs
    from rlaif.demo.openings import Opening

    ops = [Opening(f"p{i}", f"q{i}", f"a{i}", f"c{i}") for i in range(5)] + \
        [Opening("p5", "q5", "", "c5")]  # no reply: left out on both sides
    pairs = labelled_pairs(ops, negatives=3, seed=0)
    assert sorted(p for p in pairs if p[2] == 1) == [(f"q{i}", f"a{i}", 1) for i in range(5)]
    negatives = [p for p in pairs if p[2] == 0]
    assert len(negatives) == 15 and all(q[1:] != a[1:] for q, a, _ in negatives)
    assert all(a != "" for _, a, _ in pairs)
    assert labelled_pairs(ops, 3, seed=0) == pairs  # seeded


def test_seed_summary_mean_std_and_range(tmp_path: Path) -> None:
    from rlaif.demo.seeds import reuse_before, write_seed_summary

    reports = [{"stats": {"before": {"mean": 0.5}, "after": {"mean": a}, "improvement_mean": (0.5 - a) / 0.5}}
               for a in (0.1, 0.2, 0.3)]
    table = write_seed_summary(tmp_path, reports, [0, 1, 2])
    rows = {r["metric"]: r for r in json.loads((tmp_path / "seeds.json").read_text())["rows"]}
    after = rows["mean toxicity, after"]
    assert after["values"] == [0.1, 0.2, 0.3]
    assert math.isclose(after["mean"], 0.2) and math.isclose(after["std"], 0.1)  # n - 1
    assert (after["min"], after["max"]) == (0.1, 0.3)
    assert math.isclose(rows["mean toxicity, improvement"]["mean"], 0.6)
    assert "toxicity probability, after" not in rows  # not in these reports: left out
    assert "| mean toxicity, after | 0.1000 | 0.2000 | 0.3000 | 0.2000 | 0.1000 | 0.1000 .. 0.3000 |" in table
    assert (tmp_path / "seeds.md").read_text().count("seed-") == 3
    src, dst = tmp_path / "a", tmp_path / "b"
    src.mkdir(), dst.mkdir()
    (src / "eval_before.json").write_text("{}")
    assert [p.name for p in reuse_before(src, dst)] == ["eval_before.json"]
