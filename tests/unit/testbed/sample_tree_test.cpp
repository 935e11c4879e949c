// Golden layout of a small sample tree and of its export as plain files (issue: foundation,
// acceptance "golden-file test of the exported layout"; driver-core.md §2).
#include <gtest/gtest.h>

#include <filesystem>

#include "apemu/kernfs/export.h"
#include "apemu/testbed/testbed.h"
#include "golden.h"
#include "matchers.h"

using namespace apemu;
using namespace apemu::testing;
using core::Device;

namespace {

const core::DeviceAttribute kCardAttrs[] = {
    {"hwtype", 0444, [](Device&) -> Result<std::string> { return std::string("14\n"); }, nullptr},
    {"online", 0644, [](Device&) -> Result<std::string> { return std::string("1\n"); },
     [](Device&, std::string_view) -> Result<void> { return {}; }},
    {"reset", 0200, nullptr, [](Device&, std::string_view) -> Result<void> { return {}; }},
};
const core::DeviceAttributeGroup kCardGroups[] = {{"", kCardAttrs, nullptr}};

/// A bus with a card, a queue below it, a bound driver with a module, a root device, a bus-less
/// child, a class device and a class_compat link.
struct Sample {
  explicit Sample(core::Core& c) : core(c) {
    bus = *core.bus_register({.name = "sample", .driver_override = true});
    core::DriverOps ops;
    ops.name = "sdrv";
    ops.mod_name = "sample_mod";
    ops.probe = [](Device& d) -> Result<void> {
      if (d.name().find('.') != std::string::npos) return Error(ENODEV); // cards only
      return {};
    };
    (void)core.driver_register(*bus, ops);
    root = *core.root_device_register("sroot", "sample_mod");
    card = Device::create("card01", [](Device&) {});
    card->set_bus(bus);
    card->set_parent(root.get());
    card->set_groups(kCardGroups);
    (void)core.device_add(*card);
    queue = Device::create("01.0002", [](Device&) {});
    queue->set_bus(bus);
    queue->set_parent(card.get());
    (void)core.device_add(*queue);
    lone = Device::create("lone", [](Device&) {});
    lone->set_parent(root.get());
    (void)core.device_add(*lone);
    cls = *core.class_register({.name = "sclass"});
    cdev = Device::create("snode", [](Device&) {});
    cdev->set_class(cls);
    (void)core.device_add(*cdev);
    compat = *core.class_compat_register("s_compat");
    (void)core.class_compat_create_link(*compat, *root);
  }
  ~Sample() {
    core.class_compat_remove_link(*compat, *root);
    core.class_compat_unregister(*compat);
    core.device_unregister(std::move(cdev));
    core.class_unregister(*cls);
    core.device_unregister(std::move(lone));
    core.device_unregister(std::move(queue));
    core.device_unregister(std::move(card));
    core.root_device_unregister(std::move(root));
    for (auto* d : bus->drivers()) core.driver_unregister(*d);
    core.bus_unregister(*bus);
  }
  core::Core& core;
  core::Bus* bus;
  core::Class* cls;
  core::CompatClass* compat;
  core::Ref<Device> root, card, queue, lone, cdev;
};

} // namespace

TEST(SampleTree, LayoutMatchesGoldenFile) {
  auto tb = std::move(*testbed::Testbed::create());
  auto tb_guard = tb->lock(); // another machine: its own entry point
  Sample s(tb->core());
  expect_golden("sample_tree.txt", tb->dump("/"));
}

TEST(SampleTree, ExportHasTheSameLayoutModesAndLinkTargets) {
  auto tb = std::move(*testbed::Testbed::create());
  auto tb_guard = tb->lock(); // another machine: its own entry point
  Sample s(tb->core());
  const auto dir = std::filesystem::temp_directory_path() / ("apemu-export-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  ASSERT_THAT(tb->export_to(dir), IsOk());
  // Write-only attributes export as empty files with their mode; everything else is identical.
  auto exported = dump_directory(dir.string());
  kernfs::DumpOptions opt;
  EXPECT_EQ(exported, tb->dump("/"));
  std::filesystem::remove_all(dir);
}

TEST(SampleTree, TeardownLeavesOnlyTheSkeleton) {
  auto tb = std::move(*testbed::Testbed::create());
  auto tb_guard = tb->lock(); // another machine: its own entry point
  const auto before = tb->core().tree().node_count();
  {
    Sample s(tb->core());
    EXPECT_GT(tb->core().tree().node_count(), before);
  }
  // Module directories stay, as in the kernel (modules outlive their drivers' registration).
  EXPECT_EQ(tb->dump("/devices"), "D 0755 /devices\nD 0755 /devices/virtual\n");
  EXPECT_EQ(tb->dump("/bus"), "D 0755 /bus\n");
}
