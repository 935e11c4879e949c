// The VFIO device of a vfio_ap mdev: open/close with the KVM the user associated, RESET,
// SET_IRQS, the device request callback, and the wait of vfio_unregister_group_dev when the
// mdev is removed while in use (drivers/s390/crypto/vfio_ap_ops.c vfio_ap_mdev_open_device,
// _close_device, _ioctl, vfio_ap_mdev_request; drivers/vfio/vfio_main.c
// vfio_unregister_group_dev; vfio-ap.md §3.11, §5.2–§5.6, §7).
#include "private.h"

namespace apemu::vfio_ap {

namespace {

/// vfio_unregister_group_dev asks the user again every 10 seconds while it waits.
constexpr auto kRequestInterval = std::chrono::seconds(10);

} // namespace

Result<void> VfioAp::open_device(MatrixMdev& m, std::shared_ptr<kvm::Kvm> kvm) {
  core().held();
  if (m.m_open) return Error(EBUSY, "the VFIO device is already open");
  if (!kvm) return Error(EINVAL, "no KVM associated with the device");
  if (kvm->has_crycb()) {
    // The hook is redirected before the EPERM check (§10.8).
    kvm->set_pqap_hook(m.name());
    for (const auto& o : m_list)
      if (o.get() != &m && o->m_kvm == kvm)
        return Error(EPERM, "guest " + kvm->name() + " already uses mdev " + o->name());
    m.m_kvm = std::move(kvm);
    if (!profile().vfio_ap_dynamic_config) {
      // ≤5.19: the guest gets the assigned masks as they are, once.
      m.m_kvm->crypto_set_masks(m.m_matrix.apm, m.m_matrix.aqm, m.m_matrix.adm);
    } else {
      update_guest_apcb(m); // the current shadow, no re-filtering
    }
  }
  m.m_open = true;
  return {};
}

void VfioAp::close_device(MatrixMdev& m) {
  core().held();
  if (!m.m_open) return;
  m.m_open = false;
  if (m.m_kvm) {
    if (m.m_kvm->pqap_hook() == m.name()) m.m_kvm->set_pqap_hook({});
    m.m_kvm->crypto_clear_masks(); // not signalled on cfg_chg
    // 5.3+ resets the queues when the device is released.
    if (profile().vfio_ap_aqic) (void)reset_queues(linked_queues(m));
    m.m_kvm.reset();
  }
  // The last user is gone: a `remove` waiting for it goes on (and may free `m`).
  if (m.m_release) {
    if (m.m_request_timer) core().runtime().cancel(m.m_request_timer);
    m.m_request_timer = 0;
    std::shared_ptr<Completion> released = std::move(m.m_release);
    released->complete({});
  }
}

Result<void> VfioAp::device_reset(MatrixMdev& m) {
  core().held();
  if (const int rc = reset_queues(linked_queues(m)); rc) return Error(rc);
  return {};
}

Result<void> VfioAp::set_irq_eventfd(MatrixMdev& m, IrqIndex index, std::shared_ptr<EventFd> fd) {
  core().held();
  if (!profile().vfio_ap_request_irq) return Error(EOPNOTSUPP, "no VFIO IRQs before ~6.7");
  switch (index) {
  case IrqIndex::Request:
    m.m_req_trigger = std::move(fd);
    return {};
  case IrqIndex::CfgChg:
    if (!profile().vfio_ap_cfg_chg_irq) return Error(EINVAL, "no configuration-change IRQ");
    m.m_cfg_chg_trigger = std::move(fd);
    return {};
  }
  return Error(EINVAL);
}

void VfioAp::request(MatrixMdev& m, unsigned count) {
  core().held();
  if (!profile().vfio_ap_request_irq) return; // no request callback before ~6.7
  if (m.m_kvm && profile().vfio_ap_cfg_chg_irq) {
    // [6.15+] the guest loses its AP resources at once and is told so.
    m.m_kvm->crypto_clear_masks();
    if (m.m_cfg_chg_trigger) m.m_cfg_chg_trigger->signal();
  }
  if (m.m_req_trigger) {
    if (count % 10 == 0)
      core().log().info(mdev_prefix(m) + "Relaying device request to user (#" +
                        std::to_string(count) + ")");
    m.m_req_trigger->signal(); // user space reacts later, on its own
  } else if (count == 0) {
    core().log().info(mdev_prefix(m) +
                      "No device request registered, blocked until released by user");
  }
}

Result<std::shared_ptr<Completion>> VfioAp::mdev_unregister_wait(mdev::MdevDevice& dev) {
  MatrixMdev& m = mdev_of(dev);
  if (!m.m_open) return std::shared_ptr<Completion>();
  if (profile().mdev_remove_in_use == profile::MdevRemoveInUse::Ebusy)
    return Error(EBUSY, "a guest uses the mdev");
  // vfio_unregister_group_dev: ask the user to release the device (count 0 first), then wait,
  // asking again every 10 s, until close_device completes the wait.
  m.m_request_count = 0;
  request(m, m.m_request_count++);
  m.m_release = std::make_shared<Completion>();
  m.m_request_timer = core().runtime().call_after(
      kRequestInterval, [this, &m] { rerequest(m); }, "vfio_ap device request " + m.name());
  m.m_release->on_cancel([this, &m] {
    // The remover gave up (its write was interrupted): stop asking; the device stays open.
    if (m.m_request_timer) core().runtime().cancel(m.m_request_timer);
    m.m_request_timer = 0;
    m.m_release.reset();
  });
  return m.m_release;
}

void VfioAp::rerequest(MatrixMdev& m) {
  m.m_request_timer = 0;
  if (!m.m_release) return;
  request(m, m.m_request_count++);
  m.m_request_timer = core().runtime().call_after(
      kRequestInterval, [this, &m] { rerequest(m); }, "vfio_ap device request " + m.name());
}

} // namespace apemu::vfio_ap
