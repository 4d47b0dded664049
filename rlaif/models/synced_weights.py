"""The tensors an inference engine needs after a training step, by checkpoint name.

    synced_weights(lm)   {checkpoint name: tensor} for every module whose weights training
                         changes: a LoRA layer's base weight with its adapter merged in
                         (W + scale * B @ A, peft's own delta), or a trainable module's
                         parameters (a full fine-tune); each module sent whole (weight and bias),
                         and with the siblings an engine fuses it with (q/k/v, gate/up), so an
                         engine that reloads a fused layer gets every part of it
    save_synced(lm, path, dtype)   the same, written as one safetensors file

Names are the base model's checkpoint names (peft's `base_model.model.` prefix and its
`base_layer` level removed), as a `save_pretrained` folder of the base model has them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

PEFT_PREFIX = "base_model.model."
# Projections vLLM (and most engines) fuse into one layer: a reload needs all of a group.
FUSED_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _lora_layer(module: nn.Module) -> bool:
    """Whether `module` is a peft LoRA layer (it wraps `base_layer` and has adapters)."""
    return hasattr(module, "base_layer") and hasattr(module, "get_delta_weight") \
        and bool(getattr(module, "active_adapters", None))


def _checkpoint_name(name: str) -> str:
    return name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name


def _changed_modules(lm: nn.Module) -> dict[str, nn.Module]:
    """{module name: module} of the modules whose own weights training changes."""
    modules: dict[str, nn.Module] = {}
    for name, module in lm.named_modules():
        if _lora_layer(module):
            modules[name] = module
        elif "lora_" not in name and not any(n.startswith("base_layer") for n, _ in
                                             module.named_parameters(recurse=False)):
            own = list(module.parameters(recurse=False))
            if own and any(p.requires_grad for p in own) and not _inside_lora(name, modules):
                modules[name] = module
    return modules


def _inside_lora(name: str, modules: dict[str, nn.Module]) -> bool:
    """Whether `name` is a part of a LoRA layer already listed (its base_layer, its adapters)."""
    return any(name.startswith(f"{parent}.") and _lora_layer(m) for parent, m in modules.items())


def _with_fused_siblings(lm: nn.Module, modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """`modules` plus the other members of each fused group one of them belongs to."""
    out = dict(modules)
    for name in list(modules):
        parent, _, leaf = name.rpartition(".")
        for group in FUSED_GROUPS:
            if leaf not in group:
                continue
            for sibling in group:
                full = f"{parent}.{sibling}" if parent else sibling
                if full not in out:
                    try:
                        out[full] = lm.get_submodule(full)
                    except AttributeError:
                        pass  # this architecture has no such projection
    return out


def _module_tensors(name: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters under checkpoint names; a LoRA layer's with its adapters merged."""
    if _lora_layer(module):
        base = module.base_layer
        weight = base.weight.detach()
        for adapter in module.active_adapters:
            if adapter in getattr(module, "lora_A", {}) or adapter in getattr(module, "lora_embedding_A", {}):
                weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
        tensors = {f"{name}.weight": weight}
        if getattr(base, "bias", None) is not None:
            tensors[f"{name}.bias"] = base.bias.detach()
        return tensors
    return {f"{name}.{pname}": p.detach() for pname, p in module.named_parameters(recurse=False)}


@torch.no_grad()
def synced_weights(lm: nn.Module) -> dict[str, torch.Tensor]:
    """{checkpoint name: tensor} of everything training changes in `lm` (see the module doc)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in _with_fused_siblings(lm, _changed_modules(lm)).items():
        for key, value in _module_tensors(name, module).items():
            tensors[_checkpoint_name(key)] = value
    return tensors


def save_synced(lm: nn.Module, path: str | Path, dtype: torch.dtype | None = None) -> int:
    """Write `synced_weights(lm)` (cast to `dtype`) to the safetensors file `path`; returns the
    number of tensors."""
    from safetensors.torch import save_file

    tensors = {k: (v.to(dtype) if dtype is not None else v).contiguous().cpu()
               for k, v in synced_weights(lm).items()}
    if not tensors:
        raise ValueError("the policy has no trainable weights to sync to the engine")
    save_file(tensors, str(path))
    return len(tensors)
