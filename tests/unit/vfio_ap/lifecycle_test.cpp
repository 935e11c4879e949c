// mdev lifecycle through vfio_ap: create (UUID rules, EEXIST, instances), open/close of the VFIO
// device (EINVAL, EPERM, no CRYCB), close resets, requests and `remove` while a guest runs, in
// both kernel profiles (vfio-ap.md §1.4, §3.10, §3.11, §5.1–§5.5, §9, §10.3, §10.8).
#include "vfio_ap_fixture.h"

using namespace apemu;
using namespace apemu::testing;

TEST_F(VfioApTest, CreateChecksTheUuidAndRefusesDuplicates) {
  const std::string c = std::string(kTypeDir) + "/create";
  EXPECT_THAT(write(c, "1111"), FailsWith(EINVAL));
  EXPECT_THAT(write(c, std::string(kU1) + "\n\n"), FailsWith(EINVAL)); // 38 bytes
  EXPECT_THAT(write(c, "zzzzzzzz-1111-1111-1111-111111111111"), FailsWith(EINVAL));
  EXPECT_THAT(write(c, std::string(kU1) + "\n"), IsOkAndHolds(37u));
  EXPECT_THAT(write(c, kU1), FailsWith(EEXIST));
  EXPECT_THAT(read(std::string(kTypeDir) + "/available_instances"), IsOkAndHolds("65535\n"));
  // The mdev has its attributes, links and IOMMU group as soon as the write returns.
  const std::string d = mdev_path(kU1);
  for (const char* a : {"assign_adapter", "unassign_adapter", "assign_domain", "unassign_domain",
                        "assign_control_domain", "unassign_control_domain", "ap_config",
                        "control_domains", "matrix", "guest_matrix", "remove"})
    EXPECT_TRUE(sysfs_exists(core(), d + "/" + a)) << a;
  EXPECT_THAT(sysfs_readlink(core(), d + "/mdev_type"),
              IsOkAndHolds("../mdev_supported_types/vfio_ap-passthrough"));
  EXPECT_THAT(sysfs_readlink(core(), d + "/driver"),
              IsOkAndHolds("../../../../bus/mdev/drivers/vfio_ap_mdev"));
  EXPECT_THAT(sysfs_readlink(core(), std::string("/bus/mdev/devices/") + kU1),
              IsOkAndHolds("../../../devices/vfio_ap/matrix/" + std::string(kU1)));
  auto group = sysfs_readlink(core(), d + "/iommu_group");
  ASSERT_THAT(group, IsOkAndHolds("../../../../kernel/iommu_groups/0"));
  EXPECT_TRUE(sysfs_exists(core(), std::string("/kernel/iommu_groups/0/devices/") + kU1));
  // A new mdev starts empty, with the maxima of the host configuration.
  auto* m = vfio().find_mdev(kU1);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->matrix().apm_max, 255u);
  EXPECT_TRUE(m->matrix().apm.none());
  EXPECT_TRUE(m->shadow_apcb().apm.none());
}

TEST_F(VfioApTest, RemoveUnlinksAndResetsItsQueuesWhichStayBoundToVfioAp) {
  // §5.4 step 2.
  release_adapters("-5");
  auto* m = create(kU1);
  assign(kU1, {"5"}, {"4"});
  const auto r = vfio().queue({Apid{5}, Apqi{4}})->resets();
  EXPECT_THAT(mw(kU1, "remove", "0"), IsOk());
  EXPECT_TRUE(sysfs_exists(core(), mdev_path(kU1)));
  EXPECT_THAT(mw(kU1, "remove", "1"), IsOk());
  EXPECT_FALSE(sysfs_exists(core(), mdev_path(kU1)));
  EXPECT_FALSE(sysfs_exists(core(), "/kernel/iommu_groups/0"));
  EXPECT_EQ(vfio().find_mdev(kU1), nullptr);
  (void)m;
  ASSERT_NE(vfio().queue({Apid{5}, Apqi{4}}), nullptr);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}})->resets(), r + 1);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}})->matrix_mdev(), nullptr);
  EXPECT_THAT(read("/devices/ap/card05/05.0004/status"), IsOkAndHolds("unassigned\n"));
  EXPECT_THAT(read(std::string(kTypeDir) + "/available_instances"), IsOkAndHolds("65536\n"));
  // The freed APQN can be assigned to another mdev.
  create(kU2);
  assign(kU2, {"5"}, {"4"});
}

