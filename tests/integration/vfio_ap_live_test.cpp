// vfio_ap and mdevs end to end: shell commands, real mdevctl (Debian 1.2.0) and udevadm inside
// `apemu run`, guests through `apemu ctl guest ...` (vfio-ap.md; clients.md §1, §7;
// Documentation/arch/s390/vfio-ap.rst's three-guest example).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/shell.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

using ::testing::HasSubstr;
using ::testing::Not;

using apemu::testing::Output;
using apemu::testing::sh;

namespace {

/// Writes `text` to a fresh file below /tmp and returns its path.
std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/apemu-vfio-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

/// Runs a bash script inside `apemu run [extra]`. The prelude gives mdevctl 1.2.0 its
/// directories in the private /etc/mdevctl.d and defines helpers:
///   w FILE VALUE   one write, printing "FILE VALUE -> ok" or the strerror text
///   ctl ARGS       apemu ctl
Output run_script(const std::string& body, const std::string& extra = "") {
  const std::string prelude = std::string("set -u\n") +
                              "mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers\n"
                              "w() { err=$( { echo \"$2\" > \"$1\"; } 2>&1 ); r=ok; "
                              "[ -n \"$err\" ] && r=${err##*: }; echo \"$(basename \"$1\") $2 -> $r\"; }\n"
                              "ctl() { " APEMU_BIN " ctl \"$@\"; }\n";
  const std::string script = temp_file("script.sh", prelude + body);
  auto o = sh(std::string(APEMU_BIN) + " run " + extra + " -- bash " + script);
  ::unlink(script.c_str());
  return o;
}

bool have_mdevctl() { return sh("command -v mdevctl").status == 0; }

// The machine of the documentation's example: adapters 5 and 6 (CEX4 or newer) with usage
// domains 4, 0x47, 0xab and 0xff; extended addressing.
constexpr const char* kDocTopology = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4,0x47,0xab,0xff"
control_domains = "4,0x47,0xab,0xff"
default_domain = 4

[[adapter]]
id = 5
type = "CEX8"
mode = "cca"

[[adapter]]
id = 6
type = "CEX7"
mode = "cca"
)";

const char* kU1 = "62177883-f1bb-47f0-914d-32a22e3a8804";
const char* kU2 = "cef03c3c-903d-4ecc-9a83-40694cb8aee4";
const char* kU3 = "a0e1b2c3-d4e5-4f60-8172-93a4b5c6d7e8";

} // namespace

