// The mdev core on its own: a parent on a test bus, a vendor driver, the type files, `create`
// (36/37-byte rule, UUID parsing, EEXIST, exhaustion), `remove`, links (mdev_type, devices/,
// iommu_group, /sys/class/mdev_bus), uevents and both generations of the core
// (driver-core.md §2.8, §4.8; vfio-ap.md §1.2, §1.4, §3.11; clients.md §0.1, §1.2).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apemu/mdev/mdev.h"
#include "apemu/profile/kernel_profile.h"
#include "matchers.h"
#include "sysfs_helpers.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";
constexpr const char* kUuid2 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
constexpr const char* kType = "/devices/parent0/mdev_supported_types/fakedrv-gpu";

Result<std::string> vendor_show(core::Device&) { return std::string("vendor\n"); }
const core::DeviceAttribute kVendorAttrs[] = {{"vendor_attr", 0444, vendor_show, nullptr}};
const core::DeviceAttributeGroup kVendorGroups[] = {{"", kVendorAttrs}};

/// A parent device on a test bus, bound to `fakedrv` (whose name becomes the type prefix).
class MdevTest : public ::testing::Test {
protected:
  /// A machine whose kernel has the legacy (≤5.x, `vfio_mdev`) or the current mdev core.
  void boot(bool legacy, unsigned max_instances = 3) {
    m_core = std::make_unique<core::Core>(
        m_rt, legacy ? **profile::find_profile("4.20") : profile::default_profile());
    guard = core().lock(); // the test body is the entry point
    bus = *core().bus_register({.name = "fakebus"});
    pdrv = *core().driver_register(
        *bus, {.name = "fakedrv", .probe = [](core::Device&) { return Result<void>{}; }});
    parent = core::Device::create(std::string("parent0"), [](core::Device&) {});
    parent->set_bus(bus);
    ASSERT_THAT(core().device_add(*parent), IsOk());
    mdevs = std::move(*mdev::MdevBus::create(core()));
    mdev::MdevDriverOps ops;
    ops.base.name = "fake_mdev";
    ops.base.probe = [this](core::Device& d) -> Result<void> {
      ++probes;
      if (fail_probe) return Error(EIO);
      // (via the device: `mdevs` is already null while the unique_ptr destroys the bus)
      auto& md = mdev::to_mdev_device(d);
      if (md.mdev_bus().vendor_driver_binds()) APEMU_TRY_VOID(md.mdev_bus().iommu_group_add_device(md));
      return {};
    };
    ops.base.remove = [this](core::Device& d) {
      ++removes;
      auto& md = mdev::to_mdev_device(d);
      if (md.mdev_bus().vendor_driver_binds()) md.mdev_bus().iommu_group_remove_device(md);
    };
    ops.base.dev_groups = kVendorGroups;
    ops.device_api = "vfio-fake";
    ops.max_instances = max_instances;
    ops.exhausted_errno = legacy ? EPERM : EUSERS;
    ops.unregister_vfio_dev = [this](mdev::MdevDevice&) -> Result<std::shared_ptr<Completion>> {
      if (busy) return Error(EBUSY);
      return in_use; // null: nobody uses the device
    };
    drv = *mdevs->register_driver(std::move(ops));
    log = std::make_unique<EventLog>(core());
    auto p = mdevs->register_parent(*parent, *drv, {{"gpu", "Fake GPU"}});
    ASSERT_THAT(p, IsOk());
    mparent = *p;
  }
  void TearDown() override {
    if (!m_core) return;
    log.reset();
    mdevs.reset();
    if (parent) core().device_unregister(std::move(parent));
    if (pdrv) core().driver_unregister(*pdrv);
    if (bus) core().bus_unregister(*bus);
    if (guard.owns_lock()) guard.unlock();
  }
  Result<std::size_t> write(std::string_view p, std::string_view v) {
    return sysfs_write(core(), p, v);
  }
  Result<std::string> read(std::string_view p) { return sysfs_read(core(), p); }

  Runtime m_rt;
  std::unique_ptr<core::Core> m_core;
  core::Core& core() { return *m_core; }
  MachineGuard guard;
  /// The "user" of every mdev: while set, a `remove` waits for it to complete.
  std::shared_ptr<Completion> in_use;
  core::Bus* bus = nullptr;
  core::Driver* pdrv = nullptr;
  core::Ref<core::Device> parent;
  std::unique_ptr<mdev::MdevBus> mdevs;
  mdev::MdevDriver* drv = nullptr;
  mdev::MdevParent* mparent = nullptr;
  std::unique_ptr<EventLog> log;
  int probes = 0, removes = 0;
  bool fail_probe = false, busy = false;
};

