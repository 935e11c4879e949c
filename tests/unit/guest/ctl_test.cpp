// Fault injection and the guest verbs through `apemu ctl` (control.h; issue 10 items 6, 7):
// each fault shows the status words and replies of guest-ap.md §2.3–§2.5.
#include "apemu/testbed/control.h"
#include "guest_fixture.h"

namespace apemu::testing {
namespace {

using namespace std::chrono_literals;

class GuestCtlTest : public GuestTest {
protected:
  Result<std::string> ctl(std::vector<std::string> argv) {
    APEMU_TRY(auto out, testbed::execute_command(*tb, argv));
    return out.text;
  }
};

std::vector<std::uint8_t> small_meb1() {
  const std::vector<std::uint8_t> n{0x0B}, e{0x03}, m{2};
  return *guest::build_meb(1, n, e, m);
}

TEST_F(GuestCtlTest, ASlowCardRepliesAfterItsServiceTime) {
  ASSERT_THAT(ctl({"card", "service-time", "7", "1s"}), IsOk());
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  ASSERT_THAT(rt().advance(999ms), IsOk());
  std::vector<std::uint8_t> data;
  EXPECT_EQ(g().receive(kAccel, data).gr1, 0x00100000u); // in flight, nothing ready
  ASSERT_THAT(rt().advance(1ms), IsOk());
  EXPECT_EQ(g().receive(kAccel, data).cc, 0);
  ASSERT_THAT(ctl({"card", "service-time", "7", "crypto"}), IsOk());
  EXPECT_THAT(ctl({"card", "service-time", "9", "1s"}), FailsWith(ENODEV));
  EXPECT_THAT(ctl({"card", "engines", "7", "0"}), FailsWith(EINVAL));
}

TEST_F(GuestCtlTest, ResetTimeAndAQueueStuckInReset) {
  ASSERT_THAT(ctl({"card", "reset-time", "7", "50ms"}), IsOk());
  EXPECT_EQ(g().zapq(kAccel).cc, 0);
  EXPECT_EQ(g().tapq(kAccel).rc(), ap::rc::kResetInProgress);
  ASSERT_THAT(rt().advance(50ms), IsOk());
  EXPECT_EQ(g().tapq(kAccel).rc(), ap::rc::kNormal);
  ASSERT_THAT(ctl({"queue", "stuck-reset", "07.0004", "on"}), IsOk());
  EXPECT_EQ(g().rapq(kAccel).cc, 0);
  ASSERT_THAT(rt().advance(10s), IsOk());
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x80020000u); // E=1, RESET_IN_PROGRESS
  ASSERT_THAT(ctl({"queue", "stuck-reset", "07.0004", "off"}), IsOk());
  EXPECT_EQ(g().tapq(kAccel).gr1, 0x80000000u);
  EXPECT_THAT(ctl({"queue", "stuck-reset", "09.0004", "on"}), FailsWith(ENODEV));
  EXPECT_THAT(ctl({"queue", "stuck-reset", "07", "on"}), FailsWith(EINVAL));
}

TEST_F(GuestCtlTest, ACheckstopWithRequestsInFlight) {
  ASSERT_THAT(ctl({"card", "service-time", "7", "1s"}), IsOk());
  ASSERT_EQ(g().send(kAccel, 1, small_meb1()).cc, 0);
  ASSERT_THAT(ctl({"card", "chkstop", "7", "on"}), IsOk());
  auto out = ctl({"guest", "dqap", "--mdev", kU1, "--apqn", "07.0004"});
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(*out, "DQAP 07.0004: cc 3, E=1 R=0 F=0 A=0 I=0 RC=0x04 (CHECKSTOPPED)\n");
}

TEST_F(GuestCtlTest, GuestVerbsOnTheVirtualClock) {
  auto t = ctl({"guest", "tapq", "--mdev", kU1, "--apqn", "07.0004"});
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(*t, "TAPQ 07.0004: cc 0, E=1 R=0 F=0 A=0 I=0 RC=0x00 (NORMAL)\n"
                "GR2 0xea0000000e000007: facilities 0xea000000 type 14 domains 0 ml 0 depth 8\n");
  auto n = ctl({"guest", "nqap", "--mdev", kU1, "--apqn", "07.0004", "--psmid", "0x42", "--hex",
                "00500190000000000001000000000000"});
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, "NQAP 07.0004 psmid 0x0000000000000042: cc 0, E=0 R=0 F=0 A=0 I=0 RC=0x00 "
                "(NORMAL)\n");
  ASSERT_THAT(rt().advance(0ms), IsOk());
  // Sixteen bytes where a MEB1 needs 400: the card answers type 82 code 0x23.
  auto d = ctl({"guest", "dqap", "--mdev", kU1, "--apqn", "07.0004"});
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(*d, "DQAP 07.0004: cc 0, E=1 R=0 F=0 A=0 I=0 RC=0x00 (NORMAL)\n"
                "psmid 0x0000000000000042 8 bytes:0082000023000000\n");
  EXPECT_THAT(ctl({"guest", "tapq", "--mdev", kU1}), FailsWith(EINVAL));
  EXPECT_THAT(ctl({"guest", "tapq", "--mdev", kU2, "--apqn", "07.0004"}), FailsWith(ENODEV));
}

} // namespace
} // namespace apemu::testing
