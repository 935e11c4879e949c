// The GISA, guest ISC registration and adapter-interruption delivery (arch/s390/kvm/
// interrupt.c kvm_s390_gisc_register/_unregister; guest-ap.md §2.7, §3.6).
#include "apemu/base/runtime.h"
#include "apemu/kvm/kvm.h"

namespace apemu::kvm {

Result<unsigned> Gisa::gisc_register(unsigned gisc) {
  if (!m_kvm->config().gisa) return Error(ENODEV, "the VM has no GISA");
  if (gisc > 7) return Error(ERANGE, "guest ISC above 7");
  // The first reference puts the ISC into the alert mask.
  if (m_refs[gisc]++ == 0) m_iam |= static_cast<std::uint8_t>(0x80u >> gisc);
  return kNisc;
}

Result<void> Gisa::gisc_unregister(unsigned gisc) {
  if (!m_kvm->config().gisa || gisc > 7 || m_refs[gisc] == 0)
    return Error(EINVAL, "guest ISC not registered");
  if (--m_refs[gisc] == 0) m_iam &= static_cast<std::uint8_t>(~(0x80u >> gisc));
  return {};
}

void Gisa::set_pending(unsigned gisc) {
  m_ipm |= static_cast<std::uint8_t>(0x80u >> (gisc & 7));
  m_kvm->deliver_pending();
}

void Vcpu::set_cr6(std::uint8_t isc_mask) {
  m_cr6 = isc_mask;
  m_kvm->deliver_pending();
}

void Vcpu::set_io_enabled(bool on) {
  io_enabled = on;
  m_kvm->deliver_pending();
}

void Kvm::set_io_interruption_handler(Runtime& rt, std::function<void(std::uint32_t)> fn) {
  m_rt = &rt;
  m_io_handler = std::move(fn);
  deliver_pending();
}

void Kvm::deliver_pending() {
  if (!m_rt || !m_io_handler || !m_vcpu.io_enabled) return;
  for (unsigned isc = 0; isc < 8; ++isc) {
    const auto bit = static_cast<std::uint8_t>(0x80u >> isc);
    if (!(m_gisa.m_ipm & bit) || !(m_vcpu.m_cr6 & bit)) continue;
    // Presenting the interruption clears its pending bit: what arrives before the guest handled
    // it is covered by this one (one interruption per batch).
    m_gisa.m_ipm &= static_cast<std::uint8_t>(~bit);
    ++m_interruptions;
    std::weak_ptr<int> alive = m_alive;
    m_rt->post([this, alive, isc] {
      if (alive.lock() && m_io_handler) m_io_handler(ap::adapter_interruption_code(isc));
    });
  }
}

} // namespace apemu::kvm
