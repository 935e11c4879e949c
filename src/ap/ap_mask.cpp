// The apmask/aqmask grammar, hex2bitmap and topology id lists (ap-bus.md §2.2).
#include "apemu/ap/ap_mask.h"

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>

namespace apemu::ap {

namespace {

/// simple_strtoul(base 0) on a prefix: the value (saturated far above 255) and the number of
/// characters used; nullopt when no digit was converted.
std::optional<std::pair<std::uint64_t, std::size_t>> strtoul_prefix(std::string_view s) {
  unsigned base = 10;
  std::size_t i = 0;
  // _parse_integer_fixup_radix: "0x" (either case) before a hex digit is hex, else a leading 0
  // is octal.
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') &&
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
    if (v < (1ull << 40)) v = v * base + d;
  }
  if (i == start) return std::nullopt;
  return std::make_pair(v, i);
}

template <class Id> Id as_id(std::uint64_t n) { return Id{static_cast<std::uint8_t>(n)}; }

template <class Id> Result<IdMask<Id>> parse_relative(std::string_view s, IdMask<Id> mask) {
  // Terms (+|-)N[-M], separated by any number of ',' or '\n' (or by nothing: the next term just
  // has to start with its sign).
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
    for (auto n = lo; n <= hi; ++n) mask.set(as_id<Id>(n), sign == '+');
  }
  return mask;
}

} // namespace

template <class Id> Result<IdMask<Id>> hex2bitmap(std::string_view s) {
  IdMask<Id> mask;
  std::size_t i = 0;
  if (s.size() >= 2 && s[0] == '0' && s[1] == 'x') i = 1;
  if (i < s.size() && s[i] == 'x') ++i;
  unsigned nib = 0;
  for (; i < s.size() && nib < 64 && std::isxdigit(static_cast<unsigned char>(s[i])); ++i, ++nib) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    const unsigned v = c <= '9' ? static_cast<unsigned>(c - '0') : static_cast<unsigned>(c - 'a' + 10);
    for (unsigned b = 0; b < 4; ++b)
      if (v & (8u >> b)) mask.set(as_id<Id>(nib * 4 + b));
  }
  if (i < s.size() && s[i] == '\n') ++i;
  if (i != s.size()) return Error(EINVAL);
  return mask;
}

template <class Id>
Result<IdMask<Id>> parse_ap_mask(std::string_view text, const IdMask<Id>& current) {
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) return parse_relative(text, current);
  return hex2bitmap<Id>(text);
}

template <class Id> Result<IdMask<Id>> parse_id_list(std::string_view text, unsigned max_id) {
  IdMask<Id> m;
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
    for (auto n = lo; n <= hi; ++n) m.set(as_id<Id>(n));
  }
  return m;
}

#define APEMU_AP_MASK_INSTANTIATE(Id)                                                              \
  template Result<IdMask<Id>> hex2bitmap<Id>(std::string_view);                                    \
  template Result<IdMask<Id>> parse_ap_mask<Id>(std::string_view, const IdMask<Id>&);              \
  template Result<IdMask<Id>> parse_id_list<Id>(std::string_view, unsigned);
APEMU_AP_MASK_INSTANTIATE(Apid)
APEMU_AP_MASK_INSTANTIATE(Apqi)
#undef APEMU_AP_MASK_INSTANTIATE

} // namespace apemu::ap