TEST(VfioApLive, DocumentationWalkthroughThreeGuestsShareTheMachine) {
  REQUIRE_FACILITIES();
  const std::string topo = temp_file("doc.toml", kDocTopology);
  const std::string m = "/sys/devices/vfio_ap/matrix";
  const std::string body = std::string("U1=") + kU1 + " U2=" + kU2 + " U3=" + kU3 + "\n" +
      "M=" + m + "\n"
      "echo '# 1. secure the APQNs (apmask), see them bound to vfio_ap'\n"
      "w /sys/bus/ap/apmask -5,-6\n"
      "cat /sys/bus/ap/apmask\n"
      "ls /sys/bus/ap/drivers/vfio_ap | grep -v -e bind -e module -e uevent | tr '\\n' ' '; echo\n"
      "cat /sys/bus/ap/devices/card05/hwtype /sys/bus/ap/devices/05.0004/status\n"
      "echo '# 2. create three mdevs'\n"
      "for u in $U1 $U2 $U3; do w $M/mdev_supported_types/vfio_ap-passthrough/create $u; done\n"
      "ls $M/mdev_supported_types/vfio_ap-passthrough/devices | wc -l\n"
      "cat $M/mdev_supported_types/vfio_ap-passthrough/available_instances\n"
      "echo '# 3. configure the matrixes'\n"
      "w $M/$U1/assign_adapter 5; w $M/$U1/assign_adapter 6\n"
      "w $M/$U1/assign_domain 4; w $M/$U1/assign_domain 0xab\n"
      "w $M/$U1/assign_control_domain 4\n"
      "w $M/$U2/assign_adapter 5; w $M/$U2/assign_domain 0x47; w $M/$U2/assign_domain 0xff\n"
      "w $M/$U3/assign_adapter 6; w $M/$U3/assign_domain 0x47; w $M/$U3/assign_domain 0xff\n"
      "echo '# errors: sharing, reserved, above the maximum'\n"
      "w $M/$U2/assign_domain 4\n"
      "w $M/$U3/assign_adapter 7\n"
      "w $M/$U3/assign_adapter 256\n"
      "echo '# matrix and guest_matrix of guest 1'\n"
      "cat $M/$U1/matrix; echo --; cat $M/$U1/guest_matrix; echo --; cat $M/$U1/control_domains\n"
      "cat $M/$U2/matrix; cat $M/$U3/matrix\n"
      "cat /sys/bus/ap/devices/05.0004/status\n"
      "echo '# 4. start the three guests'\n"
      "ctl guest start --mdev $U1 --name guest1 && ctl guest start --mdev $U2 --name guest2 && "
      "ctl guest start --mdev $U3 --name guest3\n"
      "ctl guest show --mdev $U1\n"
      "cat /sys/bus/ap/devices/05.0004/status /sys/bus/ap/devices/06.00ff/status\n"
      "echo '# 5. hot plug adapter 7 into guest 1'\n"
      "ctl card add 7 CEX8 cca\n"
      "basename $(readlink /sys/bus/ap/devices/07.0004/driver)\n"
      "w /sys/bus/ap/apmask -7\n"
      "basename $(readlink /sys/bus/ap/devices/07.0004/driver)\n"
      "w $M/$U1/assign_adapter 7\n"
      "cat $M/$U1/guest_matrix\n"
      "ctl guest show --mdev $U1 | grep apm\n"
      "echo '# 6. the in_use veto'\n"
      "w /sys/bus/ap/apmask +5\n"
      "cat /sys/bus/ap/apmask\n"
      "ctl dmesg | grep 'Can not reserve' | sort\n"
      "echo '# 7. hot unplug, shut down, remove'\n"
      "w $M/$U1/unassign_adapter 7\n"
      "ctl guest show --mdev $U1 | grep apm\n"
      "for u in $U1 $U2 $U3; do ctl guest stop --mdev $u; done\n"
      "cat /sys/bus/ap/devices/05.0004/status\n"
      "for u in $U1 $U2 $U3; do w $M/$u/remove 1; done\n"
      "ls /sys/bus/mdev/devices | wc -l\n"
      "w /sys/bus/ap/apmask +5,+6,+7\n"
      "ls /sys/bus/ap/drivers/vfio_ap | grep -c '\\.'; true\n";
  auto o = run_script(body, "--topology " + topo);
  ::unlink(topo.c_str());
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string f62 = std::string(62, 'f');
  const std::string u1(kU1), u2(kU2), u3(kU3);
  const std::string want =
      "# 1. secure the APQNs (apmask), see them bound to vfio_ap\n"
      "apmask -5,-6 -> ok\n"
      "0xf9" + f62 + "\n"
      "05.0004 05.0047 05.00ab 05.00ff 06.0004 06.0047 06.00ab 06.00ff \n"
      "14\nunassigned\n"
      "# 2. create three mdevs\n"
      "create " + u1 + " -> ok\ncreate " + u2 + " -> ok\ncreate " + u3 + " -> ok\n"
      "3\n65533\n"
      "# 3. configure the matrixes\n"
      "assign_adapter 5 -> ok\nassign_adapter 6 -> ok\n"
      "assign_domain 4 -> ok\nassign_domain 0xab -> ok\n"
      "assign_control_domain 4 -> ok\n"
      "assign_adapter 5 -> ok\nassign_domain 0x47 -> ok\nassign_domain 0xff -> ok\n"
      "assign_adapter 6 -> ok\nassign_domain 0x47 -> ok\nassign_domain 0xff -> ok\n"
      "# errors: sharing, reserved, above the maximum\n"
      "assign_domain 4 -> Address already in use\n"
      "assign_adapter 7 -> Cannot assign requested address\n"
      "assign_adapter 256 -> No such device\n"
      "# matrix and guest_matrix of guest 1\n"
      "05.0004\n05.00ab\n06.0004\n06.00ab\n--\n05.0004\n05.00ab\n06.0004\n06.00ab\n--\n0004\n"
      "05.0047\n05.00ff\n06.0047\n06.00ff\n"
      "assigned\n"
      "# 4. start the three guests\n"
      "guest guest1 mdev " + u1 + "\n"
      "  apm 0x06" + std::string(62, '0') + " (5-6)\n"
      "  aqm 0x08" + std::string(40, '0') + "1" + std::string(21, '0') + " (4,171)\n"
      "  adm 0x08" + std::string(62, '0') + " (4)\n"
      "  apcb_writes 1 cfg_chg_signals 0\n"
      "in use\nin use\n"
      "# 5. hot plug adapter 7 into guest 1\n"
      "cex4queue\n"
      "apmask -7 -> ok\n"
      "vfio_ap\n"
      "assign_adapter 7 -> ok\n"
      "05.0004\n05.00ab\n06.0004\n06.00ab\n07.0004\n07.00ab\n"
      "  apm 0x07" + std::string(62, '0') + " (5-7)\n"
      "# 6. the in_use veto\n"
      "apmask +5 -> Device or resource busy\n"
      "0xf8" + f62 + "\n"
      // The mdev list is newest first: guest 3's mdev has no adapter 5, guest 2's is reported.
      "vfio_ap_mdev " + u2 + ": Can not reserve queue 05.0047 for host driver: in use by mdev\n"
      "vfio_ap_mdev " + u2 + ": Can not reserve queue 05.00ff for host driver: in use by mdev\n"
      "# 7. hot unplug, shut down, remove\n"
      "unassign_adapter 7 -> ok\n"
      "  apm 0x06" + std::string(62, '0') + " (5-6)\n"
      "assigned\n"
      "remove 1 -> ok\nremove 1 -> ok\nremove 1 -> ok\n"
      "0\n"
      "apmask +5,+6,+7 -> ok\n"
      "0\n";
  EXPECT_EQ(o.text, want);
}

