#!/bin/sh
# Installs the Debian packages apemu needs, only when some are missing (idempotent, quiet when
# everything is present). Runs as root (CI, the dev machines) or through sudo.
# libvirt-daemon (libvirtd with its node-device driver; it pulls the QEMU driver, not QEMU) and
# libvirt-clients (virsh) serve tests/integration/libvirt_test.cpp, which starts libvirtd only
# inside `apemu run`. Without libvirt-daemon-system no service is installed or started on the
# host. About 4 MB to download, 13 MB installed (bookworm, --no-install-recommends).
set -eu
PKGS="cmake ninja-build g++ make pkg-config git util-linux \
  libfuse3-dev fuse3 libssl-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libfmt-dev \
  libgtest-dev libgmock-dev googletest libbenchmark-dev libudev-dev udev mdevctl \
  qemu-user-static binutils debian-archive-keyring libvirt-daemon libvirt-clients \
  clang-14 libclang-rt-14-dev llvm-14"
# qemu-user-static runs the s390x s390-tools of the tests (invoked explicitly, so binfmt_misc need
# not be mounted); binutils (readelf) and the archive keyring serve scripts/s390x-sysroot.sh.
# libvirt-daemon and libvirt-clients: the node-device driver and virsh of tests/integration/libvirt_test.
# clang-14 with libclang-rt-14-dev (libclang_rt.fuzzer, asan, ubsan: only a Recommends of clang-14,
# so --no-install-recommends needs it named) build the libFuzzer targets (make fuzz, fuzz/);
# llvm-14 brings llvm-symbolizer for sanitizer stack traces.
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
