// Module init/exit of vfio_ap: the sysfs topology, the uevents in order, the type, teardown
// without leftovers, and the kernel profiles (vfio-ap.md §1.1, §1.2, §1.5, §1.6, §1.7;
// clients.md §7; driver-core.md §4.7).
#include "vfio_ap_fixture.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::HasSubstr;

namespace {

std::ptrdiff_t index_of(const std::vector<std::string>& v, const std::string& s) {
  auto it = std::find(v.begin(), v.end(), s);
  return it == v.end() ? -1 : it - v.begin();
}

} // namespace

TEST_F(VfioApTest, MatrixDeviceIsOnTheMatrixBusBoundToTheMatrixDriver) {
  // vfio-ap.md §1.2, clients.md §7.
  EXPECT_THAT(sysfs_readlink(core(), "/devices/vfio_ap/module"),
              IsOkAndHolds("../../module/vfio_ap"));
  EXPECT_THAT(sysfs_readlink(core(), "/devices/vfio_ap/matrix/subsystem"),
              IsOkAndHolds("../../../bus/matrix"));
  EXPECT_THAT(sysfs_readlink(core(), "/devices/vfio_ap/matrix/driver"),
              IsOkAndHolds("../../../bus/matrix/drivers/vfio_ap"));
  EXPECT_THAT(sysfs_readlink(core(), "/bus/matrix/devices/matrix"),
              IsOkAndHolds("../../../devices/vfio_ap/matrix"));
  EXPECT_THAT(sysfs_readlink(core(), "/class/mdev_bus/matrix"),
              IsOkAndHolds("../../devices/vfio_ap/matrix"));
  // suppress_bind_attrs: no bind/unbind on the matrix driver.
  EXPECT_FALSE(sysfs_exists(core(), "/bus/matrix/drivers/vfio_ap/bind"));
  EXPECT_FALSE(sysfs_exists(core(), "/bus/matrix/drivers/vfio_ap/unbind"));
  EXPECT_THAT(read("/devices/vfio_ap/matrix/features"),
              IsOkAndHolds("guest_matrix hotplug ap_config\n"));
  EXPECT_THAT(read("/bus/matrix/devices/matrix/features"),
              IsOkAndHolds("guest_matrix hotplug ap_config\n"));
  EXPECT_THAT(read("/devices/vfio_ap/matrix/uevent"), IsOkAndHolds("DRIVER=vfio_ap\n"));
  // The AP queue driver and the mdev driver.
  EXPECT_TRUE(sysfs_exists(core(), "/bus/ap/drivers/vfio_ap/bind"));
  EXPECT_THAT(sysfs_readlink(core(), "/bus/ap/drivers/vfio_ap/module"),
              IsOkAndHolds("../../../../module/vfio_ap"));
  EXPECT_THAT(sysfs_readlink(core(), "/bus/mdev/drivers/vfio_ap_mdev/module"),
              IsOkAndHolds("../../../../module/vfio_ap"));
}

TEST_F(VfioApTest, TheTypeIsVfioApPassthroughWith65536Instances) {
  // vfio-ap.md §1.1, §1.4.
  EXPECT_THAT(read(std::string(kTypeDir) + "/name"), IsOkAndHolds("VFIO AP Passthrough Device\n"));
  EXPECT_THAT(read(std::string(kTypeDir) + "/device_api"), IsOkAndHolds("vfio-ap\n"));
  EXPECT_THAT(read(std::string(kTypeDir) + "/available_instances"), IsOkAndHolds("65536\n"));
  EXPECT_FALSE(sysfs_exists(core(), std::string(kTypeDir) + "/description"));
  create(kU1);
  create(kU2);
  EXPECT_THAT(read(std::string(kTypeDir) + "/available_instances"), IsOkAndHolds("65534\n"));
}

