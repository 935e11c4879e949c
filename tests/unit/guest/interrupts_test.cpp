// PQAP(AQIC) through KVM's handle_pqap and vfio_ap's hook in their order (vfio-ap.md §6,
// guest-ap.md §2.7 validation table), and adapter-interruption delivery through the GISA: the
// notification byte, one interruption per batch, none after disable, resources released by
// disable, VFIO_DEVICE_RESET, DMA unmap and close.
#include "guest_fixture.h"

namespace apemu::testing {
namespace {

using namespace std::chrono_literals;

constexpr unsigned kIsc = 6;                      // AP_ISC
constexpr std::uint32_t kIsc6Code = 0xB0000000;   // adapter interruption, ISC 6 (§2.7)

std::vector<std::uint8_t> small_meb1(std::uint8_t m = 2) {
  const std::vector<std::uint8_t> n{0x0B}, e{0x03}, msg{m};
  return *guest::build_meb(1, n, e, msg);
}

TEST_F(GuestTest, AqicEnableAndDisable) {
  auto a = g().aqic(kAccel, true, kIsc, g().nib());
  ASSERT_FALSE(a.exception());
  EXPECT_EQ(a.cc, 0);
  EXPECT_EQ(a.gr1, 0x81000000u); // E=1 I=1, RC 00; the guest's IR/ISC bits are gone
  EXPECT_EQ(kvm->gisa().refs(kIsc), 1u);
  EXPECT_EQ(kvm->gisa().iam(), 0x02); // 0x80 >> 6
  EXPECT_EQ(kvm->memory().pins(g().nib()), 1u);
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x81000000u);
  // Enabled again: the machine answers OTHERWISE_CHANGED, vfio_ap undoes the new registration
  // and the first one stays (§6.2 step 7).
  a = g().aqic(kAccel, true, kIsc, g().nib());
  EXPECT_EQ(a.cc, 3);
  EXPECT_EQ(a.rc(), ap::rc::kOtherwiseChanged);
  EXPECT_EQ(kvm->gisa().refs(kIsc), 1u);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 1u);
  // Disable: RC 00, I=0, the ISC unregistered and the page unpinned.
  a = g().aqic(kAccel, false, 0, 0);
  EXPECT_EQ(a.cc, 0);
  EXPECT_EQ(a.gr1, 0x80000000u);
  EXPECT_EQ(kvm->gisa().refs(kIsc), 0u);
  EXPECT_EQ(kvm->gisa().iam(), 0);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 0u);
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x80000000u);
}

TEST_F(GuestTest, AqicProgramInterruptionsComeInKvmsOrder) {
  const std::uint64_t ctl = ap::IrqControl{.ir = true, .isc = kIsc}.gr1();
  // Problem state wins over a reserved bit (rows 2, 3).
  kvm->vcpu().problem_state = true;
  EXPECT_EQ(g().pqap(0x03400000 | kAccel.qid(), ctl, g().nib()).program_interruption,
            ap::pgm::kPrivileged);
  kvm->vcpu().problem_state = false;
  // GR0 bits 41-47 (row 3).
  for (std::uint64_t bit : {0x00400000ull, 0x00010000ull})
    EXPECT_EQ(g().pqap(0x03000000 | bit | kAccel.qid(), ctl, g().nib()).program_interruption,
              ap::pgm::kSpecification)
        << std::hex << bit;
  // The hook still saw nothing.
  EXPECT_EQ(kvm->gisa().refs(kIsc), 0u);
}

TEST_F(GuestTest, AqicFacilityChecksComeBeforeTheHook) {
  // Facility 65 off and no AIV: the specification exception (row 6) comes before the hook's
  // "back to user space" (row 8).
  restart({.vm = {.aqic = false, .aiv = false}});
  EXPECT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).program_interruption,
            ap::pgm::kSpecification);
  // T bit without facility 15 (row 4).
  restart({.vm = {.apft = false}});
  EXPECT_EQ(g().pqap(0x03800000 | kAccel.qid(), 0, g().nib()).program_interruption,
            ap::pgm::kSpecification);
  // Format 1 (no APXA) and APQI 16 (row 5).
  restart({.format = kvm::CrycbFormat::Format1});
  EXPECT_EQ(g().aqic(Apqn{to_apid(7), to_apqi(16)}, true, kIsc, g().nib()).program_interruption,
            ap::pgm::kSpecification);
  // No AIV: vfio_ap hands the instruction to user space, QEMU injects an operation exception
  // (row 8) — before the APQN check (row 9).
  restart({.vm = {.aiv = false}});
  EXPECT_EQ(g().aqic(kForeign, true, kIsc, g().nib()).program_interruption,
            ap::pgm::kOperation);
}

