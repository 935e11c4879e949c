// The testbed's faces of vfio_ap: `apemu ctl guest ...` verbs and the mdev letters in the
// `apemu show` matrix (include/apemu/testbed/control.h).
#include "apemu/testbed/control.h"
#include "apemu/testbed/show.h"
#include "vfio_ap_fixture.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(VfioApTest, CtlGuestStartShowStop) {
  release_adapters("-5,-6");
  create(kU1);
  assign(kU1, {"5", "6"}, {"4", "5"}, {"0x20"});
  auto run = [&](std::vector<std::string> argv) -> Result<std::string> {
    APEMU_TRY(auto out, testbed::execute_command(*tb, argv));
    return out.text;
  };
  EXPECT_THAT(run({"guest", "start"}), FailsWith(EINVAL));
  EXPECT_THAT(run({"guest", "start", "--mdev", kU2}), FailsWith(ENODEV));
  EXPECT_THAT(run({"guest", "start", "--mdev", kU1, "--bogus", "x"}), FailsWith(EINVAL));
  ASSERT_THAT(run({"guest", "start", "--mdev", kU1, "--name", "vm1"}), IsOk());
  EXPECT_THAT(run({"guest", "start", "--mdev", kU1}), FailsWith(EBUSY));
  auto shown = run({"guest", "show"});
  ASSERT_THAT(shown, IsOk());
  const std::string z62(62, '0');
  EXPECT_EQ(*shown, "guest vm1 mdev " + std::string(kU1) +
                        "\n"
                        "  apm 0x06" +
                        z62 +
                        " (5-6)\n"
                        "  aqm 0x0c" +
                        z62 +
                        " (4-5)\n"
                        "  adm 0x00000000800" +
                        std::string(53, '0') +
                        " (32)\n"
                        "  apcb_writes 1 cfg_chg_signals 0\n"); // QEMU registers the eventfd after opening
  EXPECT_THAT(run({"guest", "show", "--mdev", kU1}), IsOkAndHolds(*shown));
  EXPECT_THAT(read("/devices/ap/card05/05.0004/status"), IsOkAndHolds("in use\n"));
  ASSERT_THAT(run({"guest", "stop", "--mdev", kU1}), IsOk());
  EXPECT_THAT(run({"guest", "stop", "--mdev", kU1}), FailsWith(ENODEV));
  EXPECT_THAT(run({"guest", "show"}), IsOkAndHolds(""));
  EXPECT_THAT(run({"guest", "show", "--mdev", kU1}), FailsWith(ENODEV));
}

TEST_F(VfioApTest, ShowMarksAssignedApqnsWithALetterPerMdev) {
  release_adapters("-5,-6");
  create(kU1);
  create(kU2);
  assign(kU1, {"5"}, {"4", "5"});
  assign(kU2, {"6"}, {"6"});
  ASSERT_THAT(tb->qemu()->start(*vfio().find_mdev(kU2), {.name = "vm2"}), IsOk());
  const std::string out = testbed::render_show(*tb, {.table = false});
  EXPECT_THAT(out, HasSubstr("  A = assigned to mdev " + std::string(kU1) + "\n"));
  EXPECT_THAT(out, HasSubstr("  B = assigned to mdev " + std::string(kU2) + " (guest vm2)\n"));
  //            domains:  04 05 06 07
  EXPECT_THAT(out, HasSubstr("  05  A  A  V  V  \n"));
  EXPECT_THAT(out, HasSubstr("  06  V  V  B  V  \n"));
  EXPECT_THAT(out, HasSubstr("  07  H  H  H  H  \n"));
}

TEST(VfioApShow, WithoutVfioApTheMatrixHasNoLegend) {
  auto tb = boot_vfio(kVfioLpar, "6.16", false);
  auto tb_guard = tb->lock(); // another machine: its own entry point
  const std::string out = testbed::render_show(*tb, {.table = false});
  EXPECT_THAT(out, Not(HasSubstr("assigned to mdev")));
  EXPECT_THAT(testbed::execute_command(*tb, {"guest", "show"}), FailsWith(ENODEV));
}
