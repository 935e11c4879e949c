// `apemu run` / `apemu serve` / `apemu ctl` end to end with real clients: udevadm, a libudev
// monitor (tests/clients/udev_monitor.c), shells, through the FUSE tree in private namespaces
// (driver-core.md §3.7–3.9, §4; clients.md §8; ap-bus.md §9).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/shell.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

using ::testing::HasSubstr;
using ::testing::Not;

using apemu::testing::sh;

namespace {

std::string apemu_run(const std::string& script) {
  return std::string(APEMU_BIN) + " run -- sh -c '" + script + "'";
}

} // namespace

TEST(ApemuRun, ExitCodeIsTheCommandsAndTheHostSysIsUntouched) {
  REQUIRE_FACILITIES();
  EXPECT_EQ(sh(apemu_run("exit 7")).status, 7);
  auto o = sh(apemu_run("ls /sys/bus/ap/devices | wc -l; cat /sys/kernel/uevent_seqnum; "
                        "echo $SYSTEMD_DEVICE_VERIFY_SYSFS; find /etc/mdevctl.d -type f | wc -l"));
  ASSERT_EQ(o.status, 0) << o.text;
  std::istringstream in(o.text);
  std::string n, seq, verify, mdevctl_entries;
  in >> n >> seq >> verify >> mdevctl_entries;
  EXPECT_EQ(n, "15");
  EXPECT_EQ(verify, "0");
  EXPECT_EQ(mdevctl_entries, "0"); // a private, empty /etc/mdevctl.d
  struct stat st {};
  EXPECT_NE(::stat("/sys/bus/ap", &st), 0) << "the host's /sys must not change";
  EXPECT_EQ(sh(std::string(APEMU_BIN) + " run -- /nonexistent-command").status, 127);
}

// apemu starts itself once more with huge pages for its heap (tools/apemu/main.cpp); CMD must
// get the environment apemu was given, with or without GLIBC_TUNABLES.
TEST(ApemuRun, CommandGetsTheCallersEnvironment) {
  REQUIRE_FACILITIES();
  const std::string script = "echo \"[${GLIBC_TUNABLES-unset}]\"; env | grep -c ^APEMU_SAVED || true";
  auto unset = sh("env -u GLIBC_TUNABLES " + apemu_run(script));
  ASSERT_EQ(unset.status, 0) << unset.text;
  EXPECT_EQ(unset.text, "[unset]\n0\n");
  auto set = sh("GLIBC_TUNABLES=glibc.malloc.arena_max=2 " + apemu_run(script));
  ASSERT_EQ(set.status, 0) << set.text;
  EXPECT_EQ(set.text, "[glibc.malloc.arena_max=2]\n0\n");
  auto empty = sh("GLIBC_TUNABLES= " + apemu_run(script));
  ASSERT_EQ(empty.status, 0) << empty.text;
  EXPECT_EQ(empty.text, "[]\n0\n");
}

TEST(ApemuRun, WritesReturnTheKernelErrnoThroughTheLiveTree) {
  REQUIRE_FACILITIES();
  auto o = sh(std::string(APEMU_BIN) + " run -- bash -c '"
              "echo \"#apmask\"; echo zz > /sys/bus/ap/apmask; "
              "echo \"#config_time\"; echo 999 > /sys/bus/ap/config_time; "
              "echo \"#bind\"; echo 01.0004 > /sys/bus/ap/drivers/cex4queue/bind; "
              "cat /sys/bus/ap/drivers_probe; "
              "echo -1 > /sys/bus/ap/apmask && cat /sys/bus/ap/bindings'");
  const std::string err = "bash: line 1: echo: write error: ";
  EXPECT_THAT(o.text, HasSubstr("#apmask\n" + err + "Invalid argument\n"));
  EXPECT_THAT(o.text, HasSubstr("#config_time\n" + err + "Invalid argument\n"));
  EXPECT_THAT(o.text, HasSubstr("#bind\n" + err + "Device or resource busy\n"));
  EXPECT_THAT(o.text, HasSubstr("drivers_probe: Permission denied"));
  // card 01's queues left cex4queue and were bound by vfio_ap (loaded by default since issue 5)
  EXPECT_THAT(o.text, HasSubstr("12/12 (complete)\n"));
}