std::string dev_path(const char* uuid) { return std::string("/devices/parent0/") + uuid; }

} // namespace

TEST_F(MdevTest, RegistrationPublishesTypesCompatLinkAndRegisteredEvent) {
  boot(false);
  EXPECT_THAT(read(std::string(kType) + "/name"), IsOkAndHolds("Fake GPU\n"));
  EXPECT_THAT(read(std::string(kType) + "/device_api"), IsOkAndHolds("vfio-fake\n"));
  EXPECT_THAT(read(std::string(kType) + "/available_instances"), IsOkAndHolds("3\n"));
  EXPECT_FALSE(sysfs_exists(core(), std::string(kType) + "/description")); // no show_description
  EXPECT_TRUE(sysfs_exists(core(), std::string(kType) + "/devices"));
  EXPECT_THAT(sysfs_readlink(core(), "/class/mdev_bus/parent0"),
              IsOkAndHolds("../../devices/parent0"));
  EXPECT_TRUE(sysfs_exists(core(), "/kernel/iommu_groups"));
  ASSERT_EQ(log->events.size(), 1u);
  EXPECT_EQ(log->lines()[0], "change /devices/parent0");
  EXPECT_EQ(log->events[0].get("MDEV_STATE"), "registered");
  EXPECT_TRUE(core().log().contains("fakedrv parent0: MDEV: Registered"));
  // Not twice.
  EXPECT_THAT(mdevs->register_parent(*parent, *drv, {{"gpu", ""}}), FailsWith(EEXIST));
}

TEST_F(MdevTest, DriverWithoutDeviceApiIsRejected) {
  boot(false);
  mdev::MdevDriverOps ops;
  ops.base.name = "nodevapi";
  EXPECT_THAT(mdevs->register_driver(std::move(ops)), FailsWith(EINVAL));
}

TEST_F(MdevTest, CreateEnforcesTheThirtySixOrThirtySevenByteRule) {
  boot(false);
  const std::string create = std::string(kType) + "/create";
  EXPECT_THAT(write(create, std::string(kUuid).substr(0, 35)), FailsWith(EINVAL));
  EXPECT_THAT(write(create, std::string(kUuid) + "\n\n"), FailsWith(EINVAL)); // 38 bytes
  EXPECT_THAT(write(create, "11111111-2222-3333-4444-55555555555g"), FailsWith(EINVAL));
  EXPECT_THAT(write(create, "111111112222-3333-4444-5555555555555-"), FailsWith(EINVAL));
  EXPECT_EQ(probes, 0);
  // 37 bytes: one trailing character of any kind is ignored by the UUID parser.
  EXPECT_THAT(write(create, std::string(kUuid) + "\n"), IsOkAndHolds(37u));
  EXPECT_THAT(write(create, std::string(kUuid2) + "X"), IsOkAndHolds(37u));
  EXPECT_TRUE(sysfs_exists(core(), dev_path(kUuid)));
  EXPECT_TRUE(sysfs_exists(core(), dev_path(kUuid2)));
}

TEST_F(MdevTest, CreatePublishesEveryFileBeforeTheWriteReturns) {
  boot(false);
  ASSERT_THAT(write(std::string(kType) + "/create", kUuid), IsOkAndHolds(36u));
  const std::string d = dev_path(kUuid);
  EXPECT_THAT(sysfs_readlink(core(), d + "/mdev_type"),
              IsOkAndHolds("../mdev_supported_types/fakedrv-gpu"));
  EXPECT_THAT(sysfs_readlink(core(), std::string(kType) + "/devices/" + kUuid),
              IsOkAndHolds("../../../" + std::string(kUuid)));
  EXPECT_THAT(sysfs_readlink(core(), std::string("/bus/mdev/devices/") + kUuid),
              IsOkAndHolds("../../../devices/parent0/" + std::string(kUuid)));
  EXPECT_THAT(sysfs_readlink(core(), d + "/driver"),
              IsOkAndHolds("../../../bus/mdev/drivers/fake_mdev"));
  EXPECT_THAT(sysfs_readlink(core(), d + "/subsystem"), IsOkAndHolds("../../../bus/mdev"));
  EXPECT_THAT(read(d + "/vendor_attr"), IsOkAndHolds("vendor\n"));
  EXPECT_TRUE(sysfs_exists(core(), d + "/remove"));
  // The IOMMU group: an integer directory name, both links (QEMU parses the basename).
  auto group = sysfs_readlink(core(), d + "/iommu_group");
  ASSERT_THAT(group, IsOkAndHolds("../../../kernel/iommu_groups/0"));
  EXPECT_EQ(std::stoi(group->substr(group->rfind('/') + 1)), 0);
  EXPECT_THAT(sysfs_readlink(core(), std::string("/kernel/iommu_groups/0/devices/") + kUuid),
              IsOkAndHolds("../../../../devices/parent0/" + std::string(kUuid)));
  EXPECT_THAT(read("/kernel/iommu_groups/0/type"), IsOkAndHolds("unknown\n"));
  EXPECT_THAT(read("/kernel/iommu_groups/0/reserved_regions"), IsOkAndHolds(""));
  EXPECT_THAT(read(std::string(kType) + "/available_instances"), IsOkAndHolds("2\n"));
  EXPECT_THAT(log->lines(), ElementsAre("change /devices/parent0", "add " + d, "bind " + d));
  EXPECT_EQ(log->events[2].get("DRIVER"), "fake_mdev");
}

