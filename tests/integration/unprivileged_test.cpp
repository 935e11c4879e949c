// apemu as an ordinary user (issue 12 "Ecosystem", point 1): `apemu run` through a user
// namespace whose root is the caller (as `unshare -r`), with the same tree, udev netlink events
// and errnos as for root; `apemu serve` on a directory the user owns, mounted through
// fusermount3. Every test drops to `nobody` with setpriv, running copies of the binaries and the
// topology in a temporary directory that nobody can read (the build tree may not be).
//
// The tests skip only when the facility is truly absent (no setpriv/fusermount3, user namespaces
// disabled for ordinary users); under CI=true they fail instead.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/shell.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

using ::testing::HasSubstr;
using ::testing::Not;

using apemu::testing::Output;
using apemu::testing::sh;

namespace {

/// A directory (0755) holding copies of apemu, the default topology and the test clients, owned
/// by root and readable by everyone; removed at the end.
struct Sandbox {
  std::string dir;
  Sandbox() {
    char tmpl[] = "/tmp/apemu-nobody-XXXXXX";
    dir = ::mkdtemp(tmpl);
    ::chmod(dir.c_str(), 0755);
    (void)sh("cp " + std::string(APEMU_BIN) + " " + UDEV_MONITOR + " " + INTERRUPTIBLE_WRITE +
             " " + SOURCE_DIR + "/topologies/default.toml " + dir + "/ && chmod 0755 " + dir +
             "/apemu " + dir + "/udev_monitor " + dir + "/interruptible_write && chmod 0644 " + dir +
             "/default.toml");
  }
  ~Sandbox() { (void)sh("rm -rf " + dir); }
  /// `sh -c script` as nobody:nogroup without supplementary groups, in the sandbox, with the
  /// sandbox's topology directory.
  Output as_nobody(const std::string& script) const {
    const std::string file = dir + "/script.sh";
    std::ofstream(file) << "cd " << dir << "\nexport APEMU_TOPOLOGY_DIR=" << dir
                        << " HOME=" << dir << "\n" << script << "\n";
    ::chmod(file.c_str(), 0644);
    return sh("setpriv --reuid nobody --regid nogroup --clear-groups sh " + file);
  }
};

/// Why the facility is missing, or "" when an ordinary user can make a user namespace.
std::string missing_facility() {
  if (sh("command -v setpriv").status != 0) return "setpriv is not installed";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "no /dev/fuse";
  auto o = sh("setpriv --reuid nobody --regid nogroup --clear-groups unshare -r -m -n true");
  if (o.status != 0) return "user namespaces are disabled for ordinary users: " + o.text;
  return "";
}

#define REQUIRE_USER_NAMESPACES()                                                                  \
  do {                                                                                             \
    if (::geteuid() != 0) GTEST_SKIP() << "the test needs root to drop to nobody";                 \
    if (const std::string why = missing_facility(); !why.empty()) {                                \
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")                     \
        FAIL() << "under CI: " << why;                                                             \
      GTEST_SKIP() << why;                                                                         \
    }                                                                                              \
  } while (0)

} // namespace

// The acceptance of point 1: nobody lists the devices, and a bad store gives the kernel's errno
// (ap-bus.md §2.2: a mask that does not parse is EINVAL; driver-core.md §2.8: a 0444 file
// cannot be opened for writing, EACCES even for root).
TEST(ApemuRunUnprivileged, NobodyListsTheDevicesAndGetsTheKernelsErrnos) {
  REQUIRE_USER_NAMESPACES();
  Sandbox sb;
  auto o = sb.as_nobody("id -u; ./apemu run -- sh -c '"
                        "id -u; ls /sys/bus/ap/devices; "
                        "./interruptible_write /sys/bus/ap/apmask bogus; "
                        "./interruptible_write /sys/bus/ap/ap_max_domain_id 1; "
                        "./interruptible_write /sys/bus/ap/apmask -1; cat /sys/bus/ap/apmask'; "
                        "echo rc=$?");
  EXPECT_THAT(o.text, HasSubstr("65534\n0\n")) << "outside nobody, inside root";
  EXPECT_THAT(o.text, HasSubstr("00.0004\n00.0005\n00.0006\n00.0007\n01.0004\n"));
  EXPECT_THAT(o.text, HasSubstr("card00\ncard01\ncard02\n"));
  EXPECT_THAT(o.text, HasSubstr("write: EINVAL\nopen: EACCES\nwrite: ok 2\n"));
  EXPECT_THAT(o.text, HasSubstr("0xbf" + std::string(62, 'f') + "\n"));
  EXPECT_THAT(o.text, HasSubstr("rc=0\n"));
}

// driver-core.md §3.7: the udev-format events of a store reach a libudev monitor inside the
// unprivileged run (sd-device accepts them: the sender is uid 0 in the namespace).
TEST(ApemuRunUnprivileged, LibudevMonitorReceivesTheEvents) {
  REQUIRE_USER_NAMESPACES();
  Sandbox sb;
  auto o = sb.as_nobody(
      "./apemu run -- sh -c '"
      "./udev_monitor --count 1 --timeout-ms 15000 --subsystem ap > /run/apemu/mon.out & "
      "for i in $(seq 100); do grep -q READY /run/apemu/mon.out 2>/dev/null && break; sleep 0.05; "
      "done; echo 0 > /sys/devices/ap/card01/config; wait; cat /run/apemu/mon.out'");
  EXPECT_EQ(o.status, 0) << o.text;
  EXPECT_THAT(o.text, HasSubstr("change /devices/ap/card01 ap"));
}

// `apemu serve` as nobody on a directory nobody owns: fusermount3 mounts it (without
// allow_other unless fuse.conf allows it), nobody is the served machine's root, a bad store is
// EINVAL, SIGTERM unmounts. Runs in a private mount namespace so a failure cannot leave a mount
// on the host.
TEST(ApemuServeUnprivileged, NobodyServesADirectoryItOwns) {
  REQUIRE_USER_NAMESPACES();
  if (sh("command -v fusermount3").status != 0) {
    if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")
      FAIL() << "fusermount3 is missing under CI";
    GTEST_SKIP() << "fusermount3 is not installed";
  }
  Sandbox sb;
  (void)sh("mkdir " + sb.dir + "/mnt && chown nobody:nogroup " + sb.dir + "/mnt");
  const std::string script =
      "./apemu serve -m mnt --control " + sb.dir + "/ctl.sock > serve.out 2>&1 & pid=$!\n"
      "for i in $(seq 200); do grep -q READY serve.out && break; sleep 0.05; done\n"
      "cat serve.out; ls mnt/bus/ap/devices | head -3; stat -c %U mnt/bus/ap/apmask\n"
      "./interruptible_write mnt/bus/ap/apmask bogus\n"
      "./apemu ctl -s " + sb.dir + "/ctl.sock card add 9 CEX8 cca 4; ls mnt/devices/ap | grep card09\n"
      "kill -TERM $pid; wait $pid; echo serve=$?; grep -c " + sb.dir + "/mnt /proc/self/mountinfo\n";
  const std::string file = sb.dir + "/serve.sh";
  std::ofstream(file) << "cd " << sb.dir << "\nexport APEMU_TOPOLOGY_DIR=" << sb.dir << "\n"
                      << script;
  ::chmod(file.c_str(), 0644);
  ::chmod(sb.dir.c_str(), 0777); // serve.out and the socket are nobody's
  auto o = sh("unshare -m --propagation private setpriv --reuid nobody --regid nogroup "
              "--clear-groups sh " + file);
  EXPECT_THAT(o.text, HasSubstr("READY mnt\n"));
  EXPECT_THAT(o.text, HasSubstr("00.0004\n00.0005\n00.0006\nnobody\nwrite: EINVAL\n"));
  EXPECT_THAT(o.text, HasSubstr("card09\n"));
  EXPECT_THAT(o.text, HasSubstr("serve=0\n0\n"));
  EXPECT_THAT(o.text, Not(HasSubstr("apemu: serve:")));
}
