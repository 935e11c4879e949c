// The private writable places of `apemu run` (README "Private writable places"; issue
// "Ecosystem", point 3): what a client writes in /run, /etc/mdevctl.d, /etc/udev/rules.d,
// /etc/libvirt, /var/{lib,cache,log}/libvirt and each --private PATH never reaches the host, and
// --private PATH is checked with the errno name in the message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/shell.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using ::testing::HasSubstr;
using ::testing::Not;

using apemu::testing::Output;
using apemu::testing::sh;

namespace {

const std::string kApemu = APEMU_BIN;

/// The places made private by default, as the README lists them.
const std::vector<std::string> kPlaces = {
    "/run",         "/etc/mdevctl.d",   "/etc/udev/rules.d", "/etc/libvirt",
    "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"};

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

/// `ls -A` of a host directory, or "<absent>".
std::string listing(const std::string& dir) {
  if (!exists(dir)) return "<absent>";
  return sh("LC_ALL=C ls -A " + dir).text;
}

/// A fresh host directory below /tmp holding one file, `keep`.
struct HostDir {
  std::string path;
  HostDir() {
    char tmpl[] = "/tmp/apemu-private-XXXXXX";
    path = ::mkdtemp(tmpl);
    std::ofstream(path + "/keep") << "host\n";
  }
  ~HostDir() { (void)sh("rm -rf " + path); }
};

} // namespace

TEST(ApemuRunPrivate, NothingWrittenInAPrivatePlaceReachesTheHost) {
  REQUIRE_FACILITIES();
  HostDir extra;
  const std::string probe = "apemu-probe-" + std::to_string(::getpid());
  std::vector<std::string> before;
  for (const auto& p : kPlaces) before.push_back(listing(p));
  const std::string var_lib = listing("/var/lib");
  const bool had_ap_rules = exists("/etc/udev/rules.d/41-ap.rules");

  std::string script = "set -e; export LC_ALL=C\n";
  // Every place is writable inside; the empty ones start empty (the ls before the touch).
  for (const auto& p : kPlaces) script += "touch " + p + "/" + probe + "\n";
  script += "mkdir -p /etc/libvirt/qemu/networks /var/lib/libvirt/qemu\n"
            "echo '# private' > /etc/udev/rules.d/41-ap.rules\n"
            "echo 'changed' >> /etc/libvirt/libvirt.conf\n"
            "ls -A " + extra.path + "; touch " + extra.path + "/" + probe + "\n"
            "echo --\n"
            "ls -A /etc/mdevctl.d /etc/udev/rules.d /var/log/libvirt\n"
            "echo --\n"
            // The parent of a place the host lacks keeps the host's entries.
            "ls -A /var/lib\n"
            "echo --\n"
            "for p in /etc/libvirt /var/lib/libvirt " + extra.path +
            "; do findmnt -n -o FSTYPE --target $p; done\n";
  const std::string script_file = "/tmp/apemu-private-" + std::to_string(::getpid()) + ".sh";
  std::ofstream(script_file) << script;
  auto o = sh(kApemu + " run --private " + extra.path + " -- sh " + script_file);
  ::unlink(script_file.c_str());
  ASSERT_EQ(o.status, 0) << o.text;

  // Inside: the --private dir was empty (its "keep" hidden), the empty places held only what the
  // script made, /var/lib is the host's plus libvirt/ when the host lacks it.
  std::string host_var_lib_with_libvirt = var_lib;
  if (!exists("/var/lib/libvirt")) {
    std::vector<std::string> names;
    std::string name;
    std::istringstream in(var_lib);
    while (std::getline(in, name)) names.push_back(name);
    names.push_back("libvirt");
    std::sort(names.begin(), names.end());
    host_var_lib_with_libvirt.clear();
    for (const auto& n : names) host_var_lib_with_libvirt += n + "\n";
  }
  EXPECT_EQ(o.text, "--\n"
                    "/etc/mdevctl.d:\n" + probe + "\nscripts.d\n\n"
                    "/etc/udev/rules.d:\n41-ap.rules\n" + probe + "\n\n"
                    "/var/log/libvirt:\n" + probe + "\n"
                    "--\n" + host_var_lib_with_libvirt +
                    "--\n"
                    "overlay\ntmpfs\ntmpfs\n");

  // On the host: no probe anywhere, every place as before, the --private dir untouched.
  for (std::size_t i = 0; i < kPlaces.size(); ++i) {
    EXPECT_FALSE(exists(kPlaces[i] + "/" + probe)) << kPlaces[i];
    if (kPlaces[i] != "/run") {
      EXPECT_EQ(listing(kPlaces[i]), before[i]) << kPlaces[i];
    }
  }
  EXPECT_EQ(listing("/var/lib"), var_lib);
  EXPECT_EQ(exists("/etc/udev/rules.d/41-ap.rules"), had_ap_rules);
  EXPECT_EQ(sh("cat /etc/libvirt/libvirt.conf 2>/dev/null | grep -c '^changed$'").text, "0\n");
  EXPECT_EQ(listing(extra.path), "keep\n");
  // Should a place leak, leave the host as it was for the next run.
  for (const auto& p : kPlaces) ::unlink((p + "/" + probe).c_str());
  if (!had_ap_rules) ::unlink("/etc/udev/rules.d/41-ap.rules");
}

