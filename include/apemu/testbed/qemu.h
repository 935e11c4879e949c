// The QEMU role: user space that runs KVM guests with a vfio-ap device (QEMU's hw/vfio/ap.c).
//
// Starting a guest creates its KVM (kvm::Kvm, with its memory, GISA and CPU model, on the
// machine's AP firmware), opens the mdev's VFIO device with that KVM (vfio_ap then writes the
// guest's APCB and installs its PQAP hook), asks VFIO_DEVICE_GET_INFO for the IRQ count and
// registers the request and configuration-change eventfds through VFIO_DEVICE_GET_IRQ_INFO and
// VFIO_DEVICE_SET_IRQS, in QEMU's order (guest-ap.md §7.3). The guest's operating system
// (guest::Guest) then runs on the VM. Stopping unregisters the eventfds (SET_IRQS with fd -1)
// and closes the device; reset() is VFIO_DEVICE_RESET. When the kernel signals the request eventfd (an mdev `remove` wants the device
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
#include "apemu/guest/guest.h"
#include "apemu/kvm/kvm.h"
#include "apemu/vfio_ap/vfio_ap.h"

namespace apemu::testbed {

struct GuestOptions {
  std::string name; ///< empty: "guest-<first 8 UUID chars>"
  kvm::CrycbFormat format = kvm::CrycbFormat::Format2;
  bool has_crycb = true;
  /// The rest of the VM's CPU model and state (format and has_crycb above win).
  kvm::KvmConfig vm;
  /// Unplug the device when the kernel requests it (QEMU's behaviour); false models a user that
  /// ignores device requests (`apemu ctl guest start --ignore-requests`).
  bool honour_requests = true;
};

class Qemu {
public:
  /// `machine`: the AP firmware the guests' instructions run on (null: guests hold masks only).
  explicit Qemu(vfio_ap::VfioAp& vfio, ap::ApFirmware* machine = nullptr)
      : m_vfio(&vfio), m_machine(machine) {}
  /// Stops every guest (as their QEMU processes would exit).
  ~Qemu();
  Qemu(const Qemu&) = delete;
  Qemu& operator=(const Qemu&) = delete;

  /// Starts a guest on `m`: a new KVM, open_device, then the eventfds (profiles with VFIO IRQs).
  /// Returns: EBUSY when a guest already uses the mdev; open_device's errors (EPERM, ...);
  /// the errno of a failing VFIO ioctl.
  Result<std::shared_ptr<kvm::Kvm>> start(vfio_ap::MatrixMdev& m, GuestOptions opt = {});
  /// Stops the guest of mdev `uuid`: unregisters the eventfds, closes the device (a `remove`
  /// waiting for it completes, and the mdev may be gone afterwards). Returns: ENODEV when no
  /// guest uses it.
  /// `uuid` by value: a caller may pass a reference into the guest table that stop() erases.
  Result<void> stop(std::string uuid);
  /// VFIO_DEVICE_RESET of the guest's device (QEMU's legacy device reset). Returns: ENODEV when
  /// no guest uses the mdev; else a completion with the ioctl's result (EIO when a queue's
  /// reset answered non-zero), done when the resets are verified.
  Result<std::shared_ptr<Completion>> reset(const std::string& uuid);

  struct Guest {
    std::string uuid, name;
    std::shared_ptr<kvm::Kvm> kvm;
    std::shared_ptr<EventFd> request, cfg_chg;
    bool honour_requests = true;
    /// The QEMU process's descriptors (the eventfds it registered).
    std::shared_ptr<FdTable> fds;
    /// The operating system in the VM (null without a machine).
    std::shared_ptr<guest::Guest> os;
  };
  /// The guest on mdev `uuid`, or null.
  const Guest* guest(const std::string& uuid) const;
  std::vector<const Guest*> guests() const;

private:
  void on_request(const std::string& uuid);
  /// Registers `efd` (null: fd -1) on IRQ `index` with GET_IRQ_INFO and SET_IRQS.
  Result<void> set_irq(vfio_ap::MatrixMdev& m, Guest& g, std::uint32_t index,
                       std::shared_ptr<EventFd> efd);
  vfio_ap::VfioAp* m_vfio;
  ap::ApFirmware* m_machine;
  std::map<std::string, Guest> m_guests; ///< by mdev UUID
};

} // namespace apemu::testbed
