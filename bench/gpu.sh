#!/usr/bin/env bash
# The GPU measurements in one go, on a CUDA host whose python3 has PyTorch: a training step's profile (bf16 and fp32),
# `python -m bench` (the lecture against the engine, MFU, a whole 3-epoch job and its cold start), then the engine's
# speed choices one at a time (`python -m bench.tuning`) and, if some beat the defaults, `python -m bench` again
# with them. Each part has a time limit and its own log in OUTDIR (default var/gpu-bench); a part that fails does
# not stop the others. At most 8½ minutes.
#
# Where the host has no package index, run bench/wheels.sh first where there is one: the wheels it leaves in .whl/
# are installed here into a scratch folder.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-var/gpu-bench}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    $py -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/alexnet-jobs-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/alexnet-jobs-site${PYTHONPATH:+:$PYTHONPATH}
fi

part() {  # part NAME SECONDS COMMAND...: run it under a time limit, its output on screen and in OUTDIR/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most $limit s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]}"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv | tee "$out/gpu.csv"
part profile-bf16 60 $py -m bench.profile --precision bf16
part profile-fp32 40 $py -m bench.profile --precision fp32
part bench 130 $py -m bench
part tuning 170 $py -m bench.tuning --budget 155 --timeout 100 --out "$out/tuning.json" --candidates defaults \
    upscale_once=1 conv1_channels=4 conv1_channels=8 eval_batch=512 cudnn_benchmark=train cudnn_benchmark=off \
    warm_up=1 compile=default compile=reduce-overhead
chosen=$($py -c "import json, sys; print(json.load(open(sys.argv[1])).get('chosen') or '')" "$out/tuning.json")
if [ -n "$chosen" ]; then
    part bench-tuned 100 $py -m bench --tuning "$chosen"
fi
