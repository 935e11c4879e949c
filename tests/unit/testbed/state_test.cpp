// Persistent state (issue 9 item 5, include/apemu/testbed/state.h): a machine changed at run
// time is saved and a fresh machine restored from the same directory shows the same tree; a
// torn or corrupt file is refused with its path and offset and nothing is restored.
#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "apemu/testbed/control.h"
#include "apemu/testbed/state.h"
#include "apemu/testbed/testbed.h"
#include "matchers.h"
#include "sysfs_helpers.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

std::unique_ptr<testbed::Testbed> boot(const char* kernel = "") {
  testbed::Options o;
  o.kernel_profile = kernel;
  auto tb = testbed::Testbed::from_file(testbed::default_topology_path(), std::move(o));
  EXPECT_THAT(tb, IsOk());
  return std::move(*tb);
}

/// The tree without the counters of past events, which a restart starts afresh (SEQNUM, the
/// number of bus scans and of bindings-complete events).
std::string tree_of(testbed::Testbed& tb) {
  std::istringstream in(tb.dump("/"));
  std::string line, out;
  while (std::getline(in, line))
    if (line.find("uevent_seqnum") == std::string::npos && line.find("/bus/ap/scans") == std::string::npos &&
        line.find("bindings_complete_count") == std::string::npos)
      out += line + "\n";
  return out;
}

