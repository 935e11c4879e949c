// `apemu record` (issue 12 point 5): a machine changed at run time, exported as plain files (a
// sysfs as `apemu export` writes it), recorded, booted from the recording: the two trees are the
// same except for what counts events (SEQNUM, scans, the bindings-complete counter).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "apemu/testbed/control.h"
#include "apemu/testbed/record.h"
#include "apemu/testbed/testbed.h"
#include "golden.h"
#include "matchers.h"
#include "sysfs_helpers.h"

using namespace apemu;
using namespace apemu::testing;

namespace {

constexpr const char* kA = "11111111-2222-3333-4444-555555555555";
constexpr const char* kB = "22222222-2222-3333-4444-555555555555";

/// The dump without the lines that count events.
std::string comparable(const std::string& dump) {
  std::istringstream in(dump);
  std::string out, line;
  while (std::getline(in, line)) {
    if (line.find("/kernel/uevent_seqnum ") != std::string::npos ||
        line.find("/bus/ap/scans ") != std::string::npos ||
        line.find("/bus/ap/bindings_complete_count ") != std::string::npos)
      continue;
    out += line + "\n";
  }
  return out;
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/apemu-record-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::unique_ptr<testbed::Testbed> boot(const std::string& toml, const char* kernel) {
  auto topo = topology::parse(toml, "<recording>");
  EXPECT_THAT(topo, IsOk());
  testbed::Options o;
  o.topology = std::move(*topo);
  o.kernel_profile = kernel;
  auto tb = testbed::Testbed::create(std::move(o));
  EXPECT_THAT(tb, IsOk());
  return tb ? std::move(*tb) : nullptr;
}

class RecordRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(RecordRoundTrip, RecordingBootsToTheSameTree) {
  const char* kernel = GetParam();
  testbed::Options o;
  o.kernel_profile = kernel;
  auto made = testbed::Testbed::from_file(testbed::default_topology_path(), std::move(o));
  ASSERT_THAT(made, IsOk());
  auto tb = std::move(*made);
  const auto& prof = tb->core().profile();
  std::string before, recording;
  TempDir dir;
  {
    auto g = tb->lock();
    auto w = [&](const std::string& p, const std::string& v) {
      EXPECT_THAT(sysfs_write(tb->core(), p, v), IsOk()) << p << " " << v;
    };
    auto ctl = [&](std::vector<std::string> argv) {
      EXPECT_THAT(testbed::execute_command(*tb, argv), IsOk()) << argv[0];
    };
    // The firmware: a hot-plugged EP11 card, a new usage and a new control domain.
    ctl({"card", "add", "9", "CEX7", "ep11", "4-8"});
    ctl({"domain", "add", "8"});
    ctl({"control-domain", "add", "0x20"});
    // Bus settings and masks: adapters 1 and 9 to vfio_ap, domain 7 reserved away.
    w("/bus/ap/ap_domain", "5");
    w("/bus/ap/config_time", "60");
    w("/bus/ap/poll_timeout", "500000");
    w("/bus/ap/apmask", "-1,-9");
    w("/bus/ap/aqmask", "-7");
    // zcrypt online flags: card 0 offline, queue 02.0006 offline.
    w("/devices/ap/card00/online", "0");
    w("/devices/ap/card02/02.0006/online", "0");
    // A deconfigured card: its queues follow at the next scan (a recording cannot show the
    // moment in between, so the scan comes first).
    ctl({"card", "add", "0x0a", "CEX8", "cca", "4"});
    if (prof.ap_config_attrs) w("/devices/ap/card0a/config", "0");
    ctl({"scan"});
    // Two mdevs (the second created first), assignments including control domains.
    const std::string create =
        "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
    w(create, kB);
    w(create, kA);
    const std::string a = std::string("/devices/vfio_ap/matrix/") + kA;
    const std::string b = std::string("/devices/vfio_ap/matrix/") + kB;
    w(a + "/assign_adapter", "1");
    w(a + "/assign_domain", "4");
    w(a + "/assign_domain", "5");
    w(a + "/assign_control_domain", "0x20");
    w(b + "/assign_adapter", "9");
    w(b + "/assign_domain", "8");
    // zcrypt nodes with filters.
    if (prof.zcrypt_device_nodes) {
      w("/class/zcrypt/create", "n1");
      w("/class/zcrypt/create", "\n");
      w("/class/zcrypt/n1/apmask", "+0,+2");
      w("/class/zcrypt/n1/aqmask", "+4-6");
      w("/class/zcrypt/n1/ioctlmask", "+0x81");
      w("/class/zcrypt/zcrypt_1/admask", "0x8");
    }
    // Let the machine settle: the queues that moved to vfio_ap finish their reset (a recording
    // is made of a machine at rest; a reset in flight is not state a topology can hold).
    ASSERT_THAT(tb->runtime().advance(std::chrono::seconds(1)), IsOk());
    before = tb->dump();
    ASSERT_THAT(tb->export_to(dir.path), IsOk());
    const std::string exported = dump_directory(dir.path);
    auto rec = testbed::record_topology(dir.path, prof);
    ASSERT_THAT(rec, IsOk());
    EXPECT_EQ(dump_directory(dir.path), exported) << "recording only reads";
    recording = *rec;
    g.unlock();
  }
  auto again = boot(recording, kernel);
  ASSERT_NE(again, nullptr) << recording;
  auto g = again->lock();
  EXPECT_EQ(comparable(again->dump()), comparable(before)) << recording;
  // The recording says what it recorded.
  EXPECT_THAT(recording, ::testing::HasSubstr("uuid = \"" + std::string(kB) + "\""));
  EXPECT_THAT(recording, ::testing::HasSubstr("offline_domains = \"6\""));
  // Queues that vfio_ap took from zcrypt are left uninitiated by the release (ap-bus.md §5.2),
  // unlike queues a boot hands to vfio_ap: adapter 1 entirely, 00.0007 through aqmask.
  EXPECT_THAT(recording, ::testing::HasSubstr("id = 0x01\ntype = \"CEX8\"\nmode = \"cca\"\n"));
  EXPECT_THAT(recording,
              ::testing::HasSubstr("domains = \"4-8\"\nuninitiated_domains = \"4-8\"\n"));
  if (prof.ap_config_attrs) {
    EXPECT_THAT(recording,
                ::testing::HasSubstr("config = false\ndomains = \"4\"\nerror_domains = \"4\"\n"));
  }
  EXPECT_THAT(recording,
              ::testing::HasSubstr("[[mdev]]\nuuid = \"" + std::string(kA) +
                                   "\"\ntype = \"vfio_ap-passthrough\"\nadapters = \"1\"\n"
                                   "domains = \"4-5\"\ncontrol_domains = \"32\"\n"));
  // The older mdev (the lower IOMMU group) comes first, so the groups come out the same.
  EXPECT_LT(recording.find(kB), recording.find(kA));
  g.unlock();
}

INSTANTIATE_TEST_SUITE_P(Profiles, RecordRoundTrip,
                         ::testing::Values("4.20", "5.15", "6.1", "6.16", "6.19"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '.', '_');
                           return "Kernel_" + n;
                         });

TEST(Record, NeedsAnApBus) {
  TempDir dir;
  EXPECT_THAT(testbed::record_topology(dir.path, profile::default_profile()), FailsWith(ENODEV));
  EXPECT_THAT(testbed::record_topology("/nonexistent-apemu", profile::default_profile()),
              FailsWith(ENODEV));
}

TEST(Record, TopologyRejectsBadMdevAndNodeTables) {
  // Errors name the line and key (README "Topologies").
  EXPECT_THAT(topology::parse("[[mdev]]\nuuid = \"nope\"\n"), FailsWith(EINVAL));
  EXPECT_THAT(
      topology::parse("[[mdev]]\nuuid = \"11111111-2222-3333-4444-555555555555\"\nbogus = 1\n"),
      FailsWith(EINVAL));
  EXPECT_THAT(topology::parse("[[mdev]]\nuuid = \"11111111-2222-3333-4444-555555555555\"\n"
                              "[[mdev]]\nuuid = \"11111111-2222-3333-4444-555555555555\"\n"),
              FailsWith(EEXIST));
  EXPECT_THAT(topology::parse("[[zcrypt_node]]\nname = \"a b\"\n"), FailsWith(EINVAL));
  EXPECT_THAT(topology::parse("[[zcrypt_node]]\nname = \"n\"\napmask = \"0xzz\"\n"),
              FailsWith(EINVAL));
  EXPECT_THAT(topology::parse("config_time = 4\n"), FailsWith(ERANGE));
}

} // namespace
