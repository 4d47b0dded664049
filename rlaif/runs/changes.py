"""Resume is honest: a resumed run's settings are compared with those its last steps used.

A run folder's `config.yaml` is written once, by the run's first start, and never overwritten;
each resume's differences are appended to `config_changes.jsonl`, so config.yaml with those
changes applied is what the latest segment used. On `--resume`, every setting that differs
from that is listed (a revert to an earlier value is a change too). Settings that change the math of the
steps to come (learning rate, batch size, KL control, the judge, the model, the data, ...)
refuse to resume unless `allow_changes` (`--allow-changes`) is given; settings that do not
(`ppo.steps`, the output cadence, evaluation, `resume` itself) pass. Either way the differences
are appended to `<run>/config_changes.jsonl` with the first step they apply to, so the run
folder always says what each step range used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlaif.io import append_jsonl, read_jsonl, read_yaml
from rlaif.runs.folder import CHANGES_FILE, CONFIG_FILE, RunFolder
from rlaif.secrets import redact_mapping

# Dotted prefixes of settings that do not change what a training step computes.
NEUTRAL = ("resume", "allow_changes", "overwrite", "output.", "eval.", "ppo.steps", "dpo.max_steps",
           "dpo.num_train_epochs", "accelerate.cpu")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def is_neutral(key: str) -> bool:
    """Whether a setting leaves the training math alone (see NEUTRAL)."""
    return any(key == n or key.startswith(n) for n in NEUTRAL)


def previous_settings(folder: RunFolder) -> dict[str, Any]:
    """The flat settings the run's latest segment used: config.yaml (its first start) with every
    change recorded in config_changes.jsonl applied in order."""
    settings = flatten(read_yaml(folder.config, what="run config") or {})
    if folder.changes.is_file():
        for entry in read_jsonl(folder.changes):
            for key, change in (entry.get("changes") or {}).items():
                settings[key] = change.get("now")
    return settings


def check_resume(run_dir: str | Path, config: Any, from_step: int) -> dict[str, tuple[Any, Any]]:
    """Compare `config` with the settings the run's previous segment used (config.yaml plus the
    recorded changes); refuse math changes unless allowed; record every difference, reverts
    included. A refusal writes nothing. Returns the differences (dotted key -> (was, now))."""
    folder = RunFolder(run_dir)
    previous = previous_settings(folder)
    new = flatten(redact_mapping(config.model_dump(mode="json")))
    changes = {k: (previous.get(k), new.get(k)) for k in sorted(set(previous) | set(new))
               if previous.get(k) != new.get(k) and k not in ("resume", "allow_changes", "overwrite")}
    math = {k: v for k, v in changes.items() if not is_neutral(k)}
    if math and not config.allow_changes:
        listed = "\n".join(f"  {k}: {old!r} -> {now!r}" for k, (old, now) in math.items())
        raise ValueError(
            f"--resume of {run_dir} with settings that change the training math, against what "
            f"steps 1..{from_step} used ({folder.config}"
            + (f" and {folder.changes}" if folder.changes.is_file() else "") + f"):\n{listed}\n"
            "resume with those settings, or pass --allow-changes (allow_changes=true) to continue "
            f"with these; the change is then recorded in {CHANGES_FILE}")
    if changes:
        append_jsonl(folder.changes, {
            "from_step": from_step + 1,
            "changes": {k: {"was": old, "now": now} for k, (old, now) in changes.items()},
        })
    return changes


def start_or_check_config(folder: RunFolder, config: Any, from_step: int) -> dict[str, tuple[Any, Any]]:
    """A started run's config.yaml: written at the run's first start; on `--resume` (the folder
    holds one) compared with `config` as `check_resume` does, and never overwritten. Returns the
    changes a resume applies (empty for a fresh start)."""
    from rlaif.config import save_config

    if config.resume and folder.config.is_file():
        return check_resume(folder.path, config, from_step)
    if config.resume and from_step:
        raise FileNotFoundError(
            f"{folder.config} is missing, so this resume cannot be checked against the settings "
            f"steps 1..{from_step} used; put the run's config.yaml back (or start a new run)")
    save_config(config, folder.path)
    return {}
