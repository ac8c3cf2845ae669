#!/usr/bin/env bash
# run.sh — the GPU half of bench/gpu: run it from the unpacked bundle on a machine with an NVIDIA
# driver (no Java, Maven or network needed; PyTorch and compute-sanitizer are used when present).
#
#   ./run.sh [--quick] [--out DIR] [--cases "4096x32000:f32 16384x151936:bf16 ..."]
#            [--no-tests] [--no-sanitizer] [--no-bench] [--no-compile]
#
# Steps, each run whatever happened to the ones before: environment, rlkernels-info, cuda-backend,
# tests (the whole JUnit suite with -Drlk.test.backends=cuda,reference), sanitizer-memcheck,
# sanitizer-racecheck, sanitizer-synccheck (compute-sanitizer over LogProbsTest and
# LogProbsBadInputTest on cuda), bench-copy (device-to-device copy rate), bench-logprobs (rlkernels
# against PyTorch on the same inputs), bench-torch, accuracy; then RESULTS-gpu.md and a summary.
# Everything lands in results-<UTC date>/ beside this script (and results-<date>.tar.gz).
# Exit status: 0 when no step failed (skipped steps are fine), 1 otherwise, 2 for bad usage.
#
# Environment: RLK_PYTHON (python with torch; default python3), RLK_COMPUTE_SANITIZER (its path),
# RLK_WORK (scratch folder for the benchmark inputs, up to 10 GB a case; default results-*/work),
# RLK_TEMPERATURE (1.0), RLK_SANITIZER_TOOLS ("memcheck racecheck synccheck"; initcheck also works),
# RLK_TEST_TIMEOUT / RLK_SANITIZER_TIMEOUT / RLK_CASE_TIMEOUT (seconds: 3600 / 3600 / 1800),
# RLK_OPS_TRIALS / RLK_OPS_REPEATS (GpuOpsBench: 10 batches of 20 calls). Without a GPU,
# RLKERNELS_CUDA_DRIVER=emulator rehearses the whole script on the emulated driver (slowly).
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmdline="./run.sh${*:+ $*}"
SKIP=3

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

quick=0; do_tests=1; do_sanitizer=1; do_bench=1; no_compile=0; out=""; cases=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="${2:?--out needs a folder}"; shift ;;
    --cases) cases="${2:?--cases needs a list}"; shift ;;
    --no-tests) do_tests=0 ;;
    --no-sanitizer) do_sanitizer=0 ;;
    --no-bench) do_bench=0 ;;
    --no-compile) no_compile=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
  echo "run.sh: this bundle holds an x86-64 Linux JRE and native code; this machine is $(uname -s) $(uname -m)." >&2
  exit 2
fi

stamp="$(date -u +%Y%m%d-%H%M%S)"
out="${out:-$here/results-$stamp}"
mkdir -p "$out/logs" "$out/bench" "$out/tests" "$out/sanitizer" || exit 2
out="$(cd "$out" && pwd)"
STEPS="$out/steps.tsv"
: > "$STEPS"
JSONL="$out/bench/bench.jsonl"
: > "$JSONL"

# ---------------------------------------------------------------- what the bundle holds
JAVA="$here/jre/bin/java"
join() { local IFS=:; echo "$*"; }
LIB_JAR="$(ls "$here"/lib/rlkernels-*.jar 2>/dev/null | head -n1)"
LIB_CP="$(join "$here"/lib/*.jar)"
TESTS_JAR="$(ls "$here"/test/rlkernels-*-tests.jar 2>/dev/null | head -n1)"
TEST_CP="$(join "$TESTS_JAR" "$LIB_CP" $(ls "$here"/test/lib/*.jar 2>/dev/null) "$here"/test/junit-platform-console-standalone-*.jar)"
BENCH_CP="$(join "$here"/bench/rlkernels-bench-*.jar "$LIB_CP")"
PY="${RLK_PYTHON:-python3}"
PYDIR="$here/bench" # bench_torch.py and report.py (beside run.sh when run from the source tree)
[ -f "$PYDIR/bench_torch.py" ] || PYDIR="$here"
TEMPERATURE="${RLK_TEMPERATURE:-1.0}"

