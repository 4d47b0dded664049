"""Resume is honest: a resumed run's settings are compared with those its last steps used.

A run folder's `config.yaml` is written once, by the run's first start, and never overwritten;
each resume's differences are appended to `config_changes.jsonl` with the first step they
apply to, so config.yaml with those changes applied is what the latest segment used, and the
folder always says what each step range used. `inputs.json` holds the fingerprints of the
files the run reads beside its config (the judge spec with its template and members, a local
data file or folder). On `--resume`, every setting or fingerprint that differs is listed (a
revert to an earlier value is a change too). Those that change the math of the steps to come
(learning rate, batch size, KL control, the judge, the model, the data, ...) refuse to resume
unless `allow_changes` (`--allow-changes`) is given; those that do not (`ppo.steps`, the output
cadence, evaluation, `resume` itself) pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlaif.io import append_jsonl, atomic_write_json, read_jsonl, read_yaml
from rlaif.runs.folder import CHANGES_FILE, CONFIG_FILE, RunFolder
from rlaif.runs.manifest import file_digest
from rlaif.secrets import redact_mapping

log = logging.getLogger(__name__)

BIG_FILE = 64 << 20  # larger files of a data folder are fingerprinted by size and mtime only
# Dotted prefixes of settings that do not change what a training step computes.
NEUTRAL = ("resume", "allow_changes", "overwrite", "output.", "eval.", "ppo.steps", "dpo.max_steps",
           "dpo.num_train_epochs", "accelerate.cpu",
           # where the vLLM server runs and how long it may take, not what it computes
           "generation.vllm.url", "generation.vllm.python", "generation.vllm.kv_cache_gb",
           "generation.vllm.start_timeout_s", "generation.vllm.request_timeout_s")


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


def fingerprint_path(ref: str | Path | None) -> str | None:
    """A sha256 of what a local file or folder holds (a folder: every file's name, size and
    content; files over 64 MiB by size and mtime), or None for a hub id or a built-in name."""
    if ref is None:
        return None
    path = Path(ref)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        size = p.stat().st_size
        tail = file_digest(p) if size <= BIG_FILE else str(p.stat().st_mtime_ns)
        h.update(f"{p.relative_to(path)}\0{size}\0{tail}\n".encode())
    return h.hexdigest()


def _inputs(folder: RunFolder) -> dict[str, Any] | None:
    """The fingerprints the run's latest segment recorded (inputs.json), or None (older runs)."""
    if not folder.inputs.is_file():
        return None
    return {f"inputs.{k}": v for k, v in json.loads(folder.inputs.read_text(encoding="utf-8")).items()}


def previous_settings(folder: RunFolder) -> dict[str, Any]:
    """The flat settings the run's latest segment used: config.yaml (its first start) with every
    change recorded in config_changes.jsonl applied in order."""
    settings = flatten(read_yaml(folder.config, what="run config") or {})
    if folder.changes.is_file():
        for entry in read_jsonl(folder.changes):
            for key, change in (entry.get("changes") or {}).items():
                settings[key] = change.get("now")
    return settings


def check_resume(run_dir: str | Path, config: Any, from_step: int,
                 inputs: Mapping[str, str | None] | None = None) -> dict[str, tuple[Any, Any]]:
    """Compare `config` (and the fingerprints of the files it reads, `inputs`) with what the
    run's previous segment used (config.yaml plus the recorded changes; inputs.json); refuse math
    changes unless allowed (an edited judge spec or data file is one); record every difference,
    reverts included. A refusal writes nothing. Returns the differences (dotted key -> (was, now))."""
    folder = RunFolder(run_dir)
    previous = previous_settings(folder)
    new = flatten(redact_mapping(config.model_dump(mode="json")))
    recorded = _inputs(folder)
    if recorded is not None:
        previous.update(recorded)
        new.update({f"inputs.{k}": v for k, v in (inputs or {}).items()})
    elif inputs:
        log.warning("%s records no input fingerprints (an older run): an edited judge spec or data "
                    "file cannot be told apart on this resume", folder.path)
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
    if inputs:
        atomic_write_json(folder.inputs, dict(inputs))
    return changes


def start_or_check_config(folder: RunFolder, config: Any, from_step: int,
                          inputs: Mapping[str, str | None] | None = None) -> dict[str, tuple[Any, Any]]:
    """A started run's config.yaml: written at the run's first start; on `--resume` (the folder
    holds one) compared with `config` as `check_resume` does, and never overwritten. Returns the
    changes a resume applies (empty for a fresh start). `inputs` (name -> fingerprint, see
    `fingerprint_path`) are recorded in inputs.json and compared on resume."""
    from rlaif.config import save_config

    if config.resume and folder.config.is_file():
        return check_resume(folder.path, config, from_step, inputs)
    if config.resume and from_step:
        raise FileNotFoundError(
            f"{folder.config} is missing, so this resume cannot be checked against the settings "
            f"steps 1..{from_step} used; put the run's config.yaml back (or start a new run)")
    save_config(config, folder.path)
    if inputs:
        atomic_write_json(folder.inputs, dict(inputs))
    return {}
