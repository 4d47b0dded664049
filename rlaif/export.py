"""What a run leaves to deploy: `RUN/final/`, a standard Hugging Face model folder.

    final/
        model.safetensors (+ config.json)   LoRA merged into the base (default), or
        adapter_model.safetensors (+ adapter_config.json)   a PEFT adapter (`merge_lora=False`)
        tokenizer.json, tokenizer_config.json (+ chat_template.jinja)
        generation_config.json              the sampling settings the run used
        README.md                           the model card (`rlaif.model_card`)
        rlaif_export.json                   what marks the folder as written here (EXPORT_MARKER)

`AutoModelForCausalLM` / `AutoModelForSeq2SeqLM.from_pretrained(final)` and
`pipeline("text-generation", model=final)` load it with transformers alone (an adapter
folder needs peft). The value head is not part of it: it stays in the checkpoints, for
resuming. `write_final` is what every trainer calls; `export_checkpoint` does the same for a
saved checkpoint (`rlaif export`). The folder is built beside its target and renamed into
place, so a reader never sees half of it.

Safety: weights holding NaN or inf are refused (the tensor is named), so a diverged model never
becomes a model folder. Every folder written here holds `rlaif_export.json` (EXPORT_MARKER):
that is how an earlier export is recognised, the only non-empty folder `export_checkpoint`
replaces without `force`; a file is never replaced. `export_checkpoint` exports only a
checkpoint whose `files.json` verifies (`rlaif.runs.manifest`), naming a missing, truncated or
altered file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

from rlaif.io import atomic_write_dir, atomic_write_json, atomic_write_text
from rlaif.runs.folder import CARD_FILE, CHECKPOINTS_DIR, CONFIG_FILE, FINAL_DIR
from rlaif.runs.manifest import damaged_file

logger = logging.getLogger(__name__)

EXPORT_MARKER = "rlaif_export.json"  # {"written_by": "rlaif", "weights": WEIGHTS_*}
WEIGHTS_FULL, WEIGHTS_MERGED, WEIGHTS_ADAPTER = "full model", "LoRA merged", "PEFT adapter"
# GenerationConfig fields a run's `generation` section sets (GenerationConfig(**kwargs) takes them).
_GENERATION_KEYS = ("min_new_tokens", "max_new_tokens", "do_sample", "top_k", "top_p", "temperature",
                    "eos_token_id", "pad_token_id")


def is_peft_model(model: Any) -> bool:
    """True for a peft `PeftModel` (an LM carrying adapters)."""
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency; a plain transformers model needs no check
        return False
    return isinstance(model, PeftModel)


def write_final(model: Any, tokenizer: Any, out_dir: str | Path, *, merge_lora: bool = True,
                generation_config: dict[str, Any] | None = None, card: str | None = None) -> Path:
    """Write `model` (a transformers model, a peft model or an rlaif policy) as a standard HF
    folder at `out_dir`, atomically: LoRA merged (the caller's model is left as it was) or the
    adapter alone, the tokenizer, `generation_config.json`, `card` as README.md and
    EXPORT_MARKER. NonFiniteWeights when a weight holds NaN or inf; ValueError naming `out_dir`
    when the folder cannot be written."""
    from rlaif.models.load import unwrap_lm

    lm = unwrap_lm(model)
    out = Path(out_dir)
    check_finite_weights(lm, out)
    weights = (WEIGHTS_FULL if not is_peft_model(lm) else WEIGHTS_MERGED if merge_lora
               else WEIGHTS_ADAPTER)

    def build(tmp: Path) -> None:
        if weights == WEIGHTS_ADAPTER:
            lm.save_pretrained(tmp)  # adapter_config.json + adapter_model.safetensors
            base = lm.get_base_model()
        else:
            base = lm.get_base_model() if is_peft_model(lm) else lm
            _save_plain(lm, base, tmp)
        _write_generation_config(base, generation_config, tmp)
        tokenizer.save_pretrained(tmp)
        if card is not None:
            atomic_write_text(tmp / CARD_FILE, card)
        atomic_write_json(tmp / EXPORT_MARKER, {"written_by": "rlaif", "weights": weights})

    try:
        atomic_write_dir(out, build)
    except OSError as exc:  # FileNotFoundError included: a folder above `out` vanished mid-write
        raise ValueError(f"{out}: the model folder could not be written ({exc.strerror or exc}); "
                         "nothing was replaced there: free space or choose a writable folder") from None
    return out


class NonFiniteWeights(ValueError):
    """A model whose weights hold NaN or inf: it diverged, and is never written as a model."""


def check_finite_weights(lm: Any, out: str | Path) -> None:
    """Refuse weights holding NaN or inf, naming the first such tensor and how much of it."""
    import torch

    for name, tensor in lm.state_dict().items():
        if not torch.is_floating_point(tensor):
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise NonFiniteWeights(
                f"weight {name} holds {bad} of {tensor.numel()} values that are NaN or inf: the "
                f"model diverged, so no model folder is written to {out}; export an earlier "
                "checkpoint whose weights are finite (rlaif export RUN/checkpoints/step-N --out DIR)")


def is_export_folder(folder: str | Path) -> bool:
    """Whether `folder` was written by `write_final` (it holds EXPORT_MARKER)."""
    return (Path(folder) / EXPORT_MARKER).is_file()


def check_export_target(out: str | Path, *, force: bool = False) -> None:
    """Refuse, before any work, an export folder that is a file, that holds anything but an
    earlier export (unless `force`), or whose parent cannot be written (ValueError)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; an export writes a whole model folder: choose a "
                         "folder (new, empty, or an earlier export)")
    if out.is_dir() and not force and not is_export_folder(out):
        held = sorted(p.name for p in out.iterdir())
        if held:
            listed = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
            raise ValueError(
                f"--out {out} already holds files that are not an earlier export ({listed}); an "
                "export replaces the whole folder: choose a new or empty folder, or pass --force "
                "to replace it with everything in it")
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a folder; choose a path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {parent} is not writable (the folder is built beside its "
                         "target and renamed into place); choose a writable folder")


