// AP identifiers and the one 256-bit AP mask type (ap-bus.md §0 conventions; vfio-ap.md §2.2;
// guest-ap.md §3).
//
// An APID names an adapter (card), an APQI a domain (queue index), an APQN the pair. They are
// distinct types, so an adapter id can never be passed where a domain id is meant (the kernel's
// queue lookups take both as plain integers, in an order that is easy to get wrong).
//
// IdMask<Id> is a set of ids 0..255 (the kernel's 256-bit AP bitmaps: apmask, aqmask, the QCI
// and APCB masks, an mdev's matrix). Set operations work on four words and iteration visits set
// bits only, so the cost follows the number of ids, not 256. Masks print MSB-first like the
// kernel's inverted bit order: id 0 is the leftmost bit of the first hex digit after "0x".
//
// @code
//   ApidMask apm;
//   apm.set(Apid{5});
//   apm.for_each([](Apid a) { ... });         // a == Apid{5}
//   apm.hex();  // "0x0400000000000000000000000000000000000000000000000000000000000000"
//   Apqn q{Apid{5}, Apqi{4}};  q.name();  // "05.0004"
// @endcode
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>

namespace apemu {

/// The number of adapter ids and of domain ids (AP_DEVICES, AP_DOMAINS).
inline constexpr unsigned kMaxApIds = 256;

enum class Apid : std::uint8_t {}; ///< adapter id 0..255
enum class Apqi : std::uint8_t {}; ///< domain (queue index) 0..255

constexpr unsigned id(Apid a) { return static_cast<unsigned>(a); }
constexpr unsigned id(Apqi q) { return static_cast<unsigned>(q); }
/// From a number 0..255 (callers range-check first).
constexpr Apid to_apid(unsigned n) { return Apid{static_cast<std::uint8_t>(n)}; }
constexpr Apqi to_apqi(unsigned n) { return Apqi{static_cast<std::uint8_t>(n)}; }

/// An AP queue number: adapter and domain.
struct Apqn {
  Apid apid{};
  Apqi apqi{};
  /// "%02x.%04x", the queue device's name.
  std::string name() const;
  /// The kernel's qid: (apid << 8) | apqi; also a dense index 0..65535.
  constexpr unsigned qid() const { return id(apid) << 8 | id(apqi); }
  friend constexpr auto operator<=>(const Apqn&, const Apqn&) = default;
};

template <class Id> class IdMask {
public:
  constexpr IdMask() = default;
  static constexpr IdMask all() { return IdMask(~0ull, ~0ull, ~0ull, ~0ull); }

  bool test(Id i) const { return (m_w[id(i) >> 6] >> (id(i) & 63)) & 1u; }
  void set(Id i, bool on = true) {
    const std::uint64_t bit = std::uint64_t{1} << (id(i) & 63);
    if (on) m_w[id(i) >> 6] |= bit;
    else m_w[id(i) >> 6] &= ~bit;
  }
  void clear(Id i) { set(i, false); }
  bool none() const { return !(m_w[0] | m_w[1] | m_w[2] | m_w[3]); }
  bool any() const { return !none(); }
  bool all_set() const { return (m_w[0] & m_w[1] & m_w[2] & m_w[3]) == ~0ull; }
  unsigned count() const {
    return static_cast<unsigned>(__builtin_popcountll(m_w[0]) + __builtin_popcountll(m_w[1]) +
                                 __builtin_popcountll(m_w[2]) + __builtin_popcountll(m_w[3]));
  }
  /// True when the two sets share an id (bitmap_intersects).
  bool intersects(const IdMask& o) const { return (*this & o).any(); }
  IdMask operator&(const IdMask& o) const {
    return IdMask(m_w[0] & o.m_w[0], m_w[1] & o.m_w[1], m_w[2] & o.m_w[2], m_w[3] & o.m_w[3]);
  }
  IdMask operator|(const IdMask& o) const {
    return IdMask(m_w[0] | o.m_w[0], m_w[1] | o.m_w[1], m_w[2] | o.m_w[2], m_w[3] | o.m_w[3]);
  }
  IdMask operator~() const { return IdMask(~m_w[0], ~m_w[1], ~m_w[2], ~m_w[3]); }
  /// this ∧ ¬o (bitmap_andnot).
  IdMask minus(const IdMask& o) const { return *this & ~o; }
  friend bool operator==(const IdMask&, const IdMask&) = default;

  /// Calls fn(id) for every id in increasing order. fn may change the mask.
  template <class Fn> void for_each(Fn&& fn) const {
    for (unsigned w = 0; w < 4; ++w) {
      std::uint64_t bits = m_w[w];
      while (bits) {
        const unsigned b = static_cast<unsigned>(__builtin_ctzll(bits));
        bits &= bits - 1;
        fn(Id{static_cast<std::uint8_t>(w * 64 + b)});
      }
    }
  }
  /// Only the ids 0..last (find_first_bit_inv/for_each_set_bit_inv with a bit count).
  IdMask up_to(unsigned last) const {
    if (last >= 255) return *this;
    IdMask r = *this;
    const unsigned w = last >> 6, b = last & 63;
    r.m_w[w] &= b == 63 ? ~0ull : (std::uint64_t{1} << (b + 1)) - 1;
    for (unsigned i = w + 1; i < 4; ++i) r.m_w[i] = 0;
    return r;
  }
  /// The set {0..last}.
  static IdMask range(unsigned last) { return all().up_to(last); }

  /// "0x" + 64 lower-case hex digits, MSB-first (the kernel's "0x%016lx%016lx%016lx%016lx" of
  /// the inverted bitmap; the apmask, QCI and ap_config formats).
  std::string hex() const;
  /// Ids as a compact list for people, "4-7,16"; "none" when empty.
  std::string list() const;

private:
  constexpr IdMask(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d)
      : m_w{a, b, c, d} {}
  std::array<std::uint64_t, 4> m_w{}; ///< id i is bit (i % 64) of word i / 64
};

using ApidMask = IdMask<Apid>; ///< adapters: apmask, QCI apm, APCB apm, an mdev's apm
using ApqiMask = IdMask<Apqi>; ///< domains: aqmask, QCI aqm/adm, APCB aqm/adm

extern template class IdMask<Apid>;
extern template class IdMask<Apqi>;

} // namespace apemu
