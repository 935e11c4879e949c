#!/bin/bash
# Whole-tree read through `apemu run` against tmpfs, measured in the same run (issue 11): every
# regular file of the tree read as `find -type f | xargs cat` does (bench/tree_walk, in one
# process), through the live /sys and through the same tree exported (`apemu export`) to a
# tmpfs, interleaved round by round (WALKS reads of each) so that both see the same load.
# With client and daemon on one CPU (`taskset -c 0` around `apemu run`), unpinned, and on one
# CPU with real-time priority.
# Prints the median over RUNS rounds (default 5) of each and the ratios, with the load average.
#
# Unlike bench/fuse_bench (which mounts the tree in-process, with request counts), this needs
# only an apemu binary, so it compares any two builds: APEMU=/other/build/apemu.
#
# Usage: bench/read_bench.sh [RUNS] [WALKS]   (root; all in a private mount namespace)
#        TOPOLOGY=file (default topologies/z16-lpar.toml), WALKS default 20
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
APEMU=${APEMU:-$here/build/apemu}
TOPOLOGY=${TOPOLOGY:-$here/topologies/z16-lpar.toml}
TREE_WALK=${TREE_WALK:-$here/build/bench/tree_walk}
RUNS=${1:-5}
WALKS=${2:-20}
exec unshare -m --propagation private bash -s "$APEMU" "$TOPOLOGY" "$RUNS" "$WALKS" "$TREE_WALK" <<'OUTER'
set -eu
APEMU=$1 TOPOLOGY=$2 RUNS=$3 WALKS=$4 TREE_WALK=$5
work=$(mktemp -d /tmp/apemu-read.XXXXXX)
trap 'umount "$work/tmpfs" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/tmpfs"
mount -t tmpfs apemu-bench "$work/tmpfs"
"$APEMU" export -t "$TOPOLOGY" "$work/tmpfs/sys" > /dev/null

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
measure() { # $1: label, rest: prefix command (taskset or nothing)
  local label=$1; shift
  "$@" "$APEMU" run -t "$TOPOLOGY" -- "$TREE_WALK" "$RUNS" "$WALKS" /sys "$work/tmpfs/sys" \
    > "$work/rounds" 2> "$work/seen"
  local live tmp
  live=$(cut -d' ' -f1 "$work/rounds" | median)
  tmp=$(cut -d' ' -f2 "$work/rounds" | median)
  awk -v l="$live" -v t="$tmp" -v w="$label" 'BEGIN {
    printf "%-28s live %8.2f ms   tmpfs %8.2f ms   ratio %.2f\n", w, l / 1e6, t / 1e6, l / t
  }'
}
echo "$APEMU, $(basename "$TOPOLOGY"): $(find "$work/tmpfs/sys" -type f | wc -l) files; medians of $RUNS rounds of $WALKS reads"
echo "load average at start: $(cut -d' ' -f1 /proc/loadavg)"
measure "one CPU (taskset -c 0):" taskset -c 0
measure "unpinned:" env
# One CPU with real-time priority (SCHED_FIFO, inherited by the daemon's threads and the
# reader): on a shared machine other processes then cannot run in between a request and its
# answer, which is what the figures of an idle machine show.
measure "one CPU, SCHED_FIFO:" taskset -c 0 chrt -f 10
cat "$work/seen"
echo "load average at end: $(cut -d' ' -f1 /proc/loadavg)"
OUTER
