// The intercepted PQAP (arch/s390/kvm/priv.c handle_pqap; vfio-ap.md §6.1, guest-ap.md §2.7
// table rows 1-10): KVM's checks in KVM's order, then the hook vfio_ap installed.
#include "apemu/kvm/kvm.h"

namespace apemu::kvm {

using ap::pgm::kOperation;
using ap::pgm::kPrivileged;
using ap::pgm::kSpecification;

ExecResult Kvm::handle_pqap(Vcpu& v) {
  const std::uint64_t gr0 = v.gr[0];
  // 1-3: no AP instructions on the host, no AP interpretation, or not AQIC: user space, where
  // QEMU handles no AP instruction and injects an operation exception.
  if (!m_machine || !m_cfg.apie || ap::gr0::fc_of(gr0) != ap::fc::kAqic) return {kOperation};
  if (v.problem_state) return {kPrivileged};                            // 4
  if (gr0 & ap::gr0::kAqicMustBeZero) return {kSpecification};          // 5
  if ((gr0 & ap::gr0::kTBit) && !m_cfg.apft) return {kSpecification};   // 6
  if (m_cfg.format != CrycbFormat::Format2 && (gr0 & ap::gr0::kNoApxaRange))
    return {kSpecification}; // 7
  if (!m_cfg.aqic) return {kSpecification}; // 8
  if (m_pqap_hook.fn) {                     // 9
    const int ret = m_pqap_hook.fn(v);
    if (ret == EOPNOTSUPP) return {kOperation}; // to user space
    if (v.gr[1] & 0x00ff0000) v.cc = 3;
    else if (m_profile->kvm_pqap_cc0_on_success) v.cc = 0; // older KVM left the cc alone
    return {};
  }
  // 10: no hook. Quirk: the status lands in the high word of GR1, without the hook's shift.
  v.gr[1] = std::uint64_t{ap::QueueStatus::only(ap::rc::kQNotAvail).word()} << 32;
  v.cc = 3;
  return {};
}

} // namespace apemu::kvm
