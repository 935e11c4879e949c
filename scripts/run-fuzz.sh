#!/bin/sh
# Runs every libFuzzer target of a fuzz build for a bounded time (make fuzz; fuzz/README.md).
#   scripts/run-fuzz.sh BUILD_DIR SECONDS [TARGET...]
# Targets are those CMake listed in BUILD_DIR/fuzz/targets.txt (or the ones named). Each starts
# from its seeds in fuzz/corpus/<target>/ plus what earlier runs found (BUILD_DIR/fuzz/corpus/,
# never written into the source tree), with fuzz/<target>.dict when present and the extra flags
# of fuzz/<target>.options (one per line, # comments). ASan, UBSan (halting) and LeakSanitizer
# are on. A crash, leak, timeout or sanitizer report fails the run; its input is saved as
# BUILD_DIR/fuzz/artifacts/<target>-crash-*, to replay with `BUILD_DIR/fuzz/<target>_fuzz FILE`.
# Prints per target: seconds, executions, exec/s, corpus size, coverage (edges, features).
set -u
build=${1:?usage: run-fuzz.sh BUILD_DIR SECONDS [TARGET...]}
secs=${2:?usage: run-fuzz.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
src=$(cd "$(dirname "$0")/.." && pwd)
out="$build/fuzz"
if [ $# -gt 0 ]; then targets="$*"; else targets=$(cat "$out/targets.txt"); fi
mkdir -p "$out/artifacts" "$out/logs"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
command -v llvm-symbolizer-14 >/dev/null 2>&1 && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer-14)"

failed=""
printf '%-12s %5s %10s %8s %7s %7s %7s  %s\n' target secs execs exec/s corpus cov ft result
for t in $targets; do
  bin="$out/${t}_fuzz"
  [ -x "$bin" ] || { echo "run-fuzz: $bin is missing (make fuzz builds it)"; failed="$failed $t"; continue; }
  mkdir -p "$out/corpus/$t"
  seeds="$src/fuzz/corpus/$t"
  [ -d "$seeds" ] || seeds=""
  dict=""
  [ -f "$src/fuzz/$t.dict" ] && dict="-dict=$src/fuzz/$t.dict"
  opts=""
  [ -f "$src/fuzz/$t.options" ] && opts=$(sed -e 's/#.*//' "$src/fuzz/$t.options" | tr '\n' ' ')
  log="$out/logs/$t.log"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" $dict $opts \
    "$out/corpus/$t" $seeds >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$done_line" | sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p')
  result=ok
  if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz invariant violated' "$log"; then
    result="FAILED (exit $rc; log $log)"
    failed="$failed $t"
  fi
  printf '%-12s %5s %10s %8s %7s %7s %7s  %s\n' "$t" "$took" "${execs:--}" "${rate:--}" \
    "${corp:--}" "${cov:--}" "${ft:--}" "$result"
done
if [ -n "$failed" ]; then
  echo "run-fuzz: failed:$failed"
  for t in $failed; do
    [ -f "$out/logs/$t.log" ] || continue
    echo "---- $t (last lines of $out/logs/$t.log)"
    grep -E -A25 'fuzz invariant violated|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' \
      "$out/logs/$t.log" | head -60
  done
  exit 1
fi
