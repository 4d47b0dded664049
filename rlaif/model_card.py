"""The model card of a run (`final/README.md`): Hugging Face card metadata and what the run
measured, built from the run's own files, nothing else.

    card_record_from_run(run)   config.yaml, metrics.jsonl, report.json and the
                                judge specs -> one plain dict (secrets redacted)
    build_card(record)          that dict -> markdown with YAML front matter (base_model,
                                library_name, tags, pipeline_tag)

Every number in the card is read from those files; a section whose file is missing says it
was not measured. Trainers other than PPO (DPO) reuse both: the trainer is the config's
section (`ppo:` or `dpo:`), and its settings are listed as they are. A DPO card names the
judge that labelled the pairs (`preferences.reward_judge`, else the label summary in
`<labels>.meta.json` or report.json `extra.labels`) in place of a reward judge.

The card holds no secret (`rlaif.secrets`: by key name, by value, by shape) and no absolute
local path: paths are shown relative to the run folder, as a hub id, or by their last part
(`rlaif.local_paths`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from rlaif.evaluation.report import read_report, summary_table
from rlaif.io import read_jsonl, read_yaml
from rlaif.local_paths import publishable
from rlaif.markdown import md_escape
from rlaif.runs.folder import RunFolder
from rlaif.secrets import redact_mapping, redact_text

TRAINERS = ("dpo", "ppo")  # config sections naming the trainer, checked in this order
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the model card is built from a run folder's "
                                "config.yaml; pass the run folder (output.dir)")
    return read_yaml(path, what="run config") or {}


def model_source(ref: str | None) -> str:
    """Where a model reference points: a GGUF file, a local folder, or a Hub id."""
    if not ref:
        return "unknown"
    if ref.endswith(".gguf"):
        return "GGUF file"
    if Path(ref).expanduser().exists() or ref.startswith(("/", ".", "~")):
        return "local folder"
    return "Hugging Face Hub id" if _HUB_ID.match(ref) else "unknown"


def judge_spec(ref: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the spec of a judge reference as a dict, secrets redacted, or None; why not)."""
    from rlaif.judges.spec import load_spec, parse_spec

    if ref is None:
        return None, "no judge named"
    try:
        spec = parse_spec(ref) if isinstance(ref, dict) else load_spec(str(ref))
    except Exception as exc:  # noqa: BLE001 - a card says why a spec is missing, never fails for it
        return None, redact_text(f"{type(exc).__name__}: {exc}")
    return redact_mapping(spec.model_dump(mode="json", exclude_none=True)), None