TEST_F(VfioApTest, OpenDeviceNeedsAKvmAndOneMdevPerGuest) {
  // §5.2: EINVAL without KVM, EPERM for a second mdev on the same KVM (the hook is redirected
  // anyway, §10.8).
  auto* m1 = create(kU1);
  auto* m2 = create(kU2);
  EXPECT_THAT(vfio().open_device(*m1, nullptr), FailsWith(EINVAL));
  auto kvm = std::make_shared<kvm::Kvm>("g");
  ASSERT_THAT(vfio().open_device(*m1, kvm), IsOk());
  EXPECT_EQ(kvm->pqap_hook(), kU1);
  EXPECT_THAT(vfio().open_device(*m1, kvm), FailsWith(EBUSY));
  EXPECT_THAT(vfio().open_device(*m2, kvm), FailsWith(EPERM));
  EXPECT_EQ(kvm->pqap_hook(), kU2);
  EXPECT_FALSE(m2->opened());
  vfio().close_device(*m1);
  EXPECT_FALSE(m1->opened());
  EXPECT_EQ(m1->kvm(), nullptr);
}

TEST_F(VfioApTest, AGuestWithoutCrycbOpensWithoutAttaching) {
  release_adapters("-5");
  auto* m = create(kU1);
  assign(kU1, {"5"}, {"4"});
  auto kvm = std::make_shared<kvm::Kvm>("nocrypto", kvm::CrycbFormat::Format2, false);
  ASSERT_THAT(vfio().open_device(*m, kvm), IsOk());
  EXPECT_TRUE(m->opened());
  EXPECT_EQ(m->kvm(), nullptr);
  EXPECT_EQ(kvm->apcb_writes(), 0u);
  EXPECT_THAT(read("/devices/ap/card05/05.0004/status"), IsOkAndHolds("assigned\n"));
}

TEST_F(VfioApTest, CloseClearsTheApcbAndResetsEveryLinkedQueueIncludingFilteredOnes) {
  // §5.3 step 3-4.
  release_adapters("-5,-6");
  auto* m = create(kU1);
  assign(kU1, {"5", "6"}, {"4", "5"});
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "06.0005"), IsOk()); // filters adapter 6
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ((*g)->apm().list(), "5");
  const auto r64 = vfio().queue({Apid{6}, Apqi{4}})->resets(), r54 = vfio().queue({Apid{5}, Apqi{4}})->resets();
  ASSERT_THAT(tb->qemu()->stop(m->name()), IsOk());
  EXPECT_TRUE((*g)->apm().none());
  EXPECT_TRUE((*g)->aqm().none());
  EXPECT_EQ(vfio().queue({Apid{6}, Apqi{4}})->resets(), r64 + 1);
  EXPECT_EQ(vfio().queue({Apid{5}, Apqi{4}})->resets(), r54 + 1);
  EXPECT_FALSE(m->opened());
  EXPECT_FALSE(m->req_trigger()); // QEMU unregistered its eventfds
  EXPECT_THAT(tb->qemu()->stop(m->name()), FailsWith(ENODEV));
}

TEST_F(VfioApTest, RemoveWhileAGuestRunsBlocksUntilQemuHonoursTheRequest) {
  // §3.11 current, §5.5, §9: the writer blocks, the request eventfd fires, QEMU unplugs the
  // device (later, on its own thread: posted work), and then the removal completes.
  release_adapters("-5");
  auto* m = create(kU1);
  assign(kU1, {"5"}, {"4"});
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  auto w = sysfs_write_blocking(core(), mdev_path(kU1) + "/remove", "1");
  ASSERT_THAT(w.result, FailsWith(kEIocbQueued));
  ASSERT_TRUE(w.completion);
  EXPECT_FALSE(w.completion->done());
  EXPECT_TRUE(m->remove_pending());
  EXPECT_TRUE(core().log().contains("vfio_ap_mdev " + std::string(kU1) +
                                    ": Relaying device request to user (#0)"));
  // [6.15+] the request itself takes the AP resources away from the guest.
  EXPECT_TRUE((*g)->apm().none());
  // A second remove while the first waits: EAGAIN (§3.11).
  EXPECT_THAT(mw(kU1, "remove", "1"), FailsWith(EAGAIN));
  EXPECT_TRUE(sysfs_exists(core(), mdev_path(kU1)));
  tb->runtime().run_pending(); // QEMU's notifier runs: unplug, close
  ASSERT_TRUE(w.completion->done());
  EXPECT_THAT(w.completion->result(), IsOk());
  EXPECT_FALSE(sysfs_exists(core(), mdev_path(kU1)));
  EXPECT_EQ(vfio().find_mdev(kU1), nullptr);
  EXPECT_EQ(tb->qemu()->guest(kU1), nullptr);
}

