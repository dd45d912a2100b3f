#!/usr/bin/env bash
# The GPU checks of streamdn, as ONE call of the `device` tool's run (the device machine has no
# network and starts bare; see ../.library/device/README.md):
#
#   1. here, once per session (PyAV for the device's Python 3.12; .whl is git-excluded):
#        echo /.whl/ >> .git/info/exclude
#        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#          --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl av==18.1.0
#   2. run(command="bash scripts/device_check.sh", carry=[".whl", "runs/quality"], timeout_s=540)
#   3. here: copy the returned quality/ folder to runs/quality (the next call resumes from it).
#
# What it does, each stage logged to $OUT/report.txt whatever the others do:
#   - installs the carried wheels and streamdn itself into /tmp/site (no network, no deps);
#   - the tests marked gpu (CUDA fp16 against CPU, the tensor path, two CUDA training steps);
#   - streamdn bench at 1280x720 and 1920x1080 on BENCH_DEVICE (default cuda);
#   - trains `quality` (configs/train-quality.toml) for TRAIN_MINUTES (default 4) from
#     runs/quality when carried, and leaves the run folder in $OUT/quality (5 files; the tool
#     returns at most 8). TRAIN_ARGS adds `streamdn train` options (e.g. "--set workers=14").
set -uo pipefail
OUT=${OUT:-/tmp/streamdn-device-out}
TRAIN_MINUTES=${TRAIN_MINUTES:-4}
TRAIN_ARGS=${TRAIN_ARGS:-}
BENCH_DEVICE=${BENCH_DEVICE:-cuda}
REPO=$(cd "$(dirname "$0")/.." && pwd)
SITE=/tmp/streamdn-site
mkdir -p "$OUT" "$SITE"
REPORT="$OUT/report.txt"
: > "$REPORT"
stage() {   # stage NAME COMMAND...: runs it from /tmp (not the repo: its streamdn/ folder would
            # shadow the installed package), appends its output and exit code to the report
    local name=$1; shift
    echo "=== $name: $*" | tee -a "$REPORT"
    local t0=$SECONDS
    (cd /tmp && "$@") 2>&1 | tee -a "$REPORT"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$REPORT"
}
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G "$REPO/.whl/*.whl" > /dev/null; then
    stage wheels python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$REPO"/.whl/*.whl
fi
stage install python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SITE" "$REPO"
stage machine bash -c "nvidia-smi -L; python3 -c 'import torch, av, numba, cv2; print(torch.__version__, torch.cuda.is_available(), av.__version__, numba.__version__, cv2.__version__)'"
stage gpu-tests python3 -m pytest -q -p no:cacheprovider -m gpu "$REPO/tests"
for size in 1280x720 1920x1080; do
    stage "bench-$size" python3 -m streamdn bench --synthetic "$size" --frames 120 --device "$BENCH_DEVICE" --json
done
if [ "$TRAIN_MINUTES" != 0 ]; then
    rm -rf "$OUT/quality"
    [ -d "$REPO/runs/quality" ] && cp -r "$REPO/runs/quality" "$OUT/quality"
    # shellcheck disable=SC2086
    stage train-quality python3 -m streamdn train --config "$REPO/configs/train-quality.toml" \
        --set "out='$OUT/quality'" --minutes "$TRAIN_MINUTES" -q $TRAIN_ARGS
    ls -la "$OUT/quality" 2>&1 | tee -a "$REPORT"
fi