# The native backend links libgomp.so.1; the bundle carries one for machines without it.
JAVA_LD="${LD_LIBRARY_PATH:-}"
have_gomp() {
  local ldc
  for ldc in "$(command -v ldconfig 2>/dev/null)" /sbin/ldconfig /usr/sbin/ldconfig; do
    if [ -n "$ldc" ] && [ -x "$ldc" ]; then
      "$ldc" -p 2>/dev/null | grep -q 'libgomp\.so\.1 ' && return 0
      break
    fi
  done
  ls /lib/x86_64-linux-gnu/libgomp.so.1 /usr/lib/x86_64-linux-gnu/libgomp.so.1 /usr/lib64/libgomp.so.1 /lib64/libgomp.so.1 >/dev/null 2>&1
}
if ! have_gomp && [ -d "$here/native-fallback" ]; then
  JAVA_LD="$here/native-fallback${JAVA_LD:+:$JAVA_LD}"
fi
JAVA_RUN=("$JAVA" --enable-native-access=ALL-UNNAMED)
[ -z "$JAVA_LD" ] || JAVA_RUN=(env "LD_LIBRARY_PATH=$JAVA_LD" "${JAVA_RUN[@]}")
with_timeout() { local s=$1; shift; if command -v timeout >/dev/null 2>&1; then timeout "$s" "$@"; else "$@"; fi; }
have_python() { command -v "$PY" >/dev/null 2>&1; }

find_tool() { # find_tool NAME [override]: PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda*, the HPC SDK
  local name=$1 c
  for c in "${2:-}" "$(command -v "$name" 2>/dev/null)" "${CUDA_HOME:+$CUDA_HOME/bin/$name}" "${CUDA_PATH:+$CUDA_PATH/bin/$name}" \
           /usr/local/cuda/bin/"$name" $(ls -d /usr/local/cuda-*/bin/"$name" 2>/dev/null | sort -Vr) \
           $(ls -d /opt/nvidia/hpc_sdk/Linux_x86_64/*/cuda/*/bin/"$name" 2>/dev/null | sort -Vr) /usr/bin/"$name"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}
SANITIZER="$(find_tool compute-sanitizer "${RLK_COMPUTE_SANITIZER:-}" || true)"

# ---------------------------------------------------------------- steps
record() { # record NAME STATUS NOTE
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$STEPS"
  printf '>>> %-20s %-7s %s\n' "$1" "$2" "$3"
}
note() { printf '%s' "$*" > "$NOTE"; }
step() { # step NAME FUNCTION ARGS...: console and logs/NAME.log; return 0 passed, 3 skipped, else failed
  local name=$1; shift
  NOTE="$out/logs/$name.note"
  : > "$NOTE"
  echo
  echo "=== $name ($(date -u +%H:%M:%S) UTC)"
  "$@" 2>&1 | tee "$out/logs/$name.log"
  local rc=${PIPESTATUS[0]} n
  n="$(cat "$NOTE")"
  case $rc in
    0) record "$name" passed "$n" ;;
    "$SKIP") record "$name" skipped "$n" ;;
    *) record "$name" failed "${n:-exit status $rc}" ;;
  esac
}

HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then HAVE_GPU=1; fi

