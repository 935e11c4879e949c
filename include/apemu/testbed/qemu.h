// The QEMU role: user space that runs KVM guests with a vfio-ap device (QEMU's hw/vfio/ap.c).
//
// Starting a guest creates its KVM (kvm::Kvm), opens the mdev's VFIO device (vfio_ap then
// writes the guest's APCB) and registers the request and configuration-change eventfds, in
// QEMU's order. When the kernel signals the request eventfd (an mdev `remove` wants the device
// back), QEMU unplugs the device: that reaction runs later as posted work on the machine's
// runtime, never inside the kernel path that signalled — unless the guest was started to ignore
// requests, in which case the remover waits until the guest is stopped.
//
// This is user space, not part of any kernel driver (STYLE.md §1): vfio_ap only sees the VFIO
// device calls.
//
// Locking: every function requires the machine lock.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apemu/base/eventfd.h"
#include "apemu/kvm/kvm.h"
#include "apemu/vfio_ap/vfio_ap.h"

namespace apemu::testbed {

struct GuestOptions {
  std::string name; ///< empty: "guest-<first 8 UUID chars>"
  kvm::CrycbFormat format = kvm::CrycbFormat::Format2;
  bool has_crycb = true;
  /// Unplug the device when the kernel requests it (QEMU's behaviour); false models a user that
  /// ignores device requests (`apemu ctl guest start --ignore-requests`).
  bool honour_requests = true;
};

class Qemu {
public:
  explicit Qemu(vfio_ap::VfioAp& vfio) : m_vfio(&vfio) {}
  /// Stops every guest (as their QEMU processes would exit).
  ~Qemu();
  Qemu(const Qemu&) = delete;
  Qemu& operator=(const Qemu&) = delete;

  /// Starts a guest on `m`: a new KVM, open_device, then the eventfds (profiles with VFIO IRQs).
  /// Returns: EBUSY when a guest already uses the mdev; open_device's errors (EPERM, ...).
  Result<std::shared_ptr<kvm::Kvm>> start(vfio_ap::MatrixMdev& m, GuestOptions opt = {});
  /// Stops the guest of mdev `uuid`: unregisters the eventfds, closes the device (a `remove`
  /// waiting for it completes, and the mdev may be gone afterwards). Returns: ENODEV when no
  /// guest uses it.
  Result<void> stop(const std::string& uuid);

  struct Guest {
    std::string uuid, name;
    std::shared_ptr<kvm::Kvm> kvm;
    std::shared_ptr<EventFd> request, cfg_chg;
    bool honour_requests = true;
  };
  /// The guest on mdev `uuid`, or null.
  const Guest* guest(const std::string& uuid) const;
  std::vector<const Guest*> guests() const;

private:
  void on_request(const std::string& uuid);
  vfio_ap::VfioAp* m_vfio;
  std::map<std::string, Guest> m_guests; ///< by mdev UUID
};

} // namespace apemu::testbed
