#!/bin/bash
# Reads and writes the sysfs files that lszcrypt, chzcrypt and the Kubernetes CEX device plugin
# use, the way they do (ap-bus.md §9, clients.md §4.1): first line of each file, directory scans
# with their regexes, driver link basenames, fopen+fputs writes without a newline and read-back.
# Prints one "what=value" line per fact; live_test.cpp compares the whole output.
set -u
S=${SYSFS_ROOT:-/sys}
first() { head -n1 "$1" || echo "<unreadable $1>"; }
# lszcrypt -b
for f in features ap_domain ap_max_domain_id ap_interrupts config_time poll_thread poll_timeout \
         ap_usage_domain_mask ap_control_domain_mask; do
  echo "bus.$f=$(first $S/bus/ap/$f)"
done
# lszcrypt listing: cards from devices/ap (alphasort), then their queues.
for c in $(ls $S/devices/ap | grep -E 'card[0-9a-fA-F]+' | sort); do
  d=$S/devices/ap/$c
  echo "$c: type=$(first $d/type) online=$(first $d/online) config=$(first $d/config)" \
       "chkstop=$(first $d/chkstop) req=$(first $d/request_count) hw=$(first $d/hwtype)" \
       "depth=$(printf %02d $(first $d/depth)) fn=$(first $d/ap_functions)" \
       "pend=$(( $(first $d/pendingq_count) + $(first $d/requestq_count) ))" \
       "drv=$(basename $(readlink $d/driver)) msg=$(first $d/max_msg_size)"
  for q in $(ls $d | grep -E '..\.....' | sort); do
    echo "  $q: online=$(first $d/$q/online) config=$(first $d/$q/config)" \
         "chkstop=$(first $d/$q/chkstop) req=$(first $d/$q/request_count)" \
         "drv=$(basename $(readlink $d/$q/driver))"
  done
done
# lszcrypt -s (CCA/EP11 serial numbers) and -c (capabilities, mkvps lines)
echo "card01.serialnr=$(first $S/devices/ap/card01/serialnr)"
echo "card02.serialnr=$(first $S/devices/ap/card02/serialnr | cut -c1-8)"
grep -E 'AES CUR|APKA CUR|ASYM CUR' $S/devices/ap/card01/01.0004/mkvps | sed 's/0x.*/0x.../; s/^/MK /'
grep 'WK CUR' $S/devices/ap/card02/02.0004/mkvps | sed 's/0x.*/0x.../; s/^/MK /'
# chzcrypt: writes without newline (fopen+fputs), then reads back.
w() { printf '%s' "$2" > "$1" 2>/dev/null; echo "write $3=$2 rc=$? now=$(first $1)"; }
w $S/bus/ap/devices/card01/01.0004/online 0 "-d 01.0004"
w $S/bus/ap/devices/card01/online 0 "-d 01"
echo "  01.0005 online after card offline=$(first $S/bus/ap/devices/card01/01.0005/online)"
w $S/bus/ap/devices/card01/online 1 "-e 01"
w $S/bus/ap/devices/card00/config 0 "--config-off 00"
w $S/bus/ap/devices/card00/online 1 "-e 00 (deconfigured)"
w $S/bus/ap/devices/card00/config 1 "--config-on 00"
w $S/bus/ap/poll_thread 1 "-p"
w $S/bus/ap/config_time 200 "-c 200"
w $S/bus/ap/config_time 60 "-c 60"
w $S/bus/ap/poll_timeout 500000 "-t"
w $S/bus/ap/ap_domain 5 "-q 5"
# Kubernetes CEX plugin: discovery regexes, type grammar, queue online first char.
for c in $(ls $S/devices/ap | grep -E '^card[0-9a-f]{2}$'); do
  t=$(first $S/devices/ap/$c/type)
  [[ $t =~ ^CEX([0-9]+)([ACP])$ ]] && echo "k8s $c gen=cex${BASH_REMATCH[1]} mode=${BASH_REMATCH[2]}"
done
echo "k8s online 02.0006=$(head -c1 $S/devices/ap/card02/02.0006/online)"
[ -d $S/bus/ap ] && echo "k8s busdir ok"
for f in ap_interrupts ap_max_domain_id poll_thread poll_timeout ap_max_adapter_id; do
  [ -r $S/bus/ap/$f ] || echo "k8s shadow missing bus/$f"
done
for f in ap_functions depth hwtype raw_hwtype type API_ordinalnr FW_version op_modes serialnr; do
  [ -r $S/devices/ap/card02/$f ] || echo "k8s shadow missing card02/$f"
done
for f in interrupt reset mkvps op_modes; do
  [ -r $S/devices/ap/card02/02.0004/$f ] || echo "k8s shadow missing 02.0004/$f"
done
echo done