def verify_export_source(policy_folder: Path) -> None:
    """Refuse a checkpoint whose files changed since they were written, or that records none
    (no files.json), naming the file."""
    from rlaif.models.policy_layout import POLICY_DIR

    root = policy_folder.parent if policy_folder.name == POLICY_DIR else policy_folder
    problem = damaged_file(root, required=True)
    if problem is not None:
        raise ValueError(
            f"checkpoint {root} cannot be exported: {problem}; export an earlier checkpoint whose "
            "files verify (rlaif export RUN/checkpoints/step-N), or a checkpoint written by rlaif "
            "(a checkpoints/step-N folder records its files in files.json)")


def _save_plain(lm: Any, base: Any, folder: Path) -> None:
    """`base.save_pretrained` with LoRA merged into its weights when `lm` carries adapters."""
    state = merged_state_dict(lm) if is_peft_model(lm) else None
    if is_peft_model(lm) and state is None:  # a peft layout merged_state_dict does not know
        base = copy.deepcopy(lm).merge_and_unload()
    base.save_pretrained(folder, state_dict=state)
    config_path = folder / "config.json"
    data = json.loads(config_path.read_text())
    if data.get("use_cache") is False:  # training turned the KV cache off (gradient checkpointing)
        data["use_cache"] = True
        atomic_write_text(config_path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def merged_state_dict(peft_model: Any) -> dict[str, Any] | None:
    """The base model's state dict with every LoRA layer's delta added to its weight, under the
    plain transformers names; the model is not changed (only merged weights are new tensors).

    None when the model holds peft modules other than plain LoRA layers (DoRA, modules_to_save):
    the caller then merges a copy with peft's own `merge_and_unload`."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    adapter = peft_model.active_adapter
    if not isinstance(adapter, str):
        return None
    state: dict[str, Any] = {}
    for name, tensor in base.state_dict().items():
        if ".lora_A." in name or ".lora_B." in name:
            continue
        if "lora_" in name or "modules_to_save" in name or "original_module" in name:
            return None
        state[name.replace(".base_layer.", ".")] = tensor
    for module_name, module in base.named_modules():
        if not isinstance(module, LoraLayer) or adapter not in getattr(module, "lora_A", {}):
            continue
        if getattr(module, "merged", False):
            return None  # already merged in place: the base weight holds the delta
        key = f"{module_name}.weight"
        weight = state[key]
        state[key] = weight + module.get_delta_weight(adapter).to(weight.device, weight.dtype)
    return state


def generation_settings(lm: Any, tokenizer: Any, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The generation config of a run: its sampling settings with the EOS and pad ids it used."""
    from rlaif.models.generate import eos_token_ids

    eos = sorted(eos_token_ids(lm, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0] if eos else None
    return {**gen_kwargs, "eos_token_id": eos[0] if len(eos) == 1 else eos, "pad_token_id": pad}


def _write_generation_config(base: Any, settings: dict[str, Any] | None, folder: Path) -> None:
    """generation_config.json: the model's own, updated with the run's settings."""
    from transformers import GenerationConfig

    own = getattr(base, "generation_config", None)
    data = own.to_dict() if own is not None else {}
    data.update({k: v for k, v in (settings or {}).items() if k in _GENERATION_KEYS})
    data.pop("transformers_version", None)
    GenerationConfig(**data).save_pretrained(folder)


def find_run_dir(path: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to (config.yaml beside checkpoints/), or None."""

    p = Path(path).resolve()
    for candidate in (p, *list(p.parents)[:4]):
        if (candidate / CONFIG_FILE).is_file() and (candidate / CHECKPOINTS_DIR).is_dir():
            return candidate
    return None


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """The step of the checkpoint a path names (a run folder: its latest), or None."""
    from rlaif.models.policy_layout import POLICY_DIR
    from rlaif.models.load import resolve_checkpoint
    from rlaif.runs.folder import step_of

    folder = resolve_checkpoint(checkpoint)
    return step_of(folder.parent if folder.name == POLICY_DIR else folder)


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, merge_lora: bool = True,
                      card: str | None = None, force: bool = False) -> Path:
    """`write_final` for a saved policy: a run folder (its latest checkpoint), a step-N folder
    or its policy/ folder; the generation settings come from the run's config.yaml when found.

    Refused before loading: an `out_dir` `check_export_target` refuses (`force`: replace a
    folder of other files), a checkpoint whose files.json does not verify."""
    from rlaif.models.load import (
        load_policy_lm,
        load_tokenizer,
        prepare_tokenizer,
        read_policy_meta,
        resolve_checkpoint,
    )

    folder = resolve_checkpoint(checkpoint)
    meta = read_policy_meta(folder)  # FileNotFoundError naming the folder when it is no policy
    check_export_target(out_dir, force=force)
    verify_export_source(folder)
    lm = load_policy_lm(folder)
    tokenizer = prepare_tokenizer(load_tokenizer(checkpoint, lm), bool(meta["is_seq2seq"]))
    gen_kwargs: dict[str, Any] = {}
    run_dir = find_run_dir(folder)
    if run_dir is not None:
        from rlaif.config import load_config

        try:
            gen_kwargs = load_config(run_dir / CONFIG_FILE).generation.generate_kwargs()
        except ValueError as exc:  # another trainer's config: the model's own settings stay
            logger.warning("%s: generation settings not read (%s)", run_dir / CONFIG_FILE, exc)
    return write_final(lm, tokenizer, out_dir, merge_lora=merge_lora,
                       generation_config=generation_settings(lm, tokenizer, gen_kwargs), card=card)
