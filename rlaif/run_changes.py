"""Resume is honest: a resumed run's settings are compared with those its first steps used.

A run folder's `config.yaml` is written once, by the run's first start, and never overwritten.
On `--resume`, every setting that differs is listed. Settings that change the math of the
steps to come (learning rate, batch size, KL control, the judge, the model, the data, ...)
refuse to resume unless `allow_changes` (`--allow-changes`) is given; settings that do not
(`ppo.steps`, the output cadence, evaluation, `resume` itself) pass. Either way the differences
are appended to `<run>/config_changes.jsonl` with the first step they apply to, so the run
folder always says what each step range used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rlaif.config import CONFIG_FILENAME, RunConfig
from rlaif.io import append_jsonl
from rlaif.secrets import redact_mapping

CHANGES_FILENAME = "config_changes.jsonl"
# Dotted prefixes of settings that do not change what a training step computes.
NEUTRAL = ("resume", "allow_changes", "output.", "eval.", "ppo.steps", "accelerate.cpu")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def config_changes(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (saved value, new value) for every setting that differs."""
    a, b = flatten(saved), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def is_neutral(key: str) -> bool:
    """Whether a setting leaves the training math alone (see NEUTRAL)."""
    return any(key == n or key.startswith(n) for n in NEUTRAL)


def check_resume(run_dir: str | Path, config: RunConfig, from_step: int) -> dict[str, tuple[Any, Any]]:
    """Compare `config` with the run's saved config; refuse math changes unless allowed;
    record every difference. Returns the differences."""
    path = Path(run_dir) / CONFIG_FILENAME
    if not path.is_file():
        return {}  # a run folder from before configs were saved: nothing to compare with
    saved = yaml.safe_load(path.read_text()) or {}
    new = redact_mapping(config.model_dump(mode="json"))
    changes = config_changes(saved, new)
    math = {k: v for k, v in changes.items() if not is_neutral(k)}
    if math and not config.allow_changes:
        listed = "\n".join(f"  {k}: {old!r} -> {now!r}" for k, (old, now) in math.items())
        raise ValueError(
            f"--resume of {run_dir} with settings that change the training math, against "
            f"{path} (what steps 1..{from_step} used):\n{listed}\nresume with the saved "
            "settings, or pass --allow-changes (allow_changes=true) to continue with these; "
            f"the change is then recorded in {CHANGES_FILENAME}"
        )
    recorded = {k: v for k, v in changes.items() if k not in ("resume", "allow_changes")}
    if recorded:
        append_jsonl(Path(run_dir) / CHANGES_FILENAME, {
            "from_step": from_step + 1,
            "changes": {k: {"was": old, "now": now} for k, (old, now) in recorded.items()},
        })
    return changes
