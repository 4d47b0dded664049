"""The vLLM engine a PPO run's rollouts come from: which one, started how.

    open_engine   generation.vllm.url -> a client of that server; else `engine`: inprocess ->
                  vllm.LLM in this process (`rlaif.engines.vllm_inprocess`), server -> a vLLM
                  server rlaif starts from .venv-vllm (both: `rlaif.engines.start`); auto ->
                  inprocess when vllm is importable here, else server. The engine serves the
                  policy's base model (a folder of it written first when the policy came from a
                  .gguf file or a hub id), with LoRA kernels only for sync=adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rlaif.config import RunConfig
from rlaif.config_generation import VLLM_LORA_RANKS
from rlaif.engines.start import Engine, start_engine
from rlaif.engines.vllm_client import EngineError, VLLMClient
from rlaif.engines.vllm_server import ServerSpec
from rlaif.engines.vllm_setup import vllm_importable
from rlaif.models.load import load_base_model

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"  # a transformers model folder vLLM can serve as it is


def server_lora_rank(r: int) -> int:
    """The smallest LoRA rank vLLM accepts (`--max-lora-rank`) that holds rank `r`."""
    return min(rank for rank in VLLM_LORA_RANKS if rank >= r)


def engine_kind(config: RunConfig) -> str:
    """'url', 'inprocess' or 'server' for the run's generation.vllm settings."""
    settings = config.generation.vllm
    if settings.url:
        return "url"
    if settings.engine == "auto":
        return "inprocess" if vllm_importable() else "server"
    return settings.engine


def engine_dtype(config: RunConfig) -> str:
    """The engine's weights: generation.vllm.dtype, else the policy's (model.dtype; float32)."""
    return config.generation.vllm.dtype or config.model.dtype or "float32"


def engine_spec(config: RunConfig, model_folder: str, max_model_len: int | None) -> ServerSpec:
    """What the engine serves and how, for either kind (the in-process engine takes it too)."""
    settings, lora = config.generation.vllm, config.model.lora
    adapter = settings.sync_mode() == "adapter" and lora is not None
    return ServerSpec(
        model=model_folder, python="",  # start_engine finds the vLLM Python
        dtype=engine_dtype(config),
        max_lora_rank=server_lora_rank(lora.r) if adapter else None, max_model_len=max_model_len,
        seed=config.ppo.seed, kv_cache_gb=settings.kv_cache_gb,
        start_timeout_s=settings.start_timeout_s, request_timeout_s=settings.request_timeout_s,
        extra_args=["--skip-tokenizer-init", *settings.extra_args])


def open_engine(config: RunConfig, policy: Any, workdir: Path, max_model_len: int | None) -> Engine:
    """The run's engine, ready (see the module docstring); raises `VLLMUnavailable` or
    `EngineError` with the reason and the fix."""
    settings, kind = config.generation.vllm, engine_kind(config)
    if kind == "url":
        client = VLLMClient(settings.url, timeout_s=settings.request_timeout_s)
        if not client.healthy():
            raise EngineError(f"the vLLM server at generation.vllm.url={settings.url} does not "
                              "answer /health; start it, or unset the url to let rlaif start one")
        return Engine(client, kind="url")
    spec = engine_spec(config, base_folder(policy, workdir), max_model_len)
    return start_engine(spec, inprocess=kind == "inprocess", log_dir=workdir,
                        who="generation.backend='vllm'", vllm_python=settings.python)


def base_folder(policy: Any, workdir: Path) -> str:
    """A transformers folder of the policy's base model (no adapter): its own folder when it is
    one, else (a .gguf file, a hub id) written once, as safetensors, into `workdir`."""
    source = Path(policy.name_or_path)
    if (source / CONFIG_FILE).is_file():
        return str(source)
    out = workdir / "base"
    if not (out / CONFIG_FILE).is_file():
        logger.info("writing the base model %s as a folder vLLM can serve: %s", source, out)
        model = load_base_model(policy.name_or_path, revision=policy.revision)
        model.save_pretrained(out)
        del model
    return str(out)
