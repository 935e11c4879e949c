// Kernel parser semantics used by attribute stores.
#include "apemu/base/parse.h"

#include <gtest/gtest.h>

#include "matchers.h"

using namespace apemu;
using apemu::testing::FailsWith;
using apemu::testing::IsOkAndHolds;

TEST(Kstrtoul, Base0DetectsHexOctalDecimal) {
  EXPECT_THAT(kstrtoul("0x1f", 0), IsOkAndHolds(31u));
  EXPECT_THAT(kstrtoul("0X1F\n", 0), IsOkAndHolds(31u));
  EXPECT_THAT(kstrtoul("017", 0), IsOkAndHolds(15u));
  EXPECT_THAT(kstrtoul("0", 0), IsOkAndHolds(0u));
  EXPECT_THAT(kstrtoul("+12", 0), IsOkAndHolds(12u));
  EXPECT_THAT(kstrtoul("12\n", 10), IsOkAndHolds(12u));
}

TEST(Kstrtoul, RejectsGarbageWithEinvalAndOverflowWithErange) {
  EXPECT_THAT(kstrtoul("", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("\n", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("12 ", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("12\n\n", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("0x", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("08", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("-1", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoul("18446744073709551616", 10), FailsWith(ERANGE));
  EXPECT_THAT(kstrtoul("18446744073709551615", 10), IsOkAndHolds(18446744073709551615ull));
}

TEST(Kstrtoll, SignedRange) {
  EXPECT_THAT(kstrtoll("-5", 10), IsOkAndHolds(-5));
  EXPECT_THAT(kstrtoll("9223372036854775808", 10), FailsWith(ERANGE));
  EXPECT_THAT(kstrtoll("-9223372036854775808", 10), IsOkAndHolds(INT64_MIN));
}

// Found by fuzz/kstrto_fuzz: the '+' that kstrtoull skips must not follow kstrtoll's '-'.
TEST(Kstrtoll, RejectsPlusAfterMinusWithEinval) {
  EXPECT_THAT(kstrtoll("-+5", 10), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoll("-+0", 0), FailsWith(EINVAL));
  EXPECT_THAT(kstrtoll("+5", 10), IsOkAndHolds(5));
  EXPECT_THAT(kstrtoll("-0", 10), IsOkAndHolds(0));
}

TEST(Kstrtobool, KernelSpellings) {
  for (auto s : {"1", "y", "Y", "t", "T", "on", "ON", "oN\n", "yes"})
    EXPECT_THAT(kstrtobool(s), IsOkAndHolds(true)) << s;
  for (auto s : {"0", "n", "N", "f", "F", "off", "OFF", "no"})
    EXPECT_THAT(kstrtobool(s), IsOkAndHolds(false)) << s;
  for (auto s : {"", "2", "o", "x", "\n"}) EXPECT_THAT(kstrtobool(s), FailsWith(EINVAL)) << s;
}

// lib/vsprintf.c vsscanf: a signed conversion takes '-' but not '+', and skips leading blanks
// (issue 9 item 6: ap_domain, config_time, config and online stores).
TEST(SscanfInt, RejectsPlusAcceptsMinusAndIgnoresTheRest) {
  EXPECT_THAT(sscanf_int("+1", 10), FailsWith(EINVAL));
  EXPECT_THAT(sscanf_int("+0x5", 0), FailsWith(EINVAL));
  EXPECT_THAT(sscanf_int("-1", 10), IsOkAndHolds(-1));
  EXPECT_THAT(sscanf_int("  7xyz", 10), IsOkAndHolds(7));
  EXPECT_THAT(sscanf_int("0x1f\n", 0), IsOkAndHolds(31));
  EXPECT_THAT(sscanf_int("010", 0), IsOkAndHolds(8));
  EXPECT_THAT(sscanf_int("", 10), FailsWith(EINVAL));
  EXPECT_THAT(sscanf_int("x", 10), FailsWith(EINVAL));
}

// Found by fuzz/kstrto_fuzz: the range was judged digit by digit, before the unit, so a long
// number with a bad unit was ERANGE instead of EINVAL, and 1e14 ns (28 hours) was ERANGE.
TEST(ParseDuration, BadUnitIsEinvalHoweverLargeAndRangeIsJudgedInTheUnit) {
  EXPECT_THAT(parse_duration("666666666666666666666F\n"), FailsWith(EINVAL));
  EXPECT_THAT(parse_duration("99999999999999999999999999x"), FailsWith(EINVAL));
  EXPECT_THAT(parse_duration("100000000000000ns"),
              IsOkAndHolds(std::chrono::nanoseconds(100000000000000)));
  EXPECT_THAT(parse_duration("8640000000000000ns"),
              IsOkAndHolds(std::chrono::nanoseconds(8640000000000000))); // exactly 100 days
  EXPECT_THAT(parse_duration("8640000000000001ns"), FailsWith(ERANGE));
  EXPECT_THAT(parse_duration("99999999999999999999999999ns"), FailsWith(ERANGE));
  EXPECT_THAT(parse_duration("2400h"), IsOkAndHolds(std::chrono::hours(2400)));
  EXPECT_THAT(parse_duration("2401h"), FailsWith(ERANGE));
}

TEST(SysfsStreq, OneTrailingNewlineOnEitherSide) {
  EXPECT_TRUE(sysfs_streq("card05", "card05\n"));
  EXPECT_TRUE(sysfs_streq("card05\n", "card05"));
  EXPECT_FALSE(sysfs_streq("card05", "card05\n\n"));
  EXPECT_FALSE(sysfs_streq("card05", "card5"));
}

TEST(Uuid, ParsesCanonicalFormOnly) {
  auto u = parse_uuid("0123ABCD-4567-89ab-cdef-0123456789AB");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->str(), "0123abcd-4567-89ab-cdef-0123456789ab");
  EXPECT_THAT(parse_uuid("0123abcd-4567-89ab-cdef-0123456789a"), FailsWith(EINVAL));
  EXPECT_THAT(parse_uuid("0123abcd_4567-89ab-cdef-0123456789ab"), FailsWith(EINVAL));
  EXPECT_THAT(parse_uuid("0123abcg-4567-89ab-cdef-0123456789ab"), FailsWith(EINVAL));
}
