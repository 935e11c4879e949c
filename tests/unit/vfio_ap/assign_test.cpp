// The mdev assignment attributes through the sysfs files: input syntax, output formats, check
// order and errno (vfio-ap.md §3.1–§3.8, §9, §10.2, §10.4, §10.5, §10.14).
#include "vfio_ap_fixture.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::HasSubstr;

class VfioApAssign : public VfioApTest {
protected:
  void SetUp() override {
    VfioApTest::SetUp();
    create(kU1);
  }
};

// ---- §3.1 input rules
// ----------------------------------------------------------------------------

TEST_F(VfioApAssign, NumbersAreParsedWithKstrtoulBaseZero) {
  release_adapters("-5-8");
  EXPECT_THAT(mw(kU1, "assign_adapter", "abc"), FailsWith(EINVAL));
  EXPECT_THAT(mw(kU1, "assign_adapter", "-5"), FailsWith(EINVAL));
  EXPECT_THAT(mw(kU1, "assign_adapter", " 5"), FailsWith(EINVAL));
  EXPECT_THAT(mw(kU1, "assign_adapter", "5 "), FailsWith(EINVAL));
  EXPECT_THAT(mw(kU1, "assign_adapter", "5\n\n"), FailsWith(EINVAL));
  EXPECT_THAT(mw(kU1, "assign_adapter", "0x"), FailsWith(EINVAL));
  EXPECT_THAT(mw(kU1, "assign_adapter", "99999999999999999999"), FailsWith(ERANGE));
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds(""));
  // Decimal with a newline, hex, a leading '+', and octal (§10.14: "010" is 8).
  EXPECT_THAT(mw(kU1, "assign_adapter", "5\n"), IsOkAndHolds(2u));
  EXPECT_THAT(mw(kU1, "assign_adapter", "0x6"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_adapter", "+7"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_adapter", "010"), IsOk());
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.\n06.\n07.\n08.\n"));
}

// ---- §3.3 assign_adapter / assign_domain
// -----------------------------------------------------------

