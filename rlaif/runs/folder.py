"""The run folder: every file name a run writes, and the one rule for a folder that already
holds a run. PPO (`rlaif train`), DPO (`rlaif dpo`) and the demo share it.

    <run>/config.yaml                the settings of the run's first start (never overwritten)
    <run>/config_changes.jsonl       what each `--resume` changed, from which step
    <run>/inputs.json                fingerprints of the judge spec and data files the run reads
    <run>/metrics.jsonl              one line per training step (or log line, DPO)
    <run>/eval_before.json           the start model's hold-out answers and scores
    <run>/eval_control_before.json   the same for the control prompts (eval.control_source)
    <run>/report.md, report.json     the hold-out report; its plots beside them (PLOT_FILES)
    <run>/checkpoints/step-N/        a checkpoint (the method's files + files.json)
    <run>/checkpoints/latest         a text file naming the newest step-N folder
    <run>/final/                     the trained model as a standard HF folder; README.md = card

The rule for an existing folder: a folder that holds a run (any of RUN_FILES) is refused
unless `--resume` (continue it) or `--overwrite` (replace it: the run's own files go, any other
file stays). A step-N folder is written under a temporary name and renamed into place with
its `files.json`, so `latest` never names a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rlaif.io import atomic_write_text
from rlaif.runs.manifest import damaged_file, write_file_manifest

CONFIG_FILE = "config.yaml"
CHANGES_FILE = "config_changes.jsonl"
INPUTS_FILE = "inputs.json"  # fingerprints of the files a run reads (judge spec, data)
METRICS_FILE = "metrics.jsonl"
BEFORE_FILE = "eval_before.json"
CONTROL_BEFORE_FILE = "eval_control_before.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT_FILES = {"toxicity_plot": "toxicity_hist.png", "length_plot": "length_hist.png",
              "training_plot": "training.png"}
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
STATE_FILE = "trainer_state.json"  # in every step-N folder: what marks it a checkpoint
FINAL_DIR = "final"
CARD_FILE = "README.md"  # the model card, inside final/
TRACKER_DIRS = ("tensorboard", "mlruns", "wandb")  # output.report_to's local folders (rlaif.tracking)
RUN_FILES = (CONFIG_FILE, CHANGES_FILE, INPUTS_FILE, METRICS_FILE, BEFORE_FILE, CONTROL_BEFORE_FILE, REPORT_JSON,
             REPORT_MD, *PLOT_FILES.values(), CHECKPOINTS_DIR, FINAL_DIR, *TRACKER_DIRS)


class RunFolderTaken(ValueError):
    """The output folder already holds a run and neither --resume nor --overwrite was given."""


class CheckpointDamaged(ValueError):
    """A checkpoint file is missing, truncated or altered since it was written."""


@dataclass(frozen=True)
class RunFolder:
    """A run's output folder. `extra` names further files a command keeps there (the demo's
    judges, a seed summary): `--overwrite` replaces them with the run's own. `claimed`: the
    existing-folder rule was applied (by `claim`, which returns the claimed folder)."""

    path: Path
    extra: tuple[str, ...] = ()
    claimed: bool = False

    def __init__(self, path: str | Path, extra: Iterable[str] = (), claimed: bool = False) -> None:
        object.__setattr__(self, "path", Path(path))
        object.__setattr__(self, "extra", tuple(extra))
        object.__setattr__(self, "claimed", claimed)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def changes(self) -> Path:
        return self.path / CHANGES_FILE

    @property
    def inputs(self) -> Path:
        return self.path / INPUTS_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def before(self) -> Path:
        return self.path / BEFORE_FILE

    @property
    def control_before(self) -> Path:
        return self.path / CONTROL_BEFORE_FILE

    @property
    def report_json(self) -> Path:
        return self.path / REPORT_JSON

    @property
    def report_md(self) -> Path:
        return self.path / REPORT_MD

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def final(self) -> Path:
        return self.path / FINAL_DIR

    def plot(self, key: str) -> Path:
        """The file of one report plot (a PLOT_FILES key)."""
        return self.path / PLOT_FILES[key]

    # ------------------------------------------------------------------ the existing-folder rule

    def run_files(self) -> list[str]:
        """The names of this folder's entries a run (or `extra`) wrote."""
        return [name for name in (*RUN_FILES, *self.extra) if (self.path / name).exists()]

    def holds_run(self) -> bool:
        """Whether the folder holds any file of a run."""
        return bool(self.run_files())

    def claim(self, *, resume: bool | str | Path | None, overwrite: bool, command: str = "the run") -> RunFolder:
        """Make the folder ready for a run: the one rule for PPO, DPO and the demo. Returns the
        claimed folder (claiming that one again changes nothing).

        A fresh or run-free folder is used as it is. A folder holding a run is refused unless
        `resume` (kept as it is; the method continues it) or `overwrite` (its run files are
        removed first; other files stay). Call on the main process only."""
        if self.claimed:
            return self
        if resume and overwrite:
            raise ValueError("--resume and --overwrite contradict each other: pass one of them")
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"output folder {self.path} is a file; choose a folder for --out")
        found = self.run_files()
        if found and not resume:
            if not overwrite:
                raise RunFolderTaken(
                    f"{self.path} already holds a run ({', '.join(found[:4])}); pass --resume to "
                    f"continue it, --overwrite to replace it, or choose another --out for {command}")
            self.clear(found)
        if resume is True and not self.path.is_dir():
            raise FileNotFoundError(f"nothing to resume in {self.path}: the folder does not exist; "
                                    "start without --resume")
        self.path.mkdir(parents=True, exist_ok=True)
        return RunFolder(self.path, self.extra, claimed=True)

    def clear(self, names: Iterable[str]) -> None:
        """Remove these entries of the folder (files or folders)."""
        for name in names:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()

    # ------------------------------------------------------------------ checkpoints

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint `checkpoints/latest` names, or None when the run has none."""
        pointer = self.checkpoints / LATEST_FILE
        if not pointer.is_file():
            return None
        return pointer.parent / pointer.read_text().strip()

    def checkpoint_tmp(self, step: int) -> Path:
        """A fresh temporary folder to write step `step`'s checkpoint into."""
        tmp = self.checkpoints / f".tmp-step-{step}"
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a crash during an earlier save
        tmp.mkdir(parents=True)
        return tmp

    def publish_checkpoint(self, tmp: Path, step: int) -> Path:
        """Seal `tmp` (files.json), rename it to `checkpoints/step-<step>` and point `latest` at it."""
        write_file_manifest(tmp)
        final = self.checkpoints / f"step-{step}"
        old = self.checkpoints / f".old-step-{step}"
        if final.exists():  # the same step saved again (a resumed run that ends there)
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
        atomic_write_text(self.checkpoints / LATEST_FILE, final.name + "\n")
        return final

    def resume_checkpoint(self, ref: bool | str | Path) -> Path | None:
        """The checkpoint to resume from: `True` (this run's latest; None when it stopped before
        its first checkpoint), a run folder, its checkpoints/ folder, or a step-N folder."""
        base = self.path if ref is True else Path(ref)
        if (base / STATE_FILE).is_file():
            return base
        for pointer in (base / CHECKPOINTS_DIR / LATEST_FILE, base / LATEST_FILE):
            if pointer.is_file():
                found = pointer.parent / pointer.read_text().strip()
                if not (found / STATE_FILE).is_file():
                    raise FileNotFoundError(
                        f"{found}: named by {pointer} but holds no {STATE_FILE}; the checkpoint is "
                        "incomplete: resume from an older step-N folder instead")
                return found
        if ref is True and (self.config.is_file() or self.before.is_file()):
            return None  # started, stopped before its first checkpoint: continue from step 0
        raise FileNotFoundError(
            f"nothing to resume in {base}: expected a run folder with {CHECKPOINTS_DIR}/{LATEST_FILE} "
            f"or a checkpoint folder with {STATE_FILE}; start without --resume, or pass the folder")


