#!/bin/sh
# Usage: scripts/s390x-sysroot.sh DIR
#
# Fetches the Debian 12 (bookworm) s390x packages of the real s390-tools and of everything their
# zcrypt/zdev binaries load at run time, and unpacks them into DIR, so that
#   qemu-s390x-static -L DIR DIR/sbin/lszcrypt
# runs them on any host (tests/integration/s390x-run wraps this).
#
# The host's apt and dpkg are not touched: no `dpkg --add-architecture`, no host lists or cache.
# apt runs with a private configuration whose sources.list names the host's own Debian mirror
# for s390x only; its lists, cache and downloaded .debs live in DIR.apt (next to DIR).
#
# Idempotent and quiet: a complete DIR carries a stamp naming the package set and returns at
# once. If the mirror cannot be reached (no network), nothing fails here: the reason is written
# to DIR.unavailable and printed once, and the s390-tools tests report it (a skip, or a failure
# under CI=true). Any other problem is an error (exit 1) with apt's log.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$(dirname "$1")"
DIR=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
APT=$DIR.apt
SUITE=bookworm
# libc6 is the only DT_NEEDED library of lszcrypt/chzcrypt/zcryptctl/zcryptstats/lszdev/chzdev in
# bookworm's s390-tools 2.16.0; libgcc-s1 is what libc6 dlopens for pthread_cancel/backtrace.
PKGS="s390-tools libc6 libgcc-s1"
TOOLS="sbin/lszcrypt sbin/chzcrypt sbin/zcryptctl sbin/zcryptstats sbin/lszdev sbin/chzdev"
KEY="$SUITE s390x: $PKGS (layout 1)"

if [ -f "$DIR/.stamp" ] && [ "$(head -n 1 "$DIR/.stamp")" = "$KEY" ]; then
  exit 0
fi

# The host's Debian mirror: the first deb822 URIs/sources.list URL that serves the suite itself
# (not -security/-updates); deb.debian.org otherwise. S390X_MIRROR overrides.
host_mirror() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      /^[ \t]*$/ { if (uri != "" && ok) { print uri; uri = ""; exit } uri = ""; ok = 0; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f"
  done
  if [ -f /etc/apt/sources.list ]; then
    awk -v suite="$SUITE" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) print $i }' /etc/apt/sources.list
  fi
}
MIRROR=${S390X_MIRROR:-$(host_mirror | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Never wipe a directory this script did not make.
if [ -d "$DIR" ] && [ ! -f "$DIR/.s390x-sysroot" ] && [ -n "$(ls -A "$DIR")" ]; then
  echo "s390x-sysroot: $DIR exists and is not a sysroot made by this script" >&2
  exit 1
fi
rm -rf "$DIR" "$DIR.unavailable"
mkdir -p "$APT/etc/preferences.d" "$APT/etc/sources.list.d" \
  "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
: > "$APT/status"
echo "deb [arch=s390x signed-by=$KEYRING] $MIRROR $SUITE main" > "$APT/etc/sources.list"
LOG=$APT/log
: > "$LOG"

# Every path apt would otherwise take from the host points into $APT; the host's
# /etc/apt/apt.conf.d is still read first (a proxy configured there keeps working).
apt_private() {
  apt-get -q \
    -o Dir::Etc::SourceList="$APT/etc/sources.list" \
    -o Dir::Etc::SourceParts="$APT/etc/sources.list.d" \
    -o Dir::Etc::Preferences="$APT/etc/preferences" \
    -o Dir::Etc::PreferencesParts="$APT/etc/preferences.d" \
    -o Dir::State="$APT" -o Dir::State::Lists="$APT/lists" \
    -o Dir::State::status="$APT/status" -o Dir::State::extended_states="$APT/extended_states" \
    -o Dir::Cache="$APT/cache" -o Dir::Cache::archives="$APT/cache/archives" \
    -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" \
    -o APT::Architecture=s390x -o APT::Architectures::=s390x \
    -o APT::Sandbox::User=root -o Debug::NoLocking=1 \
    -o Acquire::Languages=none -o Acquire::Retries=2 -o Acquire::http::Timeout=30 \
    "$@"
}

# Only a failure to reach the mirror counts as "no network"; anything else is an error below.
apt_private update >>"$LOG" 2>&1 || true
if grep -qE "^(W|E|Err):.*(Failed to fetch|Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|Connection timed out|No route to host|Network is unreachable)" "$LOG"; then
  {
    echo "the Debian mirror $MIRROR could not be reached for $SUITE/s390x (no network?):"
    grep -E '^(W|E|Err):' "$LOG" | head -n 5
  } > "$DIR.unavailable"
  echo "s390x-sysroot: $(head -n 1 "$DIR.unavailable") s390-tools tests cannot run" >&2
  exit 0
fi

fail() {
  echo "s390x-sysroot: $*" >&2
  sed 's/^/  /' "$LOG" >&2
  exit 1
}
grep -qE '^(W|E):' "$LOG" && fail "apt-get update with the private configuration failed"

# shellcheck disable=SC2086
(cd "$APT/debs" && rm -f ./*.deb && apt_private download $PKGS) >>"$LOG" 2>&1 ||
  fail "apt-get download $PKGS failed"
mkdir -p "$DIR"
: > "$DIR/.s390x-sysroot"
for deb in "$APT"/debs/*.deb; do
  dpkg-deb -x "$deb" "$DIR" >>"$LOG" 2>&1 || fail "dpkg-deb -x $deb failed"
done

# Every library the tools need must be in the sysroot (readelf instead of ldd: the binaries are
# s390x). A package split that moves a library elsewhere fails here, not in a test.
for t in $TOOLS; do
  [ -x "$DIR/$t" ] || fail "$t is not in $PKGS"
  interp=$(readelf -l "$DIR/$t" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [ -e "$DIR$interp" ] || fail "$t: interpreter $interp missing"
  for lib in $(readelf -d "$DIR/$t" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    found=""
    for d in lib/s390x-linux-gnu usr/lib/s390x-linux-gnu lib usr/lib; do
      [ -e "$DIR/$d/$lib" ] && found=1
    done
    [ -n "$found" ] || fail "$t needs $lib, which none of $PKGS provides"
  done
done

# When qemu is there, prove the sysroot runs (the loader and libc resolve under -L).
if command -v qemu-s390x-static >/dev/null 2>&1; then
  qemu-s390x-static -L "$DIR" "$DIR/sbin/lszcrypt" --version >>"$LOG" 2>&1 ||
    fail "qemu-s390x-static -L $DIR $DIR/sbin/lszcrypt --version failed"
fi

{
  echo "$KEY"
  for deb in "$APT"/debs/*.deb; do basename "$deb"; done
} > "$DIR/.stamp"
rm -rf "$APT/lists" "$APT/cache" "$APT/debs" # 20 MB that a complete sysroot no longer needs
