#!/bin/sh
# Times a full mdevctl start/stop cycle of N vfio_ap mdevs (default 100) through the live FUSE
# tree inside `apemu run`, with the real mdevctl (Debian 1.2.0): every mdev is defined with one
# adapter, one domain and one control domain, then `mdevctl start` creates it and writes the
# three attributes, and `mdevctl stop` removes it. Prints the wall time of each phase and the
# time per mdev.
#
# usage: bench/mdevctl_cycle.sh [BUILD_DIR] [N]      (root, /dev/fuse, mdevctl installed)
set -eu
build=${1:-build}
n=${2:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
apemu=$build/apemu
[ -x "$apemu" ] || { echo "mdevctl_cycle: $apemu not built" >&2; exit 1; }
command -v mdevctl >/dev/null || { echo "mdevctl_cycle: mdevctl not installed" >&2; exit 1; }
[ "$n" -le 256 ] || { echo "mdevctl_cycle: at most 256 mdevs (one adapter each)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The largest machine, every APQN given to vfio_ap at boot (ap.apmask=0x).
{ echo 'apmask = "0x"'; cat "$here/topologies/max.toml"; } > "$tmp/topology.toml"

cat > "$tmp/cycle.sh" <<EOF
set -eu
n=$n
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers /etc/mdevctl.d/matrix
uuid() { printf '%08x-0000-4000-8000-%012x' \$((\$1 + 1)) \$1; }
now() { date +%s.%N; }
# Definitions are plain files (what \`mdevctl define\` writes); not part of the timing.
i=0
while [ \$i -lt \$n ]; do
  printf '{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[{"assign_adapter":"%d"},{"assign_domain":"4"},{"assign_control_domain":"4"}]}\n' \$i \
    > /etc/mdevctl.d/matrix/\$(uuid \$i)
  i=\$((i + 1))
done
t0=\$(now)
i=0
while [ \$i -lt \$n ]; do mdevctl start --uuid \$(uuid \$i); i=\$((i + 1)); done
t1=\$(now)
active=\$(ls /sys/bus/mdev/devices | wc -l)
ok=\$(cat /sys/bus/mdev/devices/*/matrix | wc -l)
i=0
while [ \$i -lt \$n ]; do mdevctl stop --uuid \$(uuid \$i); i=\$((i + 1)); done
t2=\$(now)
left=\$(ls /sys/bus/mdev/devices | wc -l)
echo "mdevs: \$n  active after start: \$active  assigned APQNs: \$ok  left after stop: \$left"
awk -v a="\$t0" -v b="\$t1" -v c="\$t2" -v n="\$n" 'BEGIN {
  printf "start: %.3f s (%.2f ms per mdev)\n", b - a, (b - a) * 1000 / n;
  printf "stop:  %.3f s (%.2f ms per mdev)\n", c - b, (c - b) * 1000 / n;
  printf "cycle: %.3f s (%.2f ms per mdev)\n", c - a, (c - a) * 1000 / n }'
[ "\$active" -eq "\$n" ] && [ "\$ok" -eq "\$n" ] && [ "\$left" -eq 0 ]
EOF

"$apemu" run --topology "$tmp/topology.toml" -- sh "$tmp/cycle.sh"
