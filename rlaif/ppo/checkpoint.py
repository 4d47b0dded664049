"""PPO checkpoints: everything a killed run needs to continue exactly where it stopped.

    <run>/checkpoints/step-N/
        policy/               PolicyWithValueHead.save: adapter (LoRA) or full model + value head
        optimizer.pt          AdamW state
        scheduler.pt          LR scheduler state
        trainer_state.json    step, data position, KL controller, running reward stats
        rng_state_<rank>.pt   python / numpy / torch RNG of each process
    <run>/checkpoints/latest  a text file naming the newest step-N folder

A checkpoint is written into a temporary folder and renamed into place, so a crash while
saving never leaves a half-written `step-N` (or a `latest` pointing at one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlaif.io import atomic_write_json, atomic_write_text
from rlaif.models.layout import CHECKPOINTS_DIR, LATEST_FILE, POLICY_DIR
from rlaif.ppo.policy import PolicyWithValueHead

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
MANIFEST_FILE = "files.json"  # size and sha256 of every file of the checkpoint


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain lists and tensors (loadable with weights_only=True)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, step: int, *, policy: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], accelerator: Any) -> Path:
    """Write `<run>/checkpoints/step-<step>` atomically and point `latest` at it (all processes call)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    main = accelerator.is_main_process
    if main:
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a crash during an earlier save
        tmp.mkdir(parents=True)
        policy.save(tmp / POLICY_DIR)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        atomic_write_json(tmp / STATE_FILE, {**state, "step": step,
                                             "num_processes": accelerator.num_processes})
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_state_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if main:
        write_file_manifest(tmp)
        old = root / f".old-step-{step}"
        if final.exists():  # the same step saved again (a resumed run that ends there)
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
        atomic_write_text(root / LATEST_FILE, final.name + "\n")
    accelerator.wait_for_everyone()
    return final


def find_resume_checkpoint(ref: bool | str | Path, run_dir: str | Path) -> Path:
    """The checkpoint to resume from: `resume: true` (the run's latest), a run folder, or a step-N folder."""
    base = Path(run_dir) if ref is True else Path(ref)
    if (base / STATE_FILE).is_file():
        return base
    # A run folder (<run>/checkpoints/latest) or its checkpoints/ folder (latest inside).
    for pointer in (base / CHECKPOINTS_DIR / LATEST_FILE, base / LATEST_FILE):
        if pointer.is_file():
            found = pointer.parent / pointer.read_text().strip()
            if not (found / STATE_FILE).is_file():
                raise FileNotFoundError(
                    f"{found}: named by {pointer} but holds no {STATE_FILE}; the checkpoint is "
                    "incomplete: resume from an older step-N folder instead"
                )
            return found
    raise FileNotFoundError(
        f"nothing to resume in {base}: expected a run folder with {CHECKPOINTS_DIR}/{LATEST_FILE} "
        f"or a checkpoint folder with {STATE_FILE}; start without --resume, or pass the folder"
    )


def load_checkpoint(path: str | Path, *, policy: Any, optimizer: Any, scheduler: Any,
                    accelerator: Any) -> dict[str, Any]:
    """Restore into `policy`, `optimizer`, `scheduler` and this process's RNG (all in place);
    returns the trainer state."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointDamaged(f"{path / STATE_FILE} is not valid JSON ({exc.msg}, line {exc.lineno}) "
                                f"{_older_good(path)}") from None
    # Load the saved policy beside the live one (the live one keeps its reference: the
    # original weights, not the trained ones) and copy every trainable tensor across.
    saved = PolicyWithValueHead.load(path / POLICY_DIR, base=policy.name_or_path, with_reference=False)
    src = {n: p for n, p in saved.named_parameters() if p.requires_grad}
    dst = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    if src.keys() != dst.keys():
        missing = sorted(dst.keys() - src.keys())[:3]
        extra = sorted(src.keys() - dst.keys())[:3]
        raise ValueError(
            f"{path / POLICY_DIR}: its trainable parameters do not match this run's policy "
            f"(missing {missing}, unexpected {extra}); resume with the model and LoRA settings "
            "the checkpoint was trained with"
        )
    with torch.no_grad():
        for name, param in dst.items():
            param.copy_(src[name].to(param.device, param.dtype))
    del saved
    # Read to CPU: load_state_dict moves the state to each parameter's device (a "cpu:0" device
    # string, as a multi-process CPU run has, is not a map_location torch.load accepts).
    optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / SCHEDULER_FILE, map_location="cpu", weights_only=True))
    rng_file = path / f"rng_state_{accelerator.process_index}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
    else:
        logger.warning(
            "%s: no RNG state for process %d (the checkpoint was written by %s process(es)); "
            "sampling continues from a fresh seed, so later steps will not match an "
            "uninterrupted run exactly", path, accelerator.process_index, state.get("num_processes"),
        )
    return state


class CheckpointDamaged(ValueError):
    """A checkpoint file is missing, truncated or altered since it was written."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_file_manifest(folder: Path) -> None:
    """Record size and sha256 of every file of a checkpoint in `files.json`."""
    files = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _digest(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}
    atomic_write_json(folder / MANIFEST_FILE, {"files": files})


def damaged_file(folder: Path) -> str | None:
    """What is wrong with a checkpoint's files (first problem), or None when they verify."""
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        return None  # written before checkpoints recorded their files: nothing to compare with
    try:
        files = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return f"{manifest} is damaged"
    for rel, want in files.items():
        p = folder / rel
        if not p.is_file():
            return f"{p} is missing"
        if p.stat().st_size != want["bytes"]:
            return f"{p} has {p.stat().st_size} bytes, {want['bytes']} were written (truncated?)"
        if _digest(p) != want["sha256"]:
            return f"{p} does not match the checksum recorded when it was written (altered)"
    return None


def _step_of(folder: Path) -> int | None:
    tail = folder.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else None


def _older_good(folder: Path) -> str:
    """A sentence naming the newest older checkpoint of the run whose files verify."""
    here = _step_of(folder)
    older = [p for p in folder.parent.glob("step-*") if p.is_dir() and p != folder
             and _step_of(p) is not None and (here is None or _step_of(p) < here)]
    for p in sorted(older, key=_step_of, reverse=True):
        if (p / STATE_FILE).is_file() and damaged_file(p) is None:
            return f"; resume from the previous good checkpoint instead: --resume {p}"
    return "; no older checkpoint of this run verifies: start the run again"


def verify_checkpoint(folder: Path) -> None:
    """Refuse a checkpoint whose files changed since they were written, naming the file."""
    problem = damaged_file(folder)
    if problem is not None:
        raise CheckpointDamaged(f"checkpoint {folder} is damaged: {problem}{_older_good(folder)}")
