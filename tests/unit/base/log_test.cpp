#include "apemu/base/log.h"

#include <gtest/gtest.h>

using namespace apemu;

TEST(Log, KeepsABoundedRingFilteredByLevel) {
  Log log(2);
  log.debug("dropped"); // debug is off by default (dynamic debug off)
  log.set_debug(true);
  log.debug("d");
  log.info("a");
  log.error("b");
  EXPECT_EQ(log.lines(LogLevel::Debug), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(log.contains("b"));
  EXPECT_FALSE(log.contains("d"));
}