TEST(VfioApModule, InitEmitsMatrixAddBindThenMdevStateRegistered) {
  // vfio-ap.md §1.2, §1.5; clients.md §1.6: add matrix, then change MDEV_STATE=registered.
  auto tb = boot_vfio(kVfioLpar, "6.16", false);
  auto tb_guard = tb->lock(); // another machine: its own entry point
  EventLog log(tb->core());
  auto mb = mdev::MdevBus::create(tb->core());
  ASSERT_THAT(mb, IsOk());
  auto v = vfio_ap::VfioAp::create(*tb->ap_bus(), **mb);
  ASSERT_THAT(v, IsOk());
  const auto lines = log.lines();
  const auto add = index_of(lines, "add /devices/vfio_ap/matrix");
  const auto bind = index_of(lines, "bind /devices/vfio_ap/matrix");
  const auto change = index_of(lines, "change /devices/vfio_ap/matrix");
  ASSERT_GE(add, 0);
  EXPECT_GT(bind, add);
  EXPECT_GT(change, bind);
  EXPECT_EQ(index_of(lines, "add /devices/vfio_ap"), -1); // root devices send nothing
  EXPECT_EQ(log.events[static_cast<std::size_t>(add)].get("SUBSYSTEM"), "matrix");
  EXPECT_EQ(log.events[static_cast<std::size_t>(bind)].get("DRIVER"), "vfio_ap");
  EXPECT_EQ(log.events[static_cast<std::size_t>(change)].get("MDEV_STATE"), "registered");
  EXPECT_GE(index_of(lines, "add /bus/matrix/drivers/vfio_ap"), 0);
  EXPECT_GE(index_of(lines, "add /bus/mdev/drivers/vfio_ap_mdev"), 0);
  EXPECT_TRUE(tb->core().log().contains("vfio_ap matrix: MDEV: Registered"));

  // Exit: MDEV_STATE=unregistered, and nothing of the module is left.
  log.clear();
  (*v)->create_mdev(kU1).value();
  v->reset();
  mb->reset();
  const auto after = log.lines();
  EXPECT_GE(index_of(after, "remove /devices/vfio_ap/matrix/" + std::string(kU1)), 0);
  bool unregistered = false;
  for (const auto& e : log.events)
    unregistered = unregistered || e.get("MDEV_STATE") == "unregistered";
  EXPECT_TRUE(unregistered);
  for (const char* p : {"/devices/vfio_ap", "/bus/matrix", "/bus/mdev", "/class/mdev_bus",
                        "/bus/ap/drivers/vfio_ap", "/kernel/iommu_groups"})
    EXPECT_FALSE(sysfs_exists(tb->core(), p)) << p;
}

TEST(VfioApModule, UnknownKernelProfilesAreRefused) {
  EXPECT_THAT(profile::find_profile("5.0"), FailsWith(EINVAL));
  EXPECT_EQ((*profile::find_profile("4.20"))->name, "4.20");
  testbed::Options opt;
  opt.topology = *topology::parse(kVfioLpar);
  opt.kernel_profile = "9.9";
  EXPECT_THAT(testbed::Testbed::create(std::move(opt)), FailsWith(EINVAL));
}

TEST(VfioApModule, NoQciMeansZeroInfoAndDefaultMaxima) {
  // vfio-ap.md §2.2: without QCI the cached info is zero: maxima 63/15/15, nothing passes.
  auto tb = boot_vfio("qci = false\n" + std::string(kVfioLpar));
  auto tb_guard = tb->lock(); // another machine: its own entry point
  auto& v = *tb->vfio_ap();
  EXPECT_FALSE(v.info().apxa);
  auto* m = *v.create_mdev(kU1);
  EXPECT_EQ(m->matrix().apm_max, 63u);
  EXPECT_EQ(m->matrix().aqm_max, 15u);
  EXPECT_EQ(m->matrix().adm_max, 15u);
}

// ---- 4.20
// -------------------------------------------------------------------------------------------

class VfioAp420Test : public VfioApTest {
protected:
  const char* profile() const override { return "4.20"; }
};

