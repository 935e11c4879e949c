// Result<T>, Errno and Error (STYLE.md §3).
#include "apemu/base/result.h"

#include <gtest/gtest.h>

#include "apemu/base/assert.h"
#include "matchers.h"

using namespace apemu;
using apemu::testing::FailsWith;
using apemu::testing::IsOk;
using apemu::testing::IsOkAndHolds;

namespace {

Result<int> half(int v) {
  if (v % 2) return Error(EINVAL, "odd");
  return v / 2;
}

Result<int> quarter(int v) {
  APEMU_TRY(int h, half(v));
  APEMU_TRY(int q, half(h));
  return q;
}

Result<void> check_even(int v) {
  APEMU_TRY_VOID(half(v));
  return {};
}

} // namespace

TEST(Result, CarriesValueOrExactErrno) {
  EXPECT_THAT(half(4), IsOkAndHolds(2));
  EXPECT_THAT(half(3), FailsWith(EINVAL));
  EXPECT_EQ(half(3).error().context, "odd");
}

TEST(Result, TryPropagatesTheFirstError) {
  EXPECT_THAT(quarter(8), IsOkAndHolds(2));
  EXPECT_THAT(quarter(6), FailsWith(EINVAL));
  EXPECT_THAT(check_even(2), IsOk());
  EXPECT_THAT(check_even(1), FailsWith(EINVAL));
}

TEST(Result, IntValueIsNeverMistakenForAnErrno) {
  Result<int> r = EINVAL; // a value, because Error(int) is explicit
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, EINVAL);
}

TEST(Result, ExpectedSurface) {
  Result<std::string> r = std::string("abc");
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ(r.value_or("x"), "abc");
  Result<std::string> e = Error(ENODEV);
  EXPECT_EQ(e.value_or("x"), "x");
}

TEST(Errno, NamesAreSymbolicAndNeverRemapped) {
  EXPECT_EQ(Errno(EADDRINUSE).name(), "EADDRINUSE");
  EXPECT_EQ(Errno(EADDRNOTAVAIL).name(), "EADDRNOTAVAIL");
  EXPECT_EQ(Errno(EUSERS).name(), "EUSERS");
  EXPECT_EQ(Errno(kEProbeDefer).name(), "EPROBE_DEFER");
  EXPECT_EQ(Error(EBUSY, "in use").describe(), "EBUSY: in use");
}

TEST(AssertDeathTest, AssertAbortsWithLocation) {
  EXPECT_DEATH({ APEMU_ASSERT(1 == 2); }, "assertion failed: 1 == 2 at .*result_test.cpp");
}
