#!/usr/bin/env bash
# The GPU checks and measurements, on a CUDA host whose python3 has PyTorch:
#   tests         the engine's CUDA tests (tests/test_cuda.py: PIL's pixels, the lecture's fp32 steps, each
#                 ENGINE_TUNING choice against the defaults, learning in bf16)
#   profile       a bf16 training step's time by layer (python -m bench.profile)
#   bench         python -m bench: the lecture against the engine, MFU, a whole 3-epoch job and its cold start
#   files         what each of an epoch's files costs this host's CPU and disk (python -m bench.files)
#   tuning        each ENGINE_TUNING choice against the defaults (python -m bench.tuning)
#   bench-tuned   python -m bench again with what the sweep proposes ($TUNING, or OUTDIR/tuning.json's)
#   profile-fp32  the same profile in fp32
# Usage: bench/gpu.sh [OUTDIR [PART...]] (default var/gpu-bench, every part in that order: about 12 minutes
# at most). Each part has a time limit and its own log in OUTDIR; one that fails does not stop the others.
#
# Where the host has no package index, run bench/wheels.sh first where there is one: the wheels it leaves in .whl/
# are installed here into a scratch folder.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-var/gpu-bench}
shift || true
parts=${*:-tests profile bench files tuning bench-tuned profile-fp32}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    $py -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/alexnet-jobs-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/alexnet-jobs-site${PYTHONPATH:+:$PYTHONPATH}
fi

run() {  # run NAME SECONDS COMMAND...: under a time limit, its output on screen and in OUTDIR/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most $limit s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]}"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv | tee "$out/gpu.csv"
for part in $parts; do
    case $part in
    tests) run tests 120 $py -m pytest --noconftest -q -rs -p no:cacheprovider tests/test_cuda.py ;;
    profile) run profile 60 $py -m bench.profile --precision bf16 ;;
    bench) run bench 130 $py -m bench ;;
    files) run files 40 $py -m bench.files ;;
    tuning)
        run tuning 200 $py -m bench.tuning --budget 185 --timeout 100 --out "$out/tuning.json" --candidates \
            defaults upscale_once=1 conv1_channels=4 conv1_channels=8 eval_batch=512 cudnn_benchmark=train \
            cudnn_benchmark=off warm_up=1 compile=default compile=reduce-overhead
        ;;
    bench-tuned)
        tuning=${TUNING:-$($py -c "import json, sys; print(json.load(open(sys.argv[1]))['chosen'] or '')" \
            "$out/tuning.json" 2>/dev/null)}
        if [ -n "$tuning" ]; then
            run bench-tuned 100 $py -m bench --tuning "$tuning"
        else
            echo "== bench-tuned: skipped, the sweep proposed nothing"
        fi
        ;;
    profile-fp32) run profile-fp32 40 $py -m bench.profile --precision fp32 ;;
    *) echo "unknown part $part (tests, profile, bench, files, tuning, bench-tuned, profile-fp32)" >&2 ;;
    esac
done
