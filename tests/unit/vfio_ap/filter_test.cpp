// Filtering into the shadow APCB, hot plug/unplug while a guest runs, queue probe/remove, the
// queue `status` file, the in_use veto of apmask/aqmask writes and host configuration changes
// (vfio-ap.md §3.3 step 6-7, §3.4, §3.9, §4.1–§4.7, §9).
#include "vfio_ap_fixture.h"

using namespace apemu;
using namespace apemu::testing;

class VfioApFilter : public VfioApTest {
protected:
  void SetUp() override {
    VfioApTest::SetUp();
    release_adapters("-5,-6");
    m = create(kU1);
  }
  vfio_ap::MatrixMdev* m = nullptr;
};

TEST_F(VfioApFilter, GuestMatrixIsTheAssignmentLimitedToBoundQueuesInTheHostConfig) {
  assign(kU1, {"5", "6"}, {"4", "5"}, {"4", "0x20", "0x21"});
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("05.0004\n05.0005\n06.0004\n06.0005\n"));
  // Control domain 0x21 is not in the host configuration: over-provisioned, hidden.
  EXPECT_EQ(m->shadow_apcb().adm.list(), "4,32");
  EXPECT_EQ(m->matrix().adm.list(), "4,32-33");
}

TEST_F(VfioApFilter, AnUnboundQueueFiltersItsWholeAdapter) {
  // §4.1 step 3 / §10.7: the architecture cannot hide a single APQN.
  assign(kU1, {"5", "6"}, {"4", "5"});
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  const auto resets = vfio().queue({Apid{5}, Apqi{5}})->resets();
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "05.0004"), IsOk());
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("06.0004\n06.0005\n"));
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n05.0005\n06.0004\n06.0005\n"));
  EXPECT_EQ((*g)->apm().list(), "6");
  EXPECT_EQ((*g)->aqm().list(), "4-5");
  // The other queue of the unplugged adapter was reset (§4.3 step 2).
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{5}})->resets(), resets + 1);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}}), nullptr);
  // Rebinding probes, links and filters again: the adapter comes back.
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/bind", "05.0004"), IsOk());
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("05.0004\n05.0005\n06.0004\n06.0005\n"));
  EXPECT_EQ((*g)->apm().list(), "5-6");
}

TEST_F(VfioApFilter, DomainsAreNeverFilteredForMissingQueues) {
  // Adapter 5 has no queue for domain 0x20 (not a usage domain), so it is filtered; the domain
  // stays and guest_matrix shows the domains-only form (§3.6, §10.7).
  assign(kU1, {"5"}, {"4"});
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("05.0004\n"));
  // 0x20 is not in the host's usage domains: hidden, adapter kept.
  ASSERT_THAT(mw(kU1, "assign_domain", "0x20"), IsOk());
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("05.0004\n"));
  // Adapter 7 belongs to zcrypt; unbinding 05.0004 leaves domain 4 without any adapter.
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "05.0004"), IsOk());
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds(".0004\n"));
}

TEST_F(VfioApFilter, AssignmentWhileAttachedHotPlugsAndSignalsTheGuest) {
  // §3.9: current kernels update the guest live; §4.6, §7.4: every APCB write is signalled.
  assign(kU1, {"5"}, {"4"}, {"4"});
  auto g = tb->qemu()->start(*m, {.name = "g1"});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ((*g)->apm().list(), "5");
  EXPECT_EQ((*g)->aqm().list(), "4");
  EXPECT_EQ((*g)->adm().list(), "4");
  ASSERT_TRUE(m->cfg_chg_trigger());
  const auto writes = (*g)->apcb_writes(), signals = m->cfg_chg_trigger()->count();
  ASSERT_THAT(mw(kU1, "assign_adapter", "6"), IsOk());
  EXPECT_EQ((*g)->apm().list(), "5-6");
  ASSERT_THAT(mw(kU1, "assign_domain", "5"), IsOk());
  EXPECT_EQ((*g)->aqm().list(), "4-5");
  ASSERT_THAT(mw(kU1, "assign_control_domain", "0x20"), IsOk());
  EXPECT_EQ((*g)->adm().list(), "4,32");
  EXPECT_EQ((*g)->apcb_writes(), writes + 3);
  EXPECT_EQ(m->cfg_chg_trigger()->count(), signals + 3);
  // An over-provisioned control domain changes nothing the guest sees: no write.
  ASSERT_THAT(mw(kU1, "assign_control_domain", "0x21"), IsOk());
  EXPECT_EQ((*g)->apcb_writes(), writes + 3);
}