TEST_F(MdevTest, UpperCaseUuidCreatesTheLowerCaseNameAndDuplicatesFailWithEexist) {
  boot(false);
  const std::string create = std::string(kType) + "/create";
  ASSERT_THAT(write(create, "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"), IsOk());
  EXPECT_TRUE(sysfs_exists(core(), dev_path(kUuid2)));
  EXPECT_THAT(write(create, kUuid2), FailsWith(EEXIST));
  EXPECT_THAT(write(create, "aaaaaaaa-bbbb-cccc-dddd-EEEEEEEEEEEE\n"), FailsWith(EEXIST));
  EXPECT_THAT(read(std::string(kType) + "/available_instances"), IsOkAndHolds("2\n"));
}

TEST_F(MdevTest, ExhaustedInstancesFailWithEusers) {
  boot(false, 1);
  const std::string create = std::string(kType) + "/create";
  ASSERT_THAT(write(create, kUuid), IsOk());
  EXPECT_THAT(read(std::string(kType) + "/available_instances"), IsOkAndHolds("0\n"));
  EXPECT_THAT(write(create, kUuid2), FailsWith(EUSERS));
  EXPECT_THAT(write(dev_path(kUuid) + "/remove", "1"), IsOk());
  EXPECT_THAT(write(create, kUuid2), IsOk()); // the release returned the instance
}

TEST_F(MdevTest, FailedProbeLeavesNothingBehindAndReturnsTheInstance) {
  boot(false);
  fail_probe = true;
  EXPECT_THAT(write(std::string(kType) + "/create", kUuid), FailsWith(EIO));
  EXPECT_FALSE(sysfs_exists(core(), dev_path(kUuid)));
  EXPECT_FALSE(sysfs_exists(core(), std::string("/bus/mdev/devices/") + kUuid));
  EXPECT_THAT(read(std::string(kType) + "/available_instances"), IsOkAndHolds("3\n"));
  EXPECT_EQ(mdevs->find_device(*parse_uuid(kUuid)), nullptr);
  fail_probe = false;
  EXPECT_THAT(write(std::string(kType) + "/create", kUuid), IsOk());
}

TEST_F(MdevTest, RemoveParsesWithKstrtoulAndZeroIsANoOp) {
  boot(false);
  ASSERT_THAT(write(std::string(kType) + "/create", kUuid), IsOk());
  const std::string rm = dev_path(kUuid) + "/remove";
  EXPECT_THAT(write(rm, "x"), FailsWith(EINVAL));
  EXPECT_THAT(write(rm, "-1"), FailsWith(EINVAL));
  EXPECT_THAT(write(rm, "99999999999999999999"), FailsWith(EINVAL)); // ERANGE is EINVAL here
  EXPECT_THAT(write(rm, "0\n"), IsOkAndHolds(2u));
  EXPECT_TRUE(sysfs_exists(core(), dev_path(kUuid)));
  log->clear();
  EXPECT_THAT(write(rm, "1"), IsOkAndHolds(1u));
  EXPECT_FALSE(sysfs_exists(core(), dev_path(kUuid)));
  EXPECT_FALSE(sysfs_exists(core(), std::string(kType) + "/devices/" + kUuid));
  EXPECT_FALSE(sysfs_exists(core(), "/kernel/iommu_groups/0"));
  EXPECT_THAT(log->lines(), ElementsAre("unbind " + dev_path(kUuid), "remove " + dev_path(kUuid)));
  EXPECT_EQ(removes, 1);
  EXPECT_THAT(read(std::string(kType) + "/available_instances"), IsOkAndHolds("3\n"));
  // The UUID is free again.
  EXPECT_THAT(write(std::string(kType) + "/create", kUuid), IsOk());
}

