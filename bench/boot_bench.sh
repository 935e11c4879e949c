#!/bin/bash
# Boot and exit of the live tree, and `apemu export`, each against a baseline measured in the
# same run (issue 11). Figures are medians of RUNS runs (default 3); the load average is printed
# with them, because the machine may be shared.
#
#  1. `apemu run -t T -- sh -c 'ls /sys/bus/ap/devices | wc -l'` for 1,024, 4,096, 16,384 and
#     65,536 queues (4, 16, 64 and 256 adapters x 256 domains, cut from topologies/max.toml):
#     wall time and peak RSS (GNU time), with the per-queue cost, which must stay flat (linear
#     scaling). Baseline: `apemu run -- true` on the default topology (namespaces, mounts, exec).
#  2. `apemu export -t max.toml` to a tmpfs against `cp -a` of the exported tree on the same
#     tmpfs, and the ratio.
#
# Usage: bench/boot_bench.sh [RUNS]   (root; everything happens in a private mount namespace)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
APEMU=${APEMU:-$here/build/apemu}
RUNS=${1:-3}
exec unshare -m --propagation private bash -s "$APEMU" "$here/topologies" "$RUNS" <<'INNER'
set -eu
APEMU=$1 TOPOS=$2 RUNS=$3
work=$(mktemp -d /tmp/apemu-boot.XXXXXX)
trap 'umount "$work/tmpfs" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/tmpfs"
mount -t tmpfs apemu-bench "$work/tmpfs"

# The first N adapters of max.toml (256 domains each).
cut_topology() {
  awk -v n="$1" '/^\[\[adapter\]\]/ { if (++k > n) exit } { print }' "$TOPOS/max.toml"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
load() { cut -d' ' -f1 /proc/loadavg; }

# Runs "$@" RUNS times under GNU time, after $BEFORE (untimed) each time; prints
# "median-seconds median-KiB".
BEFORE=true
timed() {
  local i out=$work/time.out
  : > "$work/secs"; : > "$work/kib"
  for ((i = 0; i < RUNS; i++)); do
    eval "$BEFORE"
    /usr/bin/time -f '%e %M' -o "$out" "$@" > "$work/cmd.out"
    read -r s k < "$out"
    echo "$s" >> "$work/secs"; echo "$k" >> "$work/kib"
  done
  echo "$(median < "$work/secs") $(median < "$work/kib")"
}

echo "load average at start: $(load)   runs per figure: $RUNS (medians)"
read -r base_s base_k < <(timed "$APEMU" run -t "$TOPOS/default.toml" -- true)
printf 'baseline: apemu run -- true (default topology): %.3f s, %.1f MiB\n' "$base_s" "$(echo "$base_k / 1024" | bc -l)"
printf '%8s %10s %10s %10s %12s %12s\n' queues entries "wall s" "RSS MiB" "us/queue" "KiB/queue"
for adapters in 4 16 64 256; do
  topo=$work/t$adapters.toml
  cut_topology "$adapters" > "$topo"
  read -r s k < <(timed "$APEMU" run -t "$topo" -- sh -c 'ls /sys/bus/ap/devices | wc -l')
  entries=$(cat "$work/cmd.out")
  queues=$((adapters * 256))
  awk -v q="$queues" -v e="$entries" -v s="$s" -v k="$k" -v bs="$base_s" -v bk="$base_k" 'BEGIN {
    printf "%8d %10d %10.3f %10.1f %12.2f %12.2f\n", q, e, s, k / 1024, (s - bs) / q * 1e6, (k - bk) / q
  }'
done
echo "goal for 65,536 queues: 65792 entries, < 0.5 s, < 120 MiB"

# Export against cp -a of its result.
BEFORE="rm -rf '$work/tmpfs/sys'"
read -r ex_s ex_k < <(timed "$APEMU" export -t "$TOPOS/max.toml" "$work/tmpfs/sys")
files=$(find "$work/tmpfs/sys" | wc -l)
BEFORE="rm -rf '$work/tmpfs/copy'"
read -r cp_s cp_k < <(timed cp -a "$work/tmpfs/sys" "$work/tmpfs/copy")
awk -v e="$ex_s" -v c="$cp_s" -v n="$files" 'BEGIN {
  printf "apemu export of max.toml to tmpfs (boot included): %.3f s for %d entries\n", e, n
  printf "cp -a of the exported tree on the same tmpfs:      %.3f s\n", c
  printf "ratio export / cp -a: %.2f   (goal <= 3)\n", e / c
}'
echo "load average at end: $(load)"
INNER