TEST_F(VfioApFilter, UnassignmentWhileAttachedUnplugsAndResetsTheGuestsQueues) {
  // §3.4 step 6: unlink, drop from the shadow, one APCB write, reset the queues that were in
  // the guest.
  assign(kU1, {"5", "6"}, {"4", "5"}, {"4"});
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  const auto r54 = vfio().queue({Apid{5}, Apqi{4}})->resets(), r55 = vfio().queue({Apid{5}, Apqi{5}})->resets(),
             r64 = vfio().queue({Apid{6}, Apqi{4}})->resets();
  const auto writes = (*g)->apcb_writes();
  ASSERT_THAT(mw(kU1, "unassign_adapter", "5"), IsOk());
  EXPECT_EQ((*g)->apm().list(), "6");
  EXPECT_EQ((*g)->apcb_writes(), writes + 1);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}})->resets(), r54 + 1);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{5}})->resets(), r55 + 1);
  EXPECT_EQ(vfio().queue({Apid{6}, Apqi{4}})->resets(), r64);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}})->matrix_mdev(), nullptr);
  ASSERT_THAT(mw(kU1, "unassign_domain", "4"), IsOk());
  EXPECT_EQ((*g)->aqm().list(), "5");
  EXPECT_EQ(vfio().queue({Apid{6}, Apqi{4}})->resets(), r64 + 1);
  ASSERT_THAT(mw(kU1, "unassign_control_domain", "4"), IsOk());
  EXPECT_TRUE((*g)->adm().none());
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("06.0005\n"));
}

TEST_F(VfioApFilter, QueueStatusSaysUnassignedAssignedOrInUse) {
  // §4.7, ap-bus.md §4.5.
  const std::string st = "/devices/ap/card05/05.0004/status";
  EXPECT_THAT(read(st), IsOkAndHolds("unassigned\n"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card07/07.0004/status")); // bound to zcrypt
  assign(kU1, {"5"}, {"4"});
  EXPECT_THAT(read(st), IsOkAndHolds("assigned\n"));
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  EXPECT_THAT(read(st), IsOkAndHolds("in use\n"));
  // Assigned and attached but filtered out of the guest: "assigned".
  ASSERT_THAT(mw(kU1, "assign_domain", "0x20"), IsOk());
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "05.0005"), IsOk());
  ASSERT_THAT(mw(kU1, "assign_domain", "5"), IsOk()); // 05.0005 unbound → adapter 5 filtered
  EXPECT_THAT(read(st), IsOkAndHolds("assigned\n"));
  ASSERT_THAT(tb->qemu()->stop(m->name()), IsOk());
  EXPECT_THAT(read(st), IsOkAndHolds("assigned\n"));
}

TEST_F(VfioApFilter, ApmaskWriteOfAnAssignedApqnIsVetoedWithEbusyAndTheKernelsLogLine) {
  // §4.5, §9: in_use answers EADDRINUSE, the bus turns it into EBUSY.
  assign(kU1, {"5"}, {"4", "5"});
  const auto before = read("/bus/ap/apmask");
  EXPECT_THAT(write("/bus/ap/apmask", "+5"), FailsWith(EBUSY));
  EXPECT_THAT(read("/bus/ap/apmask"), IsOkAndHolds(*before));
  const std::string pre = "vfio_ap_mdev " + std::string(kU1) + ": Can not reserve queue 05.000";
  EXPECT_TRUE(core().log().contains(pre + "4 for host driver: in use by mdev"));
  EXPECT_TRUE(core().log().contains(pre + "5 for host driver: in use by mdev"));
  // The queues stay with vfio_ap.
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/05.0004/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/vfio_ap"));
  // Adapter 6 (not assigned) can go back to zcrypt; so can domain 6 through aqmask... no:
  // aqmask "+6" adds nothing (all ones), but taking domain 4 away and back is vetoed.
  EXPECT_THAT(write("/bus/ap/aqmask", "-4"), IsOk());
  EXPECT_THAT(write("/bus/ap/aqmask", "+4"), FailsWith(EBUSY));
  EXPECT_THAT(write("/bus/ap/apmask", "+6"), IsOk());
  // in_use checks assignments, not bindings: an assigned adapter without queues is vetoed too.
  release_adapters("-0x30");
  ASSERT_THAT(mw(kU1, "assign_adapter", "0x30"), IsOk());
  EXPECT_THAT(write("/bus/ap/apmask", "+0x30"), FailsWith(EBUSY));
  // After unassigning, the write goes through.
  ASSERT_THAT(mw(kU1, "unassign_adapter", "5"), IsOk());
  EXPECT_THAT(write("/bus/ap/apmask", "+5"), IsOk());
  // 05.0005 is default-owned again (05.0004 is not: aqmask no longer has domain 4).
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/05.0005/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/cex4queue"));
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/05.0004/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/vfio_ap"));
}

