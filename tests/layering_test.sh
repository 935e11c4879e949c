#!/bin/sh
# Layering check (STYLE.md §1): each library may include only the headers of the libraries it
# depends on. Fails with the offending include lines.
set -eu
root=${1:-.}
cd "$root"
status=0
# allowed[lib]="libs it may include (besides itself)"
allowed() {
  case "$1" in
    base) echo "" ;;
    profile) echo "base" ;;
    kernfs) echo "base" ;;
    uevent) echo "base" ;;
    core) echo "base profile kernfs uevent" ;;
    ap|mdev) echo "base profile kernfs uevent core" ;;
    kvm) echo "base" ;;
    vfio_ap) echo "base profile kernfs uevent core ap mdev kvm" ;;
    fusefs) echo "base kernfs" ;;
    netlink) echo "base uevent" ;;
    topology) echo "base profile kernfs uevent core ap" ;;
    testbed) echo "base profile kernfs uevent core ap mdev vfio_ap kvm fusefs netlink topology" ;;
    *) echo "" ;;
  esac
}
for dir in src/* include/apemu/*; do
  [ -d "$dir" ] || continue
  lib=$(basename "$dir")
  ok="$lib $(allowed "$lib")"
  for f in $(find "$dir" -name '*.h' -o -name '*.cpp'); do
    grep -n '#include "apemu/' "$f" | while IFS= read -r line; do
      inc=$(echo "$line" | sed -n 's/.*#include "apemu\/\([^/]*\)\/.*/\1/p')
      case " $ok " in
        *" $inc "*) ;;
        *) echo "layering violation: $f: $line (library '$lib' may not include '$inc')"; echo x >> /tmp/apemu-layering.$$ ;;
      esac
    done
  done
  # Only fusefs may include FUSE headers.
  if [ "$lib" != fusefs ] && grep -rln '#include <fuse' "$dir" >/dev/null 2>&1; then
    echo "layering violation: $(grep -rln '#include <fuse' "$dir") includes FUSE outside fusefs"
    echo x >> /tmp/apemu-layering.$$
  fi
done
if [ -e /tmp/apemu-layering.$$ ]; then rm -f /tmp/apemu-layering.$$; exit 1; fi
echo "layering: ok"