TEST_F(MdevTest, RemoveRefusedByTheDriverChangesNothing) {
  boot(false);
  ASSERT_THAT(write(std::string(kType) + "/create", kUuid), IsOk());
  busy = true;
  EXPECT_THAT(write(dev_path(kUuid) + "/remove", "1"), FailsWith(EBUSY));
  EXPECT_TRUE(sysfs_exists(core(), dev_path(kUuid) + "/remove"));
  EXPECT_TRUE(sysfs_exists(core(), dev_path(kUuid) + "/iommu_group"));
  EXPECT_EQ(removes, 0);
  busy = false;
  EXPECT_THAT(write(dev_path(kUuid) + "/remove", "1"), IsOk());
}

TEST_F(MdevTest, IommuGroupNumbersAreTheLowestFree) {
  boot(false);
  const std::string create = std::string(kType) + "/create";
  ASSERT_THAT(write(create, kUuid), IsOk());
  ASSERT_THAT(write(create, kUuid2), IsOk());
  EXPECT_THAT(sysfs_readlink(core(), dev_path(kUuid2) + "/iommu_group"),
              IsOkAndHolds("../../../kernel/iommu_groups/1"));
  ASSERT_THAT(write(dev_path(kUuid) + "/remove", "1"), IsOk());
  ASSERT_THAT(write(create, "33333333-2222-3333-4444-555555555555"), IsOk());
  EXPECT_THAT(
      sysfs_readlink(core(), dev_path("33333333-2222-3333-4444-555555555555") + "/iommu_group"),
      IsOkAndHolds("../../../kernel/iommu_groups/0"));
}

TEST_F(MdevTest, UnregisterParentRemovesItsMdevsAndSendsUnregistered) {
  boot(false);
  ASSERT_THAT(write(std::string(kType) + "/create", kUuid), IsOk());
  log->clear();
  mdevs->unregister_parent(mparent);
  mparent = nullptr;
  EXPECT_FALSE(sysfs_exists(core(), dev_path(kUuid)));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/parent0/mdev_supported_types"));
  EXPECT_FALSE(sysfs_exists(core(), "/class/mdev_bus/parent0"));
  ASSERT_FALSE(log->events.empty());
  EXPECT_EQ(log->lines().back(), "change /devices/parent0");
  EXPECT_EQ(log->events.back().get("MDEV_STATE"), "unregistered");
  EXPECT_TRUE(core().log().contains("fakedrv parent0: MDEV: Unregistering"));
  EXPECT_TRUE(mdevs->devices().empty());
}

TEST_F(MdevTest, LegacyCoreBindsVfioMdevAndCallsTheVendorAsParentOps) {
  boot(true, 1);
  EXPECT_TRUE(sysfs_exists(core(), "/bus/mdev/drivers/vfio_mdev"));
  EXPECT_FALSE(sysfs_exists(core(), "/bus/mdev/drivers/fake_mdev"));
  ASSERT_THAT(write(std::string(kType) + "/create", kUuid), IsOk());
  const std::string d = dev_path(kUuid);
  EXPECT_THAT(sysfs_readlink(core(), d + "/driver"),
              IsOkAndHolds("../../../bus/mdev/drivers/vfio_mdev"));
  EXPECT_THAT(read(d + "/vendor_attr"), IsOkAndHolds("vendor\n"));
  EXPECT_EQ(probes, 1);
  // The mdev bus's probe attached the IOMMU group.
  EXPECT_THAT(sysfs_readlink(core(), d + "/iommu_group"),
              IsOkAndHolds("../../../kernel/iommu_groups/0"));
  // The vendor counted instances: EPERM, after the device was registered and removed again.
  log->clear();
  EXPECT_THAT(write(std::string(kType) + "/create", kUuid2), FailsWith(EPERM));
  EXPECT_FALSE(sysfs_exists(core(), dev_path(kUuid2)));
  ASSERT_GE(log->lines().size(), 2u);
  EXPECT_EQ(log->lines().front(), "add " + dev_path(kUuid2));
  EXPECT_EQ(log->lines().back(), "remove " + dev_path(kUuid2));
  EXPECT_THAT(write(d + "/remove", "1"), IsOk());
  EXPECT_EQ(removes, 1);
  EXPECT_FALSE(sysfs_exists(core(), "/kernel/iommu_groups/0"));
}
