"""Compare judges on human preference pairs (HH chosen vs rejected), side by side.

For each judge, every pair's chosen and rejected reply is scored, and the report gives:

- preference accuracy: wins / scored pairs, where a win is chosen > rejected. A tie
  (equal scores) is not a win: it is counted and reported as the tie rate, as RewardBench
  does. Scores are compared (and ranked) at 12 significant digits, so float rounding in
  an ensemble's weighted sum (0.19999999999999993 vs 0.2) is not read as a preference. A pair where either reply is unscored is left out of both and
  counted as unscored.
- mean and (population) std of every score, chosen and rejected means, mean margin.
- latency p50/p95: per request from `Score.usage.latency_s` when the judge reports it
  (API judges), else per `ascore` batch call; requests, tokens and cost from `Usage`.
- the Spearman rank correlation between every two judges over the replies that all
  judges scored (average ranks for ties), and the pair agreement (share of pairs, scored
  by both, where the two judges give the same verdict: chosen better, worse or tied).

`compare_judges(...)` computes a `ComparisonReport` (`rlaif.compare_report.write_comparison`
writes it out); `judge_names`, `split_overrides` and `build_judges` make the judges of
`rlaif compare` (unique names, per-judge `--set` overrides).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from rlaif.judges.base import Judge, JudgeError, Sample, Score, Usage, run_sync
from rlaif.markdown import fmt_num, fmt_pct

logger = logging.getLogger(__name__)


class PreferencePair(Protocol):
    """What `compare_judges` reads from an example (e.g. `rlaif.data.hh.HHExample`)."""

    prompt: str
    chosen: str
    rejected: str


@dataclass
class JudgeResult:
    """One judge's scores on every pair, and what producing them cost."""

    name: str
    scale: tuple[float, float]
    chosen: list[Score]
    rejected: list[Score]
    batch_latency_s: list[float] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    stopped: str | None = None  # the JudgeError that stopped this judge early, if any

    def values(self, side: str) -> list[float | None]:
        """Score values of one side ("chosen" or "rejected"), None where unscored."""
        return [s.value for s in getattr(self, side)]

    def metrics(self) -> dict[str, Any]:
        """Every number of this judge, JSON-ready (None where undefined)."""
        chosen, rejected = self.values("chosen"), self.values("rejected")
        pairs = [(c, r) for c, r in zip(chosen, rejected) if c is not None and r is not None]
        wins = sum(_verdict(c, r) > 0 for c, r in pairs)
        ties = sum(_verdict(c, r) == 0 for c, r in pairs)
        scored = [v for v in chosen + rejected if v is not None]
        sample_lat = [s.usage.latency_s for s in self.chosen + self.rejected
                      if s.usage is not None and s.usage.latency_s > 0]
        lat_per, lat = ("request", sample_lat) if sample_lat else ("batch", self.batch_latency_s)
        errors = [s.error for s in self.chosen + self.rejected if not s.ok]
        return {
            "scale": list(self.scale),
            "pairs": len(chosen),
            "scored_pairs": len(pairs),
            "unscored_pairs": len(chosen) - len(pairs),
            "unscored_responses": len(errors),
            "wins": wins,
            "ties": ties,
            "losses": len(pairs) - wins - ties,
            "accuracy": wins / len(pairs) if pairs else None,
            "tie_rate": ties / len(pairs) if pairs else None,
            "mean": _mean(scored),
            "std": float(np.std(scored)) if scored else None,
            "chosen_mean": _mean([v for v in chosen if v is not None]),
            "rejected_mean": _mean([v for v in rejected if v is not None]),
            "margin_mean": _mean([c - r for c, r in pairs]),
            "latency": {"per": lat_per, "p50": _percentile(lat, 50), "p95": _percentile(lat, 95), "n": len(lat)},
            "batch_latency": {"p50": _percentile(self.batch_latency_s, 50),
                              "p95": _percentile(self.batch_latency_s, 95), "n": len(self.batch_latency_s)},
            "requests": self.usage.requests,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.usage.cost_usd,
            "wall_s": self.wall_s,
            "stopped": self.stopped,
            "first_errors": sorted(set(errors))[:5],
        }


