"""The folder of a saved policy (in a checkpoint: `<run>/checkpoints/step-N/policy/`): the PPO
writer (`rlaif.ppo.policy`) and the model loader (`rlaif.models.load`) share these names.

    policy/
        adapter/ or model/             LoRA adapter (on `base_model`) or the full fine-tuned LM
        value_head.pt                  the value head's state dict
        policy.json                    {"format", "is_seq2seq", "base_model", "revision", "lora"}

The run folder around it is `rlaif.runs.folder`'s.
"""

from __future__ import annotations

POLICY_DIR = "policy"
POLICY_META = "policy.json"
VALUE_HEAD_FILE = "value_head.pt"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
