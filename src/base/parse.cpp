#include "apemu/base/parse.h"

#include <cctype>
#include <cstdio>
#include <limits>

namespace apemu {

std::string_view strip_one_newline(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

static int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

Result<std::uint64_t> kstrtoull(std::string_view s, unsigned base) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  // Base detection as the kernel's _parse_integer_fixup_radix.
  if (base == 0) {
    if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && s.size() > 2 &&
        std::isxdigit(static_cast<unsigned char>(s[2]))) {
      base = 16;
      s.remove_prefix(2);
    } else if (!s.empty() && s[0] == '0') {
      base = 8;
    } else {
      base = 10;
    }
  } else if (base == 16 && s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
  }
  std::uint64_t v = 0;
  std::size_t i = 0;
  bool overflow = false;
  for (; i < s.size(); ++i) {
    int d = digit_value(s[i]);
    if (d >= static_cast<int>(base)) break;
    if (v > (std::numeric_limits<std::uint64_t>::max() - static_cast<unsigned>(d)) / base)
      overflow = true;
    v = v * base + static_cast<unsigned>(d);
  }
  if (i == 0) return Error(EINVAL);
  if (overflow) return Error(ERANGE);
  std::string_view rest = s.substr(i);
  if (rest == "\n") rest = {};
  if (!rest.empty()) return Error(EINVAL);
  return v;
}

Result<std::int64_t> kstrtoll(std::string_view s, unsigned base) {
  bool neg = false;
  if (!s.empty() && s.front() == '-') {
    neg = true;
    s.remove_prefix(1);
    // kstrtoll parses the digits after '-' with _kstrtoull, which takes no '+': "-+5" is EINVAL.
    if (!s.empty() && s.front() == '+') return Error(EINVAL);
  }
  APEMU_TRY(std::uint64_t u, kstrtoull(s, base));
  if (neg) {
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1)
      return Error(ERANGE);
    return static_cast<std::int64_t>(0 - u);
  }
  if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return Error(ERANGE);
  return static_cast<std::int64_t>(u);
}

Result<bool> kstrtobool(std::string_view s) {
  if (s.empty()) return Error(EINVAL);
  switch (s[0]) {
  case 'y': case 'Y': case 't': case 'T': case '1': return true;
  case 'n': case 'N': case 'f': case 'F': case '0': return false;
  case 'o': case 'O':
    if (s.size() >= 2) {
      if (s[1] == 'n' || s[1] == 'N') return true;
      if (s[1] == 'f' || s[1] == 'F') return false;
    }
    break;
  default: break;
  }
  return Error(EINVAL);
}

Result<long long> sscanf_int(std::string_view s, unsigned base) {
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  // The kernel's vsscanf takes a '-' for signed conversions but never a '+'.
  bool neg = false;
  if (i < s.size() && s[i] == '-') {
    neg = true;
    ++i;
  }
  if (base == 0) {
    if (i + 1 < s.size() && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X') &&
        i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      base = 16;
      i += 2;
    } else if (i < s.size() && s[i] == '0') {
      base = 8;
    } else {
      base = 10;
    }
  }
  long long v = 0;
  const std::size_t start = i;
  for (; i < s.size(); ++i) {
    const int d = digit_value(s[i]);
    if (d >= static_cast<int>(base)) break;
    if (v < (1ll << 40)) v = v * base + d; // far beyond any attribute range
  }
  if (i == start) return Error(EINVAL);
  return neg ? -v : v;
}

Result<std::chrono::nanoseconds> parse_duration(std::string_view s) {
  std::size_t i = 0;
  std::uint64_t whole = 0, frac = 0, frac_scale = 1;
  const std::size_t start = i;
  // Saturate far above 100 days in ns (8.64e15) and judge the range once the unit is known:
  // "1e14ns" is 28 hours, and a bad unit is EINVAL however large the number.
  bool huge = false;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (whole > 10'000'000'000'000'000ull) huge = true;
    else whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
  }
  bool digits = i > start;
  if (i < s.size() && s[i] == '.') {
    ++i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      digits = true;
      if (frac_scale < 1'000'000'000ull) {
        frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
        frac_scale *= 10;
      }
    }
  }
  if (!digits) return Error(EINVAL, "expected a number in '" + std::string(s) + "'");
  const std::string_view unit = s.substr(i);
  std::uint64_t ns_per;
  if (unit.empty() || unit == "s") ns_per = 1'000'000'000ull;
  else if (unit == "ms") ns_per = 1'000'000ull;
  else if (unit == "us") ns_per = 1'000ull;
  else if (unit == "ns") ns_per = 1;
  else if (unit == "m") ns_per = 60'000'000'000ull;
  else if (unit == "h") ns_per = 3'600'000'000'000ull;
  else return Error(EINVAL, "unknown unit '" + std::string(unit) + "' (ns, us, ms, s, m, h)");
  if (huge) return Error(ERANGE, "more than 100 days");
  const long double total = static_cast<long double>(whole) * ns_per +
                            static_cast<long double>(frac) * ns_per / frac_scale;
  if (total > 100.0L * 86400 * 1e9) return Error(ERANGE, "more than 100 days");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(total));
}

std::string format_duration(std::chrono::nanoseconds d) {
  const auto ns = d.count();
  char b[48];
  if (ns % 1'000'000'000 == 0) std::snprintf(b, sizeof b, "%llds", static_cast<long long>(ns / 1'000'000'000));
  else if (ns >= 1'000'000'000) std::snprintf(b, sizeof b, "%.9gs", static_cast<double>(ns) / 1e9);
  else if (ns % 1'000'000 == 0) std::snprintf(b, sizeof b, "%lldms", static_cast<long long>(ns / 1'000'000));
  else if (ns % 1'000 == 0) std::snprintf(b, sizeof b, "%lldus", static_cast<long long>(ns / 1'000));
  else std::snprintf(b, sizeof b, "%lldns", static_cast<long long>(ns));
  return b;
}

bool sysfs_streq(std::string_view a, std::string_view b) {
  return strip_one_newline(a) == strip_one_newline(b);
}

std::string Uuid::str() const {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[bytes[i] >> 4]);
    out.push_back(hex[bytes[i] & 15]);
  }
  return out;
}

Result<Uuid> parse_uuid(std::string_view s) {
  if (s.size() != 36) return Error(EINVAL);
  Uuid u;
  std::size_t b = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return Error(EINVAL);
      ++i;
      continue;
    }
    int hi = digit_value(s[i]), lo = digit_value(s[i + 1]);
    if (hi > 15 || lo > 15) return Error(EINVAL);
    u.bytes[b++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return u;
}

} // namespace apemu