TEST_F(VfioApFilter, AnUnassignedAdapterCanBeTakenBackByZcrypt) {
  // in_use only vetoes assigned APQNs: after the unassignment the mask write succeeds and the
  // queues move to cex4queue (§4.3, §4.5).
  assign(kU1, {"5", "6"}, {"4"});
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  ASSERT_THAT(mw(kU1, "unassign_adapter", "6"), IsOk());
  ASSERT_THAT(write("/bus/ap/apmask", "+6"), IsOk());
  EXPECT_EQ((*g)->apm().list(), "5");
  EXPECT_EQ(vfio().queue({Apid{6}, Apqi{4}}), nullptr); // unbound from vfio_ap, bound to cex4queue
}

TEST_F(VfioApFilter, HostConfigurationRemovalUnplugsFromTheShadow) {
  // §4.4 on_config_changed removal pass, then the scan removes the queue devices.
  assign(kU1, {"5", "6"}, {"4", "5"}, {"4", "5"});
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  ASSERT_THAT(bus().hotunplug_adapter(Apid{6}), IsOk());
  EXPECT_EQ((*g)->apm().list(), "5");
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("05.0004\n05.0005\n"));
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n05.0005\n06.0004\n06.0005\n"));
  ASSERT_THAT(bus().set_usage_domain(Apqi{5}, false), IsOk());
  EXPECT_EQ((*g)->aqm().list(), "4");
  ASSERT_THAT(bus().set_control_domain(Apqi{5}, false), IsOk());
  EXPECT_EQ((*g)->adm().list(), "4");
  EXPECT_EQ(vfio().info().aqm.list(), "4,6-7");
}

TEST_F(VfioApFilter, HostConfigurationAdditionHotPlugsAnOverProvisionedAdapter) {
  // §4.1 over-provisioning + §4.4 addition: assigned before it exists, plugged at scan end.
  release_adapters("-0x0a");
  assign(kU1, {"5", "0x0a"}, {"4"}, {"4", "0x21"});
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ((*g)->apm().list(), "5");
  EXPECT_EQ((*g)->adm().list(), "4");
  const auto writes = (*g)->apcb_writes();
  ap::Adapter a;
  a.id = Apid{0x0a};
  a.raw_type = ap::kApTypeCex8;
  ASSERT_THAT(bus().hotplug_adapter(a), IsOk());
  EXPECT_EQ((*g)->apm().list(), "5,10");
  EXPECT_EQ((*g)->apcb_writes(), writes + 1); // filtering deferred to the scan's end: one write
  EXPECT_TRUE(m->apm_add().none());           // cleared by on_scan_complete
  EXPECT_THAT(read("/devices/ap/card0a/0a.0004/status"), IsOkAndHolds("in use\n"));
  // A new control domain is plugged too.
  ASSERT_THAT(bus().set_control_domain(Apqi{0x21}, true), IsOk());
  EXPECT_EQ((*g)->adm().list(), "4,33");
}

TEST_F(VfioApFilter, DeviceResetFailsWithEioForADeconfiguredQueue) {
  // §5.6 step 4, §10.11.
  assign(kU1, {"5"}, {"4"});
  EXPECT_THAT(vfio().device_reset(*m), IsOk());
  ASSERT_THAT(bus().sclp_configure(Apid{5}, false), IsOk());
  EXPECT_THAT(vfio().device_reset(*m), FailsWith(EIO));
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}})->reset_rc(), ap::rc::kDeconfigured);
  // Still passable (rc 3 is in the allow-list): the guest keeps the adapter.
  EXPECT_THAT(mw(kU1, "assign_domain", "5"), IsOk());
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds("05.0004\n05.0005\n"));
}

TEST_F(VfioApFilter, Apcb0GuestsLoseIdsAboveTheirFormat) {
  // §4.6, §10.13: a format-1 CRYCB holds adapters 0-63 and domains 0-15 only.
  assign(kU1, {"5"}, {"4"}, {"4", "0x20"});
  auto g = tb->qemu()->start(*m, {.name = "old", .format = kvm::CrycbFormat::Format1});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ((*g)->adm().list(), "4");
  EXPECT_EQ(m->shadow_apcb().adm.list(), "4,32");
}
