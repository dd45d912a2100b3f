#!/usr/bin/env bash
# Checks streamdn on a machine with a CUDA GPU, in one go:
#   1. the install: torch sees the GPU, PyAV, Numba and OpenCV import, streamdn imports;
#   2. the tests marked gpu (CUDA fp16 against the CPU, tensors that stay on the GPU, CUDA
#      training steps): python -m pytest -q -m gpu;
#   3. streamdn bench on the GPU at 1280x720 and 1920x1080 for each model of --models
#      (end-to-end fps, per-stage time, the network alone);
#   4. the validation figures of the models of --models on the GPU (fp16; compare with the model
#      cards' CPU figures): streamdn train --validate ... --device DEV;
#   5. optionally (--train MINUTES), a chunk of `quality` training (configs/train-quality.toml)
#      that stops with a checkpoint; running the script again with the same --out resumes it.
#
# Set-up, once, in the repository (an editable install, as for the tests):
#   pip install torch -e ".[test,eval]"      (a CUDA build of torch; [eval] for the training data)
#
# Usage:
#   scripts/device_check.sh [--out DIR] [--device cuda[:N]] [--frames N] [--models LIST] [--train MINUTES]
#     --out DIR        where the report and the training run go (default: device-check)
#     --device DEV     the GPU to use (default: cuda)
#     --frames N       frames per benchmark (default: 120)
#     --models LIST    comma-separated models to benchmark and validate (default: fast)
#     --train MINUTES  also train `quality` for this many minutes (default: 0, no training)
#
# Every step runs whatever the others did; each one's output and exit code go to DIR/report.txt.
# The script exits 0 when every step passed, 1 otherwise.
set -uo pipefail

OUT=device-check
DEVICE=cuda
FRAMES=120
MODELS=fast
TRAIN_MINUTES=0

usage() { sed -n '16,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=${2:?--out needs a folder}; shift 2 ;;
        --device) DEVICE=${2:?--device needs a value such as cuda or cuda:1}; shift 2 ;;
        --frames) FRAMES=${2:?--frames needs a number}; shift 2 ;;
        --models) MODELS=${2:?--models needs a list such as fast,fast_mc}; shift 2 ;;
        --train) TRAIN_MINUTES=${2:?--train needs a number of minutes}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "device_check.sh: unknown option '$1'; see --help." >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REPORT="$OUT/report.txt"
: > "$REPORT"
FAILED=()
export PYTHONUNBUFFERED=1

step() {   # step NAME COMMAND...: runs COMMAND in the repository, logs its output and exit code
    local name=$1; shift
    echo "=== $name: $*" | tee -a "$REPORT"
    local t0=$SECONDS
    (cd "$REPO" && "$@") 2>&1 | tee -a "$REPORT"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$REPORT"
    [ "$rc" -eq 0 ] || FAILED+=("$name")
}

if command -v nvidia-smi > /dev/null; then
    step gpus nvidia-smi -L
fi
check_install() {   # torch sees the GPU; PyAV, OpenCV, Numba and streamdn import
    python - "$DEVICE" <<'PY'
import sys

import av, cv2, numba, torch

import streamdn

print("streamdn", streamdn.__version__, "from", streamdn.__file__)
print("torch", torch.__version__, "PyAV", av.__version__, "Numba", numba.__version__, "OpenCV", cv2.__version__)
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU: install a CUDA build of torch.")
print("GPU:", torch.cuda.get_device_name(torch.device(sys.argv[1])))
PY
}
step install check_install
if [ ${#FAILED[@]} -ne 0 ]; then
    echo "the install check failed: nothing else to check; report: $REPORT" | tee -a "$REPORT"
    exit 1
fi
step gpu-tests python -m pytest -q -m gpu
IFS=, read -r -a MODEL_LIST <<< "$MODELS"
for model in "${MODEL_LIST[@]}"; do
    for size in 1280x720 1920x1080; do
        step "bench-$model-$size" python -m streamdn bench --synthetic "$size" --frames "$FRAMES" \
            --model "$model" --device "$DEVICE" --json
    done
done
step validate python -m streamdn train --validate "${MODEL_LIST[@]}" --noises awgn20,pg_lowlight --device "$DEVICE"
if [ "$TRAIN_MINUTES" != 0 ]; then
    step train-quality streamdn train --config configs/train-quality.toml \
        --set "out='$OUT/quality'" --set "device='$DEVICE'" --minutes "$TRAIN_MINUTES" -q
    ls -la "$OUT/quality" 2>&1 | tee -a "$REPORT"
fi

if [ ${#FAILED[@]} -eq 0 ]; then
    echo "all steps passed; report: $REPORT" | tee -a "$REPORT"
    exit 0
fi
echo "failed: ${FAILED[*]}; report: $REPORT" | tee -a "$REPORT"
exit 1