step_environment() {
  local env="$out/env.txt" gpu="" smi
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "command: $cmdline"
    echo "bundle: $(head -n1 "$here/BUILD-INFO.txt" 2>/dev/null)"
    sed -n 's/^commit: /bundle_commit: /p' "$here/BUILD-INFO.txt" 2>/dev/null
    echo "host: $(hostname 2>/dev/null)"
    echo "os: $( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") ), Linux $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "cores: $(nproc)"
    echo "memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  } > "$env"
  if [ "$HAVE_GPU" = 1 ]; then
    smi="$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits 2>/dev/null | head -n1)"
    [ -n "$smi" ] || smi="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits | head -n1)"
    IFS=, read -r g_name g_driver g_mem g_cc <<< "$smi"
    {
      echo "gpu: $(echo "$g_name" | xargs)"
      echo "driver: $(echo "$g_driver" | xargs)"
      echo "gpu_memory_gib: $(awk -v m="$g_mem" 'BEGIN {printf "%.0f", m / 1024}')"
      echo "compute_capability: $(echo "${g_cc:-?}" | xargs)"
      echo "cuda_driver: $(nvidia-smi | grep -o 'CUDA Version: *[0-9.]*' | awk '{print $3}')"
      echo "gpus: $(nvidia-smi -L | wc -l)"
    } >> "$env"
    nvidia-smi
  else
    echo "gpu: none (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'lists no GPU' || echo 'not found'))" >> "$env"
  fi
  echo "java: $("$JAVA" -version 2>&1 | head -n1 | sed 's/^openjdk version //; s/"//g') ($("$JAVA" -version 2>&1 | sed -n 2p))" >> "$env"
  if [ -n "$SANITIZER" ]; then
    echo "compute_sanitizer: $("$SANITIZER" --version 2>/dev/null | grep -io 'version [0-9.]*' | tail -n1) ($SANITIZER)" >> "$env"
  fi
  local nvcc; nvcc="$(find_tool nvcc || true)"
  [ -n "$nvcc" ] && echo "nvcc: $("$nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*')" >> "$env"
  if have_python; then
    echo "python: $("$PY" --version 2>&1) ($(command -v "$PY"))" >> "$env"
    "$PY" "$PYDIR/bench_torch.py" check > "$out/torch-env.json" 2> "$out/torch-env.err"
    TORCH_RC=$?
    echo "$TORCH_RC" > "$out/torch-env.rc"
    if [ -s "$out/torch-env.json" ]; then
      "$PY" - "$out/torch-env.json" >> "$env" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("torch: %s (CUDA %s%s)" % (d["torch"], d.get("torch_cuda"), "" if d.get("cuda_available") else ", no CUDA device visible"))
EOF
    fi
    cat "$out/torch-env.err"
  else
    echo "python: not found ($PY)" >> "$env"
    echo "$SKIP" > "$out/torch-env.rc"
    echo "bench_torch: skipped: no python ($PY not found; set RLK_PYTHON)" > "$out/torch-env.err"
  fi
  [ -x "$JAVA" ] || { note "the bundled JRE is missing or not executable: $JAVA"; cat "$env"; return 1; }
  cat "$env"
  local torch_v; torch_v="$(sed -n 's/^torch: //p' "$env")"
  note "GPU $(sed -n 's/^gpu: //p' "$env"); JRE $(sed -n 's/^java: \([^ ]*\).*/\1/p' "$env"); torch ${torch_v:-not found}"
}

step_info() {
  "${JAVA_RUN[@]}" -cp "$LIB_CP" io.rlkernels.cli.Main info | tee "$out/info.txt"
  local rc=${PIPESTATUS[0]}
  echo "kernels: $(sed -n 's/^kernels *//p' "$out/info.txt")" >> "$out/env.txt"
  note "$(grep '^cuda ' "$out/info.txt" | sed 's/^cuda *//')"
  return "$rc"
}

step_cuda_backend() {
  if [ "$CUDA_OK" = 1 ]; then
    note "$CUDA_LINE"; echo "cuda backend: $CUDA_LINE"; return 0
  fi
  if [ "$HAVE_GPU" = 1 ]; then
    note "nvidia-smi lists a GPU but the cuda backend cannot run: $CUDA_LINE"; echo "$CUDA_LINE"; return 1
  fi
  note "no GPU: $CUDA_WHY"; echo "no GPU: $CUDA_WHY"; return "$SKIP"
}

launcher_summary() { # launcher_summary REPORT_DIR CONSOLE_LOG
  if have_python; then
    "$PY" "$PYDIR/report.py" junit "$1" 2>/dev/null && return
  fi
  grep -E 'tests (successful|failed|aborted)' "$2" | tr -s ' []' ' ' | xargs
}

