"""`rlaif compare-runs`: several run folders (PPO, DPO, demo) side by side, one table and one plot.

Each run folder's report.json (written by the shared hold-out flow), metrics.jsonl and label
summary give, per run: the evaluator's mean toxicity before and after with the 95% CI of the
difference, the hold-out KL(after || start) at the sampling temperature (per reply), the
training KL, the reward judge's view of the same replies, what toxicity alone does not show
(helpfulness by the helpfulness judge, deflection share, perplexity under the start model,
distinct-2, median reply length; "n/a" where a run did not measure it), the judge calls and
cost that trained it, and wall-clock time.

Judge calls: PPO scores one reply per prompt per step (the sum of `batch/size` over
metrics.jsonl); DPO's come from its label file (`judge_calls` in `<labels>.meta.json`: two
replies scored per pair for a pointwise judge, one call per order for a pairwise one).
Cost: PPO's is the sum of `judge/cost_usd` over metrics.jsonl (the judge's `usage()` per step,
all processes); DPO's is the label file's `cost_usd`.
Wall-clock: the run's `timings_s.total` (setup to final/ written) when recorded, else the sum
of its parts (before, training, after; older runs), plus, for DPO, the labelling run's time
when its summary says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlaif.io import read_jsonl, save_figure
from rlaif.markdown import fmt_num, fmt_pct, md_escape
from rlaif.runs.folder import RunFolder


@dataclass
class RunSummary:
    """The numbers of one run that `compare-runs` puts side by side (None = not recorded)."""

    name: str
    path: str
    method: str
    evaluator: str | None
    n_prompts: int | None
    before: float | None
    after: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    improvement: float | None
    kl_holdout_k1: float | None
    kl_holdout_k3: float | None
    kl_training: float | None
    reward_judge: str | None
    reward_before: float | None
    reward_after: float | None
    judge_calls: int | None
    cost_usd: float | None
    seconds: dict[str, float] = field(default_factory=dict)
    helpfulness_judge: str | None = None
    # (before, after) of the report's headline metrics beside toxicity; None = not measured
    helpfulness: tuple[float | None, float | None] = (None, None)
    deflection_share: tuple[float | None, float | None] = (None, None)
    perplexity: tuple[float | None, float | None] = (None, None)
    distinct_2: tuple[float | None, float | None] = (None, None)
    length_median: tuple[float | None, float | None] = (None, None)

    @property
    def total_seconds(self) -> float | None:
        """Everything the run took, labelling included (None when no timing was recorded)."""
        if "total" in self.seconds:
            return self.seconds["total"] + self.seconds.get("label", 0.0)
        return sum(self.seconds.values()) if self.seconds else None


def _kl(kl: dict[str, Any], kind: str) -> float | None:
    """The hold-out KL(after || start) per reply of `kind`; older reports' untempered KL is left
    out (another quantity, not comparable)."""
    return next((float(v) for k, v in kl.items() if k.startswith("hold-out KL(after || start)")
                 and f", {kind}, per reply" in k), None)


def _pair(metrics: dict[str, Any], *path: str) -> tuple[float | None, float | None]:
    """(before, after) of one number of report.json `metrics` (None where missing)."""
    def get(side: str) -> float | None:
        value: Any = metrics.get(side)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    return get("before"), get("after")


def read_run(path: str | Path) -> RunSummary:
    """The summary of one run folder; a folder that is not a run is refused by name."""
    run = Path(path)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder")
    report_path = RunFolder(run).report_json
    if not report_path.is_file():
        raise ValueError(
            f"{run} is not an evaluated rlaif run folder: it has no report.json (`rlaif train`, "
            "`rlaif dpo` and `rlaif demo` write one when eval.enabled is true); pass run folders")
    try:
        report = json.loads(report_path.read_text())
        stats, meta = report["stats"], report.get("meta", {})
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{report_path}: not a hold-out report ({exc}); was it written by rlaif?") from None
    extra = report.get("extra") or {}
    metrics_file = RunFolder(run).metrics
    metrics = read_jsonl(metrics_file) if metrics_file.is_file() else []
    method = extra.get("method") or ("ppo" if any("reward/mean" in m for m in metrics) else "unknown")
    seconds = {k: float(v) for k, v in (extra.get("timings_s") or {}).items()}
    labels = extra.get("labels") or {}
    if method == "dpo":
        judge_calls, cost = labels.get("judge_calls"), labels.get("cost_usd")
        if "seconds_total" in labels:
            seconds["label"] = float(labels["seconds_total"])
    else:
        sizes = [m.get("batch/size") for m in metrics]
        judge_calls = int(sum(sizes)) if sizes and all(isinstance(s, (int, float)) for s in sizes) else None
        costs = [m["judge/cost_usd"] for m in metrics if isinstance(m.get("judge/cost_usd"), (int, float))]
        cost = sum(costs) if costs else None
    kls = [m["objective/kl"] for m in metrics[-5:] if isinstance(m.get("objective/kl"), (int, float))]
    kl, view, diff = report.get("kl") or {}, extra.get("reward_judge") or {}, stats.get("difference") or {}
    metrics_json = report.get("metrics") or {}
    return RunSummary(
        name=run.name, path=str(run), method=method, evaluator=meta.get("evaluator"),
        n_prompts=meta.get("n_prompts"), before=stats["before"]["mean"], after=stats["after"]["mean"],
        difference=diff.get("estimate"), ci_low=diff.get("ci_low"), ci_high=diff.get("ci_high"),
        improvement=stats.get("improvement_mean"),
        kl_holdout_k1=_kl(kl, "k1"), kl_holdout_k3=_kl(kl, "k3"),
        kl_training=sum(kls) / len(kls) if kls else None,
        reward_judge=view.get("judge"), reward_before=view.get("toxicity_mean_before"),
        reward_after=view.get("toxicity_mean_after"), judge_calls=judge_calls, cost_usd=cost,
        seconds=seconds, helpfulness_judge=meta.get("helpfulness_judge"),
        helpfulness=_pair(metrics_json, "helpfulness_mean"),
        deflection_share=_pair(metrics_json, "deflection_share"),
        perplexity=_pair(metrics_json, "perplexity", "value"),
        distinct_2=_pair(metrics_json, "distinct", "2"), length_median=_pair(metrics_json, "length", "median"))


def check_comparable(runs: list[RunSummary]) -> list[str]:
    """Warnings when runs were measured differently (another evaluator or prompt count)."""
    notes = []
    for attr, what in (("evaluator", "evaluator"), ("n_prompts", "number of hold-out prompts"),
                       ("helpfulness_judge", "helpfulness judge")):
        values = {getattr(r, attr) for r in runs}
        if len(values) > 1:
            notes.append(f"the runs differ in {what} ({', '.join(map(str, values))}): their "
                         "hold-out numbers are not directly comparable")
    return notes


def _cost(x: float | None) -> str:
    return "n/a" if x is None else f"${x:.4f}"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def _arrow(pair: tuple[float | None, float | None], fmt: Any = fmt_num) -> str:
    return "n/a" if pair == (None, None) else f"{fmt(pair[0])} -> {fmt(pair[1])}"


def comparison_table(runs: list[RunSummary]) -> str:
    """One markdown table: a row per run."""
    lines = [("| run | method | toxicity before | after | difference (before - after), 95% CI | "
              "improvement | hold-out KL(after \\|\\| start) per reply, k1 / k3 | training KL | "
              "reward judge before -> after | helpfulness before -> after | deflections | "
              "perplexity (start model) | distinct-2 | median reply tokens | "
              "judge calls | cost | wall-clock s |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        reward = (f"{md_escape(r.reward_judge)}: {fmt_num(r.reward_before)} -> {fmt_num(r.reward_after)}"
                  if r.reward_judge else "n/a")
        lines.append(
            f"| {md_escape(r.name)} | {r.method} | {fmt_num(r.before)} | {fmt_num(r.after)} | "
            f"{fmt_num(r.difference)} [{fmt_num(r.ci_low)}, {fmt_num(r.ci_high)}] | "
            f"{fmt_pct(r.improvement)} | {fmt_num(r.kl_holdout_k1)} / {fmt_num(r.kl_holdout_k3)} | "
            f"{fmt_num(r.kl_training)} | {reward} | {_helpfulness(r)} | {_arrow(r.deflection_share, fmt_pct)} | "
            f"{_arrow(r.perplexity, lambda x: fmt_num(x, '.2f'))} | {_arrow(r.distinct_2)} | "
            f"{_arrow(r.length_median, lambda x: fmt_num(x, 'g'))} | "
            f"{r.judge_calls if r.judge_calls is not None else 'n/a'} | "
            f"{_cost(r.cost_usd)} | {_secs(r.total_seconds)} |")
    return "\n".join(lines)


def _helpfulness(r: RunSummary) -> str:
    if r.helpfulness == (None, None):
        return "not measured"
    return f"{md_escape(str(r.helpfulness_judge))}: {_arrow(r.helpfulness)}"


def plot_runs(runs: list[RunSummary], path: str | Path) -> Path:
    """Left: mean toxicity before/after per run; right: the difference with its 95% CI and the
    hold-out KL (k3). A Figure object, no pyplot state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(7.0, 2.2 * len(runs) + 3), 4))
    ax_tox, ax_diff = fig.subplots(1, 2)
    xs = list(range(len(runs)))
    nan = float("nan")
    ax_tox.bar([x - 0.2 for x in xs], [r.before if r.before is not None else nan for r in runs], 0.4,
               color="tab:red", label="before")
    ax_tox.bar([x + 0.2 for x in xs], [r.after if r.after is not None else nan for r in runs], 0.4,
               color="tab:blue", label="after")
    ax_tox.set_xticks(xs, [f"{r.name}\n({r.method})" for r in runs])
    ax_tox.set_ylabel("mean hold-out toxicity (evaluator)")
    ax_tox.legend()
    est = [r.difference if r.difference is not None else nan for r in runs]
    err = [[(e - r.ci_low) if r.ci_low is not None else 0 for e, r in zip(est, runs)],
           [(r.ci_high - e) if r.ci_high is not None else 0 for e, r in zip(est, runs)]]
    ax_diff.errorbar(xs, est, yerr=err, fmt="o", color="black", capsize=6)
    ax_diff.axhline(0, color="grey", linewidth=1, linestyle=":")
    for x, r in zip(xs, runs):
        if r.kl_holdout_k3 is not None:
            ax_diff.annotate(f"KL {r.kl_holdout_k3:.3f}", (x, est[x]), textcoords="offset points",
                             xytext=(8, 0), fontsize=8)
    ax_diff.set_xticks(xs, [r.name for r in runs])
    ax_diff.set_xlim(-0.5, len(runs) - 0.5)
    ax_diff.set_ylabel("toxicity before - after (95% CI)")
    fig.suptitle("Runs compared on the hold-out prompts")
    return save_figure(fig, path)


def compare_runs(paths: list[str | Path], out_dir: str | Path | None = None) -> dict[str, Any]:
    """Read every run, build the table (and notes), draw the plot; writes compare_runs.md/json/png
    into `out_dir` when given."""
    if len(paths) < 2:
        raise ValueError(f"compare-runs needs at least two run folders, got {len(paths)}")
    runs = [read_run(p) for p in paths]
    table, notes = comparison_table(runs), check_comparable(runs)
    result: dict[str, Any] = {"runs": runs, "table": table, "notes": notes}
    if out_dir is not None:
        from rlaif.io import atomic_write_json, atomic_write_text

        out = Path(out_dir)
        result["plot"] = plot_runs(runs, out / "compare_runs.png")
        atomic_write_text(out / "compare_runs.md", "\n".join(
            ["# Runs compared", "", table, "", *[f"- {n}" for n in notes], "",
             "![runs compared](compare_runs.png)", ""]))
        atomic_write_json(out / "compare_runs.json", {"runs": [asdict(r) for r in runs], "notes": notes})
    return result
