"""What `rlaif dpo` sets up before TRL's DPOTrainer runs: the causal-LM check, the LoRA config and
TRL's arguments (checkpoints into the run folder)."""

from __future__ import annotations

from typing import Any

from rlaif.dpo.config import DPORunConfig
from rlaif.runs.folder import RunFolder



def check_causal(name_or_path: str) -> None:
    """Refuse an encoder-decoder model before anything is loaded, naming the fix."""
    from rlaif.models.load import load_model_config

    if getattr(load_model_config(name_or_path), "is_encoder_decoder", False):
        raise ValueError(
            f"model.name_or_path={name_or_path!r} is an encoder-decoder (seq2seq) model; TRL's "
            "DPOTrainer trains causal LMs only: use a decoder-only model, or `rlaif train` (PPO "
            "supports seq2seq)")


def peft_config(model: Any, config: DPORunConfig) -> Any:
    """peft LoraConfig from `model.lora`, the targets defaulting per architecture as in PPO."""
    from peft import LoraConfig, TaskType

    from rlaif.models.lora import default_lora_targets

    lora = config.model.lora
    model_type = model.config.model_type
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
                      target_modules=lora.target_modules or default_lora_targets(model_type),
                      task_type=TaskType.CAUSAL_LM, fan_in_fan_out=model_type == "gpt2")


def dpo_args(config: DPORunConfig, folder: RunFolder) -> Any:
    """TRL's DPOConfig from the run config: checkpoints into `<run>/checkpoints` every
    output.save_every steps (the last step is saved too, by `run_folder_callbacks`)."""
    import torch
    from trl import DPOConfig

    d, every = config.dpo, config.output.save_every
    # TRL defaults to bf16; keep the model's own dtype (float32 on CPU) unless asked otherwise.
    bf16 = config.model.dtype == "bfloat16" and torch.cuda.is_available()
    return DPOConfig(
        output_dir=str(folder.checkpoints), beta=d.beta, loss_type=[d.loss_type],
        learning_rate=d.learning_rate, num_train_epochs=d.num_train_epochs,
        max_steps=d.max_steps or -1, per_device_train_batch_size=d.per_device_train_batch_size,
        gradient_accumulation_steps=d.gradient_accumulation_steps, max_length=d.max_length,
        lr_scheduler_type=d.lr_scheduler_type, warmup_steps=d.warmup_steps,
        logging_steps=d.logging_steps, seed=d.seed, data_seed=d.seed, report_to=[],
        save_strategy="steps", save_steps=every or 10**9, save_only_model=False,
        disable_tqdm=True, dataset_num_proc=None,
        remove_unused_columns=False, bf16=bf16, use_cpu=not torch.cuda.is_available(),
        **({"gradient_checkpointing": True} if config.model.gradient_checkpointing else {}))
