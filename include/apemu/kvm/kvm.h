// The part of KVM that AP passthrough touches (arch/s390/kvm: kvm-s390.c crypto setup,
// kvm_arch_crypto_set_masks / kvm_arch_crypto_clear_masks, the PQAP hook; guest-ap.md §3;
// vfio-ap.md §4.6, §5.2). vfio_ap sits above this library and calls it, as in the kernel.
//
// A Kvm is one guest's `struct kvm`: its crypto control block (CRYCB) with the AP control block
// (APCB) the guest's AP instructions are checked against, and the PQAP hook that routes an
// intercepted PQAP(AQIC) to the vfio_ap mdev that owns the guest.
//
// Divergences: no vCPUs, no SIE; an APCB write is a copy and a counter.
#pragma once

#include <cstdint>
#include <string>

#include "apemu/base/ap_ids.h"

namespace apemu::kvm {

/// CRYCB formats (CRYCB_FORMAT0/1/2). Format 2 (APXA + MSAX3) holds APCB1 with 256-bit masks;
/// formats 0 and 1 hold APCB0: apm 64 bits (ids 0-63), aqm and adm 16 bits (ids 0-15).
enum class CrycbFormat { Format0, Format1, Format2 };

/// struct kvm as far as AP passthrough sees it.
class Kvm {
public:
  /// `has_crycb` false models crycbd == 0 (a guest without AP support: open_device then
  /// succeeds without attaching).
  explicit Kvm(std::string name, CrycbFormat format = CrycbFormat::Format2, bool has_crycb = true)
      : m_name(std::move(name)), m_format(format), m_has_crycb(has_crycb) {}
  Kvm(const Kvm&) = delete;
  Kvm& operator=(const Kvm&) = delete;

  const std::string& name() const { return m_name; }
  CrycbFormat format() const { return m_format; }
  bool has_crycb() const { return m_has_crycb; }

  /// The masks the guest sees (APCB1, or APCB0 widened back to 256-bit masks).
  const ApidMask& apm() const { return m_apm; }
  const ApqiMask& aqm() const { return m_aqm; }
  const ApqiMask& adm() const { return m_adm; }
  /// Number of APCB writes (set or clear), i.e. vCPU-blocking CRYCB updates.
  std::uint64_t apcb_writes() const { return m_apcb_writes; }

  /// kvm_arch_crypto_set_masks: copies the masks into the CRYCB; APCB0 formats silently drop
  /// adapters above 63 and domains above 15. Locking: machine lock (kvm->lock).
  void crypto_set_masks(const ApidMask& apm, const ApqiMask& aqm, const ApqiMask& adm);
  /// kvm_arch_crypto_clear_masks: zeroes APCB0 and APCB1.
  void crypto_clear_masks();

  /// kvm->arch.crypto.pqap_hook: the owner (an mdev's name) whose hook is installed, "" = none.
  const std::string& pqap_hook() const { return m_pqap_hook; }
  void set_pqap_hook(std::string owner) { m_pqap_hook = std::move(owner); }

private:
  std::string m_name;
  CrycbFormat m_format;
  bool m_has_crycb;
  ApidMask m_apm;
  ApqiMask m_aqm, m_adm;
  std::uint64_t m_apcb_writes = 0;
  std::string m_pqap_hook;
};

} // namespace apemu::kvm