/// The lines only in `a` ("-") and only in `b` ("+"): a readable failure message.
std::string line_diff(const std::string& a, const std::string& b) {
  auto lines = [](const std::string& t) {
    std::multiset<std::string> out;
    std::istringstream in(t);
    std::string l;
    while (std::getline(in, l)) out.insert(l);
    return out;
  };
  const auto la = lines(a), lb = lines(b);
  std::string out;
  for (const auto& l : la)
    if (!lb.count(l)) out += "- " + l + "\n";
  for (const auto& l : lb)
    if (!la.count(l)) out += "+ " + l + "\n";
  return out;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class StateTest : public ::testing::Test {
protected:
  void SetUp() override {
    char d[] = "/tmp/apemu-state-XXXXXX";
    ASSERT_NE(::mkdtemp(d), nullptr);
    dir = d;
  }
  void TearDown() override { fs::remove_all(dir); }
  /// Changes of every kind a restart must keep.
  void change(testbed::Testbed& tb) {
    core::Core& c = tb.core();
    auto run = [&](std::vector<std::string> argv) {
      ASSERT_THAT(testbed::execute_command(tb, argv), IsOk()) << argv[0];
    };
    run({"card", "add", "9", "CEX7", "cca", "4-5"});
    run({"card", "config", "2", "off"});
    run({"domain", "add", "8"});
    run({"control-domain", "remove", "0x10"});
    ASSERT_THAT(sysfs_write(c, "/bus/ap/apmask", "-1,-9"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/bus/ap/aqmask", "-8"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/bus/ap/ap_domain", "5"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/bus/ap/config_time", "60"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/devices/ap/card00/online", "0"), IsOk());
    const std::string type = "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/";
    const std::string u1 = "11111111-1111-1111-1111-111111111111";
    const std::string u2 = "22222222-2222-2222-2222-222222222222";
    ASSERT_THAT(sysfs_write(c, type + "create", u1), IsOk());
    ASSERT_THAT(sysfs_write(c, type + "create", u2), IsOk());
    const std::string m1 = "/devices/vfio_ap/matrix/" + u1 + "/";
    const std::string m2 = "/devices/vfio_ap/matrix/" + u2 + "/";
    ASSERT_THAT(sysfs_write(c, m1 + "assign_adapter", "1"), IsOk());
    ASSERT_THAT(sysfs_write(c, m1 + "assign_domain", "4"), IsOk());
    ASSERT_THAT(sysfs_write(c, m1 + "assign_domain", "8"), IsOk());
    ASSERT_THAT(sysfs_write(c, m1 + "assign_control_domain", "0x20"), IsOk());
    ASSERT_THAT(sysfs_write(c, m2 + "assign_adapter", "9"), IsOk());
    ASSERT_THAT(sysfs_write(c, m2 + "assign_domain", "5"), IsOk());
  }
  std::string dir;
};

TEST_F(StateTest, ARestartFromTheSameDirectoryShowsTheSameTree) {
  std::string before;
  {
    auto a = boot();
    auto g = a->lock();
    ASSERT_THAT(a->enable_state(dir), IsOk());
    change(*a);
    ASSERT_THAT(a->persist(), IsOk());
    before = tree_of(*a);
  }
  auto b = boot();
  auto g = b->lock();
  EXPECT_NE(tree_of(*b), before); // a fresh boot is different ...
  ASSERT_THAT(b->enable_state(dir), IsOk());
  EXPECT_EQ(line_diff(before, tree_of(*b)), ""); // ... until the state is restored
}

TEST_F(StateTest, OverridesComeBackWithTheDriverTheQueueWasBoundTo) {
  // 6.19: driver_override and a rebind made by hand (unbind + drivers_probe).
  std::string before;
  {
    auto a = boot("6.19");
    auto g = a->lock();
    ASSERT_THAT(a->enable_state(dir), IsOk());
    core::Core& c = a->core();
    ASSERT_THAT(sysfs_write(c, "/devices/ap/card01/01.0005/driver_override", "vfio_ap"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/bus/ap/drivers/cex4queue/unbind", "01.0005"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/bus/ap/drivers_probe", "01.0005"), IsOk());
    ASSERT_THAT(sysfs_write(c, "/devices/ap/card01/01.0006/driver_override", "vfio_ap"), IsOk());
    ASSERT_THAT(a->persist(), IsOk());
    before = tree_of(*a);
    EXPECT_THAT(sysfs_readlink(c, "/devices/ap/card01/01.0005/driver"),
                IsOkAndHolds(HasSubstr("vfio_ap")));
    EXPECT_THAT(sysfs_readlink(c, "/devices/ap/card01/01.0006/driver"),
                IsOkAndHolds(HasSubstr("cex4queue"))); // set, but not reprobed yet
  }
  auto b = boot("6.19");
  auto g = b->lock();
  ASSERT_THAT(b->enable_state(dir), IsOk());
  EXPECT_EQ(line_diff(before, tree_of(*b)), "");
}

TEST_F(StateTest, AStateOfAnotherKernelProfileIsRefused) {
  {
    auto a = boot("6.16");
    auto g = a->lock();
    ASSERT_THAT(a->enable_state(dir), IsOk());
  }
  auto b = boot("6.19");
  auto g = b->lock();
  auto r = b->enable_state(dir);
  ASSERT_THAT(r, FailsWith(EINVAL));
  EXPECT_THAT(r.error().context, HasSubstr(dir + "/state: /kernel: saved with --kernel 6.16"));
}

TEST_F(StateTest, ATornFileIsRefusedWithItsOffsetAndNothingIsRestored) {
  {
    auto a = boot();
    auto g = a->lock();
    ASSERT_THAT(a->enable_state(dir), IsOk());
    change(*a);
    ASSERT_THAT(a->persist(), IsOk());
  }
  const std::string file = dir + "/state";
  const std::string whole = slurp(file);
  fs::resize_file(file, whole.size() / 2); // a crash in the middle of a (non-atomic) write
  auto b = boot();
  auto g = b->lock();
  const std::string fresh = tree_of(*b);
  auto r = b->enable_state(dir);
  ASSERT_THAT(r, FailsWith(EINVAL));
  EXPECT_THAT(r.error().context, HasSubstr(file + ": offset " + std::to_string(whole.size() / 2) +
                                           ": torn: the header announces"));
  EXPECT_EQ(tree_of(*b), fresh);
}

TEST_F(StateTest, ACorruptByteIsRefusedByTheChecksum) {
  {
    auto a = boot();
    auto g = a->lock();
    ASSERT_THAT(a->enable_state(dir), IsOk());
    change(*a);
    ASSERT_THAT(a->persist(), IsOk());
  }
  const std::string file = dir + "/state";
  std::string data = slurp(file);
  data[data.size() - 10] ^= 0x20;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << data;
  auto b = boot();
  auto g = b->lock();
  auto r = b->enable_state(dir);
  ASSERT_THAT(r, FailsWith(EINVAL));
  EXPECT_THAT(r.error().context, HasSubstr("checksum mismatch"));
}

TEST_F(StateTest, AWellFramedButInvalidValueNamesItsJsonPath) {
  // A file written by hand with a correct frame but a bad value.
  std::string payload;
  {
    auto a = boot();
    auto g = a->lock();
    payload = testbed::state_snapshot(*a);
  }
  const std::string bad = payload.substr(0, payload.find("\"apmask\": \"")) +
                          "\"apmask\": \"0xZZ\"" +
                          payload.substr(payload.find('"', payload.find("\"apmask\": \"") + 11) + 1);
  std::ofstream(dir + "/state", std::ios::binary) << testbed::state_encode(bad);
  auto b = boot();
  auto g = b->lock();
  auto r = b->enable_state(dir);
  ASSERT_THAT(r, FailsWith(EINVAL));
  EXPECT_THAT(r.error().context, HasSubstr(dir + "/state: /bus/apmask: not a mask"));
}

// Found by fuzz/state_file_fuzz.cpp: a well-framed payload whose values have another JSON type
// than the restore expects (`"overrides": "x"` ended apemu with an uncaught exception at start;
// a number like 1e300 was converted to an integer). Each is refused with EINVAL and its path.
TEST_F(StateTest, ValuesOfTheWrongJsonKindAreRefusedWithTheirPath) {
  std::string payload;
  {
    auto a = boot();
    auto g = a->lock();
    payload = testbed::state_snapshot(*a);
  }
  const nlohmann::json good = nlohmann::json::parse(payload);
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string path;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& j) { j["overrides"] = "x"; }, "/overrides: missing or not an array"},
      {[](nlohmann::json& j) { j["overrides"] = {1}; }, "/overrides/0: not an object"},
      {[](nlohmann::json& j) { j["offline_queues"] = 5; }, "/offline_queues: missing or not an array"},
      {[](nlohmann::json& j) { j["offline_cards"] = {4294967296ull}; }, "/offline_cards: not an id"},
      {[](nlohmann::json& j) { j["bus"] = {1, 2}; }, "/bus: missing or not an object"},
      {[](nlohmann::json& j) { j["mdevs"] = {"x"}; }, "/mdevs/0: not an object"},
      {[](nlohmann::json& j) { j["hardware"]["adapters"] = {true}; }, "/hardware/adapters/0: not an object"},
      {[](nlohmann::json& j) { j["hardware"]["na"] = 1e300; }, "/hardware/na: wrong type"},
      {[](nlohmann::json& j) { j["hardware"]["na"] = -1; }, "/hardware/na: out of range"},
      {[](nlohmann::json& j) { j["bus"]["config_time"] = 4294967301ull; }, "/bus/config_time: out of range"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = good;
    c.edit(j);
    std::ofstream(dir + "/state", std::ios::binary | std::ios::trunc) << testbed::state_encode(j.dump());
    auto b = boot();
    auto g = b->lock();
    auto r = b->enable_state(dir);
    ASSERT_THAT(r, FailsWith(EINVAL)) << c.path;
    EXPECT_THAT(r.error().context, HasSubstr(dir + "/state: " + c.path));
  }
}

TEST(StateFraming, DecodeChecksEveryPartOfTheFrame) {
  const std::string good = testbed::state_encode("{\"a\": 1}");
  EXPECT_THAT(testbed::state_decode(good, "f"), IsOkAndHolds("{\"a\": 1}"));
  EXPECT_THAT(testbed::state_decode("", "f"), FailsWith(EINVAL));
  EXPECT_THAT(testbed::state_decode("apemu-state 2 0 00000000\n", "f"), FailsWith(EINVAL));
  EXPECT_THAT(testbed::state_decode("something else\n{}", "f"), FailsWith(EINVAL));
  EXPECT_THAT(testbed::state_decode(good + "x", "f"), FailsWith(EINVAL));
  const std::string bad_json = testbed::state_encode("{\"a\": }");
  auto r = testbed::state_decode(bad_json, "f");
  ASSERT_THAT(r, FailsWith(EINVAL));
  EXPECT_THAT(r.error().context, HasSubstr("f: offset "));
  EXPECT_THAT(r.error().context, HasSubstr("JSON syntax error"));
}

} // namespace
