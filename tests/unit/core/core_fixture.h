// A small bus "foo" with scriptable drivers, shared by the core tests.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "apemu/core/core.h"
#include "matchers.h"
#include "sysfs_helpers.h"

namespace apemu::testing {

using core::Core;
using core::Device;
using core::Driver;
using core::Ref;

class CoreTest : public ::testing::Test {
protected:
  void TearDown() override {
    if (guard.owns_lock()) guard.unlock();
  }
  void SetUp() override {
    guard = core.lock(); // the test body is the entry point
    core::BusType type;
    type.name = "foo";
    type.match = [this](Device& d, const Driver& drv) {
      auto it = match_table.find(drv.name());
      if (it == match_table.end()) return 1;
      for (const auto& prefix : it->second)
        if (d.name().rfind(prefix, 0) == 0) return 1;
      return 0;
    };
    type.uevent = [](const Device& d, uevent::Env& env) -> Result<void> {
      APEMU_TRY_VOID(env.add("MODALIAS", "foo:" + d.name()));
      return {};
    };
    type.driver_override = true;
    bus = *core.bus_register(type);
  }

  /// A driver whose probe returns `probe_errno[dev]` (0 = success) and records calls.
  Driver* add_driver(const std::string& name, std::vector<std::string> matches = {}) {
    if (!matches.empty()) match_table[name] = std::move(matches);
    core::DriverOps ops;
    ops.name = name;
    ops.probe = [this, name](Device& d) -> Result<void> {
      calls.push_back("probe " + name + " " + d.name());
      auto it = probe_errno.find(name + "/" + d.name());
      if (it != probe_errno.end() && it->second) return Error(it->second);
      return {};
    };
    ops.remove = [this, name](Device& d) { calls.push_back("remove " + name + " " + d.name()); };
    auto r = core.driver_register(*bus, std::move(ops));
    EXPECT_TRUE(r.has_value());
    return r.has_value() ? *r : nullptr;
  }

  /// A registered device on bus foo (parent optional).
  Ref<Device> add_device(const std::string& name, Device* parent = nullptr) {
    auto d = Device::create(name, [this](Device& dev) { released.push_back(dev.name()); });
    d->set_bus(bus);
    d->set_parent(parent);
    auto r = core.device_add(*d);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().describe());
    return d;
  }

  Core core;
  MachineGuard guard;
  core::Bus* bus = nullptr;
  std::map<std::string, std::vector<std::string>> match_table;
  std::map<std::string, int> probe_errno;
  std::vector<std::string> calls;
  std::vector<std::string> released;
};

} // namespace apemu::testing