TEST(VfioApLive, MdevctlDefineStartListStopUndefine) {
  REQUIRE_FACILITIES();
  if (!have_mdevctl()) GTEST_SKIP() << "mdevctl not installed";
  const std::string json = temp_file(
      "m.json", R"({"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[)"
                R"({"assign_adapter":"1"},{"assign_domain":"4"},{"assign_domain":"0x5"},)"
                R"({"assign_control_domain":"0x10"}]})");
  const std::string body = std::string("U=") + kU1 + "\n" +
      "w /sys/bus/ap/apmask -1 >/dev/null\n"
      "mdevctl types\n"
      "mdevctl define --uuid $U --parent matrix --jsonfile " + json + "; echo define=$?\n"
      "mdevctl list -d\n"
      "mdevctl start --uuid $U; echo start=$?\n"
      "cat /sys/bus/mdev/devices/$U/matrix /sys/bus/mdev/devices/$U/control_domains\n"
      "basename $(readlink /sys/bus/mdev/devices/$U/iommu_group)\n"
      "basename $(readlink /sys/bus/mdev/devices/$U/mdev_type)\n"
      "mdevctl list\n"
      "mdevctl list --dumpjson | tr -d ' \\n'; echo\n"
      "cat /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances\n"
      "mdevctl stop --uuid $U; echo stop=$?\n"
      "ls /sys/bus/mdev/devices | wc -l\n"
      "mdevctl undefine --uuid $U; echo undefine=$?\n"
      "mdevctl list -d | wc -l\n";
  auto o = run_script(body);
  ::unlink(json.c_str());
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string u(kU1);
  EXPECT_EQ(o.text,
            "matrix\n"
            "  vfio_ap-passthrough\n"
            "    Available instances: 65536\n"
            "    Device API: vfio-ap\n"
            "    Name: VFIO AP Passthrough Device\n"
            "\n"
            "define=0\n" + u + " matrix vfio_ap-passthrough manual\n\n"
            "start=0\n"
            "01.0004\n01.0005\n0010\n"
            "0\n"
            "vfio_ap-passthrough\n" + u + " matrix vfio_ap-passthrough manual (defined)\n\n"
            "[{\"matrix\":[{\"" + u + "\":{\"mdev_type\":\"vfio_ap-passthrough\",\"start\":\"manual\","
            "\"attrs\":[{\"assign_adapter\":\"1\"},{\"assign_domain\":\"4\"},{\"assign_domain\":\"0x5\"},"
            "{\"assign_control_domain\":\"0x10\"}]}}]}]\n"
            "65535\n"
            "stop=0\n0\nundefine=0\n"
            "1\n"); // mdevctl prints one empty line for an empty list
}