TEST(ApemuRun, UdevadmSeesTheEmulatedDevicesWithTheirProperties) {
  REQUIRE_FACILITIES();
  auto o = sh(apemu_run("udevadm info --export-db"));
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_THAT(o.text, HasSubstr("P: /devices/ap/card01\nM: card01\nR: 01\n"));
  EXPECT_THAT(o.text, HasSubstr("E: SUBSYSTEM=ap\nE: DEVTYPE=ap_card\nE: DRIVER=cex4card\n"
                                "E: DEV_TYPE=000E\nE: MODALIAS=ap:t0E\nE: MODE=cca\n"));
  EXPECT_THAT(o.text, HasSubstr("P: /devices/ap/card02/02.0007\n"));
  // Every device exactly once, and never the bus-less root /devices/ap (driver-core.md §7.5).
  EXPECT_EQ(std::count(o.text.begin(), o.text.end(), 'P') >= 15, true);
  EXPECT_THAT(o.text, Not(HasSubstr("P: /devices/ap\n")));
  auto one = sh(apemu_run("udevadm info /sys/bus/ap/devices/01.0005"));
  ASSERT_EQ(one.status, 0) << one.text;
  EXPECT_THAT(one.text, HasSubstr("P: /devices/ap/card01/01.0005\n"));
  EXPECT_THAT(one.text, HasSubstr("U: ap\nT: ap_queue\nV: cex4queue\n"));
  EXPECT_THAT(one.text, HasSubstr("E: USEC_INITIALIZED="));
}

TEST(ApemuRun, BusLessDeviceHasNoSubsystemAndIsSkippedByEnumeration) {
  // The libudev case of the matrix-device history (driver-core.md §4.7): /sys/devices/ap is
  // registered without a bus (root_device_register); its cards are bus devices.
  REQUIRE_FACILITIES();
  auto o = sh(apemu_run("udevadm info /sys/devices/ap; echo rc=$?; "
                        "udevadm info /sys/devices/ap/card00 | grep ^U:"));
  // The bus-less device: a record without a U: (subsystem) line; the bus device: "U: ap".
  const auto first = o.text.substr(0, o.text.find("rc="));
  EXPECT_THAT(first, HasSubstr("P: /devices/ap\n"));
  EXPECT_THAT(first, Not(HasSubstr("U:")));
  EXPECT_THAT(o.text, HasSubstr("U: ap\n"));
  auto list = sh(apemu_run("udevadm trigger --dry-run --verbose --subsystem-match=ap"));
  EXPECT_THAT(list.text, HasSubstr("/sys/devices/ap/card00\n"));
  EXPECT_THAT(list.text, Not(HasSubstr("/sys/devices/ap\n")));
}

TEST(ApemuRun, LibudevMonitorReceivesEventsInSeqnumOrderIncludingTrigger) {
  REQUIRE_FACILITIES();
  const std::string ctl = std::string(APEMU_BIN) + " ctl";
  const std::string script =
      std::string(UDEV_MONITOR) + " --count 11 --timeout-ms 15000 --subsystem ap > /run/apemu/mon.out & "
      "for i in $(seq 100); do grep -q READY /run/apemu/mon.out 2>/dev/null && break; sleep 0.05; done; " +
      ctl + " card add 9 CEX8 accel 4 && " +
      "udevadm trigger --action=change --settle /sys/devices/ap/card09 && " + ctl +
      " card remove 9 && wait; cat /run/apemu/mon.out";
  auto o = sh(apemu_run(script));
  ASSERT_EQ(o.status, 0) << o.text;
  std::istringstream in(o.text);
  std::string line;
  std::vector<std::string> got;
  long last_seq = -1;
  while (std::getline(in, line)) {
    if (line == "READY" || line.empty() || line[0] == ' ') continue;
    std::istringstream f(line);
    std::string action, devpath, subsystem, driver;
    long seq;
    f >> action >> devpath >> subsystem >> seq >> driver;
    EXPECT_GT(seq, last_seq) << line;
    last_seq = seq;
    got.push_back(action + " " + devpath + " " + driver);
  }
  EXPECT_THAT(got, ::testing::ElementsAre(
                       "add /devices/ap/card09 -", "bind /devices/ap/card09 cex4card",
                       "add /devices/ap/card09/09.0004 -", "bind /devices/ap/card09/09.0004 cex4queue",
                       "change /devices/ap -", "change /devices/ap/card09 cex4card",
                       // udevadm trigger on a path also triggers the devices below it
                       "change /devices/ap/card09/09.0004 cex4queue",
                       "unbind /devices/ap/card09/09.0004 -", "remove /devices/ap/card09/09.0004 -",
                       "unbind /devices/ap/card09 -", "remove /devices/ap/card09 -"));
}

