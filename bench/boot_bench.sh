#!/bin/bash
# Boot of a topology (default: topologies/max.toml, 256 adapters x 256 domains) to a mounted
# live tree, against writing the same tree to tmpfs with `apemu export` (the baseline, measured
# in the same run). Prints seconds, the entry count of /sys/bus/ap/devices, peak RSS and ratios.
# Everything runs in a private mount namespace; mounts vanish with it.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
APEMU=${APEMU:-$here/build/apemu}
TOPO=${1:-$here/topologies/max.toml}
exec unshare -m --propagation private bash -s "$APEMU" "$TOPO" <<'INNER'
set -eu
APEMU=$1 TOPO=$2
work=$(mktemp -d /tmp/apemu-boot.XXXXXX)
mkdir -p "$work/mnt" "$work/tmpfs"
mount -t tmpfs apemu-bench "$work/tmpfs"
now() { date +%s.%N; }

t0=$(now)
"$APEMU" serve -t "$TOPO" -m "$work/mnt" --control "$work/ctl.sock" > "$work/out" &
pid=$!
until grep -q READY "$work/out" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || { echo "serve died"; exit 1; }
  sleep 0.005
done
t1=$(now)
entries=$(ls "$work/mnt/bus/ap/devices" | wc -l)
t2=$(now)
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid

t3=$(now)
"$APEMU" export -t "$TOPO" "$work/tmpfs/sys"
t4=$(now)
ls "$work/tmpfs/sys/bus/ap/devices" | wc -l > /dev/null
t5=$(now)
awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v t4="$t4" -v t5="$t5" \
    -v n="$entries" -v rss="$rss_kib" -v topo="$TOPO" 'BEGIN {
  boot = t1 - t0; ls = t2 - t1; xport = t4 - t3; lst = t5 - t4
  printf "topology: %s\n", topo
  printf "boot to mounted tree (serve until READY): %.3f s   (goal < 0.5 s)\n", boot
  printf "ls /sys/bus/ap/devices | wc -l: %d entries in %.3f s (same listing on tmpfs: %.3f s, ratio %.1fx)\n", n, ls, lst, ls / lst
  printf "peak RSS of the serving daemon: %.1f MiB   (goal < 200 MiB)\n", rss / 1024
  printf "baseline: apemu export of the same tree to tmpfs: %.3f s (boot + write)\n", xport
  printf "ratio boot-to-mounted / export-to-tmpfs: %.2f\n", boot / xport
}'
umount "$work/tmpfs"
rm -rf "$work"
INNER