step_tests() {
  with_timeout "${RLK_TEST_TIMEOUT:-3600}" "${JAVA_RUN[@]}" -Xmx6g -Drlk.test.backends=cuda,reference -cp "$TEST_CP" \
    org.junit.platform.console.ConsoleLauncher execute --scan-class-path="$TESTS_JAR" --reports-dir="$out/tests" \
    --details=tree --disable-banner --disable-ansi-colors --exclude-engine=junit-vintage --fail-if-no-tests \
    2>&1 | tee "$out/tests/console.log"
  local rc=${PIPESTATUS[0]} summary
  summary="$(launcher_summary "$out/tests" "$out/tests/console.log")"
  echo "$summary"
  if [ "$rc" = 0 ] && [ "$CUDA_OK" = 1 ] && echo "$summary" | grep -q 'cuda: 0 passed'; then
    note "the cuda backend is available but no cuda test passed: $summary"; return 1
  fi
  note "${summary:-console launcher exit status $rc}"
  return "$rc"
}

step_sanitizer() { # step_sanitizer TOOL
  local tool=$1 log="$out/sanitizer/$1.log" rc summary tests extra=()
  if [ "$CUDA_OK" != 1 ]; then note "no GPU: $CUDA_WHY"; echo "skipped: no GPU ($CUDA_WHY)"; return "$SKIP"; fi
  if [ -z "$SANITIZER" ]; then
    note "compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda*/bin; set RLK_COMPUTE_SANITIZER)"
    echo "skipped: compute-sanitizer not found"; return "$SKIP"
  fi
  case $tool in
    memcheck) extra=(--leak-check full) ;;
    racecheck) extra=(--racecheck-report all) ;;
  esac
  # --target-processes all: the JVM is the target; -Xmx2g keeps its address space small
  with_timeout "${RLK_SANITIZER_TIMEOUT:-3600}" "$SANITIZER" --tool "$tool" ${extra[@]+"${extra[@]}"} --target-processes all \
    --launch-timeout 600 --error-exitcode 86 --print-limit 100 --log-file "$log" \
    "${JAVA_RUN[@]}" -Xmx2g -Drlk.test.backends=cuda -cp "$TEST_CP" \
    org.junit.platform.console.ConsoleLauncher execute --select-class=io.rlkernels.ops.LogProbsTest \
    --select-class=io.rlkernels.ops.LogProbsBadInputTest --reports-dir="$out/sanitizer/$tool-reports" --details=summary \
    --disable-banner --disable-ansi-colors --exclude-engine=junit-vintage --fail-if-no-tests
  rc=$?
  summary="$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" 2>/dev/null | tail -n1 | sed 's/^=* *//')"
  tests="$(launcher_summary "$out/sanitizer/$tool-reports" "$out/logs/sanitizer-$tool.log")"
  echo "$tool: exit status $rc; ${summary:-no summary line in $log}; $tests"
  note "${summary:-no summary in $log}; $tests; exit status $rc"
  if echo "$tests" | grep -q 'cuda: 0 passed'; then
    note "no cuda test passed under compute-sanitizer: ${summary:-no summary in $log}; $tests; exit status $rc"; return 1
  fi
  if [ "$rc" = 0 ] && echo "$summary" | grep -Eq 'ERROR SUMMARY: 0 errors|0 hazards displayed \(0 errors, 0 warnings\)'; then
    return 0
  fi
  return 1
}

torch_state() { # 0 usable, 3 no torch/python, 4 no CUDA in torch
  cat "$out/torch-env.rc" 2>/dev/null || echo "$SKIP"
}
torch_reason() { sed -n 's/^bench_torch: \(skipped: \)\{0,1\}//p' "$out/torch-env.err" 2>/dev/null | tail -n1; }

