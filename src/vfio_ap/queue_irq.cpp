// PQAP(AQIC) for a guest's queue: the hook KVM calls for an intercepted AQIC, the enable path
// (NIB pinning, PV rule, GISA ISC registration, the host AQIC with the GISA fields), the
// disable path and the release of the resources (drivers/s390/crypto/vfio_ap_ops.c
// handle_pqap, vfio_ap_irq_enable, vfio_ap_irq_disable, vfio_ap_free_aqic_resources;
// vfio-ap.md §6.2–§6.6).
#include <algorithm>
#include <cstdio>

#include "apemu/ap/ap_firmware.h"
#include "private.h"

namespace apemu::vfio_ap {

namespace {

/// Attempts of the disable path (§6.4).
constexpr int kDisableAttempts = 6;

std::string hex4(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "%04x", v);
  return b;
}
std::string hex2(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "%02x", v);
  return b;
}

} // namespace

void VfioAp::warn_once(const std::string& key, const std::string& text) {
  if (std::find(m_warned.begin(), m_warned.end(), key) != m_warned.end()) return;
  m_warned.push_back(key);
  core().log().warn(text);
}

int VfioAp::handle_pqap(const std::string& owner, kvm::Vcpu& v) {
  core().held();
  // 1. Without adapter-interruption virtualisation the instruction goes to user space.
  if (!v.kvm().config().aiv) {
    core().log().debug("vfio_ap: handle_pqap: AIV facility not installed");
    return EOPNOTSUPP;
  }
  // 2. Default answer: Q_NOT_AVAIL, no flag bits.
  ap::QueueStatus st = ap::QueueStatus::only(ap::rc::kQNotAvail);
  const Apqn apqn = ap::gr0::apqn_of(v.gr[0]);
  MatrixMdev* m = find_mdev(owner);
  if (!m || !m->m_kvm) {
    core().log().debug("vfio_ap: handle_pqap: mdev " + owner + " not in use"); // 3, 4
  } else if (VfioApQueue* q = queue(apqn); !q || q->m_mdev != m) {
    core().log().debug("vfio_ap: handle_pqap: Queue " + apqn.name() +
                       " not bound to the vfio_ap driver"); // 5
  } else if (ap::IrqControl::from_gr1(v.gr[1]).ir) {
    st = irq_enable(*q, static_cast<unsigned>(v.gr[1] & 7), v.gr[2], v.kvm()); // 6
  } else {
    st = irq_disable(*q);
  }
  // 7. The status word in bits 32-63, bits 0-31 zero (the guest's IR/ISC bits are gone).
  v.gr[1] = st.word();
  return 0;
}