TEST_F(VfioApTest, RemoveWhileAGuestIgnoresRequestsBlocksUntilTheGuestStops) {
  // The kernel asks again every 10 s and logs every tenth request (§5.5, §9); the writer stays
  // blocked until the device is closed.
  release_adapters("-5");
  auto* m = create(kU1);
  assign(kU1, {"5"}, {"4"});
  ASSERT_THAT(tb->qemu()->start(*m, {.name = "stubborn", .honour_requests = false}), IsOk());
  auto w = sysfs_write_blocking(core(), mdev_path(kU1) + "/remove", "1");
  ASSERT_THAT(w.result, FailsWith(kEIocbQueued));
  ASSERT_THAT(tb->runtime().advance(std::chrono::seconds(95)), IsOk());
  EXPECT_FALSE(w.completion->done());
  EXPECT_EQ(m->req_trigger()->count(), 10u); // #0 at the write, then every 10 s
  EXPECT_EQ(log_count("Relaying device request to user (#0)"), 1u);
  ASSERT_THAT(tb->runtime().advance(std::chrono::seconds(5)), IsOk());
  EXPECT_EQ(log_count("Relaying device request to user (#10)"), 1u);
  ASSERT_THAT(tb->qemu()->stop(kU1), IsOk()); // `apemu ctl guest stop`
  ASSERT_TRUE(w.completion->done());
  EXPECT_THAT(w.completion->result(), IsOk());
  EXPECT_FALSE(sysfs_exists(core(), mdev_path(kU1)));
  EXPECT_TRUE(tb->runtime().timers().size() == 1u); // only the AP bus config timer is left
}

TEST_F(VfioApTest, AnInterruptedRemoveFailsWithEintrAndTheMdevStays) {
  release_adapters("-5");
  auto* m = create(kU1);
  assign(kU1, {"5"}, {"4"});
  ASSERT_THAT(tb->qemu()->start(*m, {.name = "stubborn", .honour_requests = false}), IsOk());
  auto w = sysfs_write_blocking(core(), mdev_path(kU1) + "/remove", "1");
  ASSERT_THAT(w.result, FailsWith(kEIocbQueued));
  w.completion->cancel(EINTR); // the writer got SIGINT (the FUSE adapter cancels on INTERRUPT)
  ASSERT_TRUE(w.completion->done());
  EXPECT_THAT(w.completion->result(), FailsWith(EINTR));
  EXPECT_FALSE(m->remove_pending());
  EXPECT_TRUE(sysfs_exists(core(), mdev_path(kU1) + "/matrix"));
  EXPECT_TRUE(m->opened());
  EXPECT_EQ(tb->runtime().timers().size(), 1u); // no more device requests
  // It can be removed later, once the guest is gone.
  ASSERT_THAT(tb->qemu()->stop(kU1), IsOk());
  EXPECT_THAT(mw(kU1, "remove", "1"), IsOk());
  EXPECT_FALSE(sysfs_exists(core(), mdev_path(kU1)));
}

TEST_F(VfioApTest, ACallerThatCannotWaitGetsEagain) {
  release_adapters("-5");
  auto* m = create(kU1);
  ASSERT_THAT(tb->qemu()->start(*m), IsOk());
  EXPECT_THAT(vfio().remove_mdev(*m), FailsWith(EAGAIN));
  EXPECT_FALSE(m->remove_pending());
  EXPECT_TRUE(sysfs_exists(core(), mdev_path(kU1)));
}

