"""The run config of `rlaif dpo`: the sections of `rlaif train` (model, data, generation, eval,
output; reused from `rlaif.config`) plus `preferences` (the labelled pairs) and `dpo` (TRL's
DPO settings that matter here).

    model:        name_or_path, lora (null = full fine-tune; then a frozen copy is the reference)
    preferences:  path of an `rlaif label` JSONL (or a `datasets` folder), strength filter, limit
    data:         task (chat: prompts through the tokenizer's chat template) and system prompt for
                  the policy's input; source/split/test_size/seed pick the hold-out prompts exactly
                  as `rlaif train` does, so a DPO run and a PPO run of one data section share them
    dpo:          beta, loss, learning rate, epochs or steps, batch sizes, lengths
    generation:   sampling for the hold-out replies (as `rlaif train`)
    eval:         the hold-out evaluation (as `rlaif train`); `reward_judge` names the labelling
                  judge for `eval.reward_judge_view`
    resume, overwrite  an output folder that already holds a run: continue it, or start over
                  (the same fields and meaning as `rlaif train`'s)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from rlaif.config import (
    ALLOW_CHANGES_HELP, OVERWRITE_HELP,
    RESUME_HELP,
    DataConfig,
    EvalConfig,
    GenerationConfig,
    ModelConfig,
    OutputConfig,
)
from rlaif.config_loading import (
    ConfigSection,
    config_relative_path,
    read_config_mapping,
    validate_config,
)


_Section = ConfigSection  # unknown keys and non-finite numbers refused, as in `rlaif train`


class PreferenceConfig(_Section):
    """The labelled pairs: rows `prompt`, `chosen`, `rejected` (ties and unscored rows, whose
    chosen/rejected are null, are left out and counted)."""

    path: str = Field(description="JSONL written by `rlaif label` (or any TRL preference JSONL), "
                      "or a folder written by `datasets.Dataset.save_to_disk`")
    min_strength: float | None = Field(
        default=None, ge=0, description="keep only rows whose `strength` is at least this")
    limit: int | None = Field(default=None, gt=0, description="first N usable pairs")
    reward_judge: str | dict[str, Any] | None = Field(
        default=None, description="the judge that labelled the pairs (for eval.reward_judge_view "
        "and the report); null = read from the label file's .meta.json when there is one")


class DPOSettings(_Section):
    """TRL `DPOConfig` settings (same names where they exist)."""

    beta: float = Field(default=0.1, gt=0, description="strength of the implicit KL to the reference")
    loss_type: Literal["sigmoid", "hinge", "ipo", "robust"] = "sigmoid"
    learning_rate: float = Field(default=5e-5, gt=0)
    num_train_epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0, description="overrides num_train_epochs")
    per_device_train_batch_size: int = Field(default=8, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    max_length: int = Field(default=256, gt=0, description="prompt + reply tokens")
    lr_scheduler_type: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    logging_steps: int = Field(default=1, gt=0)
    seed: int = 0


class DPORunConfig(_Section):
    """Everything one `rlaif dpo` run needs."""

    model: ModelConfig
    preferences: PreferenceConfig
    data: DataConfig = DataConfig(task="chat")
    dpo: DPOSettings = DPOSettings()
    generation: GenerationConfig = GenerationConfig()
    eval: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig(dir="runs/dpo")
    resume: bool | str = Field(default=False, description=RESUME_HELP)
    overwrite: bool = Field(default=False, description=OVERWRITE_HELP)
    allow_changes: bool = Field(default=False, description=ALLOW_CHANGES_HELP)

    @model_validator(mode="after")
    def _check(self) -> DPORunConfig:
        if self.data.task == "summarize":
            raise ValueError(
                "data.task='summarize' is not supported by `rlaif dpo`: the labelled prompts are "
                "dialogues; use data.task=chat (instruct models) or dialogue")
        return self


def load_dpo_config(path: str | Path | None = None, overrides: list[str] | None = None,
                    data: dict[str, Any] | None = None) -> DPORunConfig:
    """Load a YAML DPO config (or `data`), apply `a.b=c` overrides, validate; errors name the key.

    `preferences.path` relative to the config file is made absolute when that file exists."""
    loaded, source = read_config_mapping(path, overrides, data, what="DPO config",
                                         example="see configs/dpo-tiny.yaml")
    config_relative_path(path, loaded.get("preferences"), "path", need_file=False)
    return validate_config(loaded, DPORunConfig, source, what="DPO config")
