// APEMU_ASSERT / APEMU_UNREACHABLE: invariant violations are bugs, not Results. They abort with
// file:line so that death tests can pin them.
#pragma once

namespace apemu::detail {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line);
}

#define APEMU_ASSERT(cond)                                                                         \
  do {                                                                                             \
    if (!(cond)) ::apemu::detail::assertion_failed(#cond, __FILE__, __LINE__);                     \
  } while (0)
#define APEMU_UNREACHABLE() ::apemu::detail::assertion_failed("unreachable", __FILE__, __LINE__)
