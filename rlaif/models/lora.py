"""LoRA wrapping (peft) for the PPO policy, with default targets per architecture; the settings
themselves (`LoraSettings`) are part of the run config, `rlaif.config`."""

from __future__ import annotations

from torch import nn

from rlaif.config import LoraSettings

# LoRA targets per `config.model_type`: attention projections (plus GPT-2's c_proj, which
# covers both the attention output and the MLP output). Other architectures fall back to
# peft's own mapping.
DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "gpt2": ["c_attn", "c_proj"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def default_lora_targets(model_type: str) -> list[str]:
    """LoRA target module names for a `config.model_type`; ValueError names the fix if unknown."""
    if model_type in DEFAULT_LORA_TARGETS:
        return list(DEFAULT_LORA_TARGETS[model_type])
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_map

    if model_type in peft_map:
        return list(peft_map[model_type])
    raise ValueError(
        f"no default LoRA target modules for model_type {model_type!r}; set "
        "lora.target_modules to the attention projection names, e.g. ['q_proj', 'v_proj']"
    )


def wrap_lora(model: nn.Module, lora: LoraSettings) -> nn.Module:
    """Wrap `model` in peft LoRA adapters per `lora` (targets default per architecture)."""
    from peft import LoraConfig, TaskType, get_peft_model

    model_type = model.config.model_type
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
        target_modules=lora.target_modules or default_lora_targets(model_type),
        task_type=TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM,
        # GPT-2 stores its projections as Conv1D (weight transposed).
        fan_in_fan_out=model_type == "gpt2",
    )
    return get_peft_model(model, config)