@dataclass
class ComparisonReport:
    """Per-judge results, the Spearman matrix and pair agreement, and run metadata."""

    results: dict[str, JudgeResult]
    n_pairs: int
    spearman: list[list[float | None]]
    spearman_n: int  # replies scored by every judge (the Spearman sample)
    agreement: list[list[float | None]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Judge names, in the order given."""
        return list(self.results)

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready: metrics, matrices, and each judge's scores."""
        return {
            "meta": self.meta,
            "n_pairs": self.n_pairs,
            "judges": {n: r.metrics() for n, r in self.results.items()},
            "spearman": {"judges": self.names, "matrix": self.spearman, "n_responses": self.spearman_n},
            "pair_agreement": {"judges": self.names, "matrix": self.agreement},
            "scores": {n: {"chosen": r.values("chosen"), "rejected": r.values("rejected")}
                       for n, r in self.results.items()},
        }

    def table(self) -> str:
        """The per-judge markdown table (also printed by `rlaif compare`)."""
        lines = [
            "| judge | accuracy | ties | unscored pairs | mean ± std | chosen − rejected "
            "| latency p50 / p95 (s) | requests | tokens in / out | cost (USD) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in self.results.items():
            m = r.metrics()
            lat = m["latency"]
            lines.append(
                f"| {name}{' (stopped)' if m['stopped'] else ''} | {fmt_pct(m['accuracy'])} "
                f"| {m['ties']} ({fmt_pct(m['tie_rate'])}) | {m['unscored_pairs']} / {m['pairs']} "
                f"| {fmt_num(m['mean'], '.3f')} ± {fmt_num(m['std'], '.3f')} | {fmt_num(m['margin_mean'], '+.3f')} "
                f"| {fmt_num(lat['p50'], '.3f')} / {fmt_num(lat['p95'], '.3f')} per {lat['per']} | {m['requests']} "
                f"| {m['input_tokens']} / {m['output_tokens']} | {m['cost_usd']:.4f} |"
            )
        return "\n".join(lines)

    def matrix_table(self, which: str = "spearman") -> str:
        """The Spearman (or pair agreement) matrix as a markdown table."""
        matrix = self.spearman if which == "spearman" else self.agreement
        head = "| | " + " | ".join(self.names) + " |"
        rows = [head, "|---" * (len(self.names) + 1) + "|"]
        for name, row in zip(self.names, matrix):
            rows.append(f"| {name} | " + " | ".join(fmt_num(v, ".3f") for v in row) + " |")
        return "\n".join(rows)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the average of their ranks (as scipy's rankdata)."""
    arr = np.asarray(x, dtype=np.float64)
    order = np.argsort(arr, kind="mergesort")
    sorted_vals = arr[order]
    ranks = np.empty(len(arr), dtype=np.float64)
    start = 0
    while start < len(arr):
        end = start
        while end + 1 < len(arr) and sorted_vals[end + 1] == sorted_vals[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1  # mean of ranks start+1 .. end+1
        start = end + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks of the `comparable` values);
    None if either side is constant."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    ra, rb = average_ranks([comparable(v) for v in a]), average_ranks([comparable(v) for v in b])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else None


def comparable(value: float) -> float:
    """`value` at 12 significant digits: what wins, ties and ranks are decided on."""
    return float(f"{value:.12g}")


def _verdict(c: float, r: float) -> int:
    """1 if chosen wins, 0 on a tie, -1 if rejected wins."""
    c, r = comparable(c), comparable(r)
    return (c > r) - (c < r)


def _matrices(results: Mapping[str, JudgeResult]) -> tuple[list[list[float | None]], int, list[list[float | None]]]:
    """Spearman over replies every judge scored; pair agreement over pairs both scored."""
    names = list(results)
    columns = {n: r.values("chosen") + r.values("rejected") for n, r in results.items()}
    common = [i for i in range(len(next(iter(columns.values()), [])))
              if all(columns[n][i] is not None for n in names)]
    rho: list[list[float | None]] = []
    agree: list[list[float | None]] = []
    for a in names:
        rho_row: list[float | None] = []
        agree_row: list[float | None] = []
        for b in names:
            rho_row.append(spearman([columns[a][i] for i in common], [columns[b][i] for i in common]))
            pa = zip(results[a].values("chosen"), results[a].values("rejected"))
            pb = zip(results[b].values("chosen"), results[b].values("rejected"))
            both = [(_verdict(ca, ra), _verdict(cb, rb)) for (ca, ra), (cb, rb) in zip(pa, pb)
                    if None not in (ca, ra, cb, rb)]
            agree_row.append(sum(x == y for x, y in both) / len(both) if both else None)
        rho.append(rho_row)
        agree.append(agree_row)
    return rho, len(common), agree


OnScores = Callable[[str, Sequence[Sample], Sequence[Score]], Any]


def _score_judge(name: str, judge: Judge, samples: list[Sample], batch_size: int,
                 on_scores: OnScores | None = None) -> tuple[list[Score], list[float], str | None]:
    """Score samples batch by batch, handing each finished batch to `on_scores`; a JudgeError
    stops this judge, keeping (and handing on) what it finished."""
    scores: list[Score] = []
    latencies: list[float] = []
    stopped: str | None = None
    for start in range(0, len(samples), batch_size):
        batch = samples[start:start + batch_size]
        if stopped is not None:
            got = [Score.failed(f"not scored: {name} stopped earlier") for _ in batch]
        else:
            t0 = time.perf_counter()
            try:
                got = run_sync(judge.ascore(batch))
            except JudgeError as exc:
                stopped = str(exc)
                logger.error("judge %s stopped: %s", name, exc)
                partial = exc.partial or [None] * len(batch)
                got = [s if s is not None else Score.failed(f"not scored: {name} stopped: {exc}")
                       for s in partial]
            latencies.append(time.perf_counter() - t0)
        scores += got
        if on_scores is not None:
            on_scores(name, batch, got)
    return scores, latencies, stopped


def compare_judges(judges: Mapping[str, Judge], examples: Sequence[PreferencePair], *,
                   batch_size: int = 16, progress: bool = True,
                   meta: Mapping[str, Any] | None = None,
                   on_scores: OnScores | None = None) -> ComparisonReport:
    """Score every pair's chosen and rejected reply with each judge and compare them.

    `on_scores(judge name, samples, scores)` sees every batch as soon as it is scored (each
    Sample's meta holds its `pair` index and `side`), so a caller can keep them on disk."""
    if not judges:
        raise ValueError("compare_judges needs at least one judge")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    # Chosen and rejected interleaved, so a pair always lands in the same batch.
    samples = [Sample(e.prompt, text, {"pair": i, "side": side})
               for i, e in enumerate(examples) for side, text in (("chosen", e.chosen), ("rejected", e.rejected))]
    results: dict[str, JudgeResult] = {}
    bar = _progress(len(samples) * len(judges), progress)
    for name, judge in judges.items():
        before = judge.usage()
        t0 = time.perf_counter()
        scores, latencies, stopped = _score_judge(name, judge, samples, batch_size, on_scores)
        wall = time.perf_counter() - t0
        bar.update(len(samples))
        usage = judge.usage() - before
        if usage == Usage():  # judges that only report per score
            usage = sum((s.usage for s in scores if s.usage is not None), Usage())
        results[name] = JudgeResult(
            name=name, scale=(judge.scale.low, judge.scale.high), chosen=scores[0::2],
            rejected=scores[1::2], batch_latency_s=latencies, usage=usage, wall_s=wall, stopped=stopped,
        )
    bar.close()
    rho, n_common, agree = _matrices(results)
    info = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "batch_size": batch_size, **(meta or {})}
    return ComparisonReport(results, len(examples), rho, n_common, agree, info)


def judge_names(refs: Sequence[str]) -> list[str]:
    """The name of each spec (built-in name or path), made unique: `x`, `x#2`, ..."""
    from rlaif.judges.spec import load_spec

    names: list[str] = []
    for ref in refs:
        name = load_spec(ref).name
        candidate, i = name, 2
        while candidate in names:
            candidate, i = f"{name}#{i}", i + 1
        names.append(candidate)
    return names


def split_overrides(items: list[str], names: list[str]) -> dict[str, list[str]]:
    """Sort `JUDGE.KEY=VALUE` strings into {judge: ["KEY=VALUE", ...]}."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for item in items:
        target = item.partition("=")[0]
        # Longest matching judge name first, since names may themselves contain dots.
        judge = max((n for n in names if target.startswith(n + ".")), key=len, default=None)
        if "=" not in item or judge is None:
            raise ValueError(
                f"--set {item!r}: expected JUDGE.KEY=VALUE with JUDGE one of {names} "
                "(e.g. --set roberta-hate.batch_size=8)"
            )
        out[judge].append(item[len(judge) + 1:])
    return out


def build_judges(names: Sequence[str], refs: Sequence[str],
                 overrides: Mapping[str, list[str]], cache: str | None = None) -> dict[str, Judge]:
    """Build each spec with its `KEY=VALUE` overrides, by name; if one fails, the judges
    already built are closed."""
    from rlaif.judges.registry import load_judge
    from rlaif.overrides import parse_overrides

    judges: dict[str, Judge] = {}
    try:
        for name, ref in zip(names, refs):
            judges[name] = load_judge(ref, parse_overrides(overrides.get(name, [])), cache)
    except BaseException:
        for judge in judges.values():
            judge.close()
        raise
    return judges


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="judging", unit="reply", disable=not enabled)
