// Debian's libvirt (libvirtd 9.0 with its node-device driver, virsh) inside `apemu run`: what
// libvirt lists and dumps for AP cards, queues, the matrix device and vfio_ap mdevs, and the mdev
// life cycle it drives through mdevctl (issue "Ecosystem", point 4). Expected values come from
// clients.md §3 (classification, names, XML, mdevctl integration), vfio-ap.md §3 (assignment
// errnos), §1.4 (instances) and §3.6 (`matrix` format), and libvirt's node-device XML schema.
//
// libvirtd runs inside the private namespaces with the private /run, /etc/libvirt and
// /var/{lib,cache,log}/libvirt of `apemu run`; virsh connects to nodedev:///system through
// /run/libvirt/libvirt-sock, which exists only there, so no test can reach a host daemon.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/shell.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

using ::testing::HasSubstr;
using ::testing::Not;

using apemu::testing::Output;
using apemu::testing::sh;

namespace {

bool have_libvirt() {
  return sh("command -v libvirtd && command -v virsh && command -v mdevctl").status == 0;
}

/// libvirtd is optional on a developer machine, never under CI (scripts/install-deps.sh).
#define REQUIRE_LIBVIRT()                                                                          \
  do {                                                                                             \
    REQUIRE_FACILITIES();                                                                          \
    if (!have_libvirt()) {                                                                         \
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")                     \
        FAIL() << "libvirtd, virsh or mdevctl missing under CI (scripts/install-deps.sh)";         \
      GTEST_SKIP() << "libvirtd, virsh or mdevctl not installed";                                  \
    }                                                                                              \
  } while (0)

std::string temp_path(const std::string& name) {
  return "/tmp/apemu-libvirt-" + std::to_string(::getpid()) + "-" + name;
}

const char* kU = "11111111-2222-3333-4444-555555555555";
const char* kW = "22222222-3333-4444-5555-666666666666";
// libvirt's names of those mdevs: mdev_<uuid with '_'>_<parent address> (clients.md §3.2).
const char* kNameU = "mdev_11111111_2222_3333_4444_555555555555_matrix";
const char* kNameW = "mdev_22222222_3333_4444_5555_666666666666_matrix";

/// Runs `body` in bash inside `apemu run` (default topology) next to a libvirtd started with the
/// node-device driver only. The prelude defines:
///   v ARGS...            virsh -c nodedev:///system ARGS
///   until_out WANT CMD   runs CMD until its output is WANT (at most 5 s), then prints the last
///                        output: libvirt learns of sysfs changes from uevents and inotify, after
///                        the command that caused them may have returned
///   mdev_xml U ATTRS...  writes /run/apemu-libvirt/U.xml: a vfio_ap mdev on ap_matrix with the
///                        attributes NAME=VALUE in order
///   lv_errors            prints what libvirtd logged as error or warning (run after `body`
///                        unless `allow_libvirtd_errors`)
/// Afterwards checks that libvirtd is gone and that nothing reached the host's libvirt or mdevctl
/// directories.
Output run_libvirt(const std::string& body, bool allow_libvirtd_errors = false) {
  const std::string pidfile = temp_path("pid");
  const std::string host_dirs = "ls -A /var/lib/libvirt /etc/libvirt /etc/mdevctl.d 2>&1";
  const std::string host_before = sh(host_dirs).text;
  const std::string prelude = std::string("set -u\nexport LC_ALL=C\n") +
      "L=/run/apemu-libvirt; mkdir -p $L/drivers\n"
      "T=/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough\n"
      // libvirtd loads every connection driver it finds; the QEMU driver's start needs the
      // libvirt-qemu user of libvirt-daemon-system and its failure stops libvirtd, so only the
      // node-device driver is offered (LIBVIRT_DRIVER_DIR).
      "so=$(find /usr/lib /usr/lib64 -name libvirt_driver_nodedev.so 2>/dev/null | head -n1)\n"
      "ln -s \"$so\" $L/drivers/\n"
      // The parent-death signal ends libvirtd even when this script is killed before its trap.
      "LIBVIRT_DRIVER_DIR=$L/drivers setpriv --pdeathsig TERM libvirtd 2>$L/libvirtd.log & "
      "LPID=$!\n"
      "echo $LPID > " + pidfile + "\n"
      "trap 'kill $LPID 2>/dev/null; wait $LPID 2>/dev/null' EXIT\n"
      "for i in $(seq 200); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.05; done\n"
      "v() { virsh -c nodedev:///system \"$@\"; }\n"
      "until_out() { want=$1; shift; for i in $(seq 100); do got=$(\"$@\" 2>&1); "
      "[ \"$got\" = \"$want\" ] && break; sleep 0.05; done; printf '%s\\n' \"$got\"; }\n"
      "mdev_xml() { u=$1; shift; { echo '<device>'; echo '  <parent>ap_matrix</parent>'; "
      "echo \"  <capability type='mdev'>\"; echo \"    <type id='vfio_ap-passthrough'/>\"; "
      "echo \"    <uuid>$u</uuid>\"; for a in \"$@\"; do "
      "echo \"    <attr name='${a%%=*}' value='${a#*=}'/>\"; done; echo '  </capability>'; "
      "echo '</device>'; } > $L/$u.xml; }\n"
      // libvirtd's errors and warnings, but for two expected ones: the x86 build of libvirt asks
      // for DMI data, which no s390 (and so no emulated tree) has, and a client killed while
      // connected (the event listener) is an end of file.
      "lv_errors() { grep -E ': (error|warning) : ' $L/libvirtd.log | "
      "grep -v -e udevGetDMIData -e virNetSocketReadWire; true; }\n";
  const std::string script = temp_path("script.sh");
  // Unless errors are the point of the test, any error libvirtd logs (about a missing sysfs file,
  // say) ends up in the output and breaks the exact comparison.
  std::ofstream(script) << prelude << body << (allow_libvirtd_errors ? "" : "lv_errors\n");
  auto o = sh(std::string(APEMU_BIN) + " run -- bash " + script);
  ::unlink(script.c_str());
  // Teardown (umockdev: check for leftovers): libvirtd ended with the session, the host's
  // directories are as before.
  std::ifstream pf(pidfile);
  pid_t pid = 0;
  pf >> pid;
  ::unlink(pidfile.c_str());
  EXPECT_GT(pid, 0) << "libvirtd was not started";
  if (pid > 0) {
    EXPECT_NE(::kill(pid, 0), 0) << "libvirtd " << pid << " outlived apemu run";
  }
  EXPECT_EQ(sh(host_dirs).text, host_before);
  return o;
}

} // namespace

// clients.md §3.1: cards and queues by DEVTYPE, the matrix by SUBSYSTEM=matrix, mdevs by
// SUBSYSTEM=mdev; names per §3.2. The default topology has cards 0-2 with usage domains 4-7.
// §0.6: libvirt follows hot plug only through the "udev" netlink group, so a card added and
// removed with `apemu ctl` must appear in and vanish from the lists; an mdev made by plain sysfs
// writes is listed once its mdev_type and iommu_group exist (§3.2).
TEST(LibvirtNodedev, ListsApCardsQueuesTheMatrixAndMdevsByCapability) {
  REQUIRE_LIBVIRT();
  const std::string body = std::string("U=") + kU + "\n" +
      "for c in ap_card ap_queue ap_matrix mdev; do echo \"# $c\"; v nodedev-list --cap $c; done\n"
      "echo '# hot plug'\n"
      APEMU_BIN " ctl card add 9 CEX8 accel 4 >/dev/null\n"
      "until_out \"$(printf 'ap_card00\\nap_card01\\nap_card02\\nap_card09\\n')\" "
      "v nodedev-list --cap ap_card\n"
      "q9() { v nodedev-list --cap ap_queue | grep ap_09; }\n"
      "until_out ap_09_0004 q9\n"
      APEMU_BIN " ctl card remove 9 >/dev/null\n"
      "until_out \"$(printf 'ap_card00\\nap_card01\\nap_card02\\n')\" "
      "v nodedev-list --cap ap_card\n"
      "echo '# mdev made through sysfs'\n"
      "echo -1 > /sys/bus/ap/apmask\n"
      "echo $U > $T/create\n"
      "until_out \"$(printf '" + kNameU + "\\n')\" v nodedev-list --cap mdev\n"
      "echo 1 > /sys/bus/mdev/devices/$U/remove\n"
      "until_out '' v nodedev-list --cap mdev\n";
  auto o = run_libvirt(body);
  ASSERT_EQ(o.status, 0) << o.text;
  std::string queues;
  for (const char* c : {"00", "01", "02"})
    for (const char* d : {"0004", "0005", "0006", "0007"})
      queues += std::string("ap_") + c + "_" + d + "\n";
  EXPECT_EQ(o.text, "# ap_card\nap_card00\nap_card01\nap_card02\n\n"
                    "# ap_queue\n" + queues + "\n"
                    "# ap_matrix\nap_matrix\n\n"
                    "# mdev\n\n"
                    "# hot plug\n"
                    "ap_card00\nap_card01\nap_card02\nap_card09\n"
                    "ap_09_0004\n"
                    "ap_card00\nap_card01\nap_card02\n"
                    "# mdev made through sysfs\n" + kNameU + "\n"
                    "\n");
}

// clients.md §3.2 and libvirt's schema (tests/nodedevschemadata/ap_card07.xml, ap_07_0038.xml,
// ap_matrix_mdev_types.xml): the adapter as 0x%02x, the domain as 0x%04x, a queue's parent is its
// card, the card's and the matrix's parents are "computer" (their sysfs parents, the AP bus root
// device and /sys/devices/vfio_ap, have no subsystem). <driver> is the bound driver:
// cex4card/cex4queue for the host (ap-bus.md), vfio_ap for a queue outside apmask and for the
// matrix (vfio-ap.md §1.2). availableInstances is read at dumpxml time: 65536
// (MAX_ZDEV_ENTRIES_EXT, vfio-ap.md §1.4) minus the existing mdevs.
TEST(LibvirtNodedev, DumpxmlOfACardAQueueAndTheMatrix) {
  REQUIRE_LIBVIRT();
  const std::string body = std::string("U=") + kU + "\n" +
      "v nodedev-dumpxml ap_01_0007 | grep -A1 '<driver>'\n"
      // libvirt reads the driver link at dumpxml time: the queue moves to vfio_ap at once.
      "echo -1 > /sys/bus/ap/apmask\n"
      "v nodedev-dumpxml ap_card01\n"
      "v nodedev-dumpxml ap_00_0004\n"
      "v nodedev-dumpxml ap_01_0007\n"
      "v nodedev-dumpxml ap_matrix\n"
      "echo $U > $T/create\n"
      "v nodedev-dumpxml ap_matrix | grep availableInstances\n"
      "echo 1 > /sys/bus/mdev/devices/$U/remove\n";
  auto o = run_libvirt(body);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text,
            "  <driver>\n"
            "    <name>cex4queue</name>\n"
            "<device>\n"
            "  <name>ap_card01</name>\n"
            "  <path>/sys/devices/ap/card01</path>\n"
            "  <parent>computer</parent>\n"
            "  <driver>\n"
            "    <name>cex4card</name>\n"
            "  </driver>\n"
            "  <capability type='ap_card'>\n"
            "    <ap-adapter>0x01</ap-adapter>\n"
            "  </capability>\n"
            "</device>\n"
            "\n"
            "<device>\n"
            "  <name>ap_00_0004</name>\n"
            "  <path>/sys/devices/ap/card00/00.0004</path>\n"
            "  <parent>ap_card00</parent>\n"
            "  <driver>\n"
            "    <name>cex4queue</name>\n"
            "  </driver>\n"
            "  <capability type='ap_queue'>\n"
            "    <ap-adapter>0x00</ap-adapter>\n"
            "    <ap-domain>0x0004</ap-domain>\n"
            "  </capability>\n"
            "</device>\n"
            "\n"
            "<device>\n"
            "  <name>ap_01_0007</name>\n"
            "  <path>/sys/devices/ap/card01/01.0007</path>\n"
            "  <parent>ap_card01</parent>\n"
            "  <driver>\n"
            "    <name>vfio_ap</name>\n"
            "  </driver>\n"
            "  <capability type='ap_queue'>\n"
            "    <ap-adapter>0x01</ap-adapter>\n"
            "    <ap-domain>0x0007</ap-domain>\n"
            "  </capability>\n"
            "</device>\n"
            "\n"
            "<device>\n"
            "  <name>ap_matrix</name>\n"
            "  <path>/sys/devices/vfio_ap/matrix</path>\n"
            "  <parent>computer</parent>\n"
            "  <driver>\n"
            "    <name>vfio_ap</name>\n"
            "  </driver>\n"
            "  <capability type='ap_matrix'>\n"
            "    <capability type='mdev_types'>\n"
            "      <type id='vfio_ap-passthrough'>\n"
            "        <name>VFIO AP Passthrough Device</name>\n"
            "        <deviceAPI>vfio-ap</deviceAPI>\n"
            "        <availableInstances>65536</availableInstances>\n"
            "      </type>\n"
            "    </capability>\n"
            "  </capability>\n"
            "</device>\n"
            "\n"
            "        <availableInstances>65535</availableInstances>\n");
}

// clients.md §3.3: nodedev-define runs `mdevctl define` (the attributes in XML order go into
// /etc/mdevctl.d/matrix/<uuid> verbatim), nodedev-start `mdevctl start`, which writes create and
// then each attribute (§1.3), nodedev-destroy `mdevctl stop` (remove), nodedev-undefine
// `mdevctl undefine`. Sysfs after each step: the mdev directory and its `matrix` (vfio-ap.md §3.6,
// "%02x.%04x") and `control_domains` (§3.7), the queue's status (§4.7). libvirt learns of the
// definition through inotify on /etc/mdevctl.d and of the device through udev events (§3.3), and
// reports each as a lifecycle event.
TEST(LibvirtNodedev, DefineStartDestroyUndefineAVfioApMdev) {
  REQUIRE_LIBVIRT();
  const std::string body = std::string("U=") + kU + " N=" + kNameU + "\n" +
      "echo -1 > /sys/bus/ap/apmask\n"
      "virsh -c nodedev:///system nodedev-event --event lifecycle --loop --timeout 25 "
      "> $L/events 2>&1 & EPID=$!\n"
      // A hot-plugged card proves the listener is registered before the mdev's first event.
      "ready() { " APEMU_BIN " ctl card add 9 CEX8 accel 4 >/dev/null; sleep 0.1; "
      APEMU_BIN " ctl card remove 9 >/dev/null; "
      "grep -q ' ap_card09: Created' $L/events && echo ready; }\n"
      "until_out ready ready\n"
      "ev() { until_out \"$1\" sh -c \"grep -c ' $N: ' $L/events\"; }\n"
      "mdev_xml $U assign_adapter=0x01 assign_domain=0x0004 assign_domain=5 "
      "assign_control_domain=0x10\n"
      "echo '# define'\n"
      "v nodedev-define $L/$U.xml; echo rc=$?\n"
      "cat /etc/mdevctl.d/matrix/$U; echo\n"
      "ls /sys/bus/mdev/devices | wc -l\n"
      "until_out \"$N\" v nodedev-list --cap mdev --inactive\n"
      "v nodedev-dumpxml $N\n"
      "ev 1\n"
      "echo '# start'\n"
      "v nodedev-start $N; echo rc=$?\n"
      "cat /sys/bus/mdev/devices/$U/matrix /sys/bus/mdev/devices/$U/control_domains\n"
      "cat /sys/bus/ap/devices/01.0004/status\n"
      "G=$(basename $(readlink /sys/bus/mdev/devices/$U/iommu_group)); echo group=$G\n"
      "until_out \"$N\" v nodedev-list --cap mdev\n"
      "v nodedev-dumpxml $N | sed \"s/number='$G'/number='GROUP'/\"\n"
      "ev 2\n"
      "echo '# destroy'\n"
      "v nodedev-destroy $N; echo rc=$?\n"
      "ls /sys/bus/mdev/devices | wc -l; ls /sys/devices/vfio_ap/matrix | grep -c -- -\n"
      "cat /sys/bus/ap/devices/01.0004/status\n"
      "until_out '' v nodedev-list --cap mdev\n"
      "v nodedev-list --cap mdev --inactive\n"
      "ev 3\n"
      "echo '# undefine'\n"
      "v nodedev-undefine $N; echo rc=$?\n"
      "ls -A /etc/mdevctl.d/matrix | wc -l\n"
      "until_out '' v nodedev-list --cap mdev --all\n"
      "ev 4\n"
      "kill $EPID; grep \" $N: \" $L/events | sed 's/^event //'\n";
  auto o = run_libvirt(body);
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string n(kNameU), u(kU);
  const std::string attrs = "    <attr name='assign_adapter' value='0x01'/>\n"
                            "    <attr name='assign_domain' value='0x0004'/>\n"
                            "    <attr name='assign_domain' value='5'/>\n"
                            "    <attr name='assign_control_domain' value='0x10'/>\n";
  EXPECT_EQ(o.text,
            "ready\n"
            "# define\n"
            "Node device '" + n + "' defined from '/run/apemu-libvirt/" + u + ".xml'\n\n"
            "rc=0\n"
            "{\n"
            "  \"mdev_type\": \"vfio_ap-passthrough\",\n"
            "  \"start\": \"manual\",\n"
            "  \"attrs\": [\n"
            "    {\n      \"assign_adapter\": \"0x01\"\n    },\n"
            "    {\n      \"assign_domain\": \"0x0004\"\n    },\n"
            "    {\n      \"assign_domain\": \"5\"\n    },\n"
            "    {\n      \"assign_control_domain\": \"0x10\"\n    }\n"
            "  ]\n"
            "}\n"
            "0\n" + n + "\n"
            // A defined, inactive mdev: no sysfs path, no driver; libvirt prints its default
            // iommuGroup 0 for it.
            "<device>\n"
            "  <name>" + n + "</name>\n"
            "  <parent>ap_matrix</parent>\n"
            "  <capability type='mdev'>\n"
            "    <type id='vfio_ap-passthrough'/>\n"
            "    <uuid>" + u + "</uuid>\n"
            "    <parent_addr>matrix</parent_addr>\n"
            "    <iommuGroup number='0'/>\n" + attrs +
            "  </capability>\n"
            "</device>\n"
            "\n"
            "1\n"
            "# start\n"
            "Device " + n + " started\n\n"
            "rc=0\n"
            "01.0004\n01.0005\n"
            "0010\n"
            "assigned\n"
            "group=0\n" + n + "\n"
            "<device>\n"
            "  <name>" + n + "</name>\n"
            "  <path>/sys/devices/vfio_ap/matrix/" + u + "</path>\n"
            "  <parent>ap_matrix</parent>\n"
            "  <driver>\n"
            "    <name>vfio_ap_mdev</name>\n"
            "  </driver>\n"
            "  <capability type='mdev'>\n"
            "    <type id='vfio_ap-passthrough'/>\n"
            "    <uuid>" + u + "</uuid>\n"
            "    <parent_addr>matrix</parent_addr>\n"
            "    <iommuGroup number='GROUP'/>\n" + attrs +
            "  </capability>\n"
            "</device>\n"
            "\n"
            "2\n"
            "# destroy\n"
            "Destroyed node device '" + n + "'\n\n"
            "rc=0\n"
            "0\n0\n"
            "unassigned\n"
            "\n" + n + "\n\n"
            "3\n"
            "# undefine\n"
            "Undefined node device '" + n + "'\n\n"
            "rc=0\n"
            "0\n"
            "\n"
            "4\n"
            "'lifecycle' for node device " + n + ": Defined\n"
            "'lifecycle' for node device " + n + ": Created\n"
            "'lifecycle' for node device " + n + ": Deleted\n"
            "'lifecycle' for node device " + n + ": Undefined\n");
}

// clients.md §3.3: nodedev-create runs `mdevctl start --parent=matrix --jsonfile=/dev/stdin
// --uuid=<u>`: a transient mdev, no definition; nodedev-destroy removes it.
TEST(LibvirtNodedev, CreateAndDestroyATransientVfioApMdev) {
  REQUIRE_LIBVIRT();
  const std::string body = std::string("U=") + kU + " N=" + kNameU + "\n" +
      "echo -1 > /sys/bus/ap/apmask\n"
      "mdev_xml $U assign_adapter=1 assign_domain=6 assign_domain=7\n"
      "v nodedev-create $L/$U.xml; echo rc=$?\n"
      "cat /sys/bus/mdev/devices/$U/matrix\n"
      "basename $(readlink /sys/bus/mdev/devices/$U/mdev_type)\n"
      "ls /etc/mdevctl.d | grep -c matrix\n"
      "until_out \"$N\" v nodedev-list --cap mdev\n"
      "v nodedev-list --cap mdev --inactive\n"
      "v nodedev-dumpxml $N | grep -e '<path>' -e vfio_ap_mdev -e '<attr'\n"
      "cat $T/available_instances\n"
      "v nodedev-destroy $N; echo rc=$?\n"
      "ls /sys/bus/mdev/devices | wc -l\n"
      "cat $T/available_instances\n"
      "until_out '' v nodedev-list --cap mdev --all\n";
  auto o = run_libvirt(body);
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string n(kNameU), u(kU);
  EXPECT_EQ(o.text,
            "Node device " + n + " created from /run/apemu-libvirt/" + u + ".xml\n\n"
            "rc=0\n"
            "01.0006\n01.0007\n"
            "vfio_ap-passthrough\n"
            "0\n" + n + "\n"
            "\n"
            // No <attr>: for an active mdev libvirt takes them from `mdevctl list`, which asks
            // the type's callout (s390-tools' ap-check, clients.md §1.2, §2.2), absent here.
            "  <path>/sys/devices/vfio_ap/matrix/" + u + "</path>\n"
            "    <name>vfio_ap_mdev</name>\n"
            "65535\n"
            "Destroyed node device '" + n + "'\n\n"
            "rc=0\n"
            "0\n"
            "65536\n"
            "\n");
}

// vfio-ap.md §3.3 step 5b: an assignment that would give an APQN to a second mdev fails with
// EADDRINUSE, here while a guest runs on the first one (queue status "in use", §4.7). mdevctl
// reports the failed attribute write with the errno's text and removes the half-made mdev
// (clients.md §1.3, "On any attribute failure it calls stop"); libvirt passes mdevctl's message
// on. Both ways in, a transient create and the start of a definition, must fail so and leave
// only the first mdev.
TEST(LibvirtNodedev, AnMdevSharingAnApqnOfARunningMdevIsRefusedWithEaddrinuse) {
  REQUIRE_LIBVIRT();
  const std::string body = std::string("U=") + kU + " W=" + kW + " N=" + kNameU + " NW=" +
      kNameW + "\n" +
      "echo -1 > /sys/bus/ap/apmask\n"
      "mdev_xml $U assign_adapter=1 assign_domain=4\n"
      "mdev_xml $W assign_adapter=1 assign_domain=5 assign_domain=4\n"
      "v nodedev-create $L/$U.xml >/dev/null; echo create1=$?\n"
      APEMU_BIN " ctl guest start --mdev $U --name vm1 >/dev/null; echo guest=$?\n"
      "cat /sys/bus/ap/devices/01.0004/status\n"
      "echo '# transient'\n"
      "v nodedev-create $L/$W.xml; echo create2=$?\n"
      "ls /sys/bus/mdev/devices\n"
      "echo '# defined'\n"
      "v nodedev-define $L/$W.xml >/dev/null; echo define2=$?\n"
      "v nodedev-start $NW; echo start2=$?\n"
      "ls /sys/bus/mdev/devices; ls /sys/devices/vfio_ap/matrix | grep -c -- -\n"
      "cat $T/available_instances\n"
      "cat /sys/bus/mdev/devices/$U/matrix\n"
      "until_out \"$N\" v nodedev-list --cap mdev\n"
      "v nodedev-list --cap mdev --inactive\n"
      APEMU_BIN " ctl dmesg | "
      "grep -c \"may not assign queue 01.0004 to mdev: already assigned to $U\"\n"
      APEMU_BIN " ctl guest stop --mdev $U >/dev/null; echo guest=$?\n";
  // libvirtd logs the refused starts, and may log the half-made mdev that vanished before it
  // could read its mdev_type (clients.md §3.2, the 1 s wait), as with a kernel.
  auto o = run_libvirt(body, /*allow_libvirtd_errors=*/true);
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string n(kNameU), nw(kNameW), u(kU);
  // The refused write is the second assign_domain (4): the first two only give W 01.0005.
  const std::string cause = "Error: Failed to write 4 to attribute assign_domain\n"
                            "\n"
                            "Caused by:\n"
                            "    Address already in use (os error 98)\n";
  EXPECT_EQ(o.text,
            "create1=0\n"
            "guest=0\n"
            "in use\n"
            "# transient\n"
            "error: Failed to create node device from /run/apemu-libvirt/" + std::string(kW) +
                ".xml\n"
            "error: internal error: Unable to start mediated device: " + cause + "\n\n"
            "create2=1\n" + u + "\n"
            "# defined\n"
            "define2=0\n"
            "error: Failed to start device " + nw + "\n"
            "error: internal error: Unable to create mediated device: " + cause + "\n\n"
            "start2=1\n" + u + "\n"
            "1\n"
            "65535\n"
            "01.0004\n" + n + "\n" + nw + "\n"
            "\n"
            "2\n"
            "guest=0\n");
  EXPECT_THAT(o.text, HasSubstr("Address already in use"));
  EXPECT_THAT(o.text, Not(HasSubstr("01.0005")));
}