TEST_F(VfioAp420Test, MatrixDeviceIsBusLessWithoutSubsystemDriverOrFeatures) {
  // vfio-ap.md §1.6 (before the matrix bus), driver-core.md §4.7.
  EXPECT_TRUE(sysfs_exists(core(), "/devices/vfio_ap/matrix"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/vfio_ap/matrix/subsystem"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/vfio_ap/matrix/driver"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/vfio_ap/matrix/features"));
  EXPECT_FALSE(sysfs_exists(core(), "/bus/matrix"));
  EXPECT_THAT(read("/devices/vfio_ap/matrix/uevent"), IsOkAndHolds(""));
  EXPECT_THAT(read(std::string(kTypeDir) + "/device_api"), IsOkAndHolds("vfio-ap\n"));
  EXPECT_THAT(sysfs_readlink(core(), "/class/mdev_bus/matrix"),
              IsOkAndHolds("../../devices/vfio_ap/matrix"));
  EXPECT_TRUE(sysfs_exists(core(), "/bus/mdev/drivers/vfio_mdev"));
  create(kU1);
  const std::string d = mdev_path(kU1);
  EXPECT_THAT(sysfs_readlink(core(), d + "/driver"),
              IsOkAndHolds("../../../../bus/mdev/drivers/vfio_mdev"));
  EXPECT_THAT(sysfs_readlink(core(), d + "/iommu_group"),
              IsOkAndHolds("../../../../kernel/iommu_groups/0"));
  for (const char* a :
       {"assign_adapter", "unassign_adapter", "assign_domain", "unassign_domain",
        "assign_control_domain", "unassign_control_domain", "control_domains", "matrix"})
    EXPECT_TRUE(sysfs_exists(core(), d + "/" + a)) << a;
  EXPECT_FALSE(sysfs_exists(core(), d + "/guest_matrix"));
  EXPECT_FALSE(sysfs_exists(core(), d + "/ap_config"));
  // No queue status file, no in_use: a mask write is never vetoed.
  release_adapters("-5");
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card05/05.0004/status"));
  assign(kU1, {"5"}, {"4"});
  EXPECT_THAT(write("/bus/ap/apmask", "+5"), IsOk());
}

TEST(VfioAp420Module, NoMdevStateEventForTheBusLessParent) {
  auto tb = boot_vfio(kVfioLpar, "4.20", false);
  auto tb_guard = tb->lock(); // another machine: its own entry point
  EventLog log(tb->core());
  auto mb = mdev::MdevBus::create(tb->core());
  auto v = vfio_ap::VfioAp::create(*tb->ap_bus(), **mb);
  ASSERT_THAT(v, IsOk());
  for (const auto& e : log.events) {
    EXPECT_NE(e.devpath, "/devices/vfio_ap/matrix");
    EXPECT_FALSE(e.get("MDEV_STATE").has_value());
  }
  EXPECT_TRUE(tb->core().log().contains("vfio_ap matrix: MDEV: Registered"));
  v->reset();
  mb->reset();
}

TEST_F(VfioApTest, TheQueueDriverTakesOnlyQueuesOutsideTheMasks) {
  // vfio-ap.md §1.3: a manual bind of a reserved APQN fails with ENODEV; the status file exists
  // only while a queue is bound to vfio_ap.
  ASSERT_THAT(write("/bus/ap/drivers/cex4queue/unbind", "07.0004"), IsOk());
  EXPECT_THAT(write("/bus/ap/drivers/vfio_ap/bind", "07.0004"), FailsWith(ENODEV));
  EXPECT_THAT(write("/bus/ap/drivers/cex4queue/bind", "07.0004"), IsOk());
  release_adapters("-7");
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card07/07.0004/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/vfio_ap"));
  EXPECT_THAT(read("/devices/ap/card07/07.0004/status"), IsOkAndHolds("unassigned\n"));
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "07.0004"), IsOk());
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card07/07.0004/status"));
  EXPECT_EQ(vfio().queue({Apid{7}, Apqi{4}}), nullptr);
  // Cards are never vfio_ap's.
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card07/driver"),
              IsOkAndHolds("../../../bus/ap/drivers/cex4card"));
}

class VfioAp515 : public VfioApTest {
protected:
  const char* profile() const override { return "5.15"; }
};

TEST_F(VfioAp515, ReservationIsBeingBoundToVfioApWhateverTheMasksSay) {
  // vfio-ap.md §3.10 (≤5.19): the new id's APQNs must be queues bound to vfio_ap; a queue
  // unbound from vfio_ap does not count although the masks still give it to vfio_ap.
  create(kU1);
  release_adapters("-5");
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "05.0004"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_domain", "4"), FailsWith(EADDRNOTAVAIL)); // no (x, 4) on vfio_ap
  EXPECT_THAT(mw(kU1, "assign_domain", "5"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_adapter", "5"), IsOk());                  // 05.0005 bound
  EXPECT_THAT(mw(kU1, "assign_domain", "4"), FailsWith(EADDRNOTAVAIL)); // 05.0004 is not
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0005\n"));
}
