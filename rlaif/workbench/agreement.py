"""What a labelling run found: counts, position-consistency, and agreement with human labels.

Agreement is measured on the pairs the judge decided (verdict a or b) that carry a human label:
the share whose verdict names the human-chosen reply. It is also split by where the human-
chosen reply was shown (first or second), which exposes a judge that favours a position.
Ties and unscored pairs are counted, never counted as agreement or disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.workbench.label_rows import DECIDED


def _rate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    decided = [r for r in rows if r.get("agrees_with_human") is not None]
    agree = sum(bool(r["agrees_with_human"]) for r in decided)
    return {"pairs": len(rows), "decided": len(decided), "agree": agree,
            "rate": agree / len(decided) if decided else None}


def summarize_labels(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts by verdict, the DPO-usable share, consistency, cost and human agreement."""
    verdicts = [r.get("verdict") for r in rows]
    consistent = [r["consistent"] for r in rows if r.get("consistent") is not None]
    summary: dict[str, Any] = {
        "pairs": len(rows),
        "decided": sum(v in DECIDED for v in verdicts),
        "a": verdicts.count("a"), "b": verdicts.count("b"),
        "ties": verdicts.count("tie"), "unscored": verdicts.count(None),
        "identical_replies": sum(r.get("a") == r.get("b") for r in rows),
        "consistency_rate": sum(consistent) / len(consistent) if consistent else None,
        "cost_usd": sum(r.get("cost_usd") or 0.0 for r in rows),
        "requests": sum(r.get("requests") or 0 for r in rows),
        "judge_calls": sum(r.get("judge_calls") or 0 for r in rows),
    }
    human = [r for r in rows if "human_chosen" in r]
    if human:
        summary["human_agreement"] = {
            "overall": _rate(human),
            "human_chosen_shown_first": _rate([r for r in human if r["human_chosen"] == "a"]),
            "human_chosen_shown_second": _rate([r for r in human if r["human_chosen"] == "b"]),
        }
    return summary


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary a person reads at the end of `rlaif label`."""
    s = summary
    lines = [f"pairs {s['pairs']}: decided {s['decided']} (a {s['a']}, b {s['b']}), ties {s['ties']}, "
             f"unscored {s['unscored']}; {s['decided']} usable for DPO, {s['ties'] + s['unscored']} "
             "left out" + (f" ({s['identical_replies']} pairs with identical replies)"
                           if s["identical_replies"] else "")]
    if s["consistency_rate"] is not None:
        lines.append(f"position consistency (both orders agree): {_pct(s['consistency_rate'])}")
    human = s.get("human_agreement")
    if human:
        o, first, second = (human[k] for k in ("overall", "human_chosen_shown_first",
                                               "human_chosen_shown_second"))
        lines.append(f"agreement with the human label: {_pct(o['rate'])} ({o['agree']}/{o['decided']} "
                     "decided pairs)")
        lines.append(f"  human-chosen shown first: {_pct(first['rate'])} ({first['agree']}/{first['decided']}); "
                     f"shown second: {_pct(second['rate'])} ({second['agree']}/{second['decided']})")
    lines.append(f"judge calls {s['judge_calls']}, API requests {s['requests']}, cost ~${s['cost_usd']:.4f}")
    return lines