ap::QueueStatus VfioAp::irq_enable(VfioApQueue& q, unsigned isc, std::uint64_t nib,
                                   kvm::Kvm& kvm) {
  using ap::QueueStatus;
  kvm::GuestMemory& mem = kvm.memory();
  // 1. NIB 0 is reserved (saved_iova 0 means "nothing pinned"); it must be guest memory.
  if (nib == 0 || !mem.contains(nib)) {
    core().log().debug("vfio_ap: vfio_ap_irq_enable: invalid NIB address " + hex4(static_cast<unsigned>(nib)));
    return QueueStatus::only(ap::rc::kInvalidAddress);
  }
  // 2-3. Pin the page through VFIO: the host address of the byte.
  auto pinned = mem.pin(nib);
  if (!pinned) {
    core().log().debug("vfio_ap: vfio_ap_irq_enable: vfio_pin_pages failed");
    return QueueStatus::only(ap::rc::kInvalidAddress);
  }
  // 4. A protected guest's NIB must be in memory it shares with the host.
  if (profile().vfio_ap_aqic_pv_shared_nib && kvm.config().protected_vm && !mem.shared(nib)) {
    mem.unpin(nib);
    return QueueStatus::only(ap::rc::kInvalidAddress);
  }
  // 5. Register the guest ISC with the GISA.
  auto nisc = kvm.gisa().gisc_register(isc);
  if (!nisc) {
    mem.unpin(nib);
    return QueueStatus::only(profile().vfio_ap_aqic_gisc_failure_rc);
  }
  // 6. The host AQIC with the GISA fields: the machine sets the guest's NIB and the GISA's
  // pending bit for the guest ISC.
  ap::IrqControl ctl;
  ctl.ir = true;
  ctl.isc = *nisc;
  ctl.gisc = isc;
  ctl.gf = 0;
  std::shared_ptr<kvm::Kvm> owner = q.m_mdev && q.m_mdev->m_kvm ? q.m_mdev->m_kvm : nullptr;
  std::weak_ptr<kvm::Kvm> weak = owner;
  ap::IrqRoute route{*pinned, [weak, isc] {
                       if (auto k = weak.lock()) k->gisa().set_pending(isc);
                     }};
  const QueueStatus st = m_bus->firmware().aqic(q.m_apqn, ctl, std::move(route));
  // 7.
  switch (st.response_code) {
  case ap::rc::kNormal:
    free_aqic_resources(q); // the previous registration, if any
    q.m_saved_iova = nib;
    q.m_saved_isc = isc;
    q.m_irq_kvm = std::move(owner);
    break;
  case ap::rc::kOtherwiseChanged:
    // Not changed: undo the new registration, the previous one stays.
    if (!kvm.gisa().gisc_unregister(isc))
      core().log().debug("vfio_ap: vfio_ap_irq_enable: kvm_s390_gisc_unregister failed");
    mem.unpin(nib);
    break;
  default:
    core().log().warn("vfio_ap_irq_enable: apqn " + hex4(q.m_apqn.qid()) + ": response: " +
                      hex2(static_cast<unsigned>(st.response_code)));
    (void)kvm.gisa().gisc_unregister(isc);
    mem.unpin(nib);
    (void)irq_disable(q);
    break;
  }
  if (st.response_code != ap::rc::kNormal)
    core().log().debug("vfio_ap: vfio_ap_irq_enable: " + q.m_apqn.name() + " isc=" +
                       std::to_string(isc) + " nib=0x" + hex4(static_cast<unsigned>(nib)) +
                       " rc=" + hex2(static_cast<unsigned>(st.response_code)));
  return st;
}

ap::QueueStatus VfioAp::irq_disable(VfioApQueue& q) {
  ap::ApFirmware& fw = m_bus->firmware();
  ap::QueueStatus st;
  bool settled = false;
  for (int attempt = 0; attempt < kDisableAttempts && !settled; ++attempt) {
    st = fw.aqic(q.m_apqn, ap::IrqControl{});
    switch (st.response_code) {
    case ap::rc::kNormal:
    case ap::rc::kOtherwiseChanged: {
      // Wait for the I bit to clear: up to 5 TAPQs.
      bool cleared = false;
      for (int i = 0; i < 5 && !cleared; ++i) {
        const ap::QueueStatus t = fw.tapq(q.m_apqn, false);
        if ((t.response_code == ap::rc::kNormal || t.response_code == ap::rc::kResetInProgress) &&
            t.irq_enabled)
          continue;
        if (t.response_code == ap::rc::kBusy) continue;
        cleared = true;
      }
      if (!cleared)
        warn_once("irq-clear", "WARNING: vfio_ap_wait_for_irqclear: " + q.m_apqn.name() +
                                   " could not clear IR bit");
      settled = true;
      break;
    }
    case ap::rc::kResetInProgress:
    case ap::rc::kBusy: continue; // retried (the 20 ms sleep takes no machine time)
    default:
      warn_once("aqic-status", "WARNING: vfio_ap_irq_disable: ap_aqic status " +
                                   std::to_string(st.response_code));
      settled = true;
    }
  }
  if (!settled)
    warn_once("aqic-retries", "WARNING: vfio_ap_irq_disable: ap_aqic status " +
                                  std::to_string(st.response_code));
  free_aqic_resources(q);
  return st;
}

void VfioAp::free_aqic_resources(VfioApQueue& q) {
  if (q.m_irq_kvm) {
    if (q.m_saved_isc != 0xff) (void)q.m_irq_kvm->gisa().gisc_unregister(q.m_saved_isc);
    if (q.m_saved_iova) q.m_irq_kvm->memory().unpin(q.m_saved_iova);
  }
  q.m_saved_isc = 0xff;
  q.m_saved_iova = 0;
  q.m_irq_kvm.reset();
}

} // namespace apemu::vfio_ap
