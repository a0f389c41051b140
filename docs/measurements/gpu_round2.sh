#!/usr/bin/env bash
# The GPU figures of issue #15 (docs/performance.md), in one pass, each step under its own time limit.
#
#   bash docs/measurements/gpu_round2.sh OUTDIR [SHARED] [OLD_TREE]
#
# SHARED: the folder holding data/cifar10-jpeg.tar.gz and tools/prepare_cifar10.py (default ../shared);
# OLD_TREE: a checkout of an earlier commit, timed the same way as the baseline (optional; e.g. a `git archive`
# of c7eb403, round 2's final code, before round 3's group-major channel groups).
# Everything goes to OUTDIR/gpu.log. SMOKE=1 runs every step at toy sizes on the CPU (checks the script).
# ONLY="cuda-tests bench-darts-1 ..." runs only the named steps (the names the log prints; the
# CIFAR-10 preparation runs whenever e2e or hessian-tf32 does), e.g. to fit one 600-s device call.
# The step compile-background (named in ONLY only) starts the compile bench at once, beside the
# other steps, logged to OUTDIR/compile.log with each line's second: compiling is CPU work, so the
# GPU steps keep their timings; its timed steps are clean only where they begin after the last
# other step ended (compare the times in the two logs).
set -u
out=${1:?OUTDIR}
shared=${2:-../shared}
old=${3:-}
mkdir -p "$out"
log="$(cd "$out" && pwd)/gpu.log"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if [ "${SMOKE:-0}" = 1 ]; then
    size=(--device cpu --set channels=4 --set cells=3 --set batch_size=16)
    steps=(--steps 2 --warmup 1)
    e2e=(--device cpu --set channels=4 --set cells=3 --set data_limit=2000 --epochs 2)
    tf32=(--device cpu --channels 4 --cells 3 --states 0,2 --batches 1 --images 2000)
    limit="--limit 3000"
else
    size=()
    steps=(--steps 30 --warmup 5)
    e2e=(--epochs 4)
    tf32=(--states 0,30,90 --batches 2)
    limit=""
fi
cifar=/tmp/cifar-full

wanted() {  # wanted NAME...: whether ONLY (if set) names any of them
    [ -z "${ONLY:-}" ] && return 0
    local name
    for name in "$@"; do
        [[ " $ONLY " == *" $name "* ]] && return 0
    done
    return 1
}

step() {  # step NAME SECONDS COMMAND...: if wanted, run_step
    wanted "$1" || return 0
    run_step "$@"
}

run_step() {  # run_step NAME SECONDS COMMAND...: run under a time limit, everything into the log
    local name=$1 seconds=$2
    shift 2
    echo "=== $name: $* ($(date -u +%T))" | tee -a "$log"
    local started=$SECONDS
    timeout "$seconds" "$@" >>"$log" 2>&1
    echo "=== $name: exit $?, $((SECONDS - started)) s" | tee -a "$log"
}

# shellcheck source=docs/measurements/stamp.sh
source "$(dirname "$0")/stamp.sh"

compile_bench=(bench --optimizer darts --space 1 "${steps[@]}" --hessian-methods= --compile "${size[@]}")
if [ -n "${ONLY:-}" ] && wanted compile-background; then
    (
        echo "=== compile-background: started $(date -u +%T)"
        timeout "${COMPILE_SECONDS:-400}" "$py" -m harness "${compile_bench[@]}" 2>&1 | stamp
        echo "=== compile-background: exit ${PIPESTATUS[0]}, ended $(date -u +%T)"
    ) >"$(dirname "$log")/compile.log" 2>&1 &
fi
{ nvidia-smi -L; "$py" -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } >>"$log" 2>&1
wanted cifar e2e hessian-tf32 && run_step cifar 120 "$py" "$shared/tools/prepare_cifar10.py" "$cifar" $limit
step cuda-tests 120 "$py" -m pytest -q -p no:cacheprovider tests/test_inference.py tests/test_fusion.py -k cuda
step bench-darts-1 150 "$py" -m harness bench --optimizer darts --space 1 "${steps[@]}" --profile "${size[@]}"
step bench-darts-3 120 "$py" -m harness bench --optimizer darts --space 3 "${steps[@]}" --hessian-methods=lanczos "${size[@]}"
step bench-sdarts-adv-1 120 "$py" -m harness bench --optimizer sdarts-adv --space 1 "${steps[@]}" --hessian-methods= "${size[@]}"
step hessian-tf32 150 "$py" docs/measurements/hessian_tf32.py --data "$cifar" "${tf32[@]}"
if wanted e2e; then
    echo "=== e2e: harness run darts space 1 ($(date -u +%T))" | tee -a "$log"
    rm -rf /tmp/e2e
    started=$SECONDS
    timeout 150 "$py" -m harness run --optimizer darts --space 1 --benchmark synthetic --data "$cifar" --out /tmp/e2e \
        "${e2e[@]}" 2>&1 | stamp >>"$log"
    echo "=== e2e: $((SECONDS - started)) s" | tee -a "$log"
fi
if [ -n "$old" ]; then
    (cd "$old" && PYTHONPATH=$PWD step bench-old-darts-1 150 "$py" -m harness bench --optimizer darts --space 1 \
        "${steps[@]}" --hessian-methods=lanczos "${size[@]}")
fi
[ "${SMOKE:-0}" = 1 ] || step bench-compile-1 300 "$py" -m harness "${compile_bench[@]}"
echo "=== other steps done ($(date -u +%T))" | tee -a "$log"
wait
echo "=== done ($(date -u +%T))" | tee -a "$log"