TEST_F(GuestTest, AqicResponseCodesComeInVfioApsOrder) {
  // Row 9 before row 10: an APQN the mdev lacks with NIB 0 is Q_NOT_AVAIL.
  auto a = g().aqic(kForeign, true, kIsc, 0);
  EXPECT_EQ(a.cc, 3);
  EXPECT_EQ(a.gr1, 0x00010000u);
  // Row 10: NIB 0, or outside guest memory.
  a = g().aqic(kAccel, true, kIsc, 0);
  EXPECT_EQ(a.cc, 3);
  EXPECT_EQ(a.gr1, 0x00060000u);
  EXPECT_EQ(g().aqic(kAccel, true, kIsc, kvm->config().memory + 8).rc(), ap::rc::kInvalidAddress);
  // Row 11: the page cannot be pinned (memory not mapped for DMA).
  kvm->memory().set_dma_mapped(0, false);
  EXPECT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).rc(), ap::rc::kInvalidAddress);
  kvm->memory().set_dma_mapped(0, true);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 0u);
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x80000000u); // nothing enabled
  EXPECT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).rc(), ap::rc::kNormal);
}

TEST_F(GuestTest, AGisaRegistrationFailureIsRc06OnNewKernels) {
  // Row 12: no GISA; 6.5+ answers 0x06 and unpins the NIB.
  restart({.vm = {.gisa = false}});
  auto a = g().aqic(kAccel, true, kIsc, g().nib());
  EXPECT_EQ(a.cc, 3);
  EXPECT_EQ(a.gr1, 0x00060000u);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 0u);
}

TEST_F(GuestTest, AProtectedGuestsNibMustBeShared) {
  // vfio-ap.md §6.3 step 4 (6.5+).
  restart({.vm = {.protected_vm = true}});
  EXPECT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).rc(), ap::rc::kInvalidAddress);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 0u);
  kvm->memory().set_shared(g().nib(), true);
  EXPECT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).rc(), ap::rc::kNormal);
}

TEST_F(GuestTest, WithoutTheHookKvmAnswersQNotAvailInTheHighWord) {
  // Row 7: no vfio_ap hook; the status lands in GR1's high word (the quirk of that path).
  auto bare = std::make_shared<kvm::Kvm>("bare", kvm::KvmConfig{}, tb->firmware(),
                                         vfio().profile());
  bare->crypto_set_masks(mask_of<Apid>({7}), mask_of<Apqi>({4}), {});
  guest::Guest os2(bare, rt());
  auto a = os2.aqic(kAccel, true, kIsc, os2.nib());
  ASSERT_FALSE(a.exception());
  EXPECT_EQ(a.cc, 3);
  EXPECT_EQ(a.gr1, 0x0001000000000000ull);
}

TEST_F(GuestTest, AReplySetsTheNibAndRaisesOneInterruptionOnTheIsc) {
  g().enable_isc(kIsc);
  ASSERT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).cc, 0);
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  EXPECT_EQ(g().nib_value(), 0);
  EXPECT_TRUE(g().interruptions().empty());
  ASSERT_THAT(rt().advance(0ms), IsOk());
  // The guest took ISC 6's adapter interruption and cleared the byte (§2.7).
  EXPECT_EQ(g().interruptions(), std::vector<std::uint32_t>{kIsc6Code});
  EXPECT_EQ(kvm->interruptions(), 1u);
  EXPECT_EQ(g().nib_value(), 0);
  std::vector<std::uint8_t> data;
  EXPECT_EQ(g().receive(kAccel, data).cc, 0);
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x81000000u); // interruptions stay enabled
}

TEST_F(GuestTest, RepliesBeforeTheGuestClearedTheNibShareOneInterruption) {
  // Two queues on one NIB; ISC 6 not yet enabled in CR6: the two replies set the byte once
  // and make one interruption pending, delivered when the guest enables the ISC.
  ASSERT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).cc, 0);
  ASSERT_EQ(g().aqic(kAccel5, true, kIsc, g().nib()).cc, 0);
  EXPECT_EQ(kvm->gisa().refs(kIsc), 2u);
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  ASSERT_EQ(g().send(kAccel5, 2, small_meb1()).cc, 0);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  EXPECT_EQ(g().nib_value(), 0xFF);
  EXPECT_EQ(kvm->gisa().ipm(), 0x02);
  EXPECT_EQ(kvm->interruptions(), 0u);
  g().enable_isc(kIsc);
  rt().run_pending();
  EXPECT_EQ(kvm->interruptions(), 1u);
  EXPECT_EQ(g().interruptions().size(), 1u);
  EXPECT_EQ(kvm->gisa().ipm(), 0);
  std::vector<std::uint8_t> data;
  EXPECT_EQ(g().receive(kAccel, data).psmid, 1u);
  EXPECT_EQ(g().receive(kAccel5, data).psmid, 2u);
  // The next reply is the next batch.
  ASSERT_EQ(g().send(kAccel, 3, small_meb1()).cc, 0);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  EXPECT_EQ(kvm->interruptions(), 2u);
}

