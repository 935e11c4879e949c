// CRYCB mask updates of the KVM stand-in (kvm_arch_crypto_set_masks / _clear_masks;
// vfio-ap.md §4.6, guest-ap.md §3).
#include "apemu/vfio_ap/kvm_guest.h"

namespace apemu::vfio_ap {

namespace {

/// The part of a 256-bit mask an APCB0 field can hold: ids 0..last.
ap::Mask256 truncate(const ap::Mask256& m, unsigned last) {
  ap::Mask256 out;
  m.for_each([&](unsigned id) {
    if (id <= last) out.set(id);
  });
  return out;
}

} // namespace

void KvmGuest::crypto_set_masks(const ap::Mask256& apm, const ap::Mask256& aqm,
                                const ap::Mask256& adm) {
  if (m_format == CrycbFormat::Format2) {
    m_apm = apm;
    m_aqm = aqm;
    m_adm = adm;
  } else {
    // APCB0: 64-bit apm, 16-bit aqm and adm; higher ids are silently dropped (§10.13).
    m_apm = truncate(apm, 63);
    m_aqm = truncate(aqm, 15);
    m_adm = truncate(adm, 15);
  }
  ++m_apcb_writes;
}

void KvmGuest::crypto_clear_masks() {
  m_apm = m_aqm = m_adm = ap::Mask256{};
  ++m_apcb_writes;
}

} // namespace apemu::vfio_ap