step_bench_copy() {
  local rc trc notes=""
  "${JAVA_RUN[@]}" -Xmx1g -cp "$BENCH_CP" io.rlkernels.bench.GpuLogProbsBench copy --mib 2048 --trials 10 2> "$out/bench/copy-java.err" | tee -a "$JSONL"
  rc=${PIPESTATUS[0]}
  cat "$out/bench/copy-java.err"
  if [ "$rc" = "$SKIP" ]; then
    note "$(tail -n1 "$out/bench/copy-java.err" | sed 's/^GpuLogProbsBench: //')"; return "$SKIP"
  fi
  [ "$rc" = 0 ] && notes="cuMemcpyDtoD $(sed -n 's/.*"kind": "copy".*"gbps": \([0-9.e+]*\).*/\1/p' "$JSONL" | tail -n1 | awk '{printf "%.0f", $1}') GB/s" \
                || notes="GpuLogProbsBench copy failed (exit status $rc)"
  if [ "$(torch_state)" = 0 ]; then
    "$PY" "$PYDIR/bench_torch.py" copy --mib 2048 --trials 10 | tee -a "$JSONL"
    trc=${PIPESTATUS[0]}
    [ "$trc" = 0 ] && notes="$notes; torch copy_ $(grep '"impl": "torch"' "$JSONL" | grep '"kind": "copy"' | sed 's/.*"gbps": \([0-9.e+]*\).*/\1/' | awk '{printf "%.0f", $1}') GB/s" \
                   || { notes="$notes; torch copy failed"; rc=1; }
  else
    notes="$notes; torch: $(torch_reason)"
  fi
  note "$notes"
  return "$rc"
}

bench_cases() {
  if [ -n "$cases" ]; then echo "$cases"; return; fi
  if [ "$quick" = 1 ]; then echo "4096x32000:f32 4096x32000:bf16"; return; fi
  local s d
  for s in 4096x32000 4096x151936 16384x32000 16384x151936; do for d in f32 bf16; do echo "$s:$d"; done; done
}

