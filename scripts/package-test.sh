#!/bin/sh
# `make package-test`: builds the Debian package from a copy of the tree, installs it, runs a
# smoke test with the installed binary and purges it again (see README, "Install").
#
# The package is built in BUILD/pkg/apemu-VERSION (a copy of the tracked and unignored files),
# so dpkg-buildpackage's outputs (.deb, .buildinfo, .changes) land in BUILD/pkg and neither the
# source tree nor its parent directory gets anything written into it. The copy is deleted after
# the build, so the installed binary cannot fall back to a source tree for its presets.
# Usage: scripts/package-test.sh BUILD JOBS     (runs as root or through sudo)
set -eu
BUILD=${1:-build}
JOBS=${2:-$(nproc)}
cd "$(dirname "$0")/.."
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
start=$(date +%s)
say() { echo "package-test: $*"; }
die() { echo "package-test: FAIL: $*" >&2; exit 1; }

version=$(dpkg-parsechangelog -S Version)
cmake_version=$(sed -n 's/^project(apemu .*VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ "$version" = "$cmake_version" ] ||
  die "debian/changelog has $version, CMakeLists.txt project VERSION $cmake_version"
if dpkg-query -W -f='${Status}' apemu 2>/dev/null | grep -q "install ok installed"; then
  die "apemu is already installed; remove it first (this test purges it when done)"
fi

say "man page check (groff -ww)"
warnings=$(groff -man -Tutf8 -ww -z docs/apemu.1 2>&1)
[ -z "$warnings" ] || die "docs/apemu.1: $warnings"

PKG="$BUILD/pkg"
COPY="$PKG/apemu-$version"
rm -rf "$PKG"
mkdir -p "$COPY"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -P -t "$COPY" --
touch "$PKG/stamp"
say "dpkg-buildpackage -us -uc -b -j$JOBS in $COPY"
b0=$(date +%s)
(cd "$COPY" && dpkg-buildpackage -us -uc -b -j"$JOBS") >"$PKG/build.log" 2>&1 ||
  { tail -40 "$PKG/build.log"; die "dpkg-buildpackage failed (log: $PKG/build.log)"; }
say "package built in $(($(date +%s) - b0)) s"
# The build may write only below debian/ and obj-*/ (which `debian/rules clean` removes).
stray=$(cd "$COPY" && find . -newer ../stamp ! -type d ! -path './debian/*' ! -path './obj-*')
[ -z "$stray" ] || die "the package build wrote into the source tree: $stray"
rm -rf "$COPY"
deb=$(ls "$PKG"/apemu_"$version"_*.deb)
say "built $deb"
dpkg-deb -c "$deb"

trap 'say "purging apemu"; $SUDO apt-get purge -y -qq apemu >/dev/null' EXIT
say "apt-get install $deb"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$deb" >/dev/null
[ "$(command -v apemu)" = /usr/bin/apemu ] || die "apemu is not /usr/bin/apemu"

say "smoke test: apemu run -- sh -c 'ls /sys/bus/ap/devices | head; cat /sys/bus/ap/apmask'"
tmp=$(mktemp -d)
out=$(cd "$tmp" && env -u APEMU_TOPOLOGY_DIR $SUDO apemu run -- \
  sh -c 'ls /sys/bus/ap/devices | head; cat /sys/bus/ap/apmask') || die "apemu run failed: $out"
rmdir "$tmp"
echo "$out"
# The default topology: cards 00..02 with domains 4-7, apmask all ones (no ap.apmask=).
echo "$out" | grep -qx '00\.0004' || die "no queue 00.0004 in /sys/bus/ap/devices"
[ "$(echo "$out" | grep -c '^0[0-2]\.000[4-7]$')" -eq 10 ] || die "expected 10 queue names"
echo "$out" | tail -1 | grep -Eqx '0x(f){64}' || die "unexpected apmask"

say "man apemu"
man -w apemu | grep -qx /usr/share/man/man1/apemu.1.gz || die "man -w apemu: $(man -w apemu 2>&1)"
man -P cat apemu 2>&1 | grep -q '^SYNOPSIS' || die "man apemu does not render"

trap - EXIT
say "purging apemu"
$SUDO apt-get purge -y -qq apemu >/dev/null
if dpkg-query -W -f='${Status}' apemu 2>/dev/null | grep -q "install ok installed"; then
  die "apemu is still installed"
fi
if [ -e /usr/bin/apemu ] || [ -e /usr/share/apemu ]; then die "files left after purge"; fi
say "OK in $(($(date +%s) - start)) s"
