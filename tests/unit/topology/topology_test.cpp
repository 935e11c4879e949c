// Topology files: keys, defaults, and errors naming file, line and key.
#include "apemu/topology/topology.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "matchers.h"

using namespace apemu;
using apemu::testing::FailsWith;
using apemu::testing::IsOk;
using ::testing::HasSubstr;

TEST(Topology, ParsesTheIssueExample) {
  auto t = topology::parse(R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4-7,0x10"
control_domains = "4-7,0x10,0x20"
default_domain = 4
interrupts = true

[[adapter]]
id = 0x05
type = "CEX8"
mode = "accel"
domains = "4-5"
depth = 4
serialnr = "X"
config = true
online = false
chkstop = false
)");
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(t->hw.qci().aqm.list(), "4-7,16");
  EXPECT_EQ(t->hw.qci().adm.list(), "4-7,16,32");
  EXPECT_EQ(t->hw.qci().na, 255u);
  EXPECT_EQ(t->bus.default_domain, 4);
  const ap::Adapter* a = t->hw.adapter(Apid{5});
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->raw_type, 14);
  EXPECT_EQ(a->mode, ap::ApMode::Accel);
  EXPECT_EQ(a->domains.list(), "4-5");
  EXPECT_EQ(a->depth, 4);
  EXPECT_EQ(t->offline_cards, std::vector<Apid>{Apid{5}});
}

TEST(Topology, DefaultsWithoutApxaAndDefaultDomainIsTheFirstUsageDomain) {
  auto t = topology::parse("apxa = false\nusage_domains = [3, 9]\n");
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(t->hw.qci().na, 63u);
  EXPECT_EQ(t->hw.qci().nd, 15u);
  EXPECT_EQ(t->bus.default_domain, 3);
}

TEST(Topology, ErrorsNameFileLineAndKey) {
  struct Case {
    const char* text;
    int code;
    const char* needle;
  };
  const Case cases[] = {
      {"apxa = 1\n", EINVAL, "t.toml:1: key 'apxa': expected true or false"},
      {"bogus = 1\n", EINVAL, "t.toml:1: key 'bogus': unknown key"},
      {"apxa = false\nmax_adapter_id = 100\n", EINVAL, "t.toml:2: key 'max_adapter_id'"},
      {"max_domain_id = 300\n", ERANGE, "key 'max_domain_id': must be 0..255"},
      {"usage_domains = \"4-\"\n", EINVAL, "key 'usage_domains'"},
      {"max_domain_id = 15\nusage_domains = \"20\"\n", ERANGE, "t.toml:2: key 'usage_domains'"},
      {"usage_domains = \"1\"\ndefault_domain = 2\n", EINVAL, "key 'default_domain': not a usage domain"},
      {"[[adapter]]\nid = 1\ntype = \"CEX9\"\n", EINVAL, "t.toml:3: key 'adapter.type'"},
      {"[[adapter]]\nid = 1\ntype = \"CEX8\"\nmode = \"fast\"\n", EINVAL, "t.toml:4: key 'adapter.mode'"},
      {"[[adapter]]\ntype = \"CEX8\"\n", EINVAL, "key 'adapter.id': missing"},
      {"max_adapter_id = 10\n[[adapter]]\nid = 11\ntype = \"CEX8\"\n", ERANGE, "t.toml:3: key 'adapter.id'"},
      {"[[adapter]]\nid = 1\ntype = \"CEX8\"\n[[adapter]]\nid = 1\ntype = \"CEX8\"\n", EINVAL, "duplicate adapter id"},
      {"[[adapter]]\nid = 1\ntype = \"CEX8\"\ncolour = 1\n", EINVAL, "t.toml:4: key 'adapter.colour': unknown key"},
      {"apmask = \"zz\"\n", EINVAL, "key 'apmask': invalid mask syntax"},
      {"apxa = \n", EINVAL, "t.toml:1:"},
  };
  for (const auto& c : cases) {
    auto t = topology::parse(c.text, "t.toml");
    ASSERT_THAT(t, FailsWith(c.code)) << c.text;
    EXPECT_THAT(t.error().context, HasSubstr(c.needle)) << c.text;
  }
}

TEST(Topology, ShippedPresetsLoad) {
  const std::string dir = std::string(APEMU_SOURCE_DIR) + "/topologies/";
  for (auto name : {"default.toml", "z16-lpar.toml", "max.toml"}) {
    auto t = topology::load_file(dir + name);
    ASSERT_THAT(t, IsOk()) << name << ": " << (t ? "" : t.error().context);
  }
  EXPECT_EQ(topology::load_file(dir + "max.toml")->hw.adapters().size(), 256u);
  EXPECT_EQ(topology::load_file(dir + "z16-lpar.toml")->hw.qci().nd, 84u);
  EXPECT_THAT(topology::load_file(dir + "missing.toml"), FailsWith(ENOENT));
}
