// IdSet text forms and conversions (vfio-ap.md §2.2: MSB-first numbering).
#include "apemu/vfio_ap/id_set.h"

#include <cstdio>

namespace apemu::vfio_ap {

std::string IdSet::hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  out.reserve(66);
  for (unsigned nibble = 0; nibble < 64; ++nibble) {
    // The digit holds ids 4n..4n+3, id 4n in its most significant bit.
    unsigned v = 0;
    for (unsigned k = 0; k < 4; ++k)
      if (test(nibble * 4 + k)) v |= 0x8u >> k;
    out += kDigits[v];
  }
  return out;
}

std::string IdSet::list() const {
  std::string out;
  int start = -1, prev = -2;
  auto flush = [&] {
    if (start < 0) return;
    if (!out.empty()) out += ",";
    out += std::to_string(start);
    if (prev > start) out += "-" + std::to_string(prev);
  };
  for_each([&](unsigned id) {
    if (static_cast<int>(id) != prev + 1) {
      flush();
      start = static_cast<int>(id);
    }
    prev = static_cast<int>(id);
  });
  flush();
  return out.empty() ? "none" : out;
}

ap::Mask256 IdSet::to_mask() const {
  ap::Mask256 m;
  for_each([&](unsigned id) { m.set(id); });
  return m;
}

IdSet IdSet::from_mask(const ap::Mask256& m) {
  IdSet s;
  m.for_each([&](unsigned id) { s.set(id); });
  return s;
}

} // namespace apemu::vfio_ap