TEST_F(GuestTest, NoInterruptionAfterDisable) {
  g().enable_isc(kIsc);
  ASSERT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).cc, 0);
  ASSERT_EQ(g().aqic(kAccel, false, 0, 0).cc, 0);
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  ASSERT_THAT(rt().advance(1s), IsOk());
  EXPECT_EQ(g().nib_value(), 0);
  EXPECT_EQ(kvm->interruptions(), 0u);
  std::vector<std::uint8_t> data;
  EXPECT_EQ(g().receive(kAccel, data).cc, 0); // the reply is there, found by polling
}

TEST_F(GuestTest, AnExchangeWaitsForTheInterruptionInsteadOfPolling) {
  ASSERT_THAT(fw().set_service_time(to_apid(7), 3ms), IsOk());
  auto x = g().exchange(kAccel, small_meb1(3), {.irq = true});
  ASSERT_THAT(guest::run_until(rt(), *x->done), IsOk());
  EXPECT_THAT(x->done->result(), IsOk());
  EXPECT_EQ(x->interruption, kIsc6Code);
  EXPECT_EQ(x->polls, 0u);
  EXPECT_EQ(x->completed - x->submitted, 3ms);
  EXPECT_EQ(x->reply.back(), 5); // 3^3 mod 11
  // Polling instead: 250 µs steps, 12 empty DQAPs before the reply at 3 ms.
  auto y = g().exchange(kAccel5, small_meb1(3));
  ASSERT_THAT(guest::run_until(rt(), *y->done), IsOk());
  EXPECT_EQ(y->interruption, 0u);
  EXPECT_EQ(y->polls, 11u);
  EXPECT_EQ(y->completed - y->submitted, 3ms);
}

TEST_F(GuestTest, DeviceResetReleasesTheInterruptionResources) {
  ASSERT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).cc, 0);
  auto done = tb->qemu()->reset(kU1); // VFIO_DEVICE_RESET: ZAPQ of every queue (§5.6)
  ASSERT_THAT(done, IsOk());
  EXPECT_FALSE((*done)->done()); // verified 20 ms later (6.5+)
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x80000000u);
  ASSERT_THAT(rt().advance(20ms), IsOk());
  ASSERT_TRUE((*done)->done());
  EXPECT_THAT((*done)->result(), IsOk());
  EXPECT_EQ(kvm->gisa().refs(kIsc), 0u);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 0u);
}

TEST_F(GuestTest, DmaUnmapOfTheNibDisablesInterruptions) {
  ASSERT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).cc, 0);
  vfio().dma_unmap(*m, 0x100000, 0x1000); // elsewhere: nothing happens
  EXPECT_EQ(kvm->memory().pins(g().nib()), 1u);
  vfio().dma_unmap(*m, 0, kvm->config().memory);
  EXPECT_EQ(kvm->memory().pins(g().nib()), 0u);
  EXPECT_EQ(kvm->gisa().refs(kIsc), 0u);
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x80000000u);
}

TEST_F(GuestTest, ClosingTheDeviceReleasesTheInterruptionResources) {
  ASSERT_EQ(g().aqic(kAccel, true, kIsc, g().nib()).cc, 0);
  const std::uint64_t nib = g().nib();
  auto k = kvm;
  os.reset();
  ASSERT_THAT(tb->qemu()->stop(kU1), IsOk());
  ASSERT_THAT(rt().advance(20ms), IsOk());
  EXPECT_EQ(k->gisa().refs(kIsc), 0u);
  EXPECT_EQ(k->memory().pins(nib), 0u);
  EXPECT_EQ(k->pqap_hook(), "");
}

// Older kernels: GISA failure is RC 08 and handle_pqap leaves the cc alone on success.
class GuestTest515 : public GuestTest {
protected:
  const char* profile() const override { return "5.15"; }
};

TEST_F(GuestTest515, AGisaRegistrationFailureIsRc08) {
  restart({.vm = {.gisa = false}});
  auto a = g().aqic(kAccel, true, kIsc, g().nib());
  EXPECT_EQ(a.cc, 3);
  EXPECT_EQ(a.gr1, 0x00080000u);
}

TEST_F(GuestTest515, HandlePqapLeavesTheConditionCodeOnSuccess) {
  kvm->vcpu().cc = 2;
  auto a = g().aqic(kAccel, true, kIsc, g().nib());
  EXPECT_EQ(a.rc(), ap::rc::kNormal);
  EXPECT_EQ(a.cc, 2);
}

} // namespace
} // namespace apemu::testing