TEST(ApemuRunPrivate, EtcLibvirtShowsTheHostsFiles) {
  REQUIRE_FACILITIES();
  if (!exists("/etc/libvirt/libvirt.conf"))
    GTEST_SKIP() << "no /etc/libvirt/libvirt.conf on this host";
  auto o = sh(kApemu + " run -- cat /etc/libvirt/libvirt.conf | cmp - /etc/libvirt/libvirt.conf"
                       " && echo same");
  EXPECT_EQ(o.text, "same\n");
}

TEST(ApemuRunPrivate, PrivatePathsAreCheckedWithTheErrnoName) {
  REQUIRE_FACILITIES();
  HostDir d;
  const auto missing = d.path + "/missing";
  const auto file = d.path + "/keep";
  auto enoent = sh(kApemu + " run --private " + missing + " -- echo ran");
  EXPECT_EQ(enoent.status, 1);
  EXPECT_EQ(enoent.text,
            "apemu: run: --private " + missing + ": ENOENT (No such file or directory)\n");
  auto enotdir = sh(kApemu + " run --private " + file + " -- echo ran");
  EXPECT_EQ(enotdir.status, 1);
  EXPECT_EQ(enotdir.text, "apemu: run: --private " + file + ": ENOTDIR (Not a directory)\n");
  for (const char* bad : {"/", "/sys/bus", "/run"}) {
    auto einval = sh(kApemu + " run --private " + bad + " -- echo ran");
    EXPECT_EQ(einval.status, 1) << bad;
    EXPECT_EQ(einval.text, std::string("apemu: run: --private ") + bad +
                               ": not /, nor at or below /sys or /run: EINVAL (Invalid argument)\n")
        << bad;
    EXPECT_THAT(einval.text, Not(HasSubstr("ran")));
  }
  // Repeatable, each an empty tmpfs; a symlink to a directory names that directory.
  HostDir other;
  ASSERT_EQ(::symlink(other.path.c_str(), (d.path + "/link").c_str()), 0);
  auto two = sh(kApemu + " run --private " + d.path + " --private " + d.path + "/link -- sh -c '"
                "ls -A " + d.path + "; echo --; ls -A " + other.path + "; touch " + other.path +
                "/x'");
  EXPECT_EQ(two.status, 0) << two.text;
  EXPECT_EQ(two.text, "--\n");
  EXPECT_EQ(listing(other.path), "keep\n");
  auto help = sh(kApemu + " run --help");
  EXPECT_THAT(help.text, HasSubstr("--private PATH"));
  EXPECT_THAT(help.text, HasSubstr("/etc/udev/rules.d"));
}
