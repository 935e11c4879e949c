// 256-bit AP masks (adapters, domains) with the s390 MSB-first bit order, and the parser of
// `apmask`/`aqmask` writes (ap_parse_bitmap_str; ap-bus.md §2.2).
#pragma once

#include <bitset>
#include <string>
#include <string_view>

#include "apemu/base/result.h"

namespace apemu::ap {

inline constexpr unsigned kMaxApIds = 256; // AP_DEVICES / AP_DOMAINS

/// A set of ids 0..255. Bit n is printed MSB-first: id 0 is the leftmost bit of the first hex
/// digit after "0x" (set_bit_inv semantics).
class Mask256 {
public:
  Mask256() = default;
  static Mask256 all() {
    Mask256 m;
    m.m_bits.set();
    return m;
  }
  bool test(unsigned id) const { return id < kMaxApIds && m_bits.test(id); }
  void set(unsigned id, bool v = true) {
    if (id < kMaxApIds) m_bits.set(id, v);
  }
  void clear(unsigned id) { set(id, false); }
  bool none() const { return m_bits.none(); }
  bool all_set() const { return m_bits.all(); }
  std::size_t count() const { return m_bits.count(); }
  Mask256 operator&(const Mask256& o) const { return Mask256(m_bits & o.m_bits); }
  Mask256 operator|(const Mask256& o) const { return Mask256(m_bits | o.m_bits); }
  Mask256 operator~() const { return Mask256(~m_bits); }
  friend bool operator==(const Mask256&, const Mask256&) = default;

  /// "0x" + 64 lower-case hex digits (the apmask/aqmask and QCI mask formats, no newline).
  std::string hex() const;
  /// Ids in increasing order.
  template <class Fn> void for_each(Fn&& fn) const {
    for (unsigned i = 0; i < kMaxApIds; ++i)
      if (m_bits.test(i)) fn(i);
  }
  /// Ids as a compact list "0-3,5" (for messages and `apemu show`).
  std::string list() const;

private:
  explicit Mask256(std::bitset<kMaxApIds> b) : m_bits(b) {}
  std::bitset<kMaxApIds> m_bits;
};

/// Parses an apmask/aqmask write. Relative input (first char '+' or '-') edits `current`;
/// anything else is absolute hex. Returns: EINVAL for any syntax or range error; nothing is
/// applied then.
Result<Mask256> parse_ap_mask(std::string_view text, const Mask256& current);

/// Parses a topology id list such as "4-7,0x10" (decimal/hex/octal numbers, ranges, commas).
/// Returns: EINVAL on syntax errors, ERANGE for ids above `max_id`.
Result<Mask256> parse_id_list(std::string_view text, unsigned max_id = kMaxApIds - 1);

} // namespace apemu::ap