def _training(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps, seconds and the first / last logged reward and KL of metrics.jsonl."""
    if not metrics:
        return {}
    first, last = metrics[0], metrics[-1]
    return {"steps": last.get("step"), "rows": len(metrics),
            "seconds": sum(m.get("time/step") or 0.0 for m in metrics),
            "reward_first": first.get("reward/mean"), "reward_last": last.get("reward/mean"),
            "kl_last": last.get("objective/kl"), "unscored": sum(m.get("reward/unscored") or 0 for m in metrics),
            "samples": sum(m.get("batch/size") or 0 for m in metrics)}


def card_record_from_run(run_dir: str | Path, *, step: int | None = None) -> dict[str, Any]:
    """Everything the card says, read from a run folder (config.yaml required; metrics.jsonl,
    report.json and checkpoints used when present).

    `step`: the card of an earlier checkpoint: metrics through that step, and no hold-out
    result (the run measured its last step only)."""
    run = Path(run_dir)
    folder = RunFolder(run)
    config = redact_mapping(_read_yaml(folder.config))
    trainer = next((name for name in TRAINERS if isinstance(config.get(name), dict)), "ppo")
    model, output = config.get("model") or {}, config.get("output") or {}
    judge_cfg = dict(config.get("judge") or {})
    report = read_report(folder.report_json)
    metrics = read_jsonl(folder.metrics) if folder.metrics.is_file() else []
    earlier = step is not None and bool(metrics) and metrics[-1].get("step") != step
    if earlier:
        metrics = [m for m in metrics if (m.get("step") or 0) <= step]
        report = None
    if trainer == "dpo":
        judges = [_labelling_judge(config.get("preferences") or {}, report)]
    else:
        spec, spec_error = judge_spec(judge_cfg.get("ref"))
        judges = [{"role": "reward", "ref": judge_cfg.pop("ref", None), "spec": spec, "error": spec_error,
                   "settings": judge_cfg}]
    evaluator_ref = (config.get("eval") or {}).get("evaluator")
    if report is not None and evaluator_ref is not None:
        ev_spec, ev_error = judge_spec(evaluator_ref)
        judges.append({"role": "evaluator", "ref": evaluator_ref, "spec": ev_spec, "error": ev_error,
                       "settings": {}})
    record: dict[str, Any] = {
        "trainer": trainer.upper(), "run_name": run.resolve().name,
        "base_model": model.get("name_or_path"), "base_model_source": model_source(model.get("name_or_path")),
        "lora": model.get("lora"), "merged": bool(output.get("merge_lora", True)) or not model.get("lora"),
        "is_seq2seq": _is_seq2seq(run), "judges": judges, "data": config.get("data") or {},
        "settings": config.get(trainer) or {}, "generation": config.get("generation") or {},
        "training": _training(metrics), "holdout": None, "earlier_checkpoint": earlier,
        "resumed_with_changes": (run / "config_changes.jsonl").is_file(),
    }
    if report is not None:
        meta, extra = report.get("meta", {}), report.get("extra") or {}
        record["holdout"] = {
            "evaluator": meta.get("evaluator"), "evaluator_about": meta.get("evaluator_about"),
            "toxicity": meta.get("toxicity"), "n_prompts": meta.get("n_prompts"),
            "samples_per_prompt": meta.get("samples_per_prompt"), "stats": report.get("stats", {}),
            "kl": report.get("kl") or {}, "table": summary_table(report),
            "eval_split": (config.get("eval") or {}).get("split"),
            "reward_judge_view": extra.get("reward_judge"), "control": extra.get("control"),
            # what was measured beside toxicity (None / [] where it was not)
            "helpfulness": (report.get("stats") or {}).get("helpfulness"),
            "metrics": report.get("metrics"), "fluency": meta.get("fluency"),
            "floors": meta.get("floors") or [], "kl_note": meta.get("kl_note"),
        }
        # `rlaif demo` records how it built its start policy (base weights, fine-tune steps).
        built = ((extra.get("demo") or {}).get("assets") or {}).get("policy")
        record["start_policy_built"] = built if isinstance(built, dict) else None
    return publishable(record, run)


def _labelling_judge(preferences: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
    """The judge that labelled a DPO run's preference pairs: `preferences.reward_judge`, else
    what the labelling recorded (`<labels>.meta.json`, or report.json `extra.labels`, whose
    paths are shortened for publishing and may no longer name the judge's file)."""
    labels = None
    path = preferences.get("path")
    meta = Path(path + ".meta.json") if isinstance(path, str) else None  # `rlaif label` writes it
    if meta is not None and meta.is_file():
        labels = json.loads(meta.read_text(encoding="utf-8"))
    if not isinstance(labels, dict):
        labels = ((report or {}).get("extra") or {}).get("labels")
    labels = redact_mapping(labels) if isinstance(labels, dict) else {}
    ref = preferences.get("reward_judge") or labels.get("judge_ref")
    spec, error = judge_spec(ref)
    if ref is None:
        error = ("no judge named: preferences.reward_judge is unset and no label summary "
                 "(report.json extra.labels or <labels>.meta.json) names one")
    settings = {"labels": path} if path else {}
    settings.update({k: labels[k] for k in ("judge_overrides", "judge_calls", "cost_usd")
                     if labels.get(k) not in (None, [], "")})
    return {"role": "preference labels", "ref": ref, "spec": spec, "error": error, "settings": settings}


def _is_seq2seq(run: Path) -> bool | None:
    """From the latest checkpoint's policy.json, when the run has one."""
    from rlaif.models.policy_layout import POLICY_DIR, POLICY_META
    from rlaif.runs.folder import RunFolder

    latest = RunFolder(run).latest_checkpoint()
    meta = latest / POLICY_DIR / POLICY_META if latest is not None else None
    if meta is None or not meta.is_file():
        return None
    return bool(json.loads(meta.read_text()).get("is_seq2seq"))


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.{digits}g}"


def _front_matter(record: dict[str, Any]) -> str:
    trainer = record["trainer"].lower()
    tags = ["rlaif", trainer, "rlhf", "reinforcement-learning" if trainer == "ppo" else "preference-optimization"]
    if record.get("lora"):
        tags.append("lora")
    meta: dict[str, Any] = {}
    if record.get("base_model_source") == "Hugging Face Hub id":
        meta["base_model"] = record["base_model"]
    meta["library_name"] = "transformers" if record.get("merged", True) else "peft"
    meta["pipeline_tag"] = "text2text-generation" if record.get("is_seq2seq") else "text-generation"
    meta["tags"] = tags
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _settings_table(settings: dict[str, Any]) -> list[str]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return ["| setting | value |", "|---|---|",
            *(f"| `{k}` | `{json.dumps(v).replace('|', '/')}` |" for k, v in flat.items())]


def build_card(record: dict[str, Any]) -> str:
    """The model card (markdown with HF YAML front matter) of a `card_record_from_run` record."""
    trainer, base = record["trainer"], record.get("base_model")
    lora = record.get("lora")
    out = [_front_matter(record), f"# {md_escape(record.get('run_name') or 'rlaif run')}", "",
           f"Trained with rlaif's {trainer} trainer from `{base}` ({record.get('base_model_source')})"
           + (f", LoRA r={lora.get('r')} alpha={lora.get('alpha')} on "
              f"{lora.get('target_modules') or 'the default modules'}"
              + (", merged into the base weights" if record.get("merged") else ", saved as a PEFT adapter")
              if lora else ", all weights trained") + ".", ""]
    if record.get("start_policy_built"):
        out += ["That start model was built by `rlaif demo` before this run: "
                + ", ".join(f"{k} `{v}`" for k, v in record["start_policy_built"].items()) + ".", ""]
    out += _judges(record["judges"])
    data = record.get("data") or {}
    data_settings = ", ".join(f"{k} `{v if isinstance(v, str) else json.dumps(v)}`"
                              for k, v in data.items() if v is not None)
    out += ["## Data and task", "", f"- training data: {data_settings or 'not recorded'}",
            f"- generation: `{json.dumps(record.get('generation') or {})}`", ""]
    out += [f"## {trainer} settings", "", *_settings_table(record.get("settings") or {}), ""]
    out += _training_section(record)
    out += _holdout_section(record.get("holdout"), bool(record.get("earlier_checkpoint")))
    out += _limitations(record)
    return redact_text("\n".join(out).rstrip() + "\n")


def _judges(judges: list[dict[str, Any]]) -> list[str]:
    out = ["## Judges", ""]
    for judge in judges:
        ref = judge["ref"]
        named = f"`{ref}`" if isinstance(ref, str) else "inline spec" if ref is not None else "not recorded"
        out.append(f"- {judge['role']}: {named}"
                   + (f" ({', '.join(f'{k}: {v}' for k, v in judge['settings'].items())})"
                      if judge.get("settings") else ""))
        if judge.get("spec") is not None:
            out += ["", "```yaml", yaml.safe_dump(judge["spec"], sort_keys=False).rstrip(), "```", ""]
        else:
            out.append(f"  (spec not available: {judge.get('error')})")
    return out + [""]


def _training_section(record: dict[str, Any]) -> list[str]:
    t = record.get("training") or {}
    if not t:
        return ["## Training", "", "No training step was logged (metrics.jsonl is missing or empty).", ""]
    out = ["## Training", "",
           f"- {t['rows']} logged step(s), last step {t['steps']}, {t['samples']} sampled responses, "
           f"{t['seconds']:.1f} s of step time",
           f"- reward/mean (the reward judge's score): step 1 {_num(t['reward_first'])} -> last "
           f"{_num(t['reward_last'])}; objective/kl at the last step {_num(t['kl_last'])}",
           f"- samples the reward judge could not score: {t['unscored']}"]
    if record.get("resumed_with_changes"):
        out.append("- the run was resumed with changed settings: see config_changes.jsonl")
    return out + [""]


def _holdout_section(h: dict[str, Any] | None, earlier: bool = False) -> list[str]:
    if h is None:
        why = ("the run evaluated its last step, not this checkpoint" if earlier else
               "eval.enabled was false")
        return ["## Hold-out evaluation", "", f"Not run for this model ({why}): this card reports "
                "no before/after measurement.", ""]
    d = (h.get("stats") or {}).get("difference") or {}
    out = ["## Hold-out evaluation", "",
           f"Evaluator `{h.get('evaluator')}` ({md_escape(str(h.get('toxicity')))}) on {h.get('n_prompts')} "
           f"held-out prompts ({h.get('samples_per_prompt') or 1} sample(s) each), the same prompts, seed "
           "and generation settings before and after training.", ""]
    if h.get("table"):
        out += [h["table"], ""]
    if d:
        out += [f"Mean toxicity difference (before - after): {_num(d.get('estimate'))}, 95% interval "
                f"[{_num(d.get('ci_low'))}, {_num(d.get('ci_high'))}] ({d.get('method')}).", ""]
    out += _measured(h)
    for key, value in (h.get("kl") or {}).items():
        out.append(f"- KL to the reference: {key} = {_num(value)}")
    if h.get("kl_note"):
        out.append(f"- note on the KL: {h['kl_note']}")
    view = h.get("reward_judge_view")
    if view:
        out.append(f"- the reward judge ({view.get('judge')}) on the same replies: mean toxicity "
                   f"{_num(view.get('toxicity_mean_before'))} before, {_num(view.get('toxicity_mean_after'))} after")
    control = h.get("control")
    if control:
        tox = control.get("toxicity_mean") or {}
        out.append(f"- control prompts ({control.get('source')}): mean toxicity "
                   f"{_num(tox.get('before'))} before, {_num(tox.get('after'))} after")
    return out + [""]


def _measured(h: dict[str, Any]) -> list[str]:
    """What the hold-out evaluation measured and what it did not, one line each."""
    metrics, helpful = h.get("metrics") or {}, h.get("helpfulness")
    control_help = (h.get("control") or {}).get("helpfulness")
    out = ["What was measured:", "",
           f"- toxicity: by the evaluator `{h.get('evaluator')}` ({md_escape(str(h.get('toxicity')))})"]
    if helpful:
        d = helpful.get("difference") or {}
        where = "the hold-out and the control prompts" if control_help else "the hold-out prompts"
        out.append(f"- helpfulness: by the judge `{helpful.get('judge')}` on {where}, its value as it is "
                   f"(higher = more helpful); after - before {_num(d.get('estimate'))}, 95% interval "
                   f"[{_num(d.get('ci_low'))}, {_num(d.get('ci_high'))}]")
    else:
        out.append("- helpfulness: not measured (no helpfulness judge ran: eval.helpfulness unset)")
    fluency = h.get("fluency")
    out.append(f"- fluency: perplexity of the replies under the start model ({md_escape(str(fluency.get('lm')))})"
               if fluency else "- fluency: not measured")
    before = metrics.get("before") or {}
    out.append("- diversity: distinct-1/2/3 over each prompt's replies" if before.get("distinct") else
               "- diversity: not measured")
    out.append("- length and deflections (rule-based canned apologies, refusals, subject changes): "
               + ("measured" if before.get("length") else "not measured"))
    floors = h.get("floors") or []
    out.append(f"- floors (every metric as if that text were every reply): {', '.join(floors)}" if floors
               else "- floors: none")
    return out + [""]


def _limitations(record: dict[str, Any]) -> list[str]:
    h = record.get("holdout")
    out = ["## Limitations (what this run does not show)", ""]
    if h is None:
        out.append("- Whether the model changed on held-out prompts: no hold-out evaluation was run.")
    else:
        out.append(f"- Toxicity was measured by one automatic evaluator (`{h.get('evaluator')}`) on "
                   f"{h.get('n_prompts')} prompts; no human rated the replies, and other prompt "
                   "distributions were not measured.")
        if not h.get("helpfulness"):
            out.append("- Helpfulness was not measured: no helpfulness judge ran"
                       + (" (the control set shows toxicity and reply length only)." if h.get("control")
                          else "."))
        else:
            out.append(f"- Helpfulness was scored by one automatic judge (`{h['helpfulness'].get('judge')}`), "
                       "not by people.")
        if not h.get("control"):
            out.append("- Ordinary (non-provocative) requests were not measured (no control set).")
    out += ["- Reward-judge scores can be gamed; the reward curve alone is no evidence of better replies.",
            f"- One run with one seed ({(record.get('settings') or {}).get('seed', 'default')}); "
            "variation across seeds was not measured."]
    return out
