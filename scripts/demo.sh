#!/bin/sh
# The main job of `make run`: runs inside `apemu run` (the emulated tree is /sys) and shows what
# real clients see on the default topology.
set -e
APEMU=${APEMU:-apemu}
echo "== apemu ctl show (the live instance) =="
"$APEMU" ctl show
echo
echo "== ls /sys/bus/ap/devices =="
ls /sys/bus/ap/devices | tr '\n' ' '; echo
echo
echo "== udevadm info /sys/bus/ap/devices/card01 =="
udevadm info /sys/bus/ap/devices/card01
echo "== echo -1 > /sys/bus/ap/apmask; cat bindings =="
echo -1 > /sys/bus/ap/apmask
cat /sys/bus/ap/bindings
echo "== writing garbage gives the kernel's errno =="
bash -c 'echo 999 > /sys/bus/ap/config_time' 2>&1 || true
