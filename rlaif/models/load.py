"""Load a language model and its tokenizer from whatever the user has at hand.

Accepted: a hub id or model folder, a `.gguf` file (or a folder holding one; `rlaif.models.gguf`
loads it dequantised), an in-memory Hugging Face model (or peft model), an rlaif policy
object, a PPO run folder (`<run>/checkpoints/latest`) or one checkpoint folder (a LoRA
adapter or a full model, laid out as `rlaif.models.policy_layout` describes). A checkpoint written
by rlaif's PPO policy is read from its `policy.json` here, without importing `rlaif.ppo`; the
PPO policy loads its LM through the same functions.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
from pathlib import Path
from typing import Any

from rlaif.models.gguf import (
    GGUFUnreadable,
    find_gguf,
    load_gguf_config,
    load_gguf_model,
    load_gguf_tokenizer,
)
from rlaif.models.policy_layout import ADAPTER_DIR, MODEL_DIR, POLICY_DIR, POLICY_META, VALUE_HEAD_FILE
from rlaif.models.patches import install_contiguous_head_hook, set_fused_activations
from rlaif.runs.folder import CHECKPOINTS_DIR, RunFolder

# Attributes under which wrappers keep the LM they wrap: torch DDP (`module`), rlaif's policy
# (`model`).
_WRAPPER_ATTRS = ("module", "model")


def resolve_checkpoint(path: str | Path) -> Path:
    """The policy folder of a run (its latest checkpoint), of a step-N checkpoint, or `path`."""
    p = Path(path)
    if (p / CHECKPOINTS_DIR).is_dir():
        found = RunFolder(p).latest_checkpoint()
        if found is None or not found.is_dir():
            raise FileNotFoundError(
                f"{p} looks like a run folder but checkpoints/latest names no checkpoint folder "
                f"({found}); pass a checkpoint folder instead "
                f"(one of {sorted(c.name for c in (p / CHECKPOINTS_DIR).iterdir())})"
            )
        p = found
    if (p / POLICY_DIR).is_dir():
        p = p / POLICY_DIR
    return p


def is_seq2seq(lm: Any) -> bool:
    """True for an encoder-decoder LM (`config.is_encoder_decoder`)."""
    return bool(getattr(lm.config, "is_encoder_decoder", False))


def transformers_model(lm: Any) -> Any:
    """The transformers model inside a peft wrapper, or `lm` itself."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


