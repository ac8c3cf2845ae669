#!/usr/bin/env bash
# rehearse.sh — bench/gpu end to end without a GPU: builds the bundle from the jars already built
# (build-bundle.sh --skip-build), unpacks it, and runs its run.sh on the emulated CUDA driver
# (RLKERNELS_CUDA_DRIVER=emulator) on a small configuration: the test suite on the cuda backend
# through the bundle's JRE and console launcher, the copy rate, the ops and one log-probs case.
# Fails unless every step passed or was skipped for a tool this machine lacks (no PyTorch, no
# compute-sanitizer). bin/test runs it (Maven's verify phase, when RLKERNELS_CUDA_DRIVER=emulator),
# so the first GPU session runs a script that has already worked.
#
#   bench/gpu/rehearse.sh [--no-tests]
set -euo pipefail
gpu="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$gpu/../.." && pwd)"
tests=""
[ "${1:-}" = "--no-tests" ] && tests="--no-tests"

work="$root/bench/target/gpu-rehearsal"
rm -rf "$work"
mkdir -p "$work"
"$gpu/build-bundle.sh" --skip-build >"$work/build-bundle.log" 2>&1 || { cat "$work/build-bundle.log"; exit 1; }
tar -xJf "$root/bench/gpu/dist/rlkernels-gpu-bundle.tar.xz" -C "$work"

status=0
RLKERNELS_CUDA_DRIVER=emulator RLK_OPS_TRIALS=1 RLK_OPS_REPEATS=1 \
  "$work/rlkernels-gpu-bundle/run.sh" --quick --no-sanitizer $tests --out "$work/results" --cases "256x1000:f32 64x3000:bf16" \
  >"$work/run.log" 2>&1 || status=$?
steps="$work/results/steps.tsv"
if [ ! -f "$steps" ]; then
  cat "$work/run.log"
  echo "rehearse.sh: run.sh left no steps.tsv (exit $status)" >&2
  exit 1
fi
echo "rehearse.sh: run.sh on the emulated driver (exit $status):"
awk -F'\t' '{ printf "  %-20s %-8s %s\n", $1, $2, $3 }' "$steps"
# a step may be skipped only for a tool a GPU machine has and this one does not
bad="$(awk -F'\t' '$2 == "failed" || ($2 == "skipped" && $1 !~ /^(sanitizer-|bench-torch|accuracy|tests)/) { print $1 }' "$steps")"
if [ -z "$tests" ] && ! grep -q $'^tests\tpassed' "$steps" && [[ " $bad " != *" tests "* ]]; then bad="$bad tests"; fi
if [ "$status" != 0 ] || [ -n "$bad" ]; then
  echo "rehearse.sh: failed: ${bad:-run.sh exit $status} (logs: $work/results/logs)" >&2
  exit 1
fi
echo "rehearse.sh: bench/gpu/run.sh completed on the emulated driver ($work/results)"
