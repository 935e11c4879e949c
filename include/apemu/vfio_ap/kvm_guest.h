// The part of a KVM guest that vfio_ap drives: the crypto control block (CRYCB) with its AP
// control block (APCB), the PQAP hook pointer, and eventfds as user space registers them
// (arch/s390/kvm kvm_arch_crypto_set_masks / kvm_arch_crypto_clear_masks; guest-ap.md §3;
// vfio-ap.md §4.6, §5.2, §7.4).
//
// Divergences: no vCPUs, no GISA/GIB and no PQAP(AQIC) interception; an APCB write is a copy
// and a counter. An eventfd is a counter plus an optional reaction of the user space that
// polls it (QEMU unplugs the device when the request eventfd fires).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "apemu/ap/ap_mask.h"

namespace apemu::vfio_ap {

/// CRYCB formats (CRYCB_FORMAT0/1/2). Format 2 (APXA + MSAX3) holds APCB1 with 256-bit masks;
/// formats 0 and 1 hold APCB0: apm 64 bits (ids 0-63), aqm and adm 16 bits (ids 0-15).
enum class CrycbFormat { Format0, Format1, Format2 };

/// An eventfd registered through VFIO_DEVICE_SET_IRQS: eventfd_signal adds one to the counter
/// and then runs the user space's reaction, if any (synchronously: there is no poll loop).
struct EventFd {
  std::uint64_t count = 0;
  std::function<void()> on_signal;
  void signal() {
    ++count;
    if (on_signal) on_signal();
  }
};

/// struct kvm as far as AP passthrough sees it.
class KvmGuest {
public:
  /// `has_crycb` false models crycbd == 0 (a guest without AP support: open_device then
  /// succeeds without attaching).
  explicit KvmGuest(std::string name, CrycbFormat format = CrycbFormat::Format2,
                    bool has_crycb = true)
      : m_name(std::move(name)), m_format(format), m_has_crycb(has_crycb) {}

  const std::string& name() const { return m_name; }
  CrycbFormat format() const { return m_format; }
  bool has_crycb() const { return m_has_crycb; }

  /// The masks the guest sees (APCB1, or APCB0 widened back to 256-bit masks).
  const ap::Mask256& apm() const { return m_apm; }
  const ap::Mask256& aqm() const { return m_aqm; }
  const ap::Mask256& adm() const { return m_adm; }
  /// Number of APCB writes (set or clear), i.e. vCPU-blocking CRYCB updates.
  std::uint64_t apcb_writes() const { return m_apcb_writes; }

  /// kvm_arch_crypto_set_masks: copies the masks into the CRYCB; APCB0 formats silently drop
  /// adapters above 63 and domains above 15. Locking: model lock (kvm->lock).
  void crypto_set_masks(const ap::Mask256& apm, const ap::Mask256& aqm, const ap::Mask256& adm);
  /// kvm_arch_crypto_clear_masks: zeroes APCB0 and APCB1.
  void crypto_clear_masks();

  /// kvm->arch.crypto.pqap_hook: the UUID of the mdev whose hook is installed ("" = none).
  const std::string& pqap_hook() const { return m_pqap_hook; }
  void set_pqap_hook(std::string uuid) { m_pqap_hook = std::move(uuid); }

private:
  std::string m_name;
  CrycbFormat m_format;
  bool m_has_crycb;
  ap::Mask256 m_apm, m_aqm, m_adm;
  std::uint64_t m_apcb_writes = 0;
  std::string m_pqap_hook;
};

} // namespace apemu::vfio_ap
