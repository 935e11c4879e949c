#!/bin/sh
# Installs the Debian packages `make package-test` needs on top of scripts/install-deps.sh's
# (which has the build dependencies): the packaging tools, and man-db/groff-base for checking
# the man page. Idempotent and quiet when everything is present, like install-deps.sh; kept out
# of install-deps.sh so that `make run` and `make test` do not pull debhelper in.
set -eu
PKGS="build-essential dpkg-dev debhelper man-db groff-base"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "install-package-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