TEST(ApemuRun, LszcryptChzcryptAndK8sPluginFilesThroughTheLiveTree) {
  // ap-bus.md §9.1–9.2, clients.md §4.1: the files those tools read and write, used the way
  // they use them (first lines, directory regexes, link basenames, fputs without newline).
  REQUIRE_FACILITIES();
  auto o = sh(std::string(APEMU_BIN) + " run -- bash " + SOURCE_DIR + "/tests/integration/client_files.sh");
  ASSERT_EQ(o.status, 0) << o.text;
  std::ifstream in(std::string(SOURCE_DIR) + "/tests/fixtures/client_files.txt");
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(o.text, want.str());
}

TEST(ApemuRun, PeriodicScanMakesQueuesFollowACardConfigWrite) {
  // ap-bus.md §4.1 `config`, §6.5: queue config follows at the next scan (config_time, here 5 s,
  // re-armed by the write). Virtual machine time: nothing sleeps.
  REQUIRE_FACILITIES();
  auto o = sh(std::string(APEMU_BIN) + " run --clock virtual -- sh -c '"
              "echo 5 > /sys/bus/ap/config_time; echo 0 > /sys/devices/ap/card01/config; "
              "cat /sys/devices/ap/card01/01.0004/config; A=" APEMU_BIN "; $A ctl clock; "
              "$A ctl clock advance 4.9s >/dev/null; cat /sys/devices/ap/card01/01.0004/config; "
              "$A ctl clock advance 100ms; cat /sys/devices/ap/card01/01.0004/config /sys/bus/ap/scans'");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text, "1\nnow 0s (virtual)\ntimer ap_config_timer in 5s\n1\n"
                    "now 5s (virtual)\ntimer ap_config_timer in 5s\n0\n2\n");
}

TEST(ApemuRun, ClockAdvanceNeedsAVirtualClock) {
  REQUIRE_FACILITIES();
  auto o = sh(apemu_run(std::string(APEMU_BIN) + " ctl clock advance 1s; echo rc=$?"));
  EXPECT_THAT(o.text, HasSubstr("the clock is real time (start with --clock virtual): EINVAL "
                                "(Invalid argument)\nrc=1\n"));
}

TEST(ApemuServe, MountsServesControlAndUnmountsOnSigterm) {
  REQUIRE_FACILITIES();
  char dir[] = "/tmp/apemu-serve-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string sock = std::string(dir) + ".sock";
  const std::string out = std::string(dir) + ".out";
  // Serve in a private mount namespace so a crash cannot leave a stale mount on the host.
  const std::string cmd =
      "unshare -m --propagation private sh -c '" + std::string(APEMU_BIN) + " serve -m " + dir +
      " --control " + sock + " > " + out + " & pid=$!; "
      "for i in $(seq 100); do grep -q READY " + out + " && break; sleep 0.05; done; "
      "cat " + dir + "/bus/ap/ap_domain; " + APEMU_BIN + " ctl -s " + sock + " card add 0x0c CEX8 cca; "
      "ls " + dir + "/devices/ap; " + APEMU_BIN + " ctl -s " + sock + " card add 0x0c CEX8 cca; echo ctl=$?; "
      "stat -c %a " + sock + "; kill -TERM $pid; wait $pid; echo serve=$?; "
      "grep -c " + dir + " /proc/self/mountinfo'";
  auto o = sh(cmd);
  EXPECT_THAT(o.text, HasSubstr("4\n"));
  EXPECT_THAT(o.text, HasSubstr("card0c"));
  EXPECT_THAT(o.text, HasSubstr("apemu: ctl: adapter 0x0c exists: EEXIST (File exists)\nctl=1\n"));
  EXPECT_THAT(o.text, HasSubstr("600\n"));
  EXPECT_THAT(o.text, HasSubstr("serve=0\n0\n")); // clean exit, nothing left mounted
  ::rmdir(dir);
  ::unlink(out.c_str());
}

