// Mask formatting and the apmask/aqmask grammar (ap-bus.md §2.2).
#include "apemu/ap/ap_mask.h"

#include <cctype>
#include <cstdint>
#include <optional>

#include "apemu/base/parse.h"

namespace apemu::ap {

std::string Mask256::hex() const {
  static const char* digits = "0123456789abcdef";
  std::string out = "0x";
  out.reserve(66);
  for (unsigned nib = 0; nib < 64; ++nib) {
    unsigned v = 0;
    for (unsigned b = 0; b < 4; ++b) v = (v << 1) | (m_bits.test(nib * 4 + b) ? 1u : 0u);
    out += digits[v];
  }
  return out;
}

std::string Mask256::list() const {
  std::string out;
  for (unsigned i = 0; i < kMaxApIds;) {
    if (!m_bits.test(i)) {
      ++i;
      continue;
    }
    unsigned j = i;
    while (j + 1 < kMaxApIds && m_bits.test(j + 1)) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(i);
    if (j > i) out += "-" + std::to_string(j);
    i = j + 1;
  }
  return out;
}

namespace {

/// simple_strtoul(base 0) on a prefix: returns the value and the number of characters used.
std::optional<std::pair<std::uint64_t, std::size_t>> strtoul_prefix(std::string_view s) {
  unsigned base = 10;
  std::size_t i = 0;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && s.size() > 2 &&
      std::isxdigit(static_cast<unsigned char>(s[2]))) {
    base = 16;
    i = 2;
  } else if (!s.empty() && s[0] == '0') {
    base = 8;
  }
  const std::size_t start = i;
  std::uint64_t v = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
    else break;
    if (d >= base) break;
    if (v < (1ull << 40)) v = v * base + d; // saturate far above 255
  }
  if (i == start) return std::nullopt;
  return std::make_pair(v, i);
}

Result<Mask256> parse_relative(std::string_view s, Mask256 mask) {
  // Terms (+|-)N[-M] separated by any number of ',' or '\n'.
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ',' || s[i] == '\n') {
      ++i;
      continue;
    }
    const char sign = s[i];
    if (sign != '+' && sign != '-') return Error(EINVAL);
    ++i;
    auto a = strtoul_prefix(s.substr(i));
    if (!a) return Error(EINVAL);
    i += a->second;
    std::uint64_t lo = a->first, hi = a->first;
    if (i < s.size() && s[i] == '-') {
      ++i;
      auto b = strtoul_prefix(s.substr(i));
      if (!b) return Error(EINVAL);
      i += b->second;
      hi = b->first;
    }
    if (lo >= kMaxApIds || hi >= kMaxApIds || hi < lo) return Error(EINVAL);
    // No separator is required between terms: the next one must just start with a sign.
    for (auto n = lo; n <= hi; ++n) mask.set(static_cast<unsigned>(n), sign == '+');
  }
  return mask;
}

Result<Mask256> parse_absolute(std::string_view s) {
  Mask256 mask;
  std::size_t i = 0;
  // hex2bitmap skips "0x" or "x", lower case only: "0X…" is EINVAL (ap-bus.md §2.2).
  if (s.size() >= 2 && s[0] == '0' && s[1] == 'x') i = 2;
  else if (!s.empty() && s[0] == 'x') i = 1;
  unsigned nib = 0;
  while (i < s.size() && nib < 64 && std::isxdigit(static_cast<unsigned char>(s[i]))) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    const unsigned v = c <= '9' ? static_cast<unsigned>(c - '0') : static_cast<unsigned>(c - 'a' + 10);
    for (unsigned b = 0; b < 4; ++b) mask.set(nib * 4 + b, v & (8u >> b));
    ++nib;
    ++i;
  }
  if (i < s.size() && s[i] == '\n') ++i;
  if (i != s.size()) return Error(EINVAL);
  return mask;
}

} // namespace

Result<Mask256> parse_ap_mask(std::string_view text, const Mask256& current) {
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) return parse_relative(text, current);
  return parse_absolute(text);
}

Result<Mask256> parse_id_list(std::string_view text, unsigned max_id) {
  Mask256 m;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || text[i] == ' ') {
      ++i;
      continue;
    }
    auto a = strtoul_prefix(text.substr(i));
    if (!a) return Error(EINVAL, "expected a number at '" + std::string(text.substr(i)) + "'");
    i += a->second;
    auto lo = a->first, hi = a->first;
    if (i < text.size() && text[i] == '-') {
      ++i;
      auto b = strtoul_prefix(text.substr(i));
      if (!b) return Error(EINVAL, "expected a number after '-'");
      i += b->second;
      hi = b->first;
    }
    if (i < text.size() && text[i] != ',' && text[i] != ' ')
      return Error(EINVAL, "unexpected '" + std::string(1, text[i]) + "'");
    if (hi < lo) return Error(EINVAL, "empty range");
    if (hi > max_id) return Error(ERANGE, "id " + std::to_string(hi) + " above " + std::to_string(max_id));
    for (auto n = lo; n <= hi; ++n) m.set(static_cast<unsigned>(n));
  }
  return m;
}

} // namespace apemu::ap
