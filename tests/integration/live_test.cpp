// `apemu run` / `apemu serve` / `apemu ctl` end to end with real clients: udevadm, a libudev
// monitor (tests/clients/udev_monitor.c), shells, through the FUSE tree in private namespaces
// (driver-core.md §3.7–3.9, §4; clients.md §8; ap-bus.md §9).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/shell.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
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

namespace {

/// Runs `script` (bash) from a file with $A (the apemu binary) and $T (a fresh directory, removed
/// afterwards) set; `after` sees the files the script left in $T.
apemu::testing::Output bash_in_tmp(const std::string& script,
                                   const std::function<void(const std::string&)>& after = {}) {
  char t[] = "/tmp/apemu-live-XXXXXX";
  if (!::mkdtemp(t)) return {};
  const std::string file = std::string(t) + "/script.sh";
  std::ofstream(file) << "A=" << APEMU_BIN << "; T=" << t << "\n" << script;
  auto o = sh("bash " + file);
  if (after) after(t);
  sh(std::string("rm -rf ") + t);
  return o;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A tree dump without the lines that count events (issue 12: only SEQNUM-dependent content may
/// differ between a machine and the boot of its recording).
std::string without_counters(const std::string& dump) {
  std::istringstream in(dump);
  std::string out, line;
  while (std::getline(in, line))
    if (line.find("/kernel/uevent_seqnum ") == std::string::npos &&
        line.find("/bus/ap/scans ") == std::string::npos &&
        line.find("/bus/ap/bindings_complete_count ") == std::string::npos)
      out += line + "\n";
  return out;
}

} // namespace

// docs/control.md "Results" (issue 12 point 6): every verb through the real client and socket,
// each reply line parsed as JSON and checked against the machine it describes.
TEST(ApemuCtl, JsonResultOfEveryVerbThroughTheSocket) {
  REQUIRE_FACILITIES();
  const std::string u = "11111111-2222-3333-4444-555555555555";
  auto o = bash_in_tmp(
      "$A run --clock virtual -- bash -c '\n"
      "M=/sys/devices/vfio_ap/matrix; U=" + u + "\n"
      "echo -1 > /sys/bus/ap/apmask; echo $U > $M/mdev_supported_types/vfio_ap-passthrough/create\n"
      "echo 1 > $M/$U/assign_adapter; echo 5 > $M/$U/assign_domain\n"
      "echo n1 > /sys/class/zcrypt/create\n"
      "j() { out=$(" + std::string(APEMU_BIN) + " ctl --json \"$@\"); rc=$?; echo \"$out rc=$rc\"; }\n"
      "j show; j tree /bus/ap/ap_domain; j dmesg; j scan; j clock; j clock advance 1s\n"
      "j card add 9 CEX8 ep11 4-5; j card config 9 off; j card chkstop 9 on; j card remove 9\n"
      "j domain add 8; j domain remove 8; j control-domain add 32; j control-domain remove 32\n"
      "j guest start --mdev $U --name vm1; j guest show; j guest show --mdev $U\n"
      "j guest stop --mdev $U; j guest show; j card remove 77; j nosuchverb\n'\n");
  ASSERT_EQ(o.status, 0) << o.text;
  std::vector<nlohmann::json> r;
  std::istringstream in(o.text);
  for (std::string line; std::getline(in, line);) {
    const auto rc = line.rfind(" rc=");
    ASSERT_NE(rc, std::string::npos) << line;
    auto j = nlohmann::json::parse(line.substr(0, rc), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    // apemu ctl --json exits 0 for a success reply, 1 for a failure reply.
    EXPECT_EQ(line.substr(rc), j.value("ok", false) ? " rc=0" : " rc=1") << line;
    r.push_back(std::move(j));
  }
  ASSERT_EQ(r.size(), 21u) << o.text;
  for (std::size_t i = 0; i < 19; ++i) {
    EXPECT_EQ(r[i]["ok"], true) << i << " " << r[i].dump();
    EXPECT_TRUE(r[i]["result"].is_object()) << i << " " << r[i].dump();
  }
  const auto& show = r[0]["result"];
  EXPECT_EQ(show["ap_domain"], 4);
  EXPECT_EQ(show["usage_domains"], nlohmann::json::array({4, 5, 6, 7}));
  EXPECT_EQ(show["cards"][1]["queues"][1]["apqn"], "01.0005");
  EXPECT_EQ(show["cards"][1]["queues"][1]["owner"], "vfio_ap");
  EXPECT_EQ(show["cards"][1]["queues"][1]["mdev"], u);
  EXPECT_EQ(show["cards"][0]["queues"][0]["owner"], "host");
  EXPECT_EQ(show["mdevs"][0]["domains"], nlohmann::json::array({5}));
  EXPECT_EQ(show["zcrypt_nodes"][0]["name"], "n1");
  EXPECT_EQ(show["zcrypt_nodes"][0]["minor"], 0);
  EXPECT_EQ(r[1]["result"]["entries"][0]["value"], "4\n");
  EXPECT_TRUE(r[2]["result"]["lines"].is_array());
  EXPECT_EQ(r[3]["result"]["scans"], 2); // the boot's scan and this one
  EXPECT_EQ(r[4]["result"]["now_ns"], 0);
  EXPECT_EQ(r[5]["result"]["now_ns"], 1'000'000'000);
  EXPECT_EQ(r[6]["result"]["type"], "CEX8P");
  EXPECT_EQ(r[6]["result"]["queues"].size(), 2u);
  EXPECT_EQ(r[7]["result"]["config"], false);
  EXPECT_EQ(r[8]["result"]["hardware_chkstop"], true);
  EXPECT_EQ(r[9]["result"], (nlohmann::json{{"id", 9}, {"present", false}}));
  EXPECT_EQ(r[10]["result"]["usage_domains"], nlohmann::json::array({4, 5, 6, 7, 8}));
  EXPECT_EQ(r[11]["result"]["usage_domains"], nlohmann::json::array({4, 5, 6, 7}));
  EXPECT_EQ(r[12]["result"]["control_domains"], nlohmann::json::array({4, 5, 6, 7, 16, 32}));
  EXPECT_EQ(r[13]["result"]["control_domains"], nlohmann::json::array({4, 5, 6, 7, 16}));
  EXPECT_EQ(r[14]["result"]["name"], "vm1");
  EXPECT_EQ(r[14]["result"]["aqm"]["ids"], nlohmann::json::array({5}));
  EXPECT_EQ(r[15]["result"]["guests"].size(), 1u);
  EXPECT_EQ(r[16]["result"]["guests"][0]["mdev"], u);
  EXPECT_EQ(r[17]["result"], (nlohmann::json{{"mdev", u}, {"running", false}}));
  EXPECT_EQ(r[18]["result"], (nlohmann::json{{"guests", nlohmann::json::array()}}));
  // Failures: the errno, never a result.
  EXPECT_EQ(r[19]["ok"], false);
  EXPECT_EQ(r[19]["errno"], "ENODEV");
  EXPECT_FALSE(r[19].contains("result"));
  EXPECT_EQ(r[20]["errno"], "EINVAL");
}

// `apemu record` (issue 12 point 5) for real: a machine changed through its live tree is
// recorded through FUSE by the CLI, the recording boots in a second `apemu run`, and the two
// `ctl tree /` dumps are identical but for the event counters. Recording only reads: the uevent
// SEQNUM does not move while it runs.
TEST(ApemuRecord, LiveTreeRecordingBootsToTheSameTree) {
  REQUIRE_FACILITIES();
  std::string before, after, recording;
  auto o = bash_in_tmp(
      "cat > $T/change.sh <<'END'\n"
      "M=/sys/devices/vfio_ap/matrix; U=11111111-2222-3333-4444-555555555555\n"
      "echo -1 > /sys/bus/ap/apmask; echo -7 > /sys/bus/ap/aqmask; echo 5 > /sys/bus/ap/ap_domain\n"
      "echo 0 > /sys/devices/ap/card02/online; echo 0 > /sys/devices/ap/card00/00.0006/online\n"
      "echo $U > $M/mdev_supported_types/vfio_ap-passthrough/create\n"
      "echo 1 > $M/$U/assign_adapter; echo 4 > $M/$U/assign_domain; echo 16 > $M/$U/assign_control_domain\n"
      "echo n1 > /sys/class/zcrypt/create; echo +0,+2 > /sys/class/zcrypt/n1/apmask\n"
      "echo 0x10 > /sys/class/zcrypt/n1/ioctlmask; echo > /sys/class/zcrypt/create\n"
      "$A ctl clock advance 1s > /dev/null\n"
      "s1=$(cat /sys/kernel/uevent_seqnum)\n"
      "$A record --sysfs /sys > $T/rec.toml || echo record-failed\n"
      "s2=$(cat /sys/kernel/uevent_seqnum); test $s1 = $s2 || echo seqnum-moved $s1 $s2\n"
      "$A ctl tree / > $T/before\n"
      "END\n"
      "A=$A T=$T $A run --clock virtual -- bash $T/change.sh; echo first=$?\n"
      "$A run --clock virtual --topology $T/rec.toml -- sh -c \"$A ctl tree / > $T/after\"; "
      "echo second=$?\n",
      [&](const std::string& t) {
        before = slurp(t + "/before");
        after = slurp(t + "/after");
        recording = slurp(t + "/rec.toml");
      });
  EXPECT_EQ(o.text, "first=0\nsecond=0\n");
  ASSERT_THAT(before, HasSubstr("/class/zcrypt/n1 -> "));
  EXPECT_THAT(recording, HasSubstr("[[mdev]]\nuuid = \"11111111-2222-3333-4444-555555555555\""));
  EXPECT_THAT(recording, HasSubstr("default_domain = 5\n"));
  EXPECT_THAT(recording, HasSubstr("[[zcrypt_node]]\nname = \"zcrypt_1\"\n"));
  EXPECT_EQ(without_counters(after), without_counters(before)) << recording;
}
