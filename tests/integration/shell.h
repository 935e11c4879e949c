// Shared helpers of the end-to-end tests: run a shell command capturing its output, and the
// facility check that skips (or, under CI=true, fails) when namespaces or FUSE are unavailable.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace apemu::testing {

struct Output {
  int status = -1;
  std::string text;
};

/// Runs `sh -c cmd`, capturing stdout and stderr together.
inline Output sh(const std::string& cmd) {
  Output o;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.text.append(buf.data(), n);
  const int st = ::pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return o;
}

/// True when `apemu run` works here (root, /dev/fuse, namespaces).
inline bool can_run_namespaces() {
  static const bool ok = sh(std::string(APEMU_BIN) + " run -- true").status == 0;
  return ok;
}

} // namespace apemu::testing

#define REQUIRE_FACILITIES()                                                                       \
  do {                                                                                             \
    if (!::apemu::testing::can_run_namespaces()) {                                                 \
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")                     \
        FAIL() << "apemu run cannot create namespaces or mount FUSE under CI";                     \
      GTEST_SKIP() << "namespaces/FUSE unavailable (not root or no /dev/fuse)";                    \
    }                                                                                              \
  } while (0)