step_bench_logprobs() {
  local repeats=20 trials=10 work="${RLK_WORK:-$out/work}" c rows vocab dtype w rc trc crc need free
  local n=0 ours_ok=0 ours_fail=0 torch_ok=0 torch_fail=0 acc_ok=0 acc_fail=0 skipped="" failed=""
  [ "$quick" = 1 ] && { repeats=10; trials=5; }
  local ts; ts="$(torch_state)"
  for c in $(bench_cases); do
    rows="${c%%x*}"; vocab="${c#*x}"; vocab="${vocab%%:*}"; dtype="${c##*:}"
    n=$((n + 1))
    echo "--- case $rows x $vocab $dtype"
    if [ "$HAVE_GPU" = 1 ]; then # GpuLogProbsBench holds the logits and an f32 gradient on the device
      need=$(( rows * vocab * ( $([ "$dtype" = f32 ] && echo 4 || echo 2) + 4 ) / 1048576 + 512 ))
      free="$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits | head -n1 | xargs)"
      if [ -n "$free" ] && [ "$need" -gt "$free" ]; then
        echo "skipped: needs about $need MiB of GPU memory, $free MiB free"
        skipped="$skipped $c(memory)"; continue
      fi
    fi
    w="$work/${rows}x${vocab}-$dtype"
    rm -rf "$w"; mkdir -p "$w"
    trc=$SKIP
    if [ "$ts" = 0 ] && [ "$CUDA_OK" = 1 ]; then
      local compile=(); [ "$no_compile" = 1 ] && compile=(--no-compile)
      with_timeout "${RLK_CASE_TIMEOUT:-1800}" "$PY" "$PYDIR/bench_torch.py" case --rows "$rows" --vocab "$vocab" --dtype "$dtype" \
        --temperature "$TEMPERATURE" --work "$w" --repeats "$repeats" --trials "$trials" ${compile[@]+"${compile[@]}"} | tee -a "$JSONL"
      trc=${PIPESTATUS[0]}
      if [ "$trc" = 0 ]; then torch_ok=$((torch_ok + 1)); else torch_fail=$((torch_fail + 1)); failed="$failed torch:$c"; fi
    fi
    local inputs=() err="$out/bench/java-$rows-$vocab-$dtype.err"
    [ -f "$w/logits.npy" ] && inputs=(--in "$w")
    with_timeout "${RLK_CASE_TIMEOUT:-1800}" "${JAVA_RUN[@]}" -Xmx2g -cp "$BENCH_CP" io.rlkernels.bench.GpuLogProbsBench logprobs \
      --rows "$rows" --vocab "$vocab" --dtype "$dtype" --temperature "$TEMPERATURE" --repeats "$repeats" --trials "$trials" \
      ${inputs[@]+"${inputs[@]}"} --out "$w/ours" 2> "$err" | tee -a "$JSONL"
    rc=${PIPESTATUS[0]}
    cat "$err"
    if [ "$rc" = "$SKIP" ]; then
      local why; why="$(tail -n1 "$err" | sed 's/^GpuLogProbsBench: //')"
      note "$why"
      if [ "$ts" = 0 ]; then printf 'skipped\nno GPU for rlkernels (%s)\n' "$why"; else printf 'skipped\n%s\n' "$(torch_reason)"; fi \
        > "$out/bench/torch.status"
      printf 'skipped\nno benchmark ran (%s)\n' "$why" > "$out/bench/accuracy.status"
      rm -rf "$w"
      [ -n "${RLK_WORK:-}" ] || rmdir "$work" 2>/dev/null
      return "$SKIP"
    fi
    if [ "$rc" = 0 ]; then ours_ok=$((ours_ok + 1)); else ours_fail=$((ours_fail + 1)); failed="$failed rlkernels:$c"; fi
    if [ "$rc" = 0 ] && [ -f "$w/ref_logp.npy" ]; then
      "$PY" "$PYDIR/bench_torch.py" compare --rows "$rows" --vocab "$vocab" --dtype "$dtype" --temperature "$TEMPERATURE" \
        --work "$w" | tee -a "$JSONL"
      crc=${PIPESTATUS[0]}
      if [ "$crc" = 0 ]; then acc_ok=$((acc_ok + 1)); else acc_fail=$((acc_fail + 1)); failed="$failed accuracy:$c"; fi
    fi
    [ "${RLK_KEEP_INPUTS:-0}" = 1 ] || rm -rf "$w"
  done
  [ -n "${RLK_WORK:-}" ] || rmdir "$work" 2>/dev/null
  # bench-torch and accuracy are recorded from these files after this step
  if [ "$ts" != 0 ]; then
    printf 'skipped\n%s\n' "$(torch_reason)" > "$out/bench/torch.status"
  elif [ "$torch_fail" -gt 0 ]; then
    printf 'failed\n%d of %d cases failed (see bench/bench.jsonl)\n' "$torch_fail" "$n" > "$out/bench/torch.status"
  else
    printf 'passed\n%d cases\n' "$torch_ok" > "$out/bench/torch.status"
  fi
  if [ "$ts" != 0 ]; then
    printf 'skipped\nno torch: no f64 reference on the same inputs\n' > "$out/bench/accuracy.status"
  elif [ "$acc_fail" -gt 0 ]; then
    printf 'failed\n%d of %d cases outside the tolerance (RESULTS-gpu.md)\n' "$acc_fail" "$((acc_ok + acc_fail))" > "$out/bench/accuracy.status"
  else
    printf 'passed\n%d cases within 1e-4 of f64\n' "$acc_ok" > "$out/bench/accuracy.status"
  fi
  note "$n cases: rlkernels $ours_ok ok, $ours_fail failed${skipped:+; skipped:$skipped}${failed:+; failed:$failed}"
  [ "$ours_fail" = 0 ]
}

record_from() { # record_from NAME FILE: the status and note a step left in FILE
  if [ -f "$2" ]; then record "$1" "$(sed -n 1p "$2")" "$(sed -n 2p "$2")"; fi
}

# ---------------------------------------------------------------- the run
echo "run.sh: results in $out"
step environment step_environment
step rlkernels-info step_info
CUDA_LINE="$(grep '^cuda ' "$out/info.txt" 2>/dev/null | sed 's/^cuda *//')"
CUDA_LINE="${CUDA_LINE:-rlkernels info did not run}"
CUDA_WHY="${CUDA_LINE#unavailable: }"
CUDA_OK=0
case "$CUDA_LINE" in unavailable:*|driver\ found,*|rlkernels\ info*) ;; *) CUDA_OK=1 ;; esac
step cuda-backend step_cuda_backend

if [ "$do_tests" = 1 ]; then step tests step_tests; else record tests skipped "--no-tests"; fi

for tool in ${RLK_SANITIZER_TOOLS:-memcheck racecheck synccheck}; do
  if [ "$do_sanitizer" = 1 ]; then step "sanitizer-$tool" step_sanitizer "$tool"; else record "sanitizer-$tool" skipped "--no-sanitizer"; fi