TEST(VfioApLive, MdevctlStartThatWouldShareAnApqnFailsAndLeavesNothingBehind) {
  REQUIRE_FACILITIES();
  if (!have_mdevctl()) GTEST_SKIP() << "mdevctl not installed";
  const std::string json = temp_file(
      "s.json", R"({"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[)"
                R"({"assign_adapter":"1"},{"assign_domain":"4"}]})");
  const std::string body = std::string("U=") + kU1 + " V=" + kU2 + "\n" +
      "w /sys/bus/ap/apmask -1 >/dev/null\n"
      "mdevctl define --uuid $U --parent matrix --jsonfile " + json + "\n"
      "mdevctl define --uuid $V --parent matrix --jsonfile " + json + "\n"
      "mdevctl start --uuid $U; echo start1=$?\n"
      "mdevctl start --uuid $V; echo start2=$?\n"
      "ls /sys/bus/mdev/devices\n"
      "ls /sys/devices/vfio_ap/matrix | grep -c -- -\n"
      "cat /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances\n"
      "mdevctl list\n"
      "ctl dmesg | grep 'may not assign'\n";
  auto o = run_script(body);
  ::unlink(json.c_str());
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string u(kU1), v(kU2);
  // The kernel's EADDRINUSE surfaces through mdevctl, which then removes the half-made mdev.
  EXPECT_EQ(o.text, "start1=0\n"
                    "Error: Failed to write 4 to attribute assign_domain\n"
                    "\n"
                    "Caused by:\n"
                    "    Address already in use (os error 98)\n"
                    "start2=1\n" + u + "\n"
                    "1\n"
                    "65535\n" + u + " matrix vfio_ap-passthrough manual (defined)\n\n"
                    "vfio_ap_mdev " + v + ": Userspace may not assign queue 01.0004 to mdev: "
                    "already assigned to " + u + "\n");
}

TEST(VfioApLive, CreateAndRemoveReturnTheKernelErrnoThroughFuse) {
  REQUIRE_FACILITIES();
  const std::string t = "/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";
  const std::string body = std::string("U=") + kU1 + "\nT=" + t + "\n" +
      "w $T/create 1234\n"
      "w $T/create zzzzzzzz-f1bb-47f0-914d-32a22e3a8804\n"
      "w $T/create $U\n"
      "w $T/create $U\n"
      "printf %s $U | tr a-f A-F > /run/upper; w $T/create $(cat /run/upper)\n"
      "w /sys/bus/mdev/devices/$U/remove x\n"
      "w /sys/bus/mdev/devices/$U/remove 0\n"
      "ls $T/devices\n"
      "readlink /sys/bus/mdev/devices/$U/iommu_group\n"
      "ls /sys/kernel/iommu_groups/0/devices\n"
      "w /sys/bus/mdev/devices/$U/matrix 1\n"
      "w /sys/bus/mdev/devices/$U/remove 1\n"
      "ls $T/devices | wc -l; ls /sys/kernel/iommu_groups | wc -l\n";
  auto o = run_script(body);
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string u(kU1);
  EXPECT_EQ(o.text, "create 1234 -> Invalid argument\n"
                    "create zzzzzzzz-f1bb-47f0-914d-32a22e3a8804 -> Invalid argument\n"
                    "create " + u + " -> ok\n"
                    "create " + u + " -> File exists\n"
                    "create 62177883-F1BB-47F0-914D-32A22E3A8804 -> File exists\n"
                    "remove x -> Invalid argument\n"
                    "remove 0 -> ok\n" + u + "\n"
                    "../../../../kernel/iommu_groups/0\n" + u + "\n"
                    "matrix 1 -> Permission denied\n"
                    "remove 1 -> ok\n"
                    "0\n0\n");
}

