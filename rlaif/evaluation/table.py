"""The before/after summary table of a hold-out report (report.md, the CLI, the model card).

    | metric | before | after | change | floor: empty reply | floor: "I'm sorry to hear that." |

`change` is after - before (percentages: in points; mean toxicity also relative to before).
Floor columns hold the metric as if every reply were that text (`floors.py`); a blank floor
cell is a metric floors do not have (a spread, an interval, a KL). Reports written before a
metric existed show the rows they have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlaif.markdown import fmt_num, fmt_pct, md_escape

Getter = Callable[[dict[str, Any]], Any]


def _num(x: Any, fmt: str = ".4f") -> str:
    return fmt_num(x, fmt) if isinstance(x, (int, float)) or x is None else str(x)


def _diff(b: Any, a: Any, fmt: str = "+.4f") -> str:
    return format(a - b, fmt) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else ""


def _pp(b: Any, a: Any) -> str:
    return f"{100 * (a - b):+.1f} pp" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else ""


def _get(m: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(m, dict):
            return None
        m = m.get(key)
    return m


def _ci(d: dict[str, Any]) -> str:
    return f"{fmt_num(d.get('estimate'))} [{fmt_num(d.get('ci_low'))}, {fmt_num(d.get('ci_high'))}]"


def _resampled(d: dict[str, Any]) -> str:
    if d.get("resampled") == "clusters":
        return f", resampling {d.get('n_clusters')} clusters of prompts"
    return ", resampling prompts" if d.get("paired", True) else ""


def _length_cell(length: dict[str, Any] | None) -> str:
    if not length:
        return "n/a"
    median, *rest = (fmt_num(length.get(key), "g") for key in ("median", "p10", "p25", "p75", "p90"))
    return f"{median} [{', '.join(rest)}]"


def summary_table(data: dict[str, Any]) -> str:
    """The before/after markdown table (also printed by the CLI)."""
    s, metrics = data["stats"], data.get("metrics") or {}
    mb, ma, floors = metrics.get("before") or {}, metrics.get("after") or {}, metrics.get("floors") or []
    blank = [""] * len(floors)
    lines = ["| " + " | ".join(["metric", "before", "after", "change",
                                *(f"floor: {md_escape(f['label'])}" for f in floors)]) + " |",
             "|" + "---|" * (4 + len(floors))]

    def row(name: str, before: str, after: str, change: str, floor_cells: list[str] | None = None) -> None:
        cells = [name, before, after, change, *(floor_cells or blank)]
        lines.append("|" + "|".join(f" {c} " if c else " " for c in cells) + "|")  # empty: "| |"

    def floor_row(get: Getter, fmt: Callable[[Any], str]) -> list[str]:
        return [fmt(get(f)) for f in floors]

    b, a, d, thr = s["before"], s["after"], s["difference"], s["threshold"]
    rel = s.get("improvement_mean")
    row("mean toxicity", fmt_num(b["mean"]), fmt_num(a["mean"]),
        _diff(b["mean"], a["mean"]) + (f" ({fmt_pct(-rel)})" if rel is not None else " (n/a)"),
        floor_row(lambda f: f.get("toxicity_mean"), fmt_num))
    row("std toxicity", fmt_num(b["std"]), fmt_num(a["std"]), _diff(b["std"], a["std"]))
    row(f"share over {thr:g}", fmt_pct(b["share_over_threshold"]), fmt_pct(a["share_over_threshold"]),
        _pp(b["share_over_threshold"], a["share_over_threshold"]),
        floor_row(lambda f: f.get("share_over_threshold"), fmt_pct))
    row("scored / unscored", f"{b['n']} / {b['n_unscored']}", f"{a['n']} / {a['n_unscored']}", "")
    row(f"mean difference (before - after), 95% CI{_resampled(d)}", "", "", _ci(d))
    rtp = s.get("rtp")
    if rtp and rtp.get("samples_per_prompt", 1) > 1:
        k, rb, ra = rtp["samples_per_prompt"], rtp["before"], rtp["after"]
        row(f"expected max toxicity (k={k})", fmt_num(rb["expected_max_toxicity"]),
            fmt_num(ra["expected_max_toxicity"]),
            _diff(rb["expected_max_toxicity"], ra["expected_max_toxicity"]),
            floor_row(lambda f: f.get("expected_max_toxicity"), fmt_num))
        row(f"toxicity probability (k={k})", fmt_pct(rb["toxicity_probability"]),
            fmt_pct(ra["toxicity_probability"]), _pp(rb["toxicity_probability"], ra["toxicity_probability"]),
            floor_row(lambda f: f.get("toxicity_probability"), fmt_pct))
    _helpfulness_rows(s.get("helpfulness"), mb, ma, floors, bool(metrics), row, floor_row)
    if mb:
        _quality_rows(mb, ma, row, floor_row)
    else:  # a report written before the quality metrics: its mean length, EOS included
        length = data.get("meta", {}).get("response_tokens_mean")
        if length:
            row("reply length (tokens), mean", f"{length['before']:.1f}", f"{length['after']:.1f}", "")
    view = (data.get("extra") or {}).get("reward_judge")
    if view:
        by_floor = view.get("floors") or {}
        row(f"reward judge ({md_escape(str(view.get('judge')))}) {reward_view_kind(view)}, mean",
            fmt_num(view.get("toxicity_mean_before")), fmt_num(view.get("toxicity_mean_after")),
            _diff(view.get("toxicity_mean_before"), view.get("toxicity_mean_after")),
            floor_row(lambda f: by_floor.get(f["text"]), fmt_num))
    for key, value in (data.get("kl") or {}).items():
        row(md_escape(key), "", fmt_num(value), "")
    return "\n".join(lines)


def _helpfulness_rows(h: dict[str, Any] | None, mb: dict[str, Any], ma: dict[str, Any],
                      floors: list[dict[str, Any]], measured_report: bool, row: Any, floor_row: Any) -> None:
    if h:
        judge = md_escape(str(h.get("judge")))
        row(f"helpfulness ({judge}), mean", _num(mb.get("helpfulness_mean")), _num(ma.get("helpfulness_mean")),
            _diff(mb.get("helpfulness_mean"), ma.get("helpfulness_mean")),
            floor_row(lambda f: f.get("helpfulness_mean"), _num))
        hd = h["difference"]
        row(f"helpfulness difference (after - before), 95% CI{_resampled(hd)}", "", "", _ci(hd))
    elif measured_report:
        row("helpfulness", "not measured", "not measured", "", ["not measured"] * len(floors))


def _quality_rows(mb: dict[str, Any], ma: dict[str, Any], row: Any, floor_row: Any) -> None:
    row("deflections (canned apology / refusal / subject change), share",
        fmt_pct(mb.get("deflection_share")), fmt_pct(ma.get("deflection_share")),
        _pp(mb.get("deflection_share"), ma.get("deflection_share")),
        floor_row(lambda f: f.get("deflection_share"), fmt_pct))
    lb, la = mb.get("length") or {}, ma.get("length") or {}
    row("reply length (tokens, EOS excluded), median [p10, p25, p75, p90]", _length_cell(lb),
        _length_cell(la), _diff(lb.get("median"), la.get("median"), "+g"),
        floor_row(lambda f: f.get("length"), _length_cell))
    row("reply length (tokens, EOS excluded), mean", fmt_num(lb.get("mean"), ".1f"),
        fmt_num(la.get("mean"), ".1f"), _diff(lb.get("mean"), la.get("mean"), "+.1f"),
        floor_row(lambda f: _get(f, "length", "mean"), lambda x: fmt_num(x, ".1f")))
    row("replies with <= 3 tokens", fmt_pct(lb.get("share_at_most_3")), fmt_pct(la.get("share_at_most_3")),
        _pp(lb.get("share_at_most_3"), la.get("share_at_most_3")),
        floor_row(lambda f: _get(f, "length", "share_at_most_3"), fmt_pct))
    for n in ("1", "2", "3"):
        vb, va = _get(mb, "distinct", n), _get(ma, "distinct", n)
        row(f"distinct-{n} (over each prompt's replies)", fmt_num(vb), fmt_num(va), _diff(vb, va),
            floor_row(lambda f, n=n: _get(f, "distinct", n), fmt_num))
    pb, pa = _get(mb, "perplexity", "value"), _get(ma, "perplexity", "value")
    row("perplexity under the start model (untempered, EOS included)", fmt_num(pb, ".2f"),
        fmt_num(pa, ".2f"), _diff(pb, pa, "+.2f"),
        floor_row(lambda f: _get(f, "perplexity", "value"), lambda x: fmt_num(x, ".2f")))


def reward_view_kind(view: dict[str, Any]) -> str:
    """What the reward judge's view measures: a classifier's toxicity, or for any other judge
    its shortfall (high - reward) / (high - low), which is not a toxicity (an ensemble's
    relevance member counts in it too)."""
    return "toxicity" if "P(" in str(view.get("toxicity", "")) else "shortfall (high - reward) / (high - low)"
