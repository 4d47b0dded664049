"""Hold-out report: report.md (tables: `table.py`), report.json (every number), PNG plots (`plots.py`).

The training plot (reward and KL over steps) is drawn when a metrics.jsonl (`step`,
`reward/mean`, `objective/kl`) is given. Every file is written to a temporary name in the
same folder and renamed into place, so a crash never leaves a half-written report.

report.json and report.md hold no absolute local path outside the replies themselves: model,
judge and file paths are shown relative to the report's folder, as a hub id, or by their last
part (`rlaif.local_paths`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlaif.evaluation.holdout import HoldoutReport
from rlaif.evaluation.plots import plot_lengths, plot_toxicity, plot_training
from rlaif.evaluation.table import summary_table
from rlaif.io import atomic_write_json, atomic_write_text, read_jsonl
from rlaif.local_paths import publishable
from rlaif.markdown import fmt_num, md_escape
from rlaif.runs.folder import PLOT_FILES, REPORT_JSON, REPORT_MD

__all__ = ["examples_table", "read_report", "rewrite_extra", "summary_table", "write_report"]

# What the models replied and what was measured on it: published as it is, paths and all.
_AS_MEASURED = ("rows", "metrics")


def examples_table(data: dict[str, Any]) -> str:
    """The qualitative table: query | response before | tox before | response after | tox after."""
    lines = ["| query | response before | tox before | response after | tox after |",
             "|---|---|---|---|---|"]
    for r in data["rows"][: data.get("n_examples", 10)]:
        lines.append(
            f"| {md_escape(r['query'], keep='end')} | {md_escape(r['response_before'])} | {fmt_num(r['tox_before'])} "
            f"| {md_escape(r['response_after'])} | {fmt_num(r['tox_after'])} |"
        )
    return "\n".join(lines)


def write_report(out_dir: str | Path, holdout: HoldoutReport | dict[str, Any],
                 metrics_path: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write report.md, report.json and the PNG plots into `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = holdout.to_dict() if isinstance(holdout, HoldoutReport) else dict(holdout)
    if extra:
        data["extra"] = extra
    paths: dict[str, Path] = {"toxicity_plot": plot_toxicity(data, out / PLOT_FILES["toxicity_plot"])}
    lengths = plot_lengths(data, out / PLOT_FILES["length_plot"])
    if lengths is not None:
        paths["length_plot"] = lengths
    training: list[dict[str, Any]] = []
    if metrics_path is not None:
        if not Path(metrics_path).is_file():
            raise FileNotFoundError(f"metrics file {metrics_path} not found; pass metrics_path=None to skip the training plot")
        training = read_jsonl(metrics_path)
        plot = plot_training(training, out / PLOT_FILES["training_plot"])
        if plot is not None:
            paths["training_plot"] = plot
        data["training"] = {"metrics_path": str(metrics_path), "steps": len(training)}
    return {**paths, **_write_documents(out, data, paths)}


def _write_documents(out: Path, data: dict[str, Any], paths: dict[str, Path]) -> dict[str, Path]:
    """report.json and report.md (which links the plots in `paths`), local paths shortened."""
    data = {k: v if k in _AS_MEASURED else publishable(v, out) for k, v in data.items()}
    atomic_write_json(out / REPORT_JSON, data)
    atomic_write_text(out / REPORT_MD, _markdown(data, paths))
    return {"json": out / REPORT_JSON, "md": out / REPORT_MD}


def read_report(path: str | Path) -> dict[str, Any] | None:
    """A written report.json (None when there is none); ValueError naming the file when it is
    not a JSON object."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        data = exc
    if not isinstance(data, dict):
        why = f"({data})" if isinstance(data, Exception) else f"(a JSON {type(data).__name__}, not an object)"
        raise ValueError(f"{path}: not a valid report {why}; evaluate the run again to rewrite it, "
                         "or move it away")
    return data


def rewrite_extra(out_dir: str | Path, extra: dict[str, Any]) -> dict[str, Path]:
    """Replace the `extra` block of a written report (report.json and report.md), leaving the
    plots as they are: for numbers known only after the report was first written."""
    out = Path(out_dir)
    data = read_report(out / REPORT_JSON)
    if data is None:
        raise FileNotFoundError(f"{out / 'report.json'} not found: write the report before its extra block")
    data["extra"] = extra
    paths = {key: out / name for key, name in PLOT_FILES.items()
             if (out / name).is_file()}
    return _write_documents(out, data, paths)


def _measured_notes(data: dict[str, Any]) -> list[str]:
    """How each metric beside toxicity was measured, as report.md says it under the table."""
    meta, out = data.get("meta", {}), [""]
    if not data.get("metrics"):
        return []
    h = data["stats"].get("helpfulness")
    out.append(f"- helpfulness: {md_escape(h.get('describe') or str(h.get('judge')), limit=500)}" if h else
               "- helpfulness: not measured (no helpfulness judge ran: set eval.helpfulness)")
    fluency = meta.get("fluency")
    out.append(f"- fluency: {fluency['definition']}; start model: {md_escape(str(fluency.get('lm')))}"
               if fluency else "- fluency: not measured")
    for key in ("diversity", "length", "deflection_rule"):
        if meta.get(key):
            out.append(f"- {key.replace('_rule', 's')}: {meta[key]}")
    if meta.get("floors"):
        out.append("- floors: every metric as if the policy had replied that text to every hold-out "
                   "prompt (tokenised as generation would have produced it, then EOS; cut at "
                   "max_new_tokens like a sampled reply)")
    d = data["stats"]["difference"]
    out.append(f"- intervals: {d.get('method')}")
    if meta.get("kl_note"):
        out.append(f"- KL: {meta['kl_note']}")
    return out


def _markdown(data: dict[str, Any], paths: dict[str, Path]) -> str:
    meta = data.get("meta", {})
    parts = [
        "# Hold-out evaluation",
        "",
        f"- evaluator: {md_escape(str(meta.get('evaluator', '?')))}"
        + (f" ({md_escape(meta['evaluator_about'], limit=500)})" if meta.get("evaluator_about") else ""),
        f"- toxicity: {md_escape(str(meta.get('toxicity', '?')))}",
        f"- prompts: {meta.get('n_prompts', len(data['rows']))}, seed {meta.get('seed', '?')}, "
        f"generation `{json.dumps(meta.get('gen_kwargs', {})).replace('`', '')}`",
    ]
    for key in ("before_model", "after_model"):
        if key in meta:
            parts.append(f"- {key.replace('_', ' ')}: {md_escape(str(meta[key]))}")
    parts += ["", "## Before vs after", "", summary_table(data), ""]
    parts += [f"Improvement = (before - after) / before. {note}" for note in data["stats"].get("notes", [])]
    parts += _measured_notes(data)
    parts += ["", f"![toxicity before vs after]({paths['toxicity_plot'].name})", ""]
    if "length_plot" in paths:
        parts += [f"![reply length before vs after]({paths['length_plot'].name})", ""]
    if "training_plot" in paths:
        parts += ["## Training", "", f"![reward and KL over training]({paths['training_plot'].name})", ""]
    n = min(data.get("n_examples", 10), len(data["rows"]))
    parts += [f"## Examples (first {n} hold-out prompts)", "", examples_table(data), ""]
    if data.get("extra"):
        parts += ["## Extra", "", "```json", json.dumps(data["extra"], indent=2), "```", ""]
    return "\n".join(parts)
