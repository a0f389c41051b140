#!/usr/bin/env bash
# Round 4 of issue #15 on one GPU, in one device call (docs/performance.md, "Round 4").
#
#   bash docs/measurements/gpu_round4.sh OUTDIR SHARED BEFORE_TREE
#
# SHARED: the folder holding data/cifar10-jpeg.tar.gz and tools/prepare_cifar10.py; BEFORE_TREE:
# a checkout of earlier code (e.g. a `git archive` of d9e1aed, the code before round 4), timed
# beside this one; now-darts-1-again repeats the first timing after it, for order effects.
# Steps run most important first (the CUDA tests after the first timings), each under its own
# limit, and none starts after DEADLINE seconds (default 380); everything goes to
# OUTDIR/gpu.log. SMOKE=1 runs it at toy sizes on the CPU.
# ONLY="cuda-tests now-darts-1 ..." runs only the named steps (the names the log prints).
# (In the session that measured round 4, max_pool3d was the variant "pool-3d" and the code's
# max-pool max_pool2d; the code now has the 3-d form, and "pool-2d" is the comparison. The variant
# "cat-stack" times round 5's `GroupStack` against the torch.cat it replaced; the steps "no-triton-*"
# time PyTorch's kernels in place of the Triton kernels the model runs since round 8.)
set -u
out=${1:?OUTDIR}
shared=${2:?SHARED}
before=$(cd "${3:?BEFORE_TREE}" && pwd)
mkdir -p "$out"
log="$(cd "$out" && pwd)/gpu.log"
py=${PYTHON:-python3}
deadline=${DEADLINE:-380}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
variants=("$py" "$PWD/docs/measurements/gpu_variants.py")
if [ "${SMOKE:-0}" = 1 ]; then
    size=(--device cpu --set channels=4 --set cells=3 --set batch_size=16)
    steps=(--steps 2 --warmup 1)
    e2e=(--device cpu --set channels=4 --set cells=3 --set data_limit=2000 --epochs 1)
    limit="--limit 3000"
    device=cpu
    export TRITON_INTERPRET=1  # the Triton variant on the CPU: Triton's interpreter
else
    size=()
    steps=(--steps 30 --warmup 5)
    e2e=(--epochs 3)
    limit=""
    device=cuda
fi
darts() { echo bench --optimizer darts --space "$1" "${steps[@]}" --hessian-methods=lanczos "${size[@]}"; }
adv=(bench --optimizer sdarts-adv --space 1 "${steps[@]}" --hessian-methods= "${size[@]}")
run=(run --optimizer darts --space 1 --benchmark synthetic --data /tmp/cifar-full "${e2e[@]}")

step() {  # step NAME SECONDS COMMAND...: run under min(SECONDS, time left), into the log
    local name=$1 seconds=$2
    shift 2
    [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]] && return
    local left=$((deadline - SECONDS))
    if [ "$left" -lt 15 ]; then
        echo "=== $name: skipped (deadline)" | tee -a "$log"
        return
    fi
    [ "$seconds" -gt "$left" ] && seconds=$left
    echo "=== $name: $* ($(date -u +%T))" | tee -a "$log"
    local started=$SECONDS
    timeout "$seconds" "$@" 2>&1 | stamp >>"$log"
    echo "=== $name: exit ${PIPESTATUS[0]}, $((SECONDS - started)) s" | tee -a "$log"
}

# shellcheck source=docs/measurements/stamp.sh
source "$(dirname "$0")/stamp.sh"

{ nvidia-smi -L; "$py" -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } >>"$log" 2>&1
# shellcheck disable=SC2046  # darts N prints the words of a bench command
step now-darts-1 60 "${variants[@]}" now --top 40 $(darts 1) --profile
step no-triton-darts-1 60 "${variants[@]}" now --top 40 $(darts 1) --profile --set triton_kernels=false
[ "$device" = cuda ] && step cuda-tests 90 "$py" -m pytest -q -p no:cacheprovider tests/test_inference.py \
    tests/test_fusion.py tests/test_oneshot_model.py tests/test_fast_paths.py tests/test_hessian.py \
    tests/test_triton_kernels.py -k "cuda or graphed"
step pool-2d-darts-1 45 "${variants[@]}" pool-2d $(darts 1)
step plain-conv-darts-1 45 "${variants[@]}" plain-conv --top 40 $(darts 1) --profile
step cat-stack-darts-1 45 "${variants[@]}" cat-stack $(darts 1)
step now-darts-3 45 "${variants[@]}" now $(darts 3)
step now-sdarts-adv-1 45 "${variants[@]}" now "${adv[@]}"
step cifar 60 "$py" "$shared/tools/prepare_cifar10.py" /tmp/cifar-full $limit
rm -rf /tmp/e2e-now /tmp/e2e-pool-2d /tmp/e2e-no-triton
step now-e2e 80 "${variants[@]}" now "${run[@]}" --out /tmp/e2e-now
step no-triton-e2e 80 "${variants[@]}" now "${run[@]}" --out /tmp/e2e-no-triton --set triton_kernels=false
(cd "$before" && PYTHONPATH=$before step before-darts-1 45 "$py" -m harness $(darts 1))
(cd "$before" && PYTHONPATH=$before step before-sdarts-adv-1 45 "$py" -m harness "${adv[@]}")
step now-darts-1-again 45 "${variants[@]}" now $(darts 1)
step pool-2d-darts-3 45 "${variants[@]}" pool-2d $(darts 3)
step pool-2d-sdarts-adv-1 45 "${variants[@]}" pool-2d "${adv[@]}"
step pool-2d-e2e 80 "${variants[@]}" pool-2d "${run[@]}" --out /tmp/e2e-pool-2d
step now-darts-1-no-autotune 45 "${variants[@]}" now $(darts 1) --set cudnn_benchmark=false
echo "=== done ($(date -u +%T), $SECONDS s)" | tee -a "$log"
