#include "apemu/base/result.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "apemu/base/assert.h"
#include "apemu/base/runtime.h"

namespace apemu {

std::string Errno::name() const {
  // strerrorname_np is glibc ≥ 2.32 (Debian 12 has 2.36).
  if (const char* n = strerrorname_np(m_code)) return n;
  if (m_code == kEProbeDefer) return "EPROBE_DEFER";
  if (m_code == kEIocbQueued) return "EIOCBQUEUED";
  return "E" + std::to_string(m_code);
}

std::string Errno::message() const {
  if (m_code == kEProbeDefer) return "Driver requests probe retry";
  if (m_code == kEIocbQueued) return "I/O queued, completes later";
  return std::strerror(m_code);
}

std::string Error::describe() const {
  Errno e(code);
  if (context.empty()) return e.name() + " (" + e.message() + ")";
  return e.name() + ": " + context;
}

namespace detail {
void assertion_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "apemu: assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}
} // namespace detail

} // namespace apemu
