// Reference models of kernel string parsers for the fuzz targets, written from the kernel's
// documented semantics (lib/kstrtox.c, lib/vsprintf.c, drivers/s390/crypto/ap_bus.c
// hex2bitmap/modify_bitmap; ap-bus.md §2.2, vfio-ap.md §3.8) and independent of src/: syntax by
// explicit rules, arithmetic by the C library's strtoull.
#pragma once

#include <bitset>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_util.h"

namespace apemu::fuzz::ref {

inline bool is_digit_in(char c, unsigned base) {
  unsigned v;
  if (c >= '0' && c <= '9') v = static_cast<unsigned>(c - '0');
  else if (c >= 'a' && c <= 'f') v = static_cast<unsigned>(c - 'a' + 10);
  else if (c >= 'A' && c <= 'F') v = static_cast<unsigned>(c - 'A' + 10);
  else return false;
  return v < base;
}
inline bool is_hex(char c) { return is_digit_in(c, 16); }

/// The value of a run of valid digits, through strtoull. Returns nullopt on 64-bit overflow.
inline std::optional<std::uint64_t> value_of(std::string_view digits, unsigned base) {
  const std::string s(digits);
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, static_cast<int>(base));
  FUZZ_CHECK(end == s.c_str() + s.size(), "reference: strtoull stopped early on " + quote(s));
  if (errno == ERANGE) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

/// _parse_integer_fixup_radix: resolves base 0 ("0x"+hex digit: 16, "0": 8, else 10) and
/// strips a "0x"/"0X" in base 16.
inline std::string_view fixup_radix(std::string_view s, unsigned& base) {
  const bool ox = s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  if (base == 0) {
    if (ox && s.size() >= 3 && is_hex(s[2])) base = 16;
    else if (!s.empty() && s[0] == '0') base = 8;
    else base = 10;
  }
  if (base == 16 && ox) s.remove_prefix(2);
  return s;
}

/// simple_strtoul(s, &end, 0) on a prefix: the value (nullopt when it does not fit 64 bits) and
/// the characters consumed (0: nothing converted, end == s). The kernel wraps on overflow;
/// apemu's parsers treat such numbers as out of range, and so does this model.
struct Prefix {
  std::optional<std::uint64_t> value;
  std::size_t used = 0;
};
inline Prefix simple_strtoul0(std::string_view s) {
  unsigned base = 0;
  const std::string_view d = fixup_radix(s, base);
  std::size_t n = 0;
  while (n < d.size() && is_digit_in(d[n], base)) ++n;
  if (n == 0) return {};
  return {value_of(d.substr(0, n), base), (s.size() - d.size()) + n};
}

using Bits = std::bitset<256>;

/// hex2bitmap (ap_bus.c): optional "0x" or "x" (lower case), at most 64 hex digits MSB-first
/// from bit 0, an optional '\n', then the end. Returns nullopt for EINVAL.
inline std::optional<Bits> hex2bitmap(std::string_view s) {
  std::size_t p = 0;
  if (s.size() >= 2 && s[0] == '0' && s[1] == 'x') p = 1;
  if (p < s.size() && s[p] == 'x') ++p;
  Bits b;
  for (unsigned i = 0; p < s.size() && is_hex(s[p]) && i < 256; ++p, i += 4) {
    const unsigned v = static_cast<unsigned>(std::strtoul(std::string(1, s[p]).c_str(), nullptr, 16));
    for (unsigned n = 0; n < 4; ++n) b[i + n] = (v >> (3 - n)) & 1;
  }
  if (p < s.size() && s[p] == '\n') ++p;
  if (p != s.size()) return std::nullopt;
  return b;
}

/// ap_parse_bitmap_str (ap-bus.md §2.2): relative "(+|-)N[-M]" terms, each followed by any
/// number of ',' or '\n', applied to `current`; anything else is absolute hex2bitmap.
/// Returns nullopt for EINVAL. `touched` collects every id a relative term names.
inline std::optional<Bits> ap_parse_mask(std::string_view s, const Bits& current, Bits* touched = nullptr) {
  if (s.empty() || (s[0] != '+' && s[0] != '-')) return hex2bitmap(s);
  Bits b = current;
  std::size_t p = 0;
  while (p < s.size()) {
    const char sign = s[p++];
    if (sign != '+' && sign != '-') return std::nullopt;
    const Prefix a = simple_strtoul0(s.substr(p));
    if (a.used == 0 || !a.value || *a.value >= 256) return std::nullopt;
    p += a.used;
    std::uint64_t lo = *a.value, hi = lo;
    if (p < s.size() && s[p] == '-') {
      ++p;
      const Prefix z = simple_strtoul0(s.substr(p));
      if (z.used == 0 || !z.value || *z.value < lo || *z.value >= 256) return std::nullopt;
      p += z.used;
      hi = *z.value;
    }
    for (auto i = lo; i <= hi; ++i) {
      b[i] = sign == '+';
      if (touched) (*touched)[i] = true;
    }
    while (p < s.size() && (s[p] == ',' || s[p] == '\n')) ++p;
  }
  return b;
}

/// "0x" + 64 lower-case hex digits, id 0 in the leftmost bit (the apmask/ap_config format).
inline std::string hex(const Bits& b) {
  std::string out = "0x";
  for (unsigned i = 0; i < 256; i += 4) {
    const unsigned v = (b[i] << 3) | (b[i + 1] << 2) | (b[i + 2] << 1) | b[i + 3];
    out += "0123456789abcdef"[v];
  }
  return out;
}

} // namespace apemu::fuzz::ref