TEST(VfioApLive, UdevadmSeesTheMatrixSubsystemOnlyWithTheMatrixBus) {
  // vfio-ap.md §1.6, driver-core.md §4.7: 4.20's bus-less matrix device has no subsystem.
  REQUIRE_FACILITIES();
  auto now = run_script("udevadm info /sys/devices/vfio_ap/matrix\n");
  ASSERT_EQ(now.status, 0) << now.text;
  EXPECT_THAT(now.text, HasSubstr("P: /devices/vfio_ap/matrix\nM: matrix\nU: matrix\nV: vfio_ap\n"));
  EXPECT_THAT(now.text, HasSubstr("E: SUBSYSTEM=matrix\nE: DRIVER=vfio_ap\n"));
  auto old = run_script("udevadm info /sys/devices/vfio_ap/matrix; echo rc=$?\n"
                        "ls /sys/bus | grep -c '^matrix$'; true\n",
                        "--kernel 4.20");
  ASSERT_EQ(old.status, 0) << old.text;
  EXPECT_THAT(old.text, HasSubstr("P: /devices/vfio_ap/matrix\nM: matrix\n"));
  EXPECT_THAT(old.text, Not(HasSubstr("U:")));
  EXPECT_THAT(old.text, Not(HasSubstr("SUBSYSTEM")));
  EXPECT_THAT(old.text, HasSubstr("rc=0\n0\n"));
}

TEST(VfioApLive, KernelProfile420RefusesAssignmentAndRemoveWhileAGuestRuns) {
  REQUIRE_FACILITIES();
  const std::string m = "/sys/devices/vfio_ap/matrix";
  const std::string body = std::string("U=") + kU1 + "\nM=" + m + "\n" +
      "w /sys/bus/ap/apmask -1\n"
      "w $M/mdev_supported_types/vfio_ap-passthrough/create $U\n"
      "w $M/$U/assign_adapter 1; w $M/$U/assign_domain 4\n"
      "ls $M/$U | tr '\\n' ' '; echo\n"
      "basename $(readlink $M/$U/driver)\n"
      "ctl guest start --mdev $U --name old\n"
      "w $M/$U/assign_domain 5\n"
      "w $M/$U/remove 1\n"
      "ctl guest show | grep -e apm -e aqm\n"
      "ctl guest stop --mdev $U\n"
      "w $M/$U/remove 1\n";
  auto o = run_script(body, "--kernel 4.20");
  ASSERT_EQ(o.status, 0) << o.text;
  const std::string z62(62, '0');
  EXPECT_EQ(o.text, "apmask -1 -> ok\n"
                    "create " + std::string(kU1) + " -> ok\n"
                    "assign_adapter 1 -> ok\nassign_domain 4 -> ok\n"
                    "assign_adapter assign_control_domain assign_domain control_domains driver "
                    "iommu_group matrix mdev_type power remove subsystem uevent unassign_adapter "
                    "unassign_control_domain unassign_domain \n"
                    "vfio_mdev\n"
                    "assign_domain 5 -> Device or resource busy\n"
                    "remove 1 -> Device or resource busy\n"
                    "  apm 0x40" + z62 + " (1)\n"
                    "  aqm 0x08" + z62 + " (4)\n"
                    "remove 1 -> ok\n");
}

