// A machine booted from a topology, for the AP bus tests.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apemu/testbed/testbed.h"
#include "matchers.h"
#include "sysfs_helpers.h"

namespace apemu::testing {

inline std::unique_ptr<testbed::Testbed> boot(std::string_view toml) {
  auto topo = topology::parse(toml);
  EXPECT_TRUE(topo.has_value()) << (topo ? "" : topo.error().context);
  testbed::Options opt;
  opt.topology = std::move(*topo);
  opt.vfio_ap = false; // the AP bus alone: tests register their own non-default driver
  auto tb = testbed::Testbed::create(std::move(opt));
  EXPECT_TRUE(tb.has_value());
  return std::move(*tb);
}

/// Two CCA cards (0x05, 0x06) and an accelerator (0x07) on usage domains 4-5.
inline constexpr std::string_view kSmallLpar = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4-5"
control_domains = "4-5,0x20"
default_domain = 4

[[adapter]]
id = 0x05
type = "CEX8"
mode = "cca"
serialnr = "93AABEET"

[[adapter]]
id = 0x06
type = "CEX7"
mode = "ep11"

[[adapter]]
id = 0x07
type = "CEX8"
mode = "accel"
)";

class ApTest : public ::testing::Test {
protected:
  void SetUp() override {
    tb = boot(kSmallLpar);
    guard = tb->lock(); // the test body is the entry point
  }
  void TearDown() override {
    if (guard.owns_lock()) guard.unlock(); // the Testbed's destructor takes it itself
  }
  core::Core& core() { return tb->core(); }
  ap::ApBus& bus() { return *tb->ap_bus(); }
  Result<std::string> read(std::string_view p) { return sysfs_read(core(), p); }
  Result<std::size_t> write(std::string_view p, std::string_view v) {
    return sysfs_write(core(), p, v);
  }

  /// Registers a non-default queue driver (vfio_ap's role) with an in_use callback.
  core::Driver* add_passthrough_driver(std::function<int(const ApidMask&, const ApqiMask&)> in_use = {}) {
    ap::ApDriverOps ops;
    ops.base.name = "vfio_ap";
    ops.base.probe = [](core::Device&) -> Result<void> { return {}; };
    ops.in_use = std::move(in_use);
    auto r = bus().register_driver(std::move(ops));
    EXPECT_TRUE(r.has_value());
    return *r;
  }

  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
};

} // namespace apemu::testing