namespace {

/// Runs `script` in a private mount namespace (so no test can leave a mount on the host) with
/// $A (the apemu binary), $D and $E (fresh directories) and $S (a socket path) set, and the
/// helper `start DIR SOCK LOG` that starts `apemu serve` in the background, waits for READY and
/// leaves its pid in $pid.
apemu::testing::Output serve_script(const std::string& script) {
  char d[] = "/tmp/apemu-faults-XXXXXX";
  char e[] = "/tmp/apemu-faults-XXXXXX";
  if (!::mkdtemp(d) || !::mkdtemp(e)) return {};
  const std::string body =
      std::string("A=") + APEMU_BIN + "; D=" + d + "; E=" + e + "; S=" + d + ".sock\n" +
      "start() { $A serve -m $1 --control $2 > $3 2>&1 & pid=$!; "
      "for i in $(seq 200); do grep -q READY $3 && return 0; kill -0 $pid 2>/dev/null || return 1; "
      "sleep 0.02; done; return 1; }\n" + script;
  const std::string file = std::string(d) + ".sh";
  std::ofstream(file) << body;
  auto o = sh("unshare -m --propagation private bash " + file);
  ::unlink(file.c_str());
  ::rmdir(d);
  ::rmdir(e);
  ::unlink((std::string(d) + ".sock").c_str());
  return o;
}

} // namespace

// Issue 9 item 4: after SIGKILL the mount stays dead (ENOTCONN); a new serve on the same
// directory detaches it and serves again.
TEST(ApemuServe, RecoversTheDeadMountOfAKilledDaemon) {
  REQUIRE_FACILITIES();
  auto o = serve_script(
      "start $D $S $D.log1 || { echo start1 failed; cat $D.log1; exit 1; }\n"
      "kill -KILL $pid; wait $pid 2>/dev/null\n"
      "stat $D >/dev/null 2>&1 || echo dead\n"
      "start $D $S $D.log2 || { echo start2 failed; cat $D.log2; exit 1; }\n"
      "cat $D/bus/ap/ap_domain; $A ctl -s $S show > /dev/null && echo ctl-ok\n"
      "grep -o 'detached the dead FUSE mount' $D.log2\n"
      "kill -TERM $pid; wait $pid; echo serve=$?; rm -f $D.log1 $D.log2\n");
  EXPECT_EQ(o.text, "dead\n4\nctl-ok\ndetached the dead FUSE mount\nserve=0\n");
}

// A live mount point and a live control socket are refused with their errno; the first daemon
// keeps serving; a path that is not a socket is never deleted.
TEST(ApemuServe, RefusesALiveMountPointASocketInUseAndANonSocket) {
  REQUIRE_FACILITIES();
  auto o = serve_script(
      "start $D $S $D.log || { cat $D.log; exit 1; }\n"
      "$A serve -m $D --control $S.2 2>&1; echo second=$?\n"
      "$A serve -m $E --control $S 2>&1; echo third=$?\n"
      "echo precious > $E.file; $A serve -m $E --control $E.file 2>&1; echo fourth=$?; cat $E.file\n"
      "cat $D/bus/ap/ap_domain; $A ctl -s $S show > /dev/null && echo ctl-ok\n"
      "kill -TERM $pid; wait $pid; echo serve=$?; rm -f $D.log $E.file $S.2\n");
  EXPECT_THAT(o.text, HasSubstr("apemu: serve: mountpoint " ));
  EXPECT_THAT(o.text, HasSubstr("already has a mounted fuse.apemu filesystem: EBUSY (Device or "
                                "resource busy)\nsecond=1\n"));
  EXPECT_THAT(o.text, HasSubstr("another apemu serves the control socket"));
  EXPECT_THAT(o.text, HasSubstr("EADDRINUSE (Address already in use)\nthird=1\n"));
  EXPECT_THAT(o.text, HasSubstr("exists and is not a socket: EEXIST (File exists)\nfourth=1\n"
                                "precious\n4\nctl-ok\nserve=0\n"));
}

// The mount taken away from outside ends the daemon with a message naming the errno.
TEST(ApemuServe, ExitsWhenItsMountIsTakenAway) {
  REQUIRE_FACILITIES();
  auto o = serve_script(
      "start $D $S $D.log || { cat $D.log; exit 1; }\n"
      "umount $D; wait $pid; echo serve=$?; cat $D.log; rm -f $D.log\n"
      "test -e $S || echo socket-gone\n");
  EXPECT_THAT(o.text, HasSubstr("serve=1\n"));
  EXPECT_THAT(o.text, HasSubstr("was taken away; exiting: ENOTCONN (Transport endpoint is not "
                                "connected)\n"));
  EXPECT_THAT(o.text, HasSubstr("socket-gone\n"));
}