@functools.cache
def _forward_parameters(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def forward_parameters(lm: Any) -> frozenset[str]:
    """The argument names the forward of `lm`'s transformers model takes (cached per class):
    what optional inputs (`logits_to_keep`, `cache`) it accepts in this transformers version."""
    return _forward_parameters(type(transformers_model(lm)))


def check_model_ref(source: str) -> None:
    """Refuse, with the fix, a model reference that cannot load: a path that does not exist
    (never sent to the hub as an id), or a hub id while the hub is switched off."""
    import os

    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return
    if text.startswith(("/", ".", "~")) or text.endswith(".gguf") or os.sep * 2 in text \
            or text.count("/") > 1:
        raise FileNotFoundError(
            f"model {text!r}: no such file or folder; pass an existing model folder, a .gguf "
            "file, a run/checkpoint folder, or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if try_to_load_from_cache(text, "config.json") is None:
            raise FileNotFoundError(
                f"model {text!r} is not a local path and the hub is off (HF_HUB_OFFLINE is set) "
                "with no cached copy; download it on a machine with the hub "
                f"(`huggingface-cli download {text} --local-dir DIR`) and pass DIR, or a .gguf file")


def load_model_config(source: str, *, revision: str | None = None) -> Any:
    """The transformers config of a hub id, a model folder or a GGUF file (its metadata)."""
    from transformers import AutoConfig

    check_model_ref(source)
    gguf = find_gguf(source)
    return load_gguf_config(gguf) if gguf else AutoConfig.from_pretrained(source, revision=revision)


def _from_pretrained(source: str, config: Any, *, dtype: Any, revision: str | None = None) -> Any:
    """The LM `config` describes, weights from `source`: seq2seq or causal, or a dequantised GGUF."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    gguf = find_gguf(source)
    if gguf:
        return load_gguf_model(gguf, dtype=dtype, config=config)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return auto.from_pretrained(source, revision=revision, config=config,
                                **({"dtype": dtype} if dtype is not None else {}))


def load_base_model(name_or_path: str, *, dtype: Any = None, revision: str | None = None) -> Any:
    """Load a hub id, folder or GGUF file (seq2seq if encoder-decoder, else causal) with rlaif's
    speed patches.

    The patches (`rlaif.models.patches`: fused GELU, contiguous head input) compute the same
    function as the plain model, to float rounding; training and saved policies load this way.
    """
    config = load_model_config(name_or_path, revision=revision)
    set_fused_activations(config)  # our own config object, before the model is built
    model = _from_pretrained(name_or_path, config, dtype=dtype, revision=revision)
    install_contiguous_head_hook(model)
    return model


def read_policy_meta(folder: str | Path) -> dict[str, Any]:
    """The `policy.json` of a saved rlaif policy: base model, revision, LoRA settings, is_seq2seq."""
    meta_path = Path(folder) / POLICY_META
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found: {folder} is not a policy saved by PolicyWithValueHead.save"
        )
    return json.loads(meta_path.read_text())


def load_adapter(model: Any, folder: str | Path, *, trainable: bool) -> Any:
    """Wrap `model` in the peft (LoRA) adapter saved in `folder`; `trainable` keeps it trainable."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)


def load_policy_lm(folder: str | Path, *, dtype: Any = None) -> Any:
    """The LM of a saved rlaif policy, for inference: its adapter on the base model, or the full model."""
    folder = Path(folder)
    meta = read_policy_meta(folder)
    if meta.get("lora"):
        base = load_base_model(meta["base_model"], dtype=dtype, revision=meta.get("revision"))
        lm = load_adapter(base, folder / ADAPTER_DIR, trainable=False)
    else:
        lm = load_base_model(str(folder / MODEL_DIR), dtype=dtype)
    return lm


def _load_plain(source: str, dtype: Any) -> Any:
    """A hub id, model folder or GGUF file, unpatched: seq2seq or causal, as its config says."""
    return _from_pretrained(source, load_model_config(source), dtype=dtype)


def load_model(ref: str | Path, *, dtype: Any = None, device: Any = None) -> Any:
    """The HF LM for a hub id, model folder, GGUF file, peft adapter folder, checkpoint or run folder.

    It is moved to `device` (default: CUDA when available, else CPU).
    """
    import torch

    p = Path(ref)
    if p.is_dir():
        folder = resolve_checkpoint(p)
        if (folder / VALUE_HEAD_FILE).is_file():  # saved by rlaif's PPO policy
            lm = load_policy_lm(folder, dtype=dtype)
        elif (folder / "adapter_config.json").is_file():
            lm = _load_peft_folder(folder, dtype)
        else:
            lm = _load_plain(str(folder), dtype)
    else:
        lm = _load_plain(str(ref), dtype)
    return lm.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _load_peft_folder(folder: Path, dtype: Any) -> Any:
    """A peft adapter folder on the base model its adapter_config.json names (a GGUF base too)."""
    from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

    adapter = json.loads((folder / "adapter_config.json").read_text())
    base = adapter.get("base_model_name_or_path")
    if isinstance(base, str) and find_gguf(base):  # peft's own loader knows no GGUF
        return load_adapter(_load_plain(base, dtype), folder, trainable=False)
    auto = AutoPeftModelForSeq2SeqLM if adapter.get("task_type") == "SEQ_2_SEQ_LM" else AutoPeftModelForCausalLM
    return auto.from_pretrained(folder, **({"dtype": dtype} if dtype is not None else {}))


def _recorded_base(folder: Path) -> str | None:
    """The base model a checkpoint was trained from: policy.json's `base_model` (rlaif's
    checkpoints) or adapter_config.json's `base_model_name_or_path` (a peft adapter folder)."""
    for name, key in ((POLICY_META, "base_model"), ("adapter_config.json", "base_model_name_or_path")):
        f = folder / name
        if f.is_file():
            value = json.loads(f.read_text()).get(key)
            if isinstance(value, str):
                return value
    return None


def load_tokenizer(ref: Any, model: Any = None) -> Any:
    """The tokenizer for a model reference: its folder or GGUF file, the checkpoint's base model,
    or the LM's name.

    `ref` is what `load_model` accepts (or an in-memory model); `model` is the LM loaded from
    it, whose `config.name_or_path` is tried last.
    """
    from transformers import AutoTokenizer

    candidates: list[str] = []
    if isinstance(ref, (str, Path)):
        check_model_ref(str(ref))
        p = Path(ref)
        if p.is_dir() and not any(p.iterdir()):
            raise FileNotFoundError(
                f"model folder {p} is empty; pass a folder holding a model (config.json, weights, "
                "tokenizer files), a .gguf file, a run/checkpoint folder or a hub id")
        folder = resolve_checkpoint(p) if p.is_dir() else None
        if folder is not None:
            candidates += [str(folder), str(p)]
            base = _recorded_base(folder)
            if base:
                candidates.append(base)
        else:
            candidates.append(str(ref))
    lm = model if model is not None else (None if isinstance(ref, (str, Path)) else unwrap_lm(ref))
    if lm is not None:
        name = getattr(lm.config, "name_or_path", None) or getattr(lm.config, "_name_or_path", None)
        if name:
            candidates.append(str(name))
    errors = []
    for c in dict.fromkeys(candidates):  # in order, each once
        try:
            gguf = find_gguf(c)
            return load_gguf_tokenizer(gguf) if gguf else AutoTokenizer.from_pretrained(c)
        except GGUFUnreadable:
            raise  # a damaged file, not a missing tokenizer: say so, not "no tokenizer found"
        except (OSError, ValueError) as exc:
            errors.append(f"{c}: {exc}")
    raise FileNotFoundError(
        "no tokenizer found for the model; tried " + "; ".join(errors or ["nothing"])
        + ". Pass tokenizer= (a folder or hub id) explicitly"
    )


def prepare_tokenizer(tokenizer: Any, is_seq2seq: bool) -> Any:
    """A copy of `tokenizer` ready for batches: a pad token (the EOS) if missing, left padding
    for causal LMs (generation continues the prompt's right end), right for seq2seq."""
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has neither a pad nor an "
            "eos token; add a pad token to it first"
        )
    prepared = copy.deepcopy(tokenizer)
    if prepared.pad_token_id is None:
        prepared.pad_token = prepared.eos_token  # GPT-2 style tokenizers ship without one
    prepared.padding_side = "right" if is_seq2seq else "left"
    return prepared


def _is_lm(obj: Any) -> bool:
    return hasattr(obj, "generate") and hasattr(obj, "config") and hasattr(obj, "parameters")


def unwrap_lm(obj: Any, _depth: int = 0) -> Any:
    """The generating LM inside an rlaif policy, a DDP wrapper, or the object itself."""
    from transformers import PreTrainedModel

    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but keep plain models working without it
        PeftModel = PreTrainedModel  # noqa: N806
    if isinstance(obj, (PreTrainedModel, PeftModel)):
        return obj
    # A wrapper (rlaif's PolicyWithValueHead, torch DDP) may have its own generate() with
    # another signature: prefer the LM it holds.
    for attr in _WRAPPER_ATTRS:
        inner = getattr(obj, attr, None)
        if inner is not None and inner is not obj and _depth < 3:
            try:
                return unwrap_lm(inner, _depth + 1)
            except TypeError:
                continue
    if _is_lm(obj):
        return obj
    raise TypeError(
        f"cannot generate with a {type(obj).__name__}: pass a model id/folder, a Hugging Face "
        f"model, an rlaif policy, or a run folder"
    )


def load_lm(model: Any, tokenizer: Any = None, device: Any = None) -> tuple[Any, Any, bool]:
    """(lm, tokenizer, is_seq2seq) from a path/id, an HF model, a policy, or a run folder.

    An in-memory model is used as it is (moved to `device` only when one is given); the
    tokenizer is loaded when not given (or given as a folder / hub id), never modified.
    """
    if isinstance(model, (str, Path)):
        lm = load_model(model, device=device)
    else:
        lm = unwrap_lm(model)
        if device is not None:
            lm.to(device)
    if tokenizer is None:
        tokenizer = load_tokenizer(model, lm)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)
    return lm, tokenizer, is_seq2seq(lm)