// vfio-ap.md §3.11 (current), §5.5: `remove` of an mdev whose guest ignores the device request
// blocks the writer (the FUSE request is kept) until the guest stops; then it returns 0 and the
// mdev is gone. Waits poll a condition (the request in the kernel log), never a fixed time.
TEST(VfioApLive, RemoveBlocksWhileTheGuestIgnoresTheRequestAndReturnsAfterGuestStop) {
  REQUIRE_FACILITIES();
  const std::string body = std::string("U=") + kU1 + "\nM=/sys/devices/vfio_ap/matrix\n" +
      "w /sys/bus/ap/apmask -1\n"
      "w $M/mdev_supported_types/vfio_ap-passthrough/create $U\n"
      "w $M/$U/assign_adapter 1; w $M/$U/assign_domain 4\n"
      "ctl guest start --mdev $U --name stubborn --ignore-requests\n"
      "( echo 1 > $M/$U/remove; echo \"writer rc=$?\" ) &\n"
      "for i in $(seq 400); do ctl dmesg | grep -q 'Relaying device request' && break; sleep 0.01; done\n"
      "ctl dmesg | grep -o 'Relaying device request to user (#0)'\n"
      "kill -0 $! && echo writer-blocked\n"
      "test -d $M/$U && echo mdev-still-there\n"
      "ctl guest stop --mdev $U\n"
      "wait\n"
      "test -d $M/$U || echo mdev-gone\n";
  auto o = run_script(body);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text, "apmask -1 -> ok\n"
                    "create " + std::string(kU1) + " -> ok\n"
                    "assign_adapter 1 -> ok\nassign_domain 4 -> ok\n"
                    "Relaying device request to user (#0)\n"
                    "writer-blocked\nmdev-still-there\nwriter rc=0\nmdev-gone\n");
}

// A writer interrupted by SIGINT gets EINTR and nothing is removed (the issue's rule; the
// kernel's writer would stay blocked uninterruptibly).
TEST(VfioApLive, ASigintInterruptsABlockedRemoveWithEintrAndTheMdevStays) {
  REQUIRE_FACILITIES();
  const std::string body = std::string("U=") + kU1 + "\nM=/sys/devices/vfio_ap/matrix\n" +
      "w /sys/bus/ap/apmask -1\n"
      "w $M/mdev_supported_types/vfio_ap-passthrough/create $U\n"
      "w $M/$U/assign_adapter 1; w $M/$U/assign_domain 4\n"
      "ctl guest start --mdev $U --ignore-requests\n"
      INTERRUPTIBLE_WRITE " $M/$U/remove 1 &\n"
      "for i in $(seq 400); do ctl dmesg | grep -q 'Relaying device request' && break; sleep 0.01; done\n"
      "kill -INT $!; wait $!; echo \"writer rc=$?\"\n"
      "test -e $M/$U/remove && echo mdev-stays\n"
      "cat $M/$U/matrix\n"
      "ctl guest stop --mdev $U\n"
      "w $M/$U/remove 1\n";
  auto o = run_script(body);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text, "apmask -1 -> ok\n"
                    "create " + std::string(kU1) + " -> ok\n"
                    "assign_adapter 1 -> ok\nassign_domain 4 -> ok\n"
                    "write: EINTR\nwriter rc=1\nmdev-stays\n01.0004\nremove 1 -> ok\n");
}

// The emulated QEMU honours the request: the remove completes by itself (and 4.20 refuses).
TEST(VfioApLive, RemoveOfAnMdevInUseCompletesWhenQemuReleasesIt) {
  REQUIRE_FACILITIES();
  const std::string body = std::string("U=") + kU1 + "\nM=/sys/devices/vfio_ap/matrix\n" +
      "w /sys/bus/ap/apmask -1\n"
      "w $M/mdev_supported_types/vfio_ap-passthrough/create $U\n"
      "ctl guest start --mdev $U\n"
      "w $M/$U/remove 1\n"
      "test -d $M/$U || echo mdev-gone\n"
      "ctl guest show | wc -l\n";
  auto o = run_script(body);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text, "apmask -1 -> ok\ncreate " + std::string(kU1) +
                        " -> ok\nremove 1 -> ok\nmdev-gone\n0\n");
}
