// The structured results of every control verb (docs/control.md "Results"; issue 12 point 6):
// each verb's `result` is parsed as JSON and checked against the machine it describes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "apemu/testbed/control.h"
#include "matchers.h"
#include "sysfs_helpers.h"

using namespace apemu;
using namespace apemu::testing;
using nlohmann::json;

namespace {

constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";

class ControlJson : public ::testing::Test {
protected:
  void SetUp() override {
    auto t = testbed::Testbed::from_file(testbed::default_topology_path());
    ASSERT_THAT(t, IsOk());
    tb = std::move(*t);
    guard = tb->lock(); // the control server's role: the command runs under the machine lock
  }
  void TearDown() override {
    if (guard.owns_lock()) guard.unlock();
  }
  /// Runs a verb and parses its result; the text must be what the text protocol gives.
  json run(std::vector<std::string> argv) {
    auto r = testbed::execute_command(*tb, argv);
    EXPECT_THAT(r, IsOk()) << argv[0];
    if (!r) return json();
    json j = json::parse(r->json, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r->json;
    EXPECT_TRUE(j.is_object()) << r->json;
    return j;
  }
  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
};

} // namespace

TEST_F(ControlJson, ShowDescribesCardsQueuesMasksMdevsAndNodes) {
  json j = run({"show"});
  EXPECT_EQ(j["ap_domain"], 4);
  EXPECT_EQ(j["apmask"], "0x" + std::string(64, 'f'));
  EXPECT_EQ(j["usage_domains"], json::array({4, 5, 6, 7}));
  EXPECT_EQ(j["control_domains"], json::array({4, 5, 6, 7, 16}));
  ASSERT_EQ(j["cards"].size(), 3u);
  const json& c1 = j["cards"][1];
  EXPECT_EQ(c1["card"], "01");
  EXPECT_EQ(c1["type"], "CEX8C");
  EXPECT_EQ(c1["mode"], "cca");
  EXPECT_EQ(c1["driver"], "cex4card");
  EXPECT_EQ(c1["online"], true);
  ASSERT_EQ(c1["queues"].size(), 4u);
  EXPECT_EQ(c1["queues"][0]["apqn"], "01.0004");
  EXPECT_EQ(c1["queues"][0]["owner"], "host");
  EXPECT_EQ(c1["queues"][0]["requests"], 0);
  EXPECT_TRUE(j["mdevs"].empty());
  EXPECT_TRUE(j["zcrypt_nodes"].empty());
  // After giving adapter 1 to vfio_ap, an mdev, and a zcrypt node.
  ASSERT_THAT(sysfs_write(tb->core(), "/bus/ap/apmask", "-1"), IsOk());
  ASSERT_THAT(sysfs_write(tb->core(),
                          "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
                          kUuid),
              IsOk());
  ASSERT_THAT(sysfs_write(tb->core(),
                          std::string("/devices/vfio_ap/matrix/") + kUuid + "/assign_adapter", "1"),
              IsOk());
  ASSERT_THAT(sysfs_write(tb->core(),
                          std::string("/devices/vfio_ap/matrix/") + kUuid + "/assign_domain", "4"),
              IsOk());
  ASSERT_THAT(sysfs_write(tb->core(), "/class/zcrypt/create", "n1"), IsOk());
  j = run({"show"});
  const json& q = j["cards"][1]["queues"][0];
  EXPECT_EQ(q["driver"], "vfio_ap");
  EXPECT_EQ(q["owner"], "vfio_ap");
  EXPECT_EQ(q["online"], nullptr);
  EXPECT_EQ(q["mdev"], kUuid);
  EXPECT_EQ(j["cards"][1]["queues"][1]["mdev"], nullptr); // 01.0005: domain 5 not assigned
  ASSERT_EQ(j["mdevs"].size(), 1u);
  EXPECT_EQ(j["mdevs"][0]["uuid"], kUuid);
  EXPECT_EQ(j["mdevs"][0]["adapters"], json::array({1}));
  EXPECT_EQ(j["mdevs"][0]["domains"], json::array({4}));
  EXPECT_EQ(j["mdevs"][0]["guest"], nullptr);
  ASSERT_EQ(j["zcrypt_nodes"].size(), 1u);
  EXPECT_EQ(j["zcrypt_nodes"][0]["name"], "n1");
  EXPECT_EQ(j["zcrypt_nodes"][0]["apmask"], "0x" + std::string(64, '0'));
}

TEST_F(ControlJson, TreeDmesgScanClock) {
  json t = run({"tree", "/bus/ap/drivers/cex4card"});
  EXPECT_EQ(t["path"], "/bus/ap/drivers/cex4card");
  ASSERT_FALSE(t["entries"].empty());
  EXPECT_EQ(t["entries"][0],
            (json{{"kind", "dir"}, {"path", "/bus/ap/drivers/cex4card"}, {"mode", "0755"}}));
  bool saw_link = false, saw_wo = false;
  for (const auto& e : t["entries"]) {
    if (e["kind"] == "link" && e["path"] == "/bus/ap/drivers/cex4card/card00") {
      saw_link = e["target"] == "../../../../devices/ap/card00";
    }
    if (e["kind"] == "attr" && e["path"] == "/bus/ap/drivers/cex4card/bind")
      saw_wo = e["mode"] == "0200" && e["value"].is_null();
  }
  EXPECT_TRUE(saw_link);
  EXPECT_TRUE(saw_wo);
  json v = run({"tree", "/bus/ap/ap_domain"});
  ASSERT_EQ(v["entries"].size(), 1u);
  EXPECT_EQ(v["entries"][0]["value"], "4\n");

  tb->core().log().warn("marker line");
  json d = run({"dmesg"});
  ASSERT_TRUE(d["lines"].is_array());
  EXPECT_EQ(d["lines"].back(), "marker line");

  json s = run({"scan"});
  EXPECT_EQ(s["scans"], tb->ap_bus()->scans());

  json c = run({"clock"});
  EXPECT_EQ(c["clock"], "virtual");
  EXPECT_EQ(c["now_ns"], 0);
  ASSERT_TRUE(c["timers"].is_array());
  bool config_timer = false;
  for (const auto& tm : c["timers"])
    config_timer =
        config_timer || (tm["name"] == "ap_config_timer" && tm["in_ns"] == 30'000'000'000LL);
  EXPECT_TRUE(config_timer) << c.dump();
  json a = run({"clock", "advance", "5s"});
  EXPECT_EQ(a["now_ns"], 5'000'000'000LL);
}

TEST_F(ControlJson, CardAndDomainVerbsReturnTheNewState) {
  json add = run({"card", "add", "9", "CEX8", "ep11", "4-5"});
  EXPECT_EQ(add["present"], true);
  EXPECT_EQ(add["card"], "09");
  EXPECT_EQ(add["mode"], "ep11");
  EXPECT_EQ(add["type"], "CEX8P");
  EXPECT_EQ(add["queues"].size(), 2u);
  json cfg = run({"card", "config", "9", "off"});
  EXPECT_EQ(cfg["config"], false);
  json cs = run({"card", "chkstop", "9", "on"});
  EXPECT_EQ(cs["hardware_chkstop"], true);
  json rm = run({"card", "remove", "9"});
  EXPECT_EQ(rm, (json{{"id", 9}, {"present", false}}));
  json dom = run({"domain", "add", "8"});
  EXPECT_EQ(dom["domain"], 8);
  EXPECT_EQ(dom["usage_domains"], json::array({4, 5, 6, 7, 8}));
  json cd = run({"control-domain", "remove", "16"});
  EXPECT_EQ(cd["control_domains"], json::array({4, 5, 6, 7}));
  // Errors stay errors (the reply's errno), never a result.
  EXPECT_THAT(testbed::execute_command(*tb, {"card", "remove", "77"}), FailsWith(ENODEV));
  EXPECT_THAT(testbed::execute_command(*tb, {"domain", "add", "300"}), FailsWith(ERANGE));
}

TEST_F(ControlJson, GuestVerbs) {
  ASSERT_THAT(sysfs_write(tb->core(), "/bus/ap/apmask", "-1"), IsOk());
  ASSERT_THAT(sysfs_write(tb->core(),
                          "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
                          kUuid),
              IsOk());
  const std::string m = std::string("/devices/vfio_ap/matrix/") + kUuid;
  ASSERT_THAT(sysfs_write(tb->core(), m + "/assign_adapter", "1"), IsOk());
  ASSERT_THAT(sysfs_write(tb->core(), m + "/assign_domain", "5"), IsOk());
  json st = run({"guest", "start", "--mdev", kUuid, "--name", "vm1"});
  EXPECT_EQ(st["name"], "vm1");
  EXPECT_EQ(st["mdev"], kUuid);
  EXPECT_EQ(st["crycb"], true);
  EXPECT_EQ(st["apm"]["ids"], json::array({1}));
  EXPECT_EQ(st["aqm"]["ids"], json::array({5}));
  EXPECT_EQ(st["aqm"]["hex"], "0x04" + std::string(62, '0'));
  json sh = run({"guest", "show"});
  ASSERT_EQ(sh["guests"].size(), 1u);
  EXPECT_EQ(sh["guests"][0]["name"], "vm1");
  json one = run({"guest", "show", "--mdev", kUuid});
  EXPECT_EQ(one["guests"][0]["mdev"], kUuid);
  json sp = run({"guest", "stop", "--mdev", kUuid});
  EXPECT_EQ(sp, (json{{"mdev", kUuid}, {"running", false}}));
  EXPECT_TRUE(run({"guest", "show"})["guests"].empty());
}
