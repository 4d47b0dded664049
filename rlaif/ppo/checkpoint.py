"""PPO checkpoints: everything a killed run needs to continue exactly where it stopped.

    <run>/checkpoints/step-N/
        policy/               PolicyWithValueHead.save: adapter (LoRA) or full model + value head
        optimizer.pt          AdamW state
        scheduler.pt          LR scheduler state
        trainer_state.json    step, data position, KL controller, running reward stats
        rng_state_<rank>.pt   python / numpy / torch RNG of each process
        files.json            size and sha256 of every file (checked on --resume and export)
    <run>/checkpoints/latest  a text file naming the newest step-N folder

The run folder writes it under a temporary name and renames it into place
(`rlaif.runs.folder`), so a crash while saving never leaves a half-written `step-N` (or a
`latest` pointing at one).
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlaif.io import atomic_write_json
from rlaif.models.policy_layout import POLICY_DIR
from rlaif.ppo.policy import PolicyWithValueHead
from rlaif.runs.folder import STATE_FILE, CheckpointDamaged, RunFolder, older_good_checkpoint

logger = logging.getLogger(__name__)

OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"


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


def save_checkpoint(folder: RunFolder, step: int, *, policy: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], accelerator: Any) -> Path:
    """Write `<run>/checkpoints/step-<step>` atomically and point `latest` at it (all processes call)."""
    tmp = folder.checkpoints / f".tmp-step-{step}"
    main = accelerator.is_main_process
    if main:
        tmp = folder.checkpoint_tmp(step)
        policy.save(tmp / POLICY_DIR)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        atomic_write_json(tmp / STATE_FILE, {**state, "step": step,
                                             "num_processes": accelerator.num_processes})
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_state_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    final = folder.publish_checkpoint(tmp, step) if main else folder.checkpoints / f"step-{step}"
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(path: str | Path, *, policy: Any, optimizer: Any, scheduler: Any,
                    accelerator: Any) -> dict[str, Any]:
    """Restore into `policy`, `optimizer`, `scheduler` and this process's RNG (all in place);
    returns the trainer state. The caller verifies the checkpoint's files first (`verify_checkpoint`)."""
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointDamaged(f"{path / STATE_FILE} is not valid JSON ({exc.msg}, line {exc.lineno}) "
                                f"{older_good_checkpoint(path)}") from None
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
