"""The `generation` section of a run config: how rollouts are sampled, and by which engine.

    GenerationConfig   sampling settings (the walk-through's top_k 0, top_p 1.0, sampling) and
                       the backend: hf (the trainer's own `generate`) or vllm
    VLLMSettings       generation.vllm: which vLLM engine (a server rlaif starts, one at a URL,
                       or vllm.LLM in this process) and how the policy's weights reach it
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rlaif.config_loading import ConfigSection

# vLLM accepts these LoRA ranks only (its `--max-lora-rank`).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class VLLMSettings(ConfigSection):
    """generation.backend vllm: the vLLM engine PPO rollouts come from (rlaif/engines/)."""

    engine: Literal["auto", "server", "inprocess"] = Field(
        default="auto", description="server = a vLLM OpenAI-compatible server in its own process "
        "and environment (rlaif starts it, or generation.vllm.url); inprocess = vllm.LLM in this "
        "process (vllm importable next to rlaif, the usual GPU setup); auto = inprocess when "
        "vllm is importable here and no url is set, else server")
    sync: Literal["auto", "adapter", "weights"] = Field(
        default="auto", description="how the policy reaches the engine each step: adapter = its "
        "LoRA adapter, loaded under a fresh name (vLLM's LoRA path; the engine runs LoRA "
        "kernels); weights = the tensors training changed, loaded in place (a LoRA policy's "
        "adapted layers merged with their base weights, or every weight of a full fine-tune); "
        "auto = weights")
    url: str | None = Field(
        default=None, description="a vLLM OpenAI-compatible server that is already running on "
        "this machine (e.g. http://127.0.0.1:8000), started as `rlaif.engines.vllm_server` "
        "starts one (docs/VLLM.md): the policy's base model, --logprobs-mode processed_logprobs, "
        "and for sync=weights VLLM_SERVER_DEV_MODE=1 with rlaif's worker extension, for "
        "sync=adapter --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; null = rlaif "
        "starts one on 127.0.0.1 and stops it")
    python: str | None = Field(
        default=None, description="the Python that has vLLM installed; null = $RLAIF_VLLM_PYTHON, "
        "else .venv-vllm/bin/python in the working directory or the rlaif checkout "
        "(bash scripts/setup_vllm.sh makes it)")
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None, description="the server's weights; null = model.dtype (float32 when unset). "
        "bfloat16 is about 2x faster on CPUs with AVX-512-BF16 and drifts further from the "
        "trainer's logprobs (rollout/sampler_kl; ppo.tis_cap corrects for it)")
    kv_cache_gb: int = Field(default=2, gt=0, description="CPU servers: GiB for the KV cache "
                             "(VLLM_CPU_KVCACHE_SPACE)")
    start_timeout_s: float = Field(default=600.0, gt=0, description="how long the server may "
                                   "take to answer /health after it starts")
    request_timeout_s: float = Field(default=600.0, gt=0, description="one request's limit")
    extra_args: list[str] = Field(default_factory=list, description="more `vllm serve` "
                                  "arguments, e.g. ['--enforce-eager']")

    def sync_mode(self) -> Literal["adapter", "weights"]:
        """The weight sync the engine gets each step."""
        return "weights" if self.sync == "auto" else self.sync


class GenerationConfig(ConfigSection):
    """Rollout sampling; top_k 0 and top_p 1.0 sample from the full distribution."""

    backend: Literal["hf", "vllm"] = Field(
        default="hf", description="what generates PPO rollouts: hf = transformers' generate on the "
        "trainer's own weights; vllm = a vLLM engine (generation.vllm) that gets the policy's "
        "weights every step; the trainer still computes the old logprobs itself")
    vllm: VLLMSettings = VLLMSettings()

    min_new_tokens: int = Field(default=1, ge=0)
    max_new_tokens: int = Field(default=32, gt=0)
    top_k: int = Field(default=0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    do_sample: bool = True
    temperature: float = Field(default=1.0, gt=0)
    sampler: Literal["inverse_cdf", "multinomial"] = Field(
        default="inverse_cdf", description="how PPO rollouts draw a token: inverse_cdf = one uniform "
        "per row against the cumulative distribution (rlaif/ppo/sampling.py); multinomial = "
        "torch.multinomial inside transformers, one exponential variate per vocabulary entry. "
        "The same distribution; different random streams. Evaluation always uses multinomial")

    @model_validator(mode="after")
    def _check(self) -> GenerationConfig:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"generation.min_new_tokens={self.min_new_tokens} exceeds "
                f"generation.max_new_tokens={self.max_new_tokens}; a response cannot be longer "
                f"than its maximum: lower min_new_tokens or raise max_new_tokens"
            )
        return self

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `generate` (greedy decoding drops the sampling knobs)."""
        kwargs: dict[str, Any] = {"min_new_tokens": self.min_new_tokens,
                                  "max_new_tokens": self.max_new_tokens,
                                  "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(top_k=self.top_k, top_p=self.top_p, temperature=self.temperature)
        return kwargs
