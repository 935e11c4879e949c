// Helpers shared by the libFuzzer targets (fuzz/README.md): invariant checks that abort with a
// message (libFuzzer then saves the input as a crash), and an input splitter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/base/log.h"

namespace apemu::fuzz {

/// Prints an invariant violation with the input that caused it, then aborts (a libFuzzer crash).
[[noreturn]] inline void fail(const char* file, int line, const char* expr, const std::string& why) {
  std::fprintf(stderr, "\n*** fuzz invariant violated at %s:%d: %s\n*** %s\n", file, line, expr,
               why.c_str());
  std::fflush(stderr);
  std::abort();
}

/// A printable rendering of fuzz text for messages ("\n" and bytes outside 0x20..0x7e escaped).
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\\' || c == '"') (out += '\\') += static_cast<char>(c);
    else if (c < 0x20 || c > 0x7e) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Splits fuzz input into records at a separator byte (writes, requests, ...), at most `max`.
inline std::vector<std::string_view> split(std::string_view in, char sep, std::size_t max) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < max) {
    const auto p = in.find(sep);
    if (p == std::string_view::npos) break;
    out.push_back(in.substr(0, p));
    in.remove_prefix(p + 1);
  }
  out.push_back(in);
  return out;
}

/// Fills the kernel log of a machine kept between inputs to its capacity, so that every line an
/// input logs pushes one out: libFuzzer then sees as many frees as mallocs per input and does
/// not mistake the growing log for a leak (each suspicion re-runs the input under LeakSanitizer).
inline void fill_log(Log& log) {
  for (int i = 0; i < 5000; ++i) log.error("fuzz: filler");
}

} // namespace apemu::fuzz

/// Checks an invariant; `why` is any expression convertible to std::string (evaluated lazily).
#define FUZZ_CHECK(cond, why)                                                                      \
  do {                                                                                             \
    if (!(cond)) ::apemu::fuzz::fail(__FILE__, __LINE__, #cond, (why));                           \
  } while (0)
