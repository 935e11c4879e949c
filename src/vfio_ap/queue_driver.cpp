// vfio_ap's AP queue driver: probe/remove of the queue devices it binds, queue resets, the
// in_use veto of apmask/aqmask writes, host configuration changes and the queue `status` file
// (drivers/s390/crypto/vfio_ap_ops.c vfio_ap_mdev_probe_queue, _remove_queue, vfio_ap_mdev_
// resource_in_use, vfio_ap_on_cfg_changed, vfio_ap_on_scan_complete; vfio-ap.md §4.2–§4.5,
// §4.7, §5.6).
#include <algorithm>

#include "apemu/vfio_ap/abi_names.h"
#include "private.h"

namespace apemu::vfio_ap {

// ---- resets (§5.6) ------------------------------------------------------------------------------

void VfioAp::reset_queue(VfioApQueue& q) {
  // PQAP(ZAPQ): the firmware answers as TAPQ would for this APQN.
  const int rc = m_bus->hw().tapq(q.m_apqn).rc;
  q.m_reset_rc = rc;
  ++q.m_resets;
  ++m_total_resets;
  switch (rc) {
  case ap::rc::kNormal:
  case ap::rc::kResetInProgress:
  case ap::rc::kBusy:
  case 0x0A: // STATE_CHANGE_IN_PROGRESS
    // The verification (TAPQ until done) completes at once: the simulated reset is immediate.
    q.m_saved_isc = 0xff;
    break;
  case ap::rc::kDeconfigured:
  case ap::rc::kCheckstopped:
    q.m_saved_isc = 0xff; // free IRQ resources now
    break;
  default:
    core().log().warn("WARNING: PQAP/ZAPQ for " + q.m_apqn.name() + " failed with invalid rc=" +
                      std::to_string(rc));
  }
}

int VfioAp::reset_queues(const std::vector<VfioApQueue*>& qs) {
  // Start all, then wait for all; EIO if any stored response code is non-zero.
  for (VfioApQueue* q : qs) reset_queue(*q);
  int ret = 0;
  for (VfioApQueue* q : qs)
    if (q->m_reset_rc != 0) ret = EIO;
  return ret;
}

void VfioAp::reset_queues_for_apids(MatrixMdev& m, const ApidMask& apids) {
  // Every linked queue (apid, apqi) with apqi in the shadow's aqm (§4.1).
  std::vector<VfioApQueue*> qs;
  apids.for_each([&](Apid a) {
    m.m_shadow.aqm.for_each([&](Apqi d) {
      VfioApQueue* q = queue({a, d});
      if (q && q->m_mdev == &m) qs.push_back(q);
    });
  });
  (void)reset_queues(qs);
}

// ---- probe and remove (§4.2, §4.3) --------------------------------------------------------------

Result<void> VfioAp::queue_probe(core::Device& dev) {
  auto& aq = static_cast<ap::ApQueue&>(dev); // the AP bus only binds queues to this driver
  std::unique_ptr<VfioApQueue> q(new VfioApQueue(aq));
  VfioApQueue* raw = q.get();
  m_queues[raw->m_apqn.qid()] = std::move(q);
  if (MatrixMdev* m = mdev_for_apqn(raw->m_apqn)) {
    raw->m_mdev = m;
    // While a host configuration add is pending, on_scan_complete filters.
    if (profile().vfio_ap_dynamic_config && m->m_apm_add.none() && m->m_aqm_add.none()) {
      ApidMask filtered;
      if (filter_matrix(*m, filtered)) {
        update_guest_apcb(*m);
        reset_queues_for_apids(*m, filtered);
      }
    }
  }
  dev.set_drvdata(raw);
  return {};
}

void VfioAp::queue_remove(core::Device& dev) {
  auto* q = static_cast<VfioApQueue*>(dev.drvdata());
  if (!q) return;
  const Apqn apqn = q->m_apqn;
  MatrixMdev* m = q->m_mdev;
  if (profile().vfio_ap_dynamic_config) {
    if (m && m->m_shadow.contains(apqn)) {
      // A single APQN cannot be hidden: the whole adapter leaves the guest.
      m->m_shadow.apm.clear(apqn.apid);
      update_guest_apcb(*m);
      std::vector<VfioApQueue*> qs;
      m->m_shadow.aqm.for_each([&](Apqi d) {
        VfioApQueue* lq = queue({apqn.apid, d});
        if (lq && lq->m_mdev == m) qs.push_back(lq);
      });
      if (std::find(qs.begin(), qs.end(), q) == qs.end()) qs.push_back(q);
      (void)reset_queues(qs);
    } else if (m_info.apm.test(apqn.apid) && m_info.aqm.test(apqn.apqi)) {
      // Outside the host configuration a ZAPQ would answer rc 01: only reset inside.
      reset_queue(*q);
    }
  }
  q->m_mdev = nullptr;
  dev.set_drvdata(nullptr);
  m_queues[apqn.qid()].reset();
}

// ---- in_use (§4.5) ------------------------------------------------------------------------------

int VfioAp::resource_in_use(const ApidMask& apm, const ApqiMask& aqm) {
  core().held();
  for (MatrixMdev* m : mdevs()) {
    const ApidMask a = apm & m->m_matrix.apm;
    const ApqiMask d = aqm & m->m_matrix.aqm;
    if (a.none() || d.none()) continue;
    a.for_each([&](Apid x) {
      d.for_each([&](Apqi y) {
        core().log().warn(mdev_prefix(*m) + "Can not reserve queue " + Apqn{x, y}.name() +
                          " for host driver: in use by mdev");
      });
    });
    return EADDRINUSE;
  }
  return 0;
}

// ---- host configuration changes (§4.4) ----------------------------------------------------------

void VfioAp::on_config_changed() {
  core().held();
  const ap::Qci prev = m_info;
  set_info(m_bus->hw().qci());

  // Removal: per mdev, unplug what was removed and is assigned (the intended semantics; the
  // kernel's accumulated flag and inverted control-domain intersection are not reproduced).
  const ApidMask aprem = prev.apm.minus(m_info.apm);
  const ApqiMask aqrem = prev.aqm.minus(m_info.aqm), cdrem = prev.adm.minus(m_info.adm);
  if (aprem.any() || aqrem.any() || cdrem.any()) {
    for (MatrixMdev* m : mdevs()) {
      const ApidMask a = aprem & m->m_matrix.apm;
      const ApqiMask q = aqrem & m->m_matrix.aqm, c = cdrem & m->m_matrix.adm;
      if (a.none() && q.none() && c.none()) continue;
      const ApMatrix before = m->m_shadow;
      m->m_shadow.apm = m->m_shadow.apm.minus(a);
      m->m_shadow.aqm = m->m_shadow.aqm.minus(q);
      m->m_shadow.adm = m->m_shadow.adm.minus(c);
      if (!(before.apm == m->m_shadow.apm) || !(before.aqm == m->m_shadow.aqm) ||
          !(before.adm == m->m_shadow.adm))
        update_guest_apcb(*m);
    }
  }
  // Addition: remember per mdev what was added and is assigned; on_scan_complete plugs it.
  ApidMask apm_add = m_info.apm.minus(prev.apm);
  const ApqiMask aqm_add = m_info.aqm.minus(prev.aqm), adm_add = m_info.adm.minus(prev.adm);
  if ((apm_add.any() || aqm_add.any() || adm_add.any()) && !m_list.empty()) {
    // Drop new adapters older than CEX4 or of unknown type (TAPQ on the new APQNs).
    const ApidMask candidates = apm_add;
    candidates.for_each([&](Apid a) {
      bool drop = false;
      aqm_add.for_each([&](Apqi d) {
        if (drop) return;
        const ap::TapqResult t = m_bus->hw().tapq({a, d});
        drop = !t.has_info() || t.at < ap::kApTypeCex4;
      });
      if (drop) apm_add.clear(a);
    });
    for (const auto& m : m_list) {
      m->m_apm_add = m->m_matrix.apm & apm_add;
      m->m_aqm_add = m->m_matrix.aqm & aqm_add;
      m->m_adm_add = m->m_matrix.adm & adm_add;
    }
  }
}

void VfioAp::on_scan_complete() {
  core().held();
  for (MatrixMdev* m : mdevs()) {
    if (m->m_apm_add.none() && m->m_aqm_add.none() && m->m_adm_add.none()) continue;
    const bool adapters = m->m_matrix.apm.intersects(m->m_apm_add);
    const bool domains = m->m_matrix.aqm.intersects(m->m_aqm_add);
    const bool cdoms = m->m_matrix.adm.intersects(m->m_adm_add);
    ApidMask filtered; // empty when only control domains were added (§4.4 last defect)
    bool update = false;
    if (adapters || domains) update = filter_matrix(*m, filtered);
    if (cdoms) update |= filter_cdoms(*m);
    if (update) update_guest_apcb(*m);
    reset_queues_for_apids(*m, filtered);
    m->m_apm_add = ApidMask{};
    m->m_aqm_add = m->m_adm_add = ApqiMask{};
  }
}

// ---- status (§4.7) ------------------------------------------------------------------------------

std::string VfioAp::queue_status(const VfioApQueue& q) const {
  core().held();
  const MatrixMdev* m = mdev_for_apqn(q.m_apqn);
  if (!m) return std::string(abi::kQueueUnassigned) + "\n";
  if (m->m_kvm && m->m_shadow.contains(q.m_apqn)) return std::string(abi::kQueueInUse) + "\n";
  return std::string(abi::kQueueAssigned) + "\n";
}

} // namespace apemu::vfio_ap
