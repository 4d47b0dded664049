"""The run config of `rlaif train`: pydantic v2 models loaded from YAML plus dotted overrides.

    model:      name_or_path, lora (LoraSettings or null = full fine-tune), dtype, ...
    data:       HH source, task (dialogue | summarize | chat), prompt-length filter, split
    judge:      ref (built-in name, path, or inline spec), unscored policy, reward post-processing
    ppo:        PPO hyper-parameters (names from the papers), kl control, LR schedule
    generation: sampling settings for rollouts (the walk-through's top_k 0, top_p 1.0, sampling)
    eval:       hold-out evaluation settings (carried for `rlaif.evaluation`)
    output:     run folder, checkpoint and log cadence
    accelerate: device, mixed precision, DeepSpeed config passthrough
    resume, overwrite, allow_changes: an output folder that already holds a run is continued
                (resume), started over (overwrite), or continued with changed settings

Every model forbids unknown keys and infinite or NaN numbers (`ConfigSection`); `load_config`
reports an unknown key by its dotted name with the valid keys beside it (`rlaif.config_loading`,
shared with `rlaif dpo`'s config), and a key given twice in the YAML file. Cross-field rules
raise ValueError with the value, the rule and a fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from rlaif.config_loading import (
    ConfigSection,
    config_relative_path,
    read_config_mapping,
    validate_config,
)
from rlaif.config_generation import VLLM_LORA_RANKS, GenerationConfig, VLLMSettings
from rlaif.io import atomic_write_text
from rlaif.runs.folder import CONFIG_FILE
from rlaif.secrets import redact_mapping

# The run-folder settings every trainer's config has (RunConfig, rlaif.dpo.config.DPORunConfig).
RESUME_HELP = "true: the run folder's latest checkpoint; or a checkpoint path"
ALLOW_CHANGES_HELP = ("resume even though settings that change the math differ from the run's "
                      "config.yaml (recorded in config_changes.jsonl)")
OVERWRITE_HELP = "start over in an output folder that already holds a run (its files are replaced)"


_Section = ConfigSection


class LoraSettings(ConfigSection):
    """LoRA adapter settings (peft `LoraConfig`); `target_modules` None = default per architecture
    (`rlaif.models.lora.default_lora_targets`)."""

    r: int = Field(16, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = None
    bias: Literal["none", "all", "lora_only"] = "none"


class ModelConfig(_Section):
    """The policy: a hub id, a local folder, or a .gguf file (dequantised to `dtype`, default
    float32); optional LoRA (null = full fine-tune)."""

    name_or_path: str
    lora: LoraSettings | None = None
    dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = None
    gradient_checkpointing: bool = False


class DataConfig(_Section):
    """Where prompts come from (HH hub id, local file, or the bundled "sample") and their filter."""

    source: str = "sample"
    data_dir: str | None = Field(default=None, description="HH subset, e.g. harmless-base")
    split: str = "train"
    task: Literal["dialogue", "summarize", "chat"] = Field(
        default="dialogue", description="dialogue: the plain HH text up to the final "
        "'Assistant:'; summarize: an instruction to summarise it; chat: the dialogue as "
        "user/assistant messages through the tokenizer's own chat template (instruct models). "
        "Judges always see the plain dialogue")
    system_prompt: str | None = Field(
        default=None, description="task chat: a system message before the dialogue")
    context: Literal["full", "first_turn"] = Field(
        default="full", description="full: the whole HH dialogue up to the final reply; "
        "first_turn: only the first Human turn of each HH dialogue (the opening request), as a "
        "single-turn prompt; identical prompts are then kept once (the first)")
    max_prompt_tokens: int = Field(default=256, gt=0)
    min_prompt_tokens: int = Field(default=1, ge=0)
    limit: int | None = Field(default=None, gt=0)
    test_size: float | int = Field(default=0.1, description="held out for evaluation")
    seed: int = 0
    on_bad_row: Literal["raise", "skip"] = "raise"

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.system_prompt is not None and self.task != "chat":
            raise ValueError(
                f"data.system_prompt is set but data.task={self.task!r}: only chat prompts have a "
                "system message; set data.task=chat, or drop data.system_prompt"
            )
        return self


class JudgeConfig(_Section):
    """The reward judge and what happens to its scores before PPO sees them."""

    ref: str | dict[str, Any] = Field(description="built-in judge name, YAML path, or inline spec")
    on_unscored: Literal["skip", "fail"] = Field(
        default="skip",
        description="skip: the sample contributes nothing to the update and is counted in "
        "reward/unscored; fail: the step raises, naming the sample and the judge's reason",
    )
    normalize: Literal["running", "none"] = Field(
        default="none", description="running: (score - running mean) / running std"
    )
    clip: float | None = Field(default=None, gt=0, description="clip rewards to [-clip, clip]")
    max_unscored_steps: int = Field(
        default=3, ge=1, description="stop (saving the run) when this many consecutive steps had "
        "no scored sample at all: training on nothing is not success")


class KLConfig(_Section):
    """KL penalty to the reference: controller (Ziegler et al.) and per-token estimator."""

    kind: Literal["fixed", "adaptive"] = "fixed"
    kl_coef: float = Field(default=0.2, ge=0)
    target: float | None = Field(default=None, gt=0, description="adaptive: target KL (nats)")
    horizon: int = Field(default=10000, gt=0)
    estimator: Literal["k1", "k3", "abs", "mse"] = "k1"


class PPOConfig(_Section):
    """PPO hyper-parameters; defaults are the walk-through's (TRL's classic PPOConfig)."""

    learning_rate: float = Field(default=1.41e-5, gt=0)
    batch_size: int = Field(default=16, gt=0, description="prompts per step, all processes together")
    mini_batch_size: int = Field(default=4, gt=0, description="samples per forward/backward")
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    forward_batch_size: int | None = Field(
        default=None, gt=0, description="samples per no-grad rollout pass (policy, reference), "
        "taken in order of length so each chunk pads only to its own longest sample; None = "
        "mini_batch_size. Larger chunks cost memory: (chunk, response tokens, vocabulary) logits")
    rollout_logprobs: Literal["auto", "generate", "forward"] = Field(
        default="auto", description="where the rollout's policy logprobs, values and entropy come "
        "from: generate = the hidden states generation already computed (no policy forward; equal "
        "to a forward up to float rounding; causal LMs whose logits are lm_head(hidden) only, see "
        "rlaif/ppo/capture.py); forward = a separate no-grad forward (bit-exact); auto = generate "
        "where the architecture allows it, else forward")
    share_prefix: bool = Field(
        default=True, description="run the tokens every prompt of a batch starts with (a chat "
        "template's header, a system prompt) once per batch, not once per row: generation's "
        "prefill, the reference pass and the update's forward and backward (causal LMs; equal to "
        "the plain pass up to float rounding, see rlaif/models/prefix.py); false = the plain pass")
    ppo_epochs: int = Field(default=1, gt=0)
    steps: int = Field(default=10, gt=0)
    gamma: float = Field(default=1.0, ge=0, le=1)
    lam: float = Field(default=0.95, ge=0, le=1)
    cliprange: float = Field(default=0.2, gt=0)
    cliprange_value: float = Field(default=0.2, gt=0)
    vf_coef: float = Field(default=0.1, ge=0)
    kl: KLConfig = KLConfig()
    whiten_rewards: bool = False
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0, description="optimizer steps of linear warm-up")
    weight_decay: float = Field(default=0.0, ge=0)
    tis_cap: float | None = Field(
        default=None, gt=0, description="truncated importance sampling when another engine "
        "sampled the rollout (generation.backend vllm): each token's policy loss is weighted by "
        "min(exp(trainer logprob - sampler logprob), tis_cap), as TRL's "
        "vllm_importance_sampling_cap and veRL's TIS do (e.g. 2.0); null = no correction")
    async_rollout: bool = Field(
        default=False, description="generation.backend vllm: the engine samples the next batch "
        "while the trainer scores and updates on this one, so each batch comes from the weights "
        "one step before the trainer's (the trainer recomputes the old logprobs; ppo.tis_cap "
        "corrects for the lag); false = every batch from the latest weights")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> PPOConfig:
        backward_batch = self.mini_batch_size * self.gradient_accumulation_steps
        if self.batch_size % backward_batch:
            raise ValueError(
                f"ppo.batch_size={self.batch_size} is not a multiple of ppo.mini_batch_size * "
                f"ppo.gradient_accumulation_steps = {self.mini_batch_size} * "
                f"{self.gradient_accumulation_steps} = {backward_batch}: every optimizer step "
                f"needs a full backward batch; set batch_size to a multiple of {backward_batch} "
                f"(e.g. {backward_batch * max(1, self.batch_size // backward_batch)})"
            )
        if self.kl.kind == "adaptive" and self.kl.target is None:
            raise ValueError(
                "ppo.kl.kind='adaptive' needs ppo.kl.target (the KL in nats to steer toward, "
                "e.g. 6.0 as in Ziegler et al.); set it, or use ppo.kl.kind=fixed"
            )
        return self


class EvalConfig(_Section):
    """Hold-out evaluation before and after training (run by `rlaif.evaluation`)."""

    enabled: bool = False
    evaluator: str | dict[str, Any] | None = Field(
        default=None, description="judge for hold-out scoring; best a different one than the reward"
    )
    n: int = Field(default=100, gt=0, description="hold-out prompts to evaluate")
    threshold: float = Field(default=0.5, description="toxicity above this counts as toxic")
    split: str | None = Field(
        default=None, description="a split of data.source to take the hold-out prompts from "
        "(e.g. test), used as it is; null = the data.test_size share held out of data.split")
    batch_size: int | None = Field(default=None, gt=0,
                                   description="generation batch size; null = ppo.batch_size")
    control_source: str | None = Field(
        default=None, description="a second hold-out set whose replies should NOT change much "
        "(e.g. the ordinary requests of 'sample'): its toxicity and reply length before/after "
        "and a few examples go into the report, to show helpfulness is kept")
    control_split: str = "test"
    control_n: int = Field(default=32, gt=0)
    samples_per_prompt: int = Field(
        default=1, ge=1, description="k replies per hold-out prompt: expected maximum toxicity "
        "and toxicity probability over k (RealToxicityPrompts); 1 = one reply each")
    reward_judge_view: bool = Field(
        default=False, description="also score the hold-out replies with the reward judge (costs "
        "its calls): reward hacking shows as a gap between it and the evaluator")
    helpfulness: str | dict[str, Any] | None = Field(
        default=None, description="a judge (built-in name, YAML path or inline spec) that sees the "
        "prompt and the reply and scores helpfulness / relevance, used as it is (higher = more "
        "helpful), on the hold-out and control sets; not the reward judge. null = not measured")
    floors: list[str] = Field(
        default_factory=lambda: ["", "I'm sorry to hear that."],
        description="texts scored as if the policy had replied them to every hold-out prompt (a "
        "report column each): what saying nothing would score")


class OutputConfig(_Section):
    """The run folder, how often to checkpoint and print, final/ and the trackers."""

    dir: str = "runs/rlaif"
    save_every: int = Field(default=0, ge=0, description="checkpoint every N steps; 0 = end only")
    log_every: int = Field(default=1, gt=0, description="print a log line every N steps")
    merge_lora: bool = Field(default=True, description="final/: LoRA merged; false = PEFT adapter")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list, description="trackers (rlaif.tracking); pip install rlaif[tracking]")


class AccelerateConfig(_Section):
    """Passed to `accelerate.Accelerator`."""

    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    cpu: bool = False
    deepspeed_config: str | None = Field(default=None, description="path of a DeepSpeed JSON")

    @model_validator(mode="after")
    def _check(self) -> AccelerateConfig:
        if self.cpu and self.mixed_precision == "fp16":
            raise ValueError(
                "accelerate.mixed_precision='fp16' with accelerate.cpu=true: fp16 autocast needs "
                "a GPU; use mixed_precision=bf16 or no on CPU"
            )
        return self


class RunConfig(_Section):
    """Everything one `rlaif train` run needs."""

    model: ModelConfig
    data: DataConfig = DataConfig()
    judge: JudgeConfig
    ppo: PPOConfig = PPOConfig()
    generation: GenerationConfig = GenerationConfig()
    eval: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig()
    accelerate: AccelerateConfig = AccelerateConfig()
    resume: bool | str = Field(default=False, description=RESUME_HELP)
    overwrite: bool = Field(default=False, description=OVERWRITE_HELP)
    allow_changes: bool = Field(default=False, description=ALLOW_CHANGES_HELP)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.data.min_prompt_tokens > self.data.max_prompt_tokens:
            raise ValueError(
                f"data.min_prompt_tokens={self.data.min_prompt_tokens} exceeds "
                f"data.max_prompt_tokens={self.data.max_prompt_tokens}; no prompt could pass "
                "the length filter: lower min_prompt_tokens or raise max_prompt_tokens"
            )
        if self.generation.backend == "vllm":
            self._check_vllm()
        elif self.ppo.async_rollout:
            raise ValueError("ppo.async_rollout=true needs generation.backend=vllm (an engine that "
                             "samples while the trainer updates); set generation.backend=vllm, or "
                             "ppo.async_rollout=false")
        if self.accelerate.cpu and self.model.dtype == "float16":
            raise ValueError(
                "model.dtype='float16' with accelerate.cpu=true: many CPU kernels lack float16; "
                "use model.dtype=float32 or bfloat16 on CPU"
            )
        return self

    def _check_vllm(self) -> None:
        """What generation.backend vllm can sync: a LoRA adapter (vLLM's ranks, no biases), or
        the changed weights (a full fine-tune, or LoRA merged into its base layers)."""
        lora, sync = self.model.lora, self.generation.vllm.sync_mode()
        if lora is None and sync == "adapter":
            raise ValueError(
                "generation.vllm.sync='adapter' needs model.lora: a full fine-tune (model.lora: "
                "null) has no adapter to load; use generation.vllm.sync=weights (or auto)")
        if sync != "adapter" or lora is None:
            return
        if lora.r > max(VLLM_LORA_RANKS):
            raise ValueError(
                f"model.lora.r={lora.r} exceeds vLLM's largest LoRA rank {max(VLLM_LORA_RANKS)}; "
                "lower model.lora.r, or use generation.vllm.sync=weights (the adapter merged "
                "into the weights it changes)")
        if lora.bias != "none":
            raise ValueError(
                f"model.lora.bias={lora.bias!r}: vLLM loads LoRA adapters without biases; set "
                "model.lora.bias=none, or use generation.vllm.sync=weights")


# --------------------------------------------------------------------------- loading


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> RunConfig:
    """Validate a config dict: unknown keys and rule violations raise ValueError naming `source`."""
    return validate_config(data, RunConfig, source)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict[str, Any] | None = None) -> RunConfig:
    """Load a YAML run config (or `data`), apply `a.b=c` overrides, validate.

    A judge ref that is a path relative to the config file is made absolute, so a run
    started from another folder finds it.
    """
    loaded, source = read_config_mapping(path, overrides, data)
    config_relative_path(path, loaded.get("judge"), "ref")
    return config_from_dict(loaded, source)


def save_config(config: RunConfig, run_dir: str | Path) -> Path:
    """Write the config used to `<run_dir>/config.yaml` (atomically, secrets redacted)."""
    text = yaml.safe_dump(redact_mapping(config.model_dump(mode="json")), sort_keys=False)
    return atomic_write_text(Path(run_dir) / CONFIG_FILE, text)
