"""GGUF models (llama.cpp's single-file format): found by path, loaded dequantised as ordinary models.

A model reference is GGUF when it is a `.gguf` file, or a folder holding exactly one `.gguf`
file and no `config.json` (a folder saved by transformers wins). transformers rebuilds the
config and the tokenizer from the file's metadata (the `gguf` package reads it) and unpacks
every quantised tensor into `dtype` (default float32). The loaded model is a plain dense model:
its quantizer marker is dropped, so training can update it and `save_pretrained` writes
ordinary safetensors. Its `config.name_or_path` is the `.gguf` file, so whatever is saved from
it (a LoRA adapter's base, a policy's `policy.json`) names a path this module loads again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_SUFFIX = ".gguf"
CONFIG_FILE = "config.json"  # a transformers model folder


@dataclass(frozen=True)
class GGUFFile:
    """One `.gguf` file, as transformers takes it: the folder and the file name in it."""

    folder: Path
    name: str

    @property
    def path(self) -> Path:
        """The file itself."""
        return self.folder / self.name


def find_gguf(ref: str | Path) -> GGUFFile | None:
    """The GGUF file `ref` names (a `.gguf` file, or the only one in a folder without config.json), else None."""
    p = Path(ref)
    if p.suffix.lower() == GGUF_SUFFIX:
        if not p.is_file():
            raise FileNotFoundError(f"GGUF file {p} not found; pass the path of an existing .gguf file")
        return GGUFFile(p.parent, p.name)
    if not p.is_dir() or (p / CONFIG_FILE).is_file():
        return None
    found = sorted(f.name for f in p.iterdir() if f.suffix.lower() == GGUF_SUFFIX and f.is_file())
    if len(found) > 1:
        raise ValueError(
            f"{p} holds {len(found)} GGUF files ({', '.join(found)}) and a model folder may hold "
            f"only one; pass the file itself, e.g. {p / found[0]}"
        )
    return GGUFFile(p, found[0]) if found else None


class GGUFUnreadable(ValueError):
    """A .gguf file that cannot be parsed (truncated, damaged, or not GGUF at all)."""


@contextmanager
def reading(source: GGUFFile, what: str) -> Iterator[None]:
    """Turn a parser's error inside the block into GGUFUnreadable naming the file and the fix."""
    try:
        yield
    except (GGUFUnreadable, MemoryError):
        raise
    except Exception as exc:  # the gguf reader raises struct, index, key and value errors alike
        raise GGUFUnreadable(
            f"{source.path}: not a readable GGUF file, its {what} could not be read "
            f"({type(exc).__name__}: {str(exc)[:200]}); it may be truncated or damaged: download it "
            f"again (its size is {source.path.stat().st_size} bytes)") from None


def load_gguf_config(source: GGUFFile) -> Any:
    """The transformers config that the GGUF file's metadata describes."""
    from transformers import AutoConfig

    with reading(source, "metadata"):
        return AutoConfig.from_pretrained(source.folder, gguf_file=source.name)


def load_gguf_tokenizer(source: GGUFFile) -> Any:
    """The tokenizer (vocabulary, merges, special tokens, chat template) stored in the GGUF file."""
    from transformers import AutoTokenizer

    with reading(source, "tokenizer"):
        return AutoTokenizer.from_pretrained(source.folder, gguf_file=source.name)


def load_gguf_model(source: GGUFFile, *, dtype: Any = None, config: Any = None) -> Any:
    """The causal LM in the GGUF file, dequantised to `dtype` (None or "auto": float32), a plain
    dense model (see `drop_quantizer_marker`); `config` defaults to the file's own."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype is None or dtype == "auto":  # the file's own types are block formats, not torch dtypes
        dtype = torch.float32
    kwargs: dict[str, Any] = {"gguf_file": source.name, "dtype": dtype}
    if config is not None:
        kwargs["config"] = config
    try:  # transformers >= 5 may keep the blocks packed (untrainable) unless told to unpack them
        from transformers.utils.quantization_config import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=source.name, dequantize=True)
    except ImportError:  # older transformers always dequantise
        pass
    with reading(source, "weights"):
        model = AutoModelForCausalLM.from_pretrained(source.folder, **kwargs)
    drop_quantizer_marker(model)
    model.config.name_or_path = str(source.path)
    return model


def drop_quantizer_marker(model: Any) -> None:
    """Forget, in place, that `model` came from a quantised file: its weights are already dense.

    transformers keeps a "gguf" quantizer on a model loaded from a GGUF file unless it was
    dequantised on request, and `save_pretrained` refuses such a model ("not serializable").
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)  # hf_quantizer, config entry, is_quantized
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
