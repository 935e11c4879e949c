// CRYCB mask updates of the KVM stand-in (kvm_arch_crypto_set_masks / _clear_masks;
// vfio-ap.md §4.6, guest-ap.md §3).
#include "apemu/kvm/kvm.h"

namespace apemu::kvm {

void Kvm::crypto_set_masks(const ApidMask& apm, const ApqiMask& aqm, const ApqiMask& adm) {
  if (m_format == CrycbFormat::Format2) {
    m_apm = apm;
    m_aqm = aqm;
    m_adm = adm;
  } else {
    // APCB0: 64-bit apm, 16-bit aqm and adm; higher ids are silently dropped (§10.13).
    m_apm = apm.up_to(63);
    m_aqm = aqm.up_to(15);
    m_adm = adm.up_to(15);
  }
  ++m_apcb_writes;
}

void Kvm::crypto_clear_masks() {
  m_apm = ApidMask{};
  m_aqm = m_adm = ApqiMask{};
  ++m_apcb_writes;
}

} // namespace apemu::kvm
