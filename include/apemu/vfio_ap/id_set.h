// IdSet: the 256-bit adapter/domain bitmaps of vfio_ap (apm, aqm, adm; vfio-ap.md §2.2) with
// word-wise set operations and set-bit iteration by count-trailing-zeros, so that assignment,
// linking and filtering cost O(assigned ids), not O(256). Printed MSB-first like the kernel's
// inverted bit order: id 0 is the leftmost bit of the first hex digit. Converts to and from
// ap::Mask256, the AP bus's type.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "apemu/ap/ap_mask.h"

namespace apemu::vfio_ap {

class IdSet {
public:
  constexpr IdSet() = default;

  bool test(unsigned id) const { return id < 256 && ((m_w[id >> 6] >> (id & 63)) & 1u); }
  void set(unsigned id) {
    if (id < 256) m_w[id >> 6] |= std::uint64_t{1} << (id & 63);
  }
  void clear(unsigned id) {
    if (id < 256) m_w[id >> 6] &= ~(std::uint64_t{1} << (id & 63));
  }
  bool none() const { return !(m_w[0] | m_w[1] | m_w[2] | m_w[3]); }
  bool any() const { return !none(); }
  unsigned count() const {
    return static_cast<unsigned>(__builtin_popcountll(m_w[0]) + __builtin_popcountll(m_w[1]) +
                                 __builtin_popcountll(m_w[2]) + __builtin_popcountll(m_w[3]));
  }
  /// True when the two sets share an id (bitmap_intersects).
  bool intersects(const IdSet& o) const {
    return (m_w[0] & o.m_w[0]) | (m_w[1] & o.m_w[1]) | (m_w[2] & o.m_w[2]) | (m_w[3] & o.m_w[3]);
  }
  IdSet operator&(const IdSet& o) const {
    return IdSet(m_w[0] & o.m_w[0], m_w[1] & o.m_w[1], m_w[2] & o.m_w[2], m_w[3] & o.m_w[3]);
  }
  IdSet operator|(const IdSet& o) const {
    return IdSet(m_w[0] | o.m_w[0], m_w[1] | o.m_w[1], m_w[2] | o.m_w[2], m_w[3] | o.m_w[3]);
  }
  IdSet operator~() const { return IdSet(~m_w[0], ~m_w[1], ~m_w[2], ~m_w[3]); }
  /// this ∧ ¬o (bitmap_andnot).
  IdSet minus(const IdSet& o) const { return *this & ~o; }
  friend bool operator==(const IdSet&, const IdSet&) = default;

  /// Calls fn(id) for every id in increasing order. fn may clear the current id.
  template <class Fn> void for_each(Fn&& fn) const {
    for (unsigned w = 0; w < 4; ++w) {
      std::uint64_t bits = m_w[w];
      while (bits) {
        const unsigned b = static_cast<unsigned>(__builtin_ctzll(bits));
        bits &= bits - 1;
        fn(w * 64 + b);
      }
    }
  }
  /// The lowest id, or 256 when empty.
  unsigned first() const {
    for (unsigned w = 0; w < 4; ++w)
      if (m_w[w]) return w * 64 + static_cast<unsigned>(__builtin_ctzll(m_w[w]));
    return 256;
  }
  /// Only the ids 0..last (find_first_bit_inv/for_each_set_bit_inv with a bit count).
  IdSet up_to(unsigned last) const {
    if (last >= 255) return *this;
    IdSet r = *this;
    const unsigned w = last >> 6, b = last & 63;
    r.m_w[w] &= b == 63 ? ~std::uint64_t{0} : (std::uint64_t{1} << (b + 1)) - 1;
    for (unsigned i = w + 1; i < 4; ++i) r.m_w[i] = 0;
    return r;
  }

  /// "0x" + 64 lower-case hex digits, MSB-first ("0x%016lx%016lx%016lx%016lx" of the kernel's
  /// inverted bitmap).
  std::string hex() const;
  /// Compact list such as "4-7,16" (empty set: "none").
  std::string list() const;
  ap::Mask256 to_mask() const;
  static IdSet from_mask(const ap::Mask256& m);

private:
  constexpr IdSet(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d)
      : m_w{a, b, c, d} {}
  std::array<std::uint64_t, 4> m_w{}; ///< id i is bit (i % 64) of word i / 64
};

} // namespace apemu::vfio_ap
