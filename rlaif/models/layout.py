"""Folder names of a PPO run and of a saved policy: the PPO writer and the model loader share them.

    <run>/checkpoints/latest           a text file naming the newest step-N folder
    <run>/checkpoints/step-N/policy/   a saved policy:
        adapter/ or model/             LoRA adapter (on `base_model`) or the full fine-tuned LM
        value_head.pt                  the value head's state dict
        policy.json                    {"format", "is_seq2seq", "base_model", "revision", "lora"}
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
POLICY_DIR = "policy"
POLICY_META = "policy.json"
VALUE_HEAD_FILE = "value_head.pt"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint `<run>/checkpoints/latest` names, or None when the run has none."""
    pointer = Path(run_dir) / CHECKPOINTS_DIR / LATEST_FILE
    if not pointer.is_file():
        return None
    return pointer.parent / pointer.read_text().strip()