done

step_bench_ops() { # advantages, GAE, whitening, policy loss: cuda beside native
  with_timeout "${RLK_CASE_TIMEOUT:-1800}" "${JAVA_RUN[@]}" -Xmx4g -cp "$BENCH_CP" io.rlkernels.bench.GpuOpsBench \
    --out "$out/bench/ops.md" --trials "${RLK_OPS_TRIALS:-10}" --repeats "${RLK_OPS_REPEATS:-20}"
  local rc=$?
  [ "$rc" = "$SKIP" ] && note "cuda backend unavailable"
  return $rc
}

step_bench_linear() { # log-probs from hidden states: materialised, fused, fused loss (issue 14)
  local size=(); [ "$quick" = 1 ] && size=(--rows 64 --hidden 32 --vocab 512 --workspace-mb 1 --trials 2)
  with_timeout "${RLK_CASE_TIMEOUT:-1800}" "${JAVA_RUN[@]}" -Xmx4g -cp "$BENCH_CP" io.rlkernels.bench.GpuLinearHeadBench \
    ${size[@]+"${size[@]}"} --out "$out/bench/linear.md"
  local rc=$?
  [ "$rc" = "$SKIP" ] && { note "cuda backend unavailable"; return $rc; }
  if [ "$(torch_state)" = 0 ] && [ "$CUDA_OK" = 1 ]; then # PyTorch eager and torch.compile on the same sizes
    local tsize=(); [ "$quick" = 1 ] && tsize=(--rows 64 --hidden 32 --vocab 512 --trials 2)
    local compile=(); [ "$no_compile" = 1 ] && compile=(--no-compile)
    with_timeout "${RLK_CASE_TIMEOUT:-1800}" "$PY" "$PYDIR/bench_torch.py" linear ${tsize[@]+"${tsize[@]}"} \
      ${compile[@]+"${compile[@]}"} --md "$out/bench/linear.md" | tee -a "$JSONL" || note "torch linear failed"
  else
    note "torch: $(torch_reason)"
  fi
  return $rc
}

if [ "$do_bench" = 1 ]; then
  step bench-copy step_bench_copy
  step bench-ops step_bench_ops
  step bench-linear step_bench_linear
  step bench-logprobs step_bench_logprobs
  if [ -f "$out/bench/torch.status" ]; then
    record_from bench-torch "$out/bench/torch.status"
  else
    record bench-torch skipped "$(torch_reason)"
  fi
  if [ -f "$out/bench/accuracy.status" ]; then
    record_from accuracy "$out/bench/accuracy.status"
  else
    record accuracy skipped "no benchmark ran"
  fi
else
  for s in bench-copy bench-ops bench-linear bench-logprobs bench-torch accuracy; do record "$s" skipped "--no-bench"; done
fi

echo
echo "=== report"
report_ok=1
if have_python && "$PY" "$PYDIR/report.py" markdown "$out"; then
  :
else
  report_ok=0
  { echo "## bench/gpu run (no python: the benchmark table needs python3)"; echo; echo "| step | status | note |"; echo "|---|---|---|"
    awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$STEPS"; } > "$out/RESULTS-gpu.md"
  echo "report.py did not run; wrote the steps only to $out/RESULTS-gpu.md"
fi

passed=$(awk -F'\t' '$2 == "passed"' "$STEPS" | wc -l)
failed=$(awk -F'\t' '$2 == "failed"' "$STEPS" | wc -l)
skipped=$(awk -F'\t' '$2 == "skipped"' "$STEPS" | wc -l)
tar -czf "$out.tar.gz" -C "$(dirname "$out")" "$(basename "$out")" 2>/dev/null || true
echo
echo "=== summary"
awk -F'\t' '{printf "%-20s %-7s %s\n", $1, $2, $3}' "$STEPS"
echo
echo "summary: $passed passed, $failed failed, $skipped skipped"
echo "results: $out/RESULTS-gpu.md (paste into bench/RESULTS.md); everything: $out.tar.gz"
[ "$failed" = 0 ] && [ "$report_ok" = 1 ]
