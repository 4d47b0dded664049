"""Replies from a vLLM engine in `rlaif.models.generate.generate`'s shape (a `Generation`).

    engine_params     transformers `generate` keywords -> the engine's sampling fields
    engine_generate   one reply per prompt: prompts cut on the left as `generate` cuts them (the
                      dialogue's end kept; chat template optional), a seed per sample derived from
                      `seed` and the sample's index (so two calls with the same seed sample the
                      same replies), stop at the EOS ids, replies cut after their first EOS
    serve_folder      a transformers folder an engine can serve for anything `load_lm` takes
                      (a plain model folder as it is; else a .gguf, a hub id, a run folder or a
                      LoRA adapter, written with the adapter merged)

Used by the PPO hold-out on the run's engine (`rlaif.ppo.vllm_generate`) and by
`rlaif label --policy M --engine vllm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlaif.models.generate import (
    Generation,
    cut_at_eos,
    eos_token_ids,
    max_prompt_tokens,
    tokenize_queries,
)
from rlaif.models.load import prepare_tokenizer

SEED_LIMIT = 2**31 - 1
SEED_STRIDE = 1_000_003  # the seeds of two call seeds do not overlap for sets under a million
CONFIG_FILE, ADAPTER_FILE = "config.json", "adapter_config.json"


def engine_params(gen_kwargs: dict[str, Any], eos_ids: Sequence[int]) -> dict[str, Any]:
    """transformers `generate` keywords -> the /v1/completions sampling fields (top_k 0 = off
    in both; greedy = temperature 0; unset = generate's defaults)."""
    params: dict[str, Any] = {"max_tokens": int(gen_kwargs.get("max_new_tokens", 20)),
                              "min_tokens": int(gen_kwargs.get("min_new_tokens") or 0),
                              "stop_token_ids": sorted(eos_ids), "skip_special_tokens": False}
    if gen_kwargs.get("do_sample", False):
        params.update(temperature=float(gen_kwargs.get("temperature", 1.0)),
                      top_p=float(gen_kwargs.get("top_p", 1.0)), top_k=int(gen_kwargs.get("top_k", 50)))
    else:
        params.update(temperature=0.0)
    return params


def engine_generate(client: Any, model_name: str, lm: Any, tokenizer: Any, prompts: Sequence[str], *,
                    gen_kwargs: dict[str, Any], seed: int = 0, chat: bool = False,
                    system_prompt: str | None = None) -> Generation:
    """One reply per prompt from `model_name` on the engine `client` (see the module docstring);
    `lm` (the model the engine serves, in memory) gives the EOS ids and the prompt limit."""
    tok = prepare_tokenizer(tokenizer, False)
    tok.truncation_side = "left"  # keep the dialogue's end, as generate() does
    eos = sorted(eos_token_ids(lm, tok))
    params = engine_params(gen_kwargs, eos)
    limit = max_prompt_tokens(lm, tok, params["max_tokens"], False)
    ids, mask = tokenize_queries(tok, list(prompts), limit, "cpu", chat=chat, system_prompt=system_prompt)
    prompt_ids = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
    seeds = [(seed * SEED_STRIDE + i) % SEED_LIMIT for i in range(len(prompt_ids))]
    completions = client.complete_batch(model_name, prompt_ids, params, seeds)
    response_ids = [cut_at_eos(c.token_ids, set(eos)) for c in completions]
    texts = [t.strip() for t in tok.batch_decode(response_ids, skip_special_tokens=True)]
    return Generation(texts, prompt_ids, response_ids, lm, tok, False)


def serve_folder(model: str | Path, workdir: Path) -> tuple[str, Any, Any]:
    """(folder an engine can serve, the model in memory, its tokenizer) for `model`."""
    from rlaif.models.load import load_lm

    lm, tok, seq2seq = load_lm(str(model))
    if seq2seq:
        raise ValueError(f"{model} is an encoder-decoder (seq2seq) model; the vLLM engine serves "
                         "decoder-only models: leave out --engine vllm")
    source = Path(model)
    if (source / CONFIG_FILE).is_file() and not (source / ADAPTER_FILE).is_file():
        return str(source), lm, tok
    out = workdir / "served-model"
    merged = lm.merge_and_unload() if hasattr(lm, "merge_and_unload") else lm
    merged.save_pretrained(out)
    return str(out), merged, tok


def generate_on_vllm(model: str | Path, prompts: Sequence[str], *, gen_kwargs: dict[str, Any],
                     seeds: Sequence[int], chat: bool = False, system_prompt: str | None = None,
                     dtype: str = "float32") -> list[Generation]:
    """One `Generation` per seed in `seeds` from `model` on a vLLM engine started for it and
    stopped after: in this process when vllm is importable here, else a server from
    .venv-vllm (`rlaif.engines.vllm_setup`)."""
    import shutil
    import tempfile

    from rlaif.engines.start import start_engine
    from rlaif.engines.vllm_server import SERVED_NAME, ServerSpec
    from rlaif.engines.vllm_setup import vllm_importable

    workdir = Path(tempfile.mkdtemp(prefix="rlaif-vllm-"))
    engine: Any = None
    keep_log = False
    try:
        folder, lm, tok = serve_folder(model, workdir)
        spec = ServerSpec(model=folder, python="", dtype=dtype, max_lora_rank=None,
                          extra_args=["--skip-tokenizer-init"])
        engine = start_engine(spec, inprocess=vllm_importable(), log_dir=workdir, who="--engine vllm")
        return [engine_generate(engine.client, SERVED_NAME, lm, tok, prompts, gen_kwargs=gen_kwargs,
                                seed=seed, chat=chat, system_prompt=system_prompt) for seed in seeds]
    except BaseException:
        keep_log = True  # the error names the server's log
        raise
    finally:
        if engine is not None:
            engine.close()
        shutil.rmtree(workdir / "served-model", ignore_errors=True)
        if not keep_log:
            shutil.rmtree(workdir, ignore_errors=True)
