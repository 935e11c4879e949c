// Golden-file comparison: the fixture under tests/fixtures/ must match byte for byte. Run a
// test with APEMU_UPDATE_GOLDEN=1 to rewrite the file after an intended ABI change (then review
// the diff: it is the ABI change).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace apemu::testing {

inline std::string fixtures_dir() {
  const char* d = std::getenv("APEMU_FIXTURES");
  return d ? d : "tests/fixtures";
}

inline void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = fixtures_dir() + "/" + name;
  if (std::getenv("APEMU_UPDATE_GOLDEN")) {
    std::ofstream(path) << actual;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing golden file " << path
                         << " (run with APEMU_UPDATE_GOLDEN=1 to create it)";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), actual) << "golden file " << path << " differs";
}

/// Dumps a real directory tree in the format of kernfs::dump_tree (D/A/L lines, values of
/// readable files with the trailing newline dropped), so an export can be compared with the
/// model it came from.
std::string dump_directory(const std::string& root);

} // namespace apemu::testing