def checkpoint_step(path: Path | None, key: str = "step") -> int:
    """The step a checkpoint ends (0 for None): `key` of its trainer_state.json ("step" in rlaif's
    PPO checkpoints, "global_step" in TRL's). Verify the checkpoint first: a damaged file is then
    named by its manifest."""
    if path is None:
        return 0
    try:
        return int(json.loads((path / STATE_FILE).read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointDamaged(f"{path / STATE_FILE} names no {key}: the checkpoint is damaged"
                                f"{older_good_checkpoint(path)}") from None


def step_of(folder: Path) -> int | None:
    """N of a `step-N` folder, else None."""
    tail = folder.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else None


def older_good_checkpoint(folder: Path) -> str:
    """A sentence naming the newest older checkpoint of the run whose files verify."""
    here = step_of(folder)
    older = [p for p in folder.parent.glob("step-*") if p.is_dir() and p != folder
             and step_of(p) is not None and (here is None or step_of(p) < here)]
    for p in sorted(older, key=step_of, reverse=True):
        if (p / STATE_FILE).is_file() and damaged_file(p) is None:
            return f"; resume from the previous good checkpoint instead: --resume {p}"
    return "; no older checkpoint of this run verifies: start the run again"


def verify_checkpoint(folder: Path, *, required: bool = False) -> None:
    """Refuse a checkpoint whose files changed since they were written, naming the file (and,
    with `required`, one without files.json)."""
    problem = damaged_file(folder, required=required)
    if problem is not None:
        raise CheckpointDamaged(f"checkpoint {folder} is damaged: {problem}{older_good_checkpoint(folder)}")
