// Formatting of AP ids and masks (see ap_ids.h).
#include "apemu/base/ap_ids.h"

#include <cstdio>

namespace apemu {

std::string Apqn::name() const {
  char b[16];
  std::snprintf(b, sizeof b, "%02x.%04x", id(apid), id(apqi));
  return b;
}

template <class Id> std::string IdMask<Id>::hex() const {
  static const char* digits = "0123456789abcdef";
  std::string out = "0x";
  out.reserve(66);
  for (unsigned nib = 0; nib < 64; ++nib) {
    unsigned v = 0;
    for (unsigned b = 0; b < 4; ++b)
      v = (v << 1) | (test(Id{static_cast<std::uint8_t>(nib * 4 + b)}) ? 1u : 0u);
    out += digits[v];
  }
  return out;
}

template <class Id> std::string IdMask<Id>::list() const {
  std::string out;
  int run_start = -1, prev = -2;
  auto flush = [&] {
    if (run_start < 0) return;
    if (!out.empty()) out += ',';
    out += std::to_string(run_start);
    if (prev > run_start) out += "-" + std::to_string(prev);
  };
  for_each([&](Id i) {
    const int n = static_cast<int>(id(i));
    if (n != prev + 1) {
      flush();
      run_start = n;
    }
    prev = n;
  });
  flush();
  return out.empty() ? "none" : out;
}

template class IdMask<Apid>;
template class IdMask<Apqi>;

} // namespace apemu