TEST_F(VfioApAssign, IdsAboveTheMaximumFailWithEnodevBeforeAnyOtherCheck) {
  // The maxima are 255 (APXA, Na = Nd = 255).
  EXPECT_THAT(mw(kU1, "assign_adapter", "256"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "assign_domain", "0x100"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "assign_control_domain", "256"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "unassign_adapter", "256"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "unassign_domain", "256"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "unassign_control_domain", "256"), FailsWith(ENODEV));
  // ENODEV precedes the reservation check: adapter 5 is reserved for zcrypt, 256 is not valid.
  ASSERT_THAT(mw(kU1, "assign_domain", "4"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_adapter", "256"), FailsWith(ENODEV));
  EXPECT_THAT(mw(kU1, "assign_adapter", "255"), FailsWith(EADDRNOTAVAIL)); // apmask has 255
}

TEST(VfioApMaxima, WithoutApxaTheMaximaAre63And15) {
  // vfio-ap.md §2.2: no APXA → apm_max 63, aqm_max = adm_max = 15.
  auto tb = boot_vfio(R"(
apxa = false
usage_domains = "4-7"
control_domains = "4-7"
[[adapter]]
id = 5
type = "CEX8"
)");
  auto tb_guard = tb->lock(); // another machine: its own entry point
  auto& v = *tb->vfio_ap();
  auto* m = *v.create_mdev(kU1);
  EXPECT_THAT(v.assign_adapter(*m, "64"), FailsWith(ENODEV));
  EXPECT_THAT(v.assign_adapter(*m, "63"), IsOk());
  EXPECT_THAT(v.assign_domain(*m, "16"), FailsWith(ENODEV));
  EXPECT_THAT(v.assign_control_domain(*m, "16"), FailsWith(ENODEV));
  EXPECT_THAT(v.assign_control_domain(*m, "15"), IsOk());
}

TEST_F(VfioApAssign, DefaultOwnedApqnsFailWithEaddrnotavail) {
  // apmask/aqmask are all ones: every APQN belongs to zcrypt. An adapter alone has an empty
  // cross product and always succeeds (§10.4).
  EXPECT_THAT(mw(kU1, "assign_adapter", "5"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_domain", "4"), FailsWith(EADDRNOTAVAIL));
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.\n")); // the bit was cleared again
  // Giving adapter 5 to vfio_ap makes 05.0004 assignable.
  release_adapters("-5");
  EXPECT_THAT(mw(kU1, "assign_domain", "4"), IsOk());
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n"));
  // Reserving through aqmask instead: 06 is owned by zcrypt, so domain 4 × 6 is refused.
  EXPECT_THAT(mw(kU1, "assign_adapter", "6"), FailsWith(EADDRNOTAVAIL));
  // Assignment does not need the queue to exist (over-provisioning, §4.1): adapter 0x40 has no
  // card but is in apmask.
  release_adapters("-0x40");
  EXPECT_THAT(mw(kU1, "assign_adapter", "0x40"), IsOk());
}

TEST_F(VfioApAssign, AlreadyAssignedSucceedsWithoutAnyChange) {
  release_adapters("-5");
  assign(kU1, {"5"}, {"4"});
  auto* m = vfio().find_mdev(kU1);
  auto g = tb->qemu()->start(*m);
  ASSERT_THAT(g, IsOk());
  const auto writes = (*g)->apcb_writes();
  EXPECT_THAT(mw(kU1, "assign_adapter", "5"), IsOkAndHolds(1u));
  EXPECT_THAT(mw(kU1, "assign_domain", "0x4"), IsOkAndHolds(3u));
  EXPECT_EQ((*g)->apcb_writes(), writes); // no re-filtering, no APCB write
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n"));
  // Unassigning what is not assigned also just succeeds.
  EXPECT_THAT(mw(kU1, "unassign_adapter", "7"), IsOk());
  EXPECT_THAT(mw(kU1, "unassign_domain", "7"), IsOk());
  EXPECT_THAT(mw(kU1, "unassign_control_domain", "7"), IsOk());
}

TEST_F(VfioApAssign, SharingAnApqnWithAnotherMdevFailsWithEaddrinuseAndLogsEachApqn) {
  release_adapters("-5,-6");
  create(kU2);
  assign(kU1, {"5", "6"}, {"4", "5"});
  // The adapter alone (no domains) cannot conflict.
  EXPECT_THAT(mw(kU2, "assign_adapter", "5"), IsOk());
  EXPECT_THAT(mw(kU2, "assign_adapter", "6"), IsOk());
  EXPECT_THAT(mw(kU2, "assign_domain", "5"), FailsWith(EADDRINUSE));
  EXPECT_THAT(mr(kU2, "matrix"), IsOkAndHolds("05.\n06.\n"));
  const std::string pre = "vfio_ap_mdev " + std::string(kU2) + ": Userspace may not assign queue ";
  EXPECT_TRUE(core().log().contains(pre + "05.0005 to mdev: already assigned to " + kU1));
  EXPECT_TRUE(core().log().contains(pre + "06.0005 to mdev: already assigned to " + kU1));
  EXPECT_EQ(log_count("Userspace may not assign queue"), 2u);
  // A domain that is not shared is fine; control domains are never checked (§3.5).
  EXPECT_THAT(mw(kU2, "assign_domain", "6"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_control_domain", "4"), IsOk());
  EXPECT_THAT(mw(kU2, "assign_control_domain", "4"), IsOk());
  EXPECT_THAT(mr(kU2, "control_domains"), IsOkAndHolds("0004\n"));
}

TEST_F(VfioApAssign, OnlyTheFirstConflictingMdevInListOrderIsReported) {
  // The mdev list is newest first: with two holders, the newer one is named.
  release_adapters("-5,-6");
  create(kU2);
  create(kU3);
  assign(kU1, {"5"}, {"4"});
  assign(kU2, {"6"}, {"4"});
  assign(kU3, {"5", "6"}, {});
  EXPECT_THAT(mw(kU3, "assign_domain", "4"), FailsWith(EADDRINUSE));
  EXPECT_EQ(log_count("Userspace may not assign queue"), 1u);
  EXPECT_TRUE(
      core().log().contains("queue 06.0004 to mdev: already assigned to " + std::string(kU2)));
}

TEST_F(VfioApAssign, ControlDomainsIgnoreTheMasksAndSharing) {
  // No apmask/aqmask check (every domain is default-owned here) and no sharing check.
  create(kU2);
  EXPECT_THAT(mw(kU1, "assign_control_domain", "0x20"), IsOk());
  EXPECT_THAT(mw(kU2, "assign_control_domain", "0x20"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_control_domain", "4"), IsOk());
  EXPECT_THAT(mw(kU1, "assign_control_domain", "x"), FailsWith(EINVAL));
  EXPECT_THAT(mr(kU1, "control_domains"), IsOkAndHolds("0004\n0020\n"));
  EXPECT_THAT(mw(kU1, "unassign_control_domain", "0x20"), IsOk());
  EXPECT_THAT(mr(kU1, "control_domains"), IsOkAndHolds("0004\n"));
  EXPECT_THAT(mr(kU2, "control_domains"), IsOkAndHolds("0020\n"));
}

// ---- §3.6 matrix / guest_matrix output
// -------------------------------------------------------------

TEST_F(VfioApAssign, MatrixPrintsApqnsAdaptersOnlyOrDomainsOnly) {
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds(""));
  EXPECT_THAT(mr(kU1, "control_domains"), IsOkAndHolds(""));
  EXPECT_THAT(mr(kU1, "guest_matrix"), IsOkAndHolds(""));
  ASSERT_THAT(mw(kU1, "assign_domain", "0xab"), IsOk()); // domains only: no adapter to clash
  ASSERT_THAT(mw(kU1, "assign_domain", "4"), IsOk());
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds(".0004\n.00ab\n"));
  release_adapters("-5,-0x10");
  ASSERT_THAT(mw(kU1, "assign_adapter", "0x10"), IsOk());
  ASSERT_THAT(mw(kU1, "assign_adapter", "5"), IsOk());
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n05.00ab\n10.0004\n10.00ab\n"));
  // The write-only files cannot be read, the read-only ones not written (EACCES at open).
  EXPECT_THAT(mr(kU1, "assign_adapter"), FailsWith(EACCES));
  EXPECT_THAT(mw(kU1, "matrix", "1"), FailsWith(EACCES));
  EXPECT_THAT(mw(kU1, "guest_matrix", "1"), FailsWith(EACCES));
}

TEST_F(VfioApAssign, MatrixOutputIsCutAtOnePage) {
  // 256 × 256 APQNs need 512 KiB; show returns the first 4095 bytes, cut mid-line.
  auto topo = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "0-255"
apmask = "0x"
aqmask = "0x"
)";
  auto big = boot_vfio(topo);
  auto big_guard = big->lock(); // another machine: its own entry point
  auto& v = *big->vfio_ap();
  auto* m = *v.create_mdev(kU2);
  ASSERT_THAT(
      v.ap_config_store(*m, "0x" + std::string(64, 'f') + ",0x" + std::string(64, 'f') + ",0x0"),
      IsOk());
  auto text = sysfs_read(big->core(), mdev_path(kU2) + "/matrix");
  ASSERT_THAT(text, IsOk());
  EXPECT_EQ(text->size(), 4095u);
  EXPECT_EQ(text->substr(0, 16), "00.0000\n00.0001\n");
  EXPECT_EQ(text->substr(4088), "01.00ff"); // 511 full lines, then 7 bytes of the next
}

// ---- §3.8 ap_config
// ------------------------------------------------------------------------------------

TEST_F(VfioApAssign, ApConfigShowsThreeFullMasks) {
  release_adapters("-5");
  assign(kU1, {"5"}, {"4"}, {"0x20"});
  const std::string z62(62, '0');
  auto v = mr(kU1, "ap_config");
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->size(), 201u);
  EXPECT_EQ(*v, "0x04" + z62 + ",0x08" + z62 + ",0x00000000800" + std::string(53, '0') + "\n");
}

TEST_F(VfioApAssign, ApConfigGrammarErrorsAreEinval) {
  const std::string z = std::string(64, '0');
  for (std::string bad : {std::string("0x0,0x0"),              // two masks
                          std::string("\n"),                   // one empty token
                          std::string("0x0,0X0,0x0"),          // 0X is not a prefix
                          std::string("0x0,0xg,0x0"),          // non-hex
                          std::string("0x0,0x" + z + "0,0x0"), // 65 digits
                          std::string("0x0, 0x0,0x0"),         // a space
                          std::string("+5,0x0,0x0")})          // no relative syntax here
    EXPECT_THAT(mw(kU1, "ap_config", bad), FailsWith(EINVAL)) << bad;
  // Empty tokens and bare 0x are all-zero masks; a bare leading 'x' is a prefix; text after the
  // third mask is ignored.
  EXPECT_THAT(mw(kU1, "ap_config", ",,"), IsOk());
  EXPECT_THAT(mw(kU1, "ap_config", "0x,x,\n"), IsOk());
  EXPECT_THAT(mw(kU1, "ap_config", "0x0,0x0,0x0,garbage"), IsOk());
  EXPECT_THAT(mw(kU1, "ap_config", "0x0\n0x0\n0x0\n"), IsOk()); // '\n' separates too
  EXPECT_THAT(mw(kU1, "ap_config", "0,0,8"), IsOk());           // short masks are left-aligned
  EXPECT_THAT(mr(kU1, "control_domains"), IsOkAndHolds("0000\n"));
}

TEST_F(VfioApAssign, ApConfigReadBackIsAValidWrite) {
  // A complete value is AP_CONFIG_STRLEN = 201 bytes, the length the store keeps (§3.8 step 1).
  release_adapters("-5");
  assign(kU1, {"5"}, {"4", "5"}, {"0x20"});
  auto v = mr(kU1, "ap_config");
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->size(), 201u);
  EXPECT_THAT(mw(kU1, "ap_config", ",,"), IsOk());
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds(""));
  EXPECT_THAT(mw(kU1, "ap_config", *v), IsOkAndHolds(201u));
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n05.0005\n"));
  EXPECT_THAT(mr(kU1, "control_domains"), IsOkAndHolds("0020\n"));
}

TEST_F(VfioApAssign, ApConfigIsAllOrNothing) {
  release_adapters("-5,-6");
  create(kU2);
  assign(kU2, {"6"}, {"4"});
  assign(kU1, {"5"}, {"5"}, {"4"});
  const auto before = mr(kU1, "ap_config");
  // 6 × 4 is assigned to U2: EADDRINUSE, nothing changes.
  const std::string z60(60, '0'), z62(62, '0');
  EXPECT_THAT(mw(kU1, "ap_config", "0x06" + z62 + ",0x0c" + z62 + ",0x0"), FailsWith(EADDRINUSE));
  EXPECT_THAT(mr(kU1, "ap_config"), IsOkAndHolds(*before));
  EXPECT_TRUE(core().log().contains(
      "Userspace may not assign queue 06.0004 to mdev: already assigned to " + std::string(kU2)));
  // Adapter 7 × domain 5 is default-owned: EADDRNOTAVAIL.
  EXPECT_THAT(mw(kU1, "ap_config", "0x05" + z62 + ",0x04" + z62 + ",0x0"),
              FailsWith(EADDRNOTAVAIL));
  EXPECT_THAT(mr(kU1, "ap_config"), IsOkAndHolds(*before));
  // Success replaces all three masks at once.
  EXPECT_THAT(mw(kU1, "ap_config", "0x04" + z62 + ",0x0c" + z62 + ",0x08"), IsOk());
  EXPECT_THAT(mr(kU1, "matrix"), IsOkAndHolds("05.0004\n05.0005\n"));
  EXPECT_THAT(mr(kU1, "control_domains"), IsOkAndHolds("0004\n"));
}

TEST(VfioApApConfig, RangeCheckComesAfterOwnershipAndSharing) {
  // §3.8 step 6 / §10.5: with apxa off the maxima are 63/15/15; a mask with an id above them
  // fails with ENODEV only once ownership and sharing passed.
  auto tb = boot_vfio(R"(
apxa = false
usage_domains = "4-7"
control_domains = "4-7"
apmask = "0x"
[[adapter]]
id = 5
type = "CEX8"
)");
  auto tb_guard = tb->lock(); // another machine: its own entry point
  auto& v = *tb->vfio_ap();
  auto* m = *v.create_mdev(kU1);
  const std::string f(64, 'f');
  // Adapter 64 is above apm_max: ENODEV.
  EXPECT_THAT(v.ap_config_store(*m, "0x00000000000000008,0x08,0x0"), FailsWith(ENODEV));
  // Domain 16 is above aqm_max (apmask is empty, so ownership passes).
  EXPECT_THAT(v.ap_config_store(*m, "0x04,0x00008,0x0"), FailsWith(ENODEV));
  // Control domain 16: ENODEV, too.
  EXPECT_THAT(v.ap_config_store(*m, "0x04,0x08,0x00008"), FailsWith(ENODEV));
  EXPECT_EQ(v.matrix_show(*m), "");
  // A second mdev holding 05.0004: sharing (EADDRINUSE) wins over the range error.
  auto* m2 = *v.create_mdev(kU2);
  ASSERT_THAT(v.ap_config_store(*m2, "0x04,0x08,0x0"), IsOk());
  EXPECT_THAT(v.ap_config_store(*m, "0x04000000000000008,0x08,0x0"), FailsWith(EADDRINUSE));
}

TEST(VfioApApConfig, OwnershipComesBeforeTheRangeCheck) {
  auto tb = boot_vfio(R"(
apxa = false
usage_domains = "4-7"
control_domains = "4-7"
[[adapter]]
id = 5
type = "CEX8"
)");
  auto tb_guard = tb->lock(); // another machine: its own entry point
  auto& v = *tb->vfio_ap();
  auto* m = *v.create_mdev(kU1);
  // 05.0004 is default-owned (masks all ones) and adapter 64 is out of range: EADDRNOTAVAIL.
  EXPECT_THAT(v.ap_config_store(*m, "0x04000000000000008,0x08,0x0"), FailsWith(EADDRNOTAVAIL));
}

TEST_F(VfioApAssign, ApConfigIsAbsentIn420AndTheCxxCallSaysSo) {
  auto old = boot_vfio(kVfioLpar, "4.20");
  auto old_guard = old->lock(); // another machine: its own entry point
  auto* m = *old->vfio_ap()->create_mdev(kU2);
  EXPECT_THAT(old->vfio_ap()->ap_config_store(*m, ",,"), FailsWith(EOPNOTSUPP));
}
