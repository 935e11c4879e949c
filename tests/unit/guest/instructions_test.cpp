// PQAP (TAPQ, RAPQ, ZAPQ, QCI, QACT), NQAP and DQAP as a guest executes them: register
// conventions, status words, response codes and condition codes (guest-ap.md §2, §5, §9), on
// the virtual clock.
#include "guest_fixture.h"

namespace apemu::testing {
namespace {

using ap::QueueStatus;
using namespace std::chrono_literals;

constexpr std::uint32_t kAccelFacilities = 0xEA000000; // S M C A N (guest-ap.md §2.4)

/// A type 50 MEB1 request for m ^ e mod n with small numbers (the firmware computes it).
std::vector<std::uint8_t> small_meb1(std::uint8_t m = 2) {
  const std::vector<std::uint8_t> n{0x0B}, e{0x03}, msg{m}; // 11, 3
  auto r = guest::build_meb(1, n, e, msg);
  EXPECT_THAT(r, IsOk());
  return r ? *r : std::vector<std::uint8_t>{};
}

// ---- TAPQ (§2.4) ----------------------------------------------------------------------------

TEST_F(GuestTest, TapqWithTheTBitGivesStatusAndTheAdaptersInformation) {
  auto t = g().tapq(kAccel, true);
  ASSERT_FALSE(t.exception());
  EXPECT_EQ(t.cc, 0);
  EXPECT_EQ(t.gr1, 0x80000000u); // E=1, RC 00, bits 0-31 zero
  const auto info = ap::TapqInfo::from_gr2(t.gr2);
  EXPECT_EQ(info.facilities, kAccelFacilities);
  EXPECT_EQ(info.at, 14u); // CEX8
  EXPECT_EQ(info.qd, 7u);  // 8 slots
  EXPECT_EQ(info.ml, 0u);
  // The CCA card's D bit (and F), no M/C/A.
  auto c = g().tapq(kCca, true);
  EXPECT_EQ(c.cc, 0);
  EXPECT_EQ(ap::TapqInfo::from_gr2(c.gr2).facilities, 0x92800000u); // S D N F
}

TEST_F(GuestTest, TapqOfAnApqnOutsideTheGuestsMasksIsQNotAvailWithCc3) {
  // 06.0004 exists on the host but the guest's APM lacks adapter 6 (§2.3 RC 01, §9 step 1).
  auto t = g().tapq(kForeign, true);
  ASSERT_FALSE(t.exception());
  EXPECT_EQ(t.cc, 3);
  EXPECT_EQ(t.gr1, 0x00010000u);
  EXPECT_EQ(t.rc(), ap::rc::kQNotAvail);
  EXPECT_EQ(t.gr2, 0u); // no information for RC 01
  // Domain 6 is in the host's configuration, not in the guest's AQM.
  EXPECT_EQ(g().tapq(Apqn{to_apid(7), to_apqi(6)}).rc(), ap::rc::kQNotAvail);
}

TEST_F(GuestTest, PqapProgramInterruptionsFollowTheDecodeOrder) {
  // §9 step 1: privileged check, then FC, then reserved bits / T / range.
  kvm->vcpu().problem_state = true;
  EXPECT_EQ(g().tapq(kAccel).program_interruption, ap::pgm::kPrivileged);
  EXPECT_EQ(g().pqap(0x06000000).program_interruption, ap::pgm::kPrivileged);
  kvm->vcpu().problem_state = false;
  // FC 6 is unused; BAPQ/AAPQ need Secure Execution.
  EXPECT_EQ(g().pqap(0x06000000 | kAccel.qid()).program_interruption, ap::pgm::kSpecification);
  EXPECT_EQ(g().pqap(0x07000000 | kAccel.qid()).program_interruption, ap::pgm::kSpecification);
  // Reserved GR0 bits 42-47.
  EXPECT_EQ(g().pqap(0x00200000 | kAccel.qid()).program_interruption, ap::pgm::kSpecification);
  // The F bit is no TAPQ bit.
  EXPECT_EQ(g().pqap(0x00400000 | kAccel.qid()).program_interruption, ap::pgm::kSpecification);
  // The registers are unchanged by a program interruption: GR1 still holds the input.
  auto i = g().pqap(0x00200000 | kAccel.qid(), 0x1234, 0x5678);
  EXPECT_EQ(i.gr1, 0x1234u);
  EXPECT_EQ(i.gr2, 0x5678u);
}

TEST_F(GuestTest, TheTBitWithoutFacility15IsASpecificationException) {
  restart({.vm = {.apft = false}});
  EXPECT_EQ(g().tapq(kAccel, true).program_interruption, ap::pgm::kSpecification);
  auto t = g().tapq(kAccel, false);
  EXPECT_FALSE(t.exception());
  EXPECT_EQ(t.cc, 0);
}

TEST_F(GuestTest, WithoutApxaIdsAbove63Or15AreSpecificationExceptions) {
  // Format 1 CRYCB: APCB0, no APXA (§2.1, §3.3).
  restart({.format = kvm::CrycbFormat::Format1});
  EXPECT_EQ(g().tapq(Apqn{to_apid(7), to_apqi(16)}).program_interruption,
            ap::pgm::kSpecification);
  EXPECT_EQ(g().tapq(Apqn{to_apid(64), to_apqi(4)}).program_interruption,
            ap::pgm::kSpecification);
  EXPECT_EQ(g().tapq(kAccel).cc, 0);
}

TEST_F(GuestTest, WithoutApInterpretationEveryApInstructionIsAnOperationException) {
  // QEMU implements no AP instruction (§1, §7.2).
  restart({.vm = {.apie = false}});
  EXPECT_EQ(g().tapq(kAccel).program_interruption, ap::pgm::kOperation);
  EXPECT_EQ(g().nqap(kAccel, 1, 0x20000, 16).program_interruption, ap::pgm::kOperation);
  EXPECT_EQ(g().dqap(kAccel, 0x20000, 16).program_interruption, ap::pgm::kOperation);
}

// ---- RAPQ / ZAPQ (§2.5) ----------------------------------------------------------------------

TEST_F(GuestTest, ResetsCompleteOnTheVirtualClockAfterTheCardsResetTime) {
  ASSERT_THAT(fw().set_reset_time(to_apid(7), 100ms), IsOk());
  auto z = g().zapq(kAccel);
  EXPECT_EQ(z.cc, 0);
  EXPECT_EQ(z.rc(), ap::rc::kNormal);
  auto t = g().tapq(kAccel);
  EXPECT_EQ(t.cc, 3);
  EXPECT_EQ(t.rc(), ap::rc::kResetInProgress);
  EXPECT_EQ(ap::TapqInfo::from_gr2(t.gr2).facilities, kAccelFacilities); // GR2 still filled
  // A second reset while one runs: RC 02, nothing restarts.
  EXPECT_EQ(g().rapq(kAccel).rc(), ap::rc::kResetInProgress);
  // NQAP and DQAP are refused with RC 02 meanwhile.
  const auto msg = small_meb1();
  EXPECT_EQ(g().send(kAccel, 1, msg).rc(), ap::rc::kResetInProgress);
  std::vector<std::uint8_t> data;
  EXPECT_EQ(g().receive(kAccel, data).rc(), ap::rc::kResetInProgress);
  ASSERT_THAT(rt().advance(99ms), IsOk());
  EXPECT_EQ(g().tapq(kAccel).rc(), ap::rc::kResetInProgress);
  ASSERT_THAT(rt().advance(1ms), IsOk());
  t = g().tapq(kAccel);
  EXPECT_EQ(t.cc, 0);
  EXPECT_EQ(t.gr1, 0x80000000u); // E=1, I=0
}

TEST_F(GuestTest, ResetDiscardsRequestsAndRepliesAndDisablesInterruptions) {
  ASSERT_THAT(fw().set_service_time(to_apid(7), 1s), IsOk());
  const auto msg = small_meb1();
  ASSERT_EQ(g().send(kAccel, 1, msg).cc, 0);
  ASSERT_EQ(g().send(kAccel, 2, msg).cc, 0);
  ASSERT_THAT(rt().advance(1s), IsOk()); // the first is replied, the second in process
  ASSERT_EQ(g().aqic(kAccel, true, 6, g().nib()).cc, 0);
  auto t = g().tapq(kAccel);
  EXPECT_EQ(t.gr1, 0x41000000u); // R=1 I=1
  auto r = g().rapq(kAccel);
  EXPECT_EQ(r.cc, 0);
  EXPECT_EQ(r.gr1, 0x80000000u); // emptied, I=0 (reset time 0: done at once)
  std::vector<std::uint8_t> data;
  auto d = g().receive(kAccel, data);
  EXPECT_EQ(d.cc, 3);
  EXPECT_EQ(d.gr1, 0x80100000u); // E=1, NO_PENDING_REPLY
  ASSERT_THAT(rt().advance(5s), IsOk());
  EXPECT_EQ(g().receive(kAccel, data).gr1, 0x80100000u); // the dropped request never replies
}

TEST_F(GuestTest, AQueueStuckInResetStaysInProgressUntilReleased) {
  ASSERT_THAT(fw().set_stuck_in_reset(kAccel, true), IsOk());
  EXPECT_EQ(g().zapq(kAccel).cc, 0);
  ASSERT_THAT(rt().advance(10s), IsOk());
  EXPECT_EQ(g().tapq(kAccel).rc(), ap::rc::kResetInProgress);
  ASSERT_THAT(fw().set_stuck_in_reset(kAccel, false), IsOk());
  EXPECT_EQ(g().tapq(kAccel).rc(), ap::rc::kNormal);
  EXPECT_THAT(fw().set_stuck_in_reset(Apqn{to_apid(9), to_apqi(4)}, true), FailsWith(ENODEV));
}

TEST_F(GuestTest, DeconfiguredAndCheckstoppedCardsAnswerRc03AndRc04) {
  ASSERT_THAT(fw().set_service_time(to_apid(7), 1s), IsOk());
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  // Checkstop with a request in flight: it is lost; TAPQ keeps the information (§2.3 RC 04).
  ASSERT_THAT(bus().set_checkstop(to_apid(7), true), IsOk());
  auto t = g().tapq(kAccel);
  EXPECT_EQ(t.cc, 3);
  EXPECT_EQ(t.rc(), ap::rc::kCheckstopped);
  EXPECT_TRUE(t.status().queue_empty);
  EXPECT_EQ(ap::TapqInfo::from_gr2(t.gr2).at, 14u);
  EXPECT_EQ(g().send(kAccel, 2, small_meb1()).rc(), ap::rc::kCheckstopped);
  std::vector<std::uint8_t> data;
  EXPECT_EQ(g().receive(kAccel, data).rc(), ap::rc::kCheckstopped);
  EXPECT_EQ(g().zapq(kAccel).rc(), ap::rc::kCheckstopped);
  ASSERT_THAT(bus().set_checkstop(to_apid(7), false), IsOk());
  ASSERT_THAT(rt().advance(2s), IsOk());
  EXPECT_EQ(g().receive(kAccel, data).gr1, 0x80100000u); // nothing survived
  // Deconfigured (SCLP): RC 03 (§2.3).
  ASSERT_THAT(bus().sclp_configure(to_apid(7), false), IsOk());
  t = g().tapq(kAccel);
  EXPECT_EQ(t.cc, 3);
  EXPECT_EQ(t.rc(), ap::rc::kDeconfigured);
  EXPECT_EQ(ap::TapqInfo::from_gr2(t.gr2).facilities, kAccelFacilities);
  EXPECT_EQ(g().send(kAccel, 3, small_meb1()).rc(), ap::rc::kDeconfigured);
}

// ---- QCI (§2.6) and QACT (§2.8) --------------------------------------------------------------

TEST_F(GuestTest, QciStoresTheGuestsMasksAndTheHostsFacilities) {
  guest::Instr i;
  auto f = g().query_config(&i);
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(i.cc, 0);
  EXPECT_TRUE(f->apxa);
  EXPECT_TRUE(f->qact);
  EXPECT_EQ(f->na, 255u);
  EXPECT_EQ(f->nd, 255u);
  EXPECT_TRUE(f->apm == mask_of<Apid>({5, 7}));
  EXPECT_TRUE(f->aqm == mask_of<Apqi>({4, 5}));
  EXPECT_TRUE(f->adm == mask_of<Apqi>({4}));
  // The block itself: APM byte 0 = adapters 5 and 7 (0x05), AQM byte 0 = domains 4, 5 (0x0C).
  const std::uint64_t a = g().alloc(ap::kQciBlockSize);
  ASSERT_EQ(g().qci(a).cc, 0);
  ap::QciBlock b{};
  ASSERT_THAT(kvm->memory().read(a, b), IsOk());
  EXPECT_EQ(b[0] & 0x40, 0x40); // N
  EXPECT_EQ(b[0x10], 0x05);
  EXPECT_EQ(b[0x30], 0x0C);
  EXPECT_EQ(b[0x50], 0x08);
  // Outside guest memory: addressing exception.
  EXPECT_EQ(g().qci(kvm->config().memory).program_interruption, ap::pgm::kAddressing);
}

TEST_F(GuestTest, QciWithoutApxaOrFacility12) {
  restart({.format = kvm::CrycbFormat::Format1});
  auto f = g().query_config();
  ASSERT_THAT(f, IsOk());
  EXPECT_FALSE(f->apxa);
  EXPECT_EQ(f->na, 0u);
  EXPECT_EQ(f->nd, 0u);
  restart({.vm = {.apqci = false}});
  guest::Instr i;
  EXPECT_THAT(g().query_config(&i), FailsWith(EINVAL));
  EXPECT_EQ(i.program_interruption, ap::pgm::kSpecification);
}

TEST_F(GuestTest, QactAnswersTheCompatibleTypeAndMode) {
  auto i = g().qact(kAccel, {.mode = 2, .cat = 14, .ver = 0});
  ASSERT_FALSE(i.exception());
  EXPECT_EQ(i.cc, 0);
  const auto out = ap::QactInfo::from_word(i.gr2);
  EXPECT_EQ(out.cat, 14u);
  EXPECT_EQ(out.mode, 2u); // accelerator
  EXPECT_EQ(g().qact(kForeign, {.mode = 2, .cat = 14}).rc(), ap::rc::kQNotAvail);
}

// ---- NQAP / DQAP (§5) ------------------------------------------------------------------------

TEST_F(GuestTest, NqapAndDqapRoundTripWithRegistersUpdated) {
  const auto msg = small_meb1(2);
  const std::uint64_t a = put(msg);
  auto n = g().nqap(kAccel, 0x1122334455667788ull, a, msg.size());
  ASSERT_FALSE(n.exception());
  EXPECT_EQ(n.cc, 0);
  EXPECT_EQ(n.gr1, 0x00000000u); // in flight: E=0, R=0
  EXPECT_EQ(n.addr, a + msg.size());
  EXPECT_EQ(n.len, 0u);
  // Nothing ready before the clock moves: RC 10 with E=0 (a request is in flight, §5.4).
  const std::uint64_t buf = g().alloc(4096);
  auto d = g().dqap(kAccel, buf, 4096);
  EXPECT_EQ(d.cc, 3);
  EXPECT_EQ(d.gr1, 0x00100000u);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x40000000u); // R=1
  d = g().dqap(kAccel, buf, 4096);
  EXPECT_EQ(d.cc, 0);
  EXPECT_EQ(d.psmid, 0x1122334455667788ull);
  EXPECT_EQ(d.gr1, 0x80000000u);
  EXPECT_EQ(d.gr2, 0u); // nothing left
  EXPECT_EQ(d.addr, buf + 0x90);
  EXPECT_EQ(d.len, 4096u - 0x90);
  std::vector<std::uint8_t> reply(0x90);
  ASSERT_THAT(kvm->memory().read(buf, reply), IsOk());
  EXPECT_EQ(reply[1], 0x80);
  EXPECT_EQ(reply[0x8F], 8); // 2^3 mod 11
  // Empty again: RC 10 with E=1.
  EXPECT_EQ(g().dqap(kAccel, buf, 4096).gr1, 0x80100000u);
}

TEST_F(GuestTest, NqapAndDqapStopAtPageBoundariesWithCc2) {
  const auto msg = small_meb1(2);
  const std::uint64_t page = g().alloc(3 * 4096);
  const std::uint64_t a = (page + 4095) / 4096 * 4096 + 4000; // 96 bytes before a boundary
  ASSERT_THAT(kvm->memory().write(a, msg), IsOk());
  auto n = g().nqap(kAccel, 7, a, msg.size());
  EXPECT_EQ(n.cc, 2);
  EXPECT_EQ(n.addr, a + 96);
  EXPECT_EQ(n.len, msg.size() - 96);
  EXPECT_EQ(fw().counts(kAccel).total, 0u); // not enqueued yet
  n = g().nqap(kAccel, 7, n.addr, n.len);
  EXPECT_EQ(n.cc, 0);
  EXPECT_EQ(fw().counts(kAccel).total, 1u);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  auto d = g().dqap(kAccel, a, 400);
  EXPECT_EQ(d.cc, 2); // segment boundary, room left
  EXPECT_EQ(d.gr2, 0x90u - 96);
  d = g().dqap(kAccel, d.addr, d.len);
  EXPECT_EQ(d.cc, 0);
  EXPECT_EQ(d.psmid, 7u);
}

TEST_F(GuestTest, ASmallBufferGetsThePartialReplyProtocol) {
  // §5.2: cc 1 with GR2 = bytes not stored; the reply stays until drained.
  ASSERT_EQ(g().send(kAccel, 9, small_meb1()).cc, 0);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  const std::uint64_t buf = g().alloc(256);
  auto d = g().dqap(kAccel, buf, 100);
  EXPECT_EQ(d.cc, 1);
  EXPECT_EQ(d.len, 0u);
  EXPECT_EQ(d.gr2, 0x90u - 100);
  EXPECT_EQ(d.psmid, 9u);
  EXPECT_TRUE(d.status().replies_waiting);
  d = g().dqap(kAccel, buf, 100);
  EXPECT_EQ(d.cc, 0);
  EXPECT_EQ(d.addr, buf + 0x90 - 100);
  EXPECT_EQ(d.gr2, 0u);
  EXPECT_EQ(d.gr1, 0x80000000u);
}

TEST_F(GuestTest, NqapResponseCodes) {
  const std::uint64_t big = g().alloc(12289);
  // RC 15: above the card's 12 KiB limit (ML 0, §2.4).
  auto n = g().nqap(kAccel, 1, big, 12289);
  while (n.cc == 2) n = g().nqap(kAccel, 1, n.addr, n.len);
  EXPECT_EQ(n.cc, 3);
  EXPECT_EQ(n.rc(), ap::rc::kMessageTooBig);
  // RC 16: a message that is not the last part (no multi-part facility in this model).
  const auto msg = small_meb1();
  const std::uint64_t a = put(msg);
  n = g().nqap(kAccel, 2, a, msg.size(), false, false);
  EXPECT_EQ(n.cc, 3);
  EXPECT_EQ(n.rc(), ap::rc::kReqFacNotInst);
  // RC 01 outside the masks; odd register numbers are specification exceptions.
  EXPECT_EQ(g().nqap(kForeign, 3, a, msg.size()).gr1, 0x00010000u);
  kvm->vcpu().gr[0] = kAccel.qid() | ap::gr0::kNqapLastPart;
  EXPECT_EQ(kvm->vcpu().execute(ap::ApOpcode::Nqap, 5, 6).program_interruption,
            ap::pgm::kSpecification);
  // A message outside guest memory: addressing exception.
  EXPECT_EQ(g().nqap(kAccel, 4, kvm->config().memory, 16).program_interruption,
            ap::pgm::kAddressing);
  EXPECT_EQ(fw().counts(kAccel).total, 0u);
}

TEST_F(GuestTest, ACcaRequestForAnotherDomainIsInvalidDomain) {
  // §2.3 RC 42 on NQAP; §6.4: the CPRBX names its domain at 0xAA.
  std::vector<std::uint8_t> msg(0x58 + 0xDC, 0);
  msg[1] = 0x06;
  msg[0x13] = 0x58; // offset1
  msg[0x58] = 0x00;
  msg[0x59] = 0xDC;
  msg[0x5A] = 0x02; // CPRBX version
  msg[0x58 + 0xAB] = 9;
  auto n = g().send(kCca, 1, msg);
  EXPECT_EQ(n.cc, 3);
  EXPECT_EQ(n.rc(), ap::rc::kInvalidDomain);
  // Its own domain is accepted, and the model answers with an error reply, never success.
  msg[0x58 + 0xAB] = 4;
  ASSERT_EQ(g().send(kCca, 2, msg).cc, 0);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  std::vector<std::uint8_t> data;
  auto d = g().receive(kCca, data);
  ASSERT_EQ(d.cc, 0);
  EXPECT_EQ(data, (std::vector<std::uint8_t>{0, 0x82, 0, 0, 0x30, 0, 0, 0})); // invalid command
}

TEST_F(GuestTest, QueueFullAtTheCardsDepth) {
  // §5.4: a slot is taken from NQAP until DQAP; the (depth+1)-th NQAP gets RC 10 with F=1.
  ASSERT_THAT(fw().set_service_time(to_apid(7), 1s), IsOk());
  const auto msg = small_meb1();
  for (int i = 1; i <= 7; ++i) {
    auto n = g().send(kAccel, static_cast<std::uint64_t>(i), msg);
    ASSERT_EQ(n.cc, 0) << i;
    EXPECT_FALSE(n.status().queue_full) << i;
  }
  auto n = g().send(kAccel, 8, msg);
  EXPECT_EQ(n.cc, 0);
  EXPECT_EQ(n.gr1, 0x20000000u); // F=1, RC 00
  n = g().send(kAccel, 9, msg);
  EXPECT_EQ(n.cc, 3);
  EXPECT_EQ(n.gr1, 0x20100000u); // F=1, Q_FULL
  // One engine: one in process, seven waiting.
  EXPECT_EQ(fw().counts(kAccel).requestq, 7u);
  EXPECT_EQ(fw().counts(kAccel).pendingq, 1u);
  // The host's card counts the guest's requests; the vfio_ap queue device is UNINITIATED for
  // the AP bus, so its own counters read "-" and 0 as in the kernel (ap-bus.md §4.3).
  EXPECT_THAT(read("/bus/ap/devices/card07/request_count"), IsOkAndHolds(std::string("8\n")));
  EXPECT_THAT(read("/bus/ap/devices/07.0004/request_count"), IsOkAndHolds(std::string("-\n")));
  EXPECT_THAT(read("/bus/ap/devices/07.0004/requestq_count"), IsOkAndHolds(std::string("0\n")));
  ASSERT_THAT(rt().advance(8s), IsOk()); // all replied; the slots stay taken until dequeued
  EXPECT_EQ(g().send(kAccel, 9, msg).rc(), ap::rc::kQFull);
  std::vector<std::uint8_t> data;
  auto d = g().receive(kAccel, data);
  ASSERT_EQ(d.cc, 0);
  EXPECT_EQ(d.psmid, 1u);
  EXPECT_EQ(g().send(kAccel, 9, msg).cc, 0);
}

TEST_F(GuestTest, RepliesAreMatchedByPsmidWhenTheyCompleteOutOfOrder) {
  // Two engines; the first request takes 2 s, the second (started later with a new service
  // time) 1 s: the second's reply is dequeued first (§5.3).
  ASSERT_THAT(fw().set_engines(to_apid(7), 2), IsOk());
  ASSERT_THAT(fw().set_service_time(to_apid(7), 2s), IsOk());
  ASSERT_EQ(g().send(kAccel, 0xA, small_meb1(2)).cc, 0);
  ASSERT_THAT(fw().set_service_time(to_apid(7), 1s), IsOk());
  ASSERT_EQ(g().send(kAccel, 0xB, small_meb1(3)).cc, 0);
  ASSERT_THAT(rt().advance(1s), IsOk());
  std::vector<std::uint8_t> data;
  auto d = g().receive(kAccel, data);
  ASSERT_EQ(d.cc, 0);
  EXPECT_EQ(d.psmid, 0xBu);
  ASSERT_EQ(data.size(), 0x90u);
  EXPECT_EQ(data.back(), 5); // 3^3 mod 11
  EXPECT_EQ(g().receive(kAccel, data).gr1, 0x00100000u); // A still in flight: E=0
  ASSERT_THAT(rt().advance(1s), IsOk());
  d = g().receive(kAccel, data);
  ASSERT_EQ(d.cc, 0);
  EXPECT_EQ(d.psmid, 0xAu);
  EXPECT_EQ(data.back(), 8); // 2^3 mod 11
}

TEST_F(GuestTest, AnExchangeDropsRepliesOfOtherPsmids) {
  ASSERT_THAT(fw().set_engines(to_apid(7), 2), IsOk());
  ASSERT_THAT(fw().set_service_time(to_apid(7), 2s), IsOk());
  auto x = g().exchange(kAccel, small_meb1(2));
  ASSERT_THAT(fw().set_service_time(to_apid(7), 1s), IsOk());
  ASSERT_EQ(g().send(kAccel, 0x99, small_meb1(3)).cc, 0); // an orphan (a cancelled request)
  ASSERT_THAT(guest::run_until(rt(), *x->done), IsOk());
  EXPECT_THAT(x->done->result(), IsOk());
  EXPECT_EQ(x->dropped, 1u);
  ASSERT_EQ(x->reply.size(), 0x90u);
  EXPECT_EQ(x->reply.back(), 8);
  EXPECT_EQ(x->completed - x->submitted, 2s);
}

TEST_F(GuestTest, HotUnplugOfAQueueWithRequestsInFlight) {
  // vfio_ap takes adapter 7 out of the guest's APCB and resets its queues (vfio-ap.md §4.6,
  // §5.6): the guest sees Q_NOT_AVAIL, the requests are gone from the firmware queue.
  ASSERT_THAT(fw().set_service_time(to_apid(7), 1s), IsOk());
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  ASSERT_EQ(g().send(kAccel5, 2, small_meb1()).cc, 0);
  EXPECT_EQ(fw().counts(kAccel).pendingq + fw().counts(kAccel).requestq, 1u);
  ASSERT_THAT(mw(kU1, "unassign_adapter", "7"), IsOk());
  EXPECT_FALSE(kvm->apm().test(to_apid(7)));
  std::vector<std::uint8_t> data;
  auto d = g().receive(kAccel, data);
  EXPECT_EQ(d.cc, 3);
  EXPECT_EQ(d.gr1, 0x00010000u);
  EXPECT_EQ(g().tapq(kAccel5).rc(), ap::rc::kQNotAvail);
  EXPECT_EQ(fw().counts(kAccel).requestq + fw().counts(kAccel).pendingq, 0u);
  EXPECT_EQ(fw().counts(kAccel5).requestq + fw().counts(kAccel5).pendingq, 0u);
  ASSERT_THAT(rt().advance(2s), IsOk());
  // Plugged back: empty queues, no stale reply.
  ASSERT_THAT(mw(kU1, "assign_adapter", "7"), IsOk());
  d = g().receive(kAccel, data);
  EXPECT_EQ(d.cc, 3);
  EXPECT_EQ(d.gr1, 0x80100000u);
}

} // namespace
} // namespace apemu::testing
