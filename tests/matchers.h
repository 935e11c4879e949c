// GoogleMock matchers for apemu::Result (LLVM Testing/Support style): every error path asserts
// the exact errno, e.g. EXPECT_THAT(store("x"), FailsWith(EINVAL)).
#pragma once

#include <gmock/gmock.h>

#include <cstring>

#include "apemu/base/result.h"

namespace apemu {
/// Readable gtest output for Results: the value or the errno name and context.
template <class T> void PrintTo(const Result<T>& r, std::ostream* os) {
  if (!r.has_value()) {
    *os << "error " << r.error().describe();
    return;
  }
  if constexpr (std::is_void_v<T>) *os << "ok";
  else *os << ::testing::PrintToString(r.value());
}
} // namespace apemu

namespace apemu::testing {

MATCHER(IsOk, "succeeds") {
  if (arg.has_value()) return true;
  *result_listener << "failed with " << arg.error().describe();
  return false;
}

MATCHER_P(FailsWith, code, std::string("fails with ") + apemu::Errno(code).name()) {
  if (arg.has_value()) {
    *result_listener << "succeeded";
    return false;
  }
  if (arg.error().code == code) return true;
  *result_listener << "failed with " << arg.error().describe();
  return false;
}

MATCHER_P(IsOkAndHolds, m, "succeeds with a matching value") {
  if (!arg.has_value()) {
    *result_listener << "failed with " << arg.error().describe();
    return false;
  }
  return ::testing::ExplainMatchResult(m, arg.value(), result_listener);
}

} // namespace apemu::testing
