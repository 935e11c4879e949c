// apmask/aqmask grammar and MSB-first bit order (ap-bus.md §2.2).
#include "apemu/ap/ap_mask.h"

#include <gtest/gtest.h>

#include "matchers.h"

using namespace apemu;
using namespace apemu::ap;
using apemu::testing::FailsWith;
using apemu::testing::IsOk;

namespace {
using Mask256 = ApidMask; // the tests use adapter masks; the grammar is the same for domains
Mask256 ids(std::initializer_list<unsigned> l) {
  Mask256 m;
  for (unsigned i : l) m.set(to_apid(i));
  return m;
}
} // namespace

TEST(ApMask, HexIsMsbFirst) {
  EXPECT_EQ(ids({0}).hex(), "0x8" + std::string(63, '0'));
  EXPECT_EQ(ids({3}).hex(), "0x1" + std::string(63, '0'));
  EXPECT_EQ(ids({255}).hex(), "0x" + std::string(63, '0') + "1");
  EXPECT_EQ(Mask256::all().hex(), "0x" + std::string(64, 'f'));
  EXPECT_EQ(Mask256::all().hex().size(), 66u);
}

TEST(ApMask, AbsoluteStartsFromZeroAndFillsMsbFirst) {
  auto m = parse_ap_mask("0xff", Mask256::all());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->list(), "0-7");
  EXPECT_EQ(parse_ap_mask("x8\n", Mask256{})->list(), "0");
  EXPECT_EQ(parse_ap_mask("0x0001", Mask256{})->list(), "15");
  EXPECT_EQ(parse_ap_mask("0x" + std::string(64, 'f') + "\n", Mask256{})->all_set(), true);
  // Quirk: zero digits are accepted and give an all-zero mask.
  EXPECT_TRUE(parse_ap_mask("0x\n", Mask256::all())->none());
  EXPECT_TRUE(parse_ap_mask("\n", Mask256::all())->none());
  EXPECT_TRUE(parse_ap_mask("", Mask256::all())->none());
}

TEST(ApMask, AbsoluteRejectsTrailingGarbageAndTooManyDigits) {
  EXPECT_THAT(parse_ap_mask("0x" + std::string(65, 'f'), Mask256{}), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask("0xfg", Mask256{}), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask("0xff\n\n", Mask256{}), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask("0xff ", Mask256{}), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask("garbage", Mask256{}), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask(" 0xff", Mask256{}), FailsWith(EINVAL));
}

TEST(ApMask, ListOfAnEmptyMaskSaysNone) {
  EXPECT_EQ(Mask256{}.list(), "none");
  EXPECT_EQ(ApqiMask{}.list(), "none");
}

// ap-bus.md §2.2: the absolute prefix is "0x" or "x" in lower case only (hex2bitmap); "0X" or
// "X" leaves a non-hex character, so the write fails and nothing changes (issue 9 item 6).
TEST(ApMask, AbsoluteRejectsUpperCasePrefix) {
  EXPECT_THAT(parse_ap_mask("0X", Mask256::all()), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask("0X0001", Mask256{}), FailsWith(EINVAL));
  EXPECT_THAT(parse_ap_mask("X8\n", Mask256{}), FailsWith(EINVAL));
  // Relative terms go through simple_strtoul, whose radix detection is case-insensitive.
  EXPECT_EQ(parse_ap_mask("+0X10", Mask256{})->list(), "16");
}

TEST(ApMask, RelativeEditsTheCurrentMaskLeftToRight) {
  EXPECT_EQ(parse_ap_mask("-5,-6", Mask256::all())->count(), 254u);
  EXPECT_FALSE(parse_ap_mask("-5,-6", Mask256::all())->test(Apid{5}));
  EXPECT_EQ(parse_ap_mask("+0-255,-128", Mask256{})->count(), 255u);
  EXPECT_EQ(parse_ap_mask("+0-15,+32,-0xF", Mask256{})->list(), "0-14,32");
  EXPECT_EQ(parse_ap_mask("+1,+2,-5,-7-10", ids({5, 8}))->list(), "1-2");
  EXPECT_EQ(parse_ap_mask("+010", Mask256{})->list(), "8"); // octal
  EXPECT_EQ(parse_ap_mask("+1\n,\n+2\n", Mask256{})->list(), "1-2");
  EXPECT_EQ(parse_ap_mask("+1+2", Mask256{})->list(), "1-2"); // no separator needed
}

TEST(ApMask, RelativeErrorsChangeNothing) {
  for (auto bad : {"-0-255,+1-16,+0x128", "+256", "+5-3", "+1,2", "+", "+1-", "+1 ,+2", "+-1",
                   "+0x", "+1,x", "-0-256"})
    EXPECT_THAT(parse_ap_mask(bad, Mask256::all()), FailsWith(EINVAL)) << bad;
}

TEST(ApMask, IdListsForTopologies) {
  EXPECT_EQ(parse_id_list<Apqi>("4-7,0x10")->list(), "4-7,16");
  EXPECT_THAT(parse_id_list<Apqi>("4-", 255), FailsWith(EINVAL));
  EXPECT_THAT(parse_id_list<Apqi>("300", 255), FailsWith(ERANGE));
  EXPECT_THAT(parse_id_list<Apqi>("16", 15), FailsWith(ERANGE));
  EXPECT_THAT(parse_id_list<Apqi>("7-4", 255), FailsWith(EINVAL));
  EXPECT_THAT(parse_id_list<Apqi>("a", 255), FailsWith(EINVAL));
}

TEST(ApMask, FuzzedMaskInputsOnlyEverFailWithEinval) {
  std::uint32_t s = 7;
  const std::string alphabet = "+-0123456789abcdefxX,\n ";
  for (int i = 0; i < 20000; ++i) {
    std::string in;
    const int len = static_cast<int>(((s = s * 1103515245 + 12345) >> 16) % 80);
    for (int j = 0; j < len; ++j) in += alphabet[((s = s * 1103515245 + 12345) >> 16) % alphabet.size()];
    auto r = parse_ap_mask(in, Mask256::all());
    if (!r) {
      ASSERT_EQ(r.error().code, EINVAL) << in;
    }
  }
}
