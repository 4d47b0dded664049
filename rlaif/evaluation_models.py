"""Load a language model for evaluation from whatever the user has at hand.

Accepted: a hub id or model folder, an in-memory Hugging Face model (or peft model), an
rlaif policy object, a PPO run folder (`<run>/checkpoints/latest`) or one checkpoint folder
(a LoRA adapter or a full model, saved by `rlaif.ppo.policy.PolicyWithValueHead.save`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_POLICY_ATTRS = ("pretrained_model", "model", "lm", "policy")


def resolve_checkpoint(path: str | Path) -> Path:
    """The policy folder of a run (its latest checkpoint), of a step-N checkpoint, or `path`.

    PPO runs save `<run>/checkpoints/latest` (a file naming `step-N`) and
    `step-N/policy/` (adapter or model, value_head.pt, policy.json); see rlaif.ppo.checkpoint.
    """
    from rlaif.ppo.checkpoint import POLICY_DIR, latest_checkpoint

    p = Path(path)
    if (p / "checkpoints").is_dir():
        found = latest_checkpoint(p)
        if found is None or not found.is_dir():
            raise FileNotFoundError(
                f"{p} looks like a run folder but checkpoints/latest names no checkpoint folder "
                f"({found}); pass a checkpoint folder instead "
                f"(one of {sorted(c.name for c in (p / 'checkpoints').iterdir())})"
            )
        p = found
    if (p / POLICY_DIR).is_dir():
        p = p / POLICY_DIR
    return p


def _is_lm(obj: Any) -> bool:
    return hasattr(obj, "generate") and hasattr(obj, "config") and hasattr(obj, "parameters")


def _unwrap(obj: Any) -> Any:
    """The generating LM inside an rlaif policy (value-head wrapper) or the object itself."""
    from transformers import PreTrainedModel

    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but keep plain models working without it
        PeftModel = PreTrainedModel  # noqa: N806
    if isinstance(obj, (PreTrainedModel, PeftModel)):
        return obj
    # A wrapper (rlaif's PolicyWithValueHead) may have its own generate() with another
    # signature: prefer the LM it holds.
    for attr in _POLICY_ATTRS:
        inner = getattr(obj, attr, None)
        if inner is not None and _is_lm(inner):
            return inner
    if _is_lm(obj):
        return obj
    raise TypeError(
        f"cannot generate with a {type(obj).__name__}: pass a model id/folder, a Hugging Face "
        f"model, an rlaif policy, or a run folder"
    )


def _base_name(folder: Path) -> str | None:
    """The base model a checkpoint was trained from, from its json metadata."""
    for name in ("adapter_config.json", "policy.json", "rlaif_policy.json", "policy_config.json"):
        f = folder / name
        if f.is_file():
            data = json.loads(f.read_text())
            for key in ("base_model_name_or_path", "base_model", "model_name", "model"):
                if isinstance(data.get(key), str):
                    return data[key]
    return None


def _load_from_path(path: Path | str) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    p = Path(path)
    if p.is_dir():
        p = resolve_checkpoint(p)
        if (p / "value_head.pt").is_file():  # saved by rlaif's PPO policy
            from rlaif.ppo.policy import PolicyWithValueHead

            return _unwrap(PolicyWithValueHead.load(p, with_reference=False))
        if (p / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

            task = json.loads((p / "adapter_config.json").read_text()).get("task_type")
            cls = AutoPeftModelForSeq2SeqLM if task == "SEQ_2_SEQ_LM" else AutoPeftModelForCausalLM
            return cls.from_pretrained(p)
    source = str(p) if Path(path).exists() else str(path)
    config = AutoConfig.from_pretrained(source)
    cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return cls.from_pretrained(source)


def _load_tokenizer(model_ref: Any, lm: Any) -> Any:
    from transformers import AutoTokenizer

    candidates: list[str] = []
    if isinstance(model_ref, (str, Path)):
        p = Path(model_ref)
        folder = resolve_checkpoint(p) if p.is_dir() else None
        if folder is not None:
            candidates += [str(folder), str(p)]
            base = _base_name(folder)
            if base:
                candidates.append(base)
        else:
            candidates.append(str(model_ref))
    name = getattr(lm.config, "name_or_path", None) or getattr(lm.config, "_name_or_path", None)
    if name:
        candidates.append(str(name))
    errors = []
    for c in candidates:
        try:
            return AutoTokenizer.from_pretrained(c)
        except (OSError, ValueError) as exc:
            errors.append(f"{c}: {exc}")
    raise FileNotFoundError(
        "no tokenizer found for the model; tried " + "; ".join(errors or ["nothing"])
        + ". Pass tokenizer= (a folder or hub id) explicitly"
    )


def load_lm(model: Any, tokenizer: Any = None, device: str | None = None) -> tuple[Any, Any, bool]:
    """(lm, tokenizer, is_seq2seq) from a path/id, an HF model, a policy, or a run folder."""
    from transformers import AutoTokenizer

    if isinstance(model, (str, Path)):
        import torch

        lm = _load_from_path(model)
        lm.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    else:
        lm = _unwrap(model)
        if device is not None:
            lm.to(device)
    if tokenizer is None:
        tokenizer = _load_tokenizer(model, lm)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    is_seq2seq = bool(getattr(lm.config, "is_encoder_decoder", False))
    return lm, tokenizer, is_seq2seq
