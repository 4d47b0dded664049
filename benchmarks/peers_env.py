"""The TRL 1.12.0 virtual environment the peer benchmark drives TRL's PPOTrainer in.

TRL deleted `trl.experimental.ppo` in 1.13, so its PPO lives only in an environment of its
own: `$RLAIF_CACHE/bench/trl-1.12` (default `~/.cache/rlaif/bench/trl-1.12`), created once
and reused. Everything but TRL is pinned to the versions of the interpreter that runs the
benchmark (torch, transformers, accelerate, peft, datasets, tokenizers, safetensors, numpy),
so both sides run the very same kernels; torch is the local 2.13.0 CPU wheel where the
machine carries one (`constraints/cpu.txt`), never a CUDA download.

    python benchmarks/peers_env.py     # build (or check) it and print its versions
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

TRL_VERSION = "1.12.0"
PINNED = ("torch", "transformers", "accelerate", "peft", "datasets", "tokenizers",
          "safetensors", "numpy", "huggingface_hub")
REPORTED = ("trl",) + PINNED


def cache_root() -> Path:
    """`$RLAIF_CACHE` if set, else `~/.cache/rlaif` (the demo's cache folder)."""
    env = os.environ.get("RLAIF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlaif"


def venv_dir() -> Path:
    """Where the TRL 1.12 environment lives."""
    return cache_root() / "bench" / f"trl-{TRL_VERSION.rsplit('.', 1)[0]}"


def pins() -> list[str]:
    """`name==version` for TRL 1.12.0 and every shared library, as installed here."""
    out = [f"trl=={TRL_VERSION}"]
    for name in PINNED:
        version = md.version(name)
        out.append(f"{name}=={version.split('+')[0]}" if name == "torch" else f"{name}=={version}")
    return out


def python_path() -> Path:
    """The environment's interpreter."""
    return venv_dir() / "bin" / "python"


def versions(python: Path) -> dict[str, str]:
    """Installed versions of the reported packages in the environment of `python`."""
    code = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
            f"{list(REPORTED)!r}}}))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def ensure_env(verbose: bool = True) -> Path:
    """Create the environment if missing or not at the pins; return its interpreter."""
    python, wanted = python_path(), pins()
    expected = {p.split("==")[0]: p.split("==")[1] for p in wanted}
    if python.exists():
        try:
            have = versions(python)
            if all(have[k].split("+")[0] == v for k, v in expected.items()):
                return python
        except (subprocess.CalledProcessError, KeyError, json.JSONDecodeError):
            pass
    if verbose:
        print(f"building the TRL {TRL_VERSION} environment in {venv_dir()} ({', '.join(wanted)})",
              flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir())], check=True)
    constraints = venv_dir() / "constraints.txt"
    constraints.write_text("\n".join(wanted) + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    proc = subprocess.run(pip + ["-c", str(constraints)] + wanted, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"could not build the TRL {TRL_VERSION} environment in {venv_dir()}:\n"
                           f"{proc.stderr[-3000:]}")
    return python


if __name__ == "__main__":
    env_python = ensure_env()
    print(f"{env_python}: " + ", ".join(f"{k} {v}" for k, v in versions(env_python).items()))