TEST_F(VfioApTest, RequestsAreLoggedEveryTenthCall) {
  auto* m = create(kU1);
  auto fd = std::make_shared<EventFd>(tb->runtime());
  ASSERT_THAT(vfio().set_irq_eventfd(*m, vfio_ap::IrqIndex::Request, fd), IsOk());
  for (unsigned i = 0; i < 21; ++i) vfio().request(*m, i);
  EXPECT_EQ(fd->count(), 21u);
  EXPECT_EQ(log_count("Relaying device request to user"), 3u); // #0, #10, #20
}

// ---- 4.20
// -------------------------------------------------------------------------------------------

class VfioAp420 : public VfioApTest {
protected:
  const char* profile() const override { return "4.20"; }
};

TEST_F(VfioAp420, ReservationMeansBoundToVfioAp) {
  // §3.10: every APQN of the new id must be a queue bound to vfio_ap; with no other ids
  // assigned, at least one queue of the id.
  create(kU1);
  EXPECT_THAT(mw(kU1, "assign_adapter", "5"), FailsWith(EADDRNOTAVAIL)); // all with zcrypt
  EXPECT_THAT(mw(kU1, "assign_domain", "4"), FailsWith(EADDRNOTAVAIL));
  release_adapters("-5");
  EXPECT_THAT(mw(kU1, "assign_adapter", "5"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_domain", "4"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_domain", "0x20"), FailsWith(EADDRNOTAVAIL));  // no queue 05.0020
  EXPECT_THAT(mw(kU1, "assign_adapter", "0x40"), FailsWith(EADDRNOTAVAIL)); // no card
  EXPECT_THAT(mw(kU1, "assign_adapter", "256"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "assign_adapter", "x"), FailsWith(EINVAL));
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n"));
}

TEST_F(VfioAp420, SharingFailsWithEaddrinuseWithoutALogLine) {
  release_adapters("-5");
  create(kU1);
  create(kU2);
  assign(kU1, {"5"}, {"4"});
  EXPECT_THAT(mw(kU2, "assign_adapter", "5"), IsOk());
  EXPECT_THAT(mw(kU2, "assign_domain", "4"), FailsWith(EADDRINUSE));
  EXPECT_THAT(mr(kU2, "matrix"), IsOkAndHolds("05.\n"));
  EXPECT_EQ(log_count("Userspace may not"), 0u);
}

TEST_F(VfioAp420, AGuestGetsTheRawMasksOnceAndAssignmentsThenFailWithEbusy) {
  release_adapters("-5,-6");
  auto* m = create(kU1);
  assign(kU1, {"5", "6"}, {"4"}, {"4", "0x21"});
  // Unbinding a queue does not filter anything in 4.20.
  ASSERT_THAT(write("/bus/ap/drivers/vfio_ap/unbind", "06.0004"), IsOk());
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ((*g)->apm().list(), "5-6");
  EXPECT_EQ((*g)->aqm().list(), "4");
  EXPECT_EQ((*g)->adm().list(), "4,33"); // not even the host configuration filters
  // EBUSY is checked before parsing.
  for (const char* attr : {"assign_adapter", "unassign_adapter", "assign_domain", "unassign_domain",
                           "assign_control_domain", "unassign_control_domain"})
    EXPECT_THAT(mw(kU1, attr, "garbage"), FailsWith(EBUSY)) << attr;
  // remove fails with EBUSY while the KVM is attached (4.20).
  EXPECT_THAT(mw(kU1, "remove", "1"), FailsWith(EBUSY));
  EXPECT_TRUE(sysfs_exists(core(), mdev_path(kU1) + "/matrix"));
  ASSERT_THAT(tb->qemu()->stop(m->name()), IsOk());
  EXPECT_TRUE((*g)->apm().none());
  EXPECT_THAT(mw(kU1, "unassign_adapter", "6"), IsOk());
  EXPECT_THAT(mw(kU1, "remove", "1"), IsOk());
}

TEST_F(VfioAp420, NoVfioIrqs) {
  auto* m = create(kU1);
  EXPECT_THAT(vfio().set_irq_eventfd(*m, vfio_ap::IrqIndex::Request, nullptr),
              FailsWith(EOPNOTSUPP));
}
