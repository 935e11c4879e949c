// vfio_ap's AP queue driver: probe/remove of the queue devices it binds, queue resets, the
// in_use veto of apmask/aqmask writes, host configuration changes and the queue `status` file
// (drivers/s390/crypto/vfio_ap_ops.c vfio_ap_mdev_probe_queue, _remove_queue, vfio_ap_mdev_
// resource_in_use, vfio_ap_on_cfg_changed, vfio_ap_on_scan_complete; vfio-ap.md §4.2–§4.5,
// §4.7, §5.6).
#include <algorithm>
#include <cstdio>

#include "apemu/vfio_ap/abi_names.h"
#include "private.h"

namespace apemu::vfio_ap {

// ---- resets (§5.6) ------------------------------------------------------------------------------

namespace {

/// The verification work sleeps 20 ms between TAPQs.
constexpr auto kVerifyInterval = std::chrono::milliseconds(20);
/// pr_notice_ratelimited: at most 10 notices per 5 s.
constexpr auto kNoticeWindow = std::chrono::seconds(5);
constexpr unsigned kNoticeBurst = 10;

bool reissue_after(int rc) {
  return rc == ap::rc::kResetInProgress || rc == ap::rc::kBusy ||
         rc == ap::rc::kStateChangeInProgress;
}

std::string apqn_text(Apqn q) {
  char b[16];
  std::snprintf(b, sizeof b, "%02x.%04x", id(q.apid), id(q.apqi));
  return b;
}

} // namespace

int VfioAp::reset_queue(VfioApQueue& q) {
  ap::ApFirmware& fw = m_bus->firmware();
  ++q.m_resets;
  ++m_total_resets;
  if (!profile().vfio_ap_reset_async_verify) {
    // ≤~6.5: synchronous. ZAPQ; on 02 retry once, else EBUSY; on 01/03/04 free the IRQ
    // resources and answer EBUSY; another code is EIO; success is verified by two TAPQs.
    ap::QueueStatus st = fw.zapq(q.m_apqn);
    if (st.response_code == ap::rc::kResetInProgress) st = fw.zapq(q.m_apqn);
    q.m_reset_rc = st.response_code;
    switch (st.response_code) {
    case ap::rc::kNormal: break;
    case ap::rc::kResetInProgress: return EBUSY;
    case ap::rc::kQNotAvail:
    case ap::rc::kDeconfigured:
    case ap::rc::kCheckstopped:
      if (q.m_saved_isc != 0xff)
        warn_once("irq-reset", "WARNING: vfio_ap_mdev_reset_queue: queue " + apqn_text(q.m_apqn) +
                                   " still had interruptions enabled");
      free_aqic_resources(q);
      return EBUSY;
    default:
      core().log().warn("WARNING: PQAP/ZAPQ for " + apqn_text(q.m_apqn) +
                        " failed with invalid rc=" + std::to_string(st.response_code));
      return EIO;
    }
    bool verified = false;
    for (int i = 0; i < 2 && !verified; ++i) {
      const ap::QueueStatus t = fw.tapq(q.m_apqn, false);
      verified = t.queue_empty && !t.irq_enabled;
    }
    if (!verified)
      warn_once("verify-" + apqn_text(q.m_apqn),
                "WARNING: unable to verify reset of queue " + apqn_text(q.m_apqn));
    free_aqic_resources(q);
    return 0;
  }
  // 6.5+: ZAPQ, store its status, then verify on a long-running work item.
  const ap::QueueStatus st = fw.zapq(q.m_apqn);
  q.m_reset_rc = st.response_code;
  switch (st.response_code) {
  case ap::rc::kNormal:
  case ap::rc::kResetInProgress:
  case ap::rc::kBusy:
  case ap::rc::kStateChangeInProgress:
    if (!q.m_verify_timer) {
      q.m_verify_start = core().runtime().now();
      q.m_notice_window = q.m_verify_start;
      q.m_notices = 0;
      schedule_verification(q);
    }
    break;
  case ap::rc::kDeconfigured:
  case ap::rc::kCheckstopped:
    free_aqic_resources(q); // no verification
    break;
  default:
    core().log().warn("WARNING: PQAP/ZAPQ for " + apqn_text(q.m_apqn) +
                      " failed with invalid rc=" + std::to_string(st.response_code));
  }
  return 0;
}

void VfioAp::schedule_verification(VfioApQueue& q) {
  const Apqn apqn = q.m_apqn;
  q.m_verify_timer = core().runtime().call_after(
      kVerifyInterval, [this, apqn] { verify_reset(apqn); },
      "vfio_ap reset verification " + apqn_text(apqn));
}

void VfioAp::verify_reset(Apqn apqn) {
  VfioApQueue* qp = queue(apqn);
  if (!qp) return;
  VfioApQueue& q = *qp;
  q.m_verify_timer = 0;
  ap::ApFirmware& fw = m_bus->firmware();
  const ap::QueueStatus t = fw.tapq(apqn, false);
  switch (t.response_code) {
  case ap::rc::kNormal:
  case ap::rc::kDeconfigured:
  case ap::rc::kCheckstopped:
    if (reissue_after(q.m_reset_rc)) {
      // The last ZAPQ did not start a reset: issue it again and keep verifying.
      q.m_reset_rc = fw.zapq(apqn).response_code;
      ++q.m_resets;
      ++m_total_resets;
      schedule_verification(q);
      return;
    }
    if (q.m_saved_isc != 0xff) free_aqic_resources(q);
    end_verification(q);
    return;
  case ap::rc::kResetInProgress:
  case ap::rc::kBusy: {
    const auto now = core().runtime().now();
    if (now - q.m_notice_window >= kNoticeWindow) {
      q.m_notice_window = now;
      q.m_notices = 0;
    }
    if (q.m_notices++ < kNoticeBurst) {
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - q.m_verify_start).count();
      core().log().info("Waited " + std::to_string(ms) + "ms for reset of queue " +
                        apqn_text(apqn) + " (" + std::to_string(t.response_code) + ", " +
                        std::to_string(t.queue_empty ? 1 : 0) + ", " +
                        std::to_string(t.irq_enabled ? 1 : 0) + ")");
    }
    schedule_verification(q);
    return;
  }
  case ap::rc::kAssocSecretNotUnique:
  case ap::rc::kAssocFailed:
    q.m_reset_rc = fw.zapq(apqn).response_code;
    schedule_verification(q);
    return;
  default:
    core().log().warn("WARNING: failed to verify reset of queue " + apqn_text(apqn) +
                      ": TAPQ rc=" + std::to_string(t.response_code));
    end_verification(q); // resources are not freed
  }
}

void VfioAp::end_verification(VfioApQueue& q) {
  if (q.m_verify_timer) core().runtime().cancel(q.m_verify_timer);
  q.m_verify_timer = 0;
  auto waiters = std::move(q.m_on_verified);
  q.m_on_verified.clear();
  for (auto& w : waiters) w();
}

std::shared_ptr<Completion> VfioAp::reset_queues(const std::vector<VfioApQueue*>& qs) {
  // Start all, then wait for all (§5.6 step 4).
  auto done = std::make_shared<Completion>();
  int sync_err = 0;
  for (VfioApQueue* q : qs)
    if (const int e = reset_queue(*q)) sync_err = e; // older profiles: the last error
  std::vector<Apqn> apqns;
  for (VfioApQueue* q : qs) apqns.push_back(q->m_apqn);
  auto outcome = [this, apqns, sync_err]() -> Result<void> {
    if (!profile().vfio_ap_reset_async_verify) {
      if (sync_err) return Error(sync_err);
      return {};
    }
    for (Apqn a : apqns)
      if (const VfioApQueue* q = queue(a); q && q->m_reset_rc != 0)
        return Error(EIO, "the reset of queue " + apqn_text(a) + " answered rc " +
                              std::to_string(q->m_reset_rc));
    return {};
  };
  auto remaining = std::make_shared<std::size_t>(0);
  for (VfioApQueue* q : qs) {
    if (!q->m_verify_timer) continue;
    ++*remaining;
    q->m_on_verified.push_back([done, remaining, outcome] {
      if (--*remaining == 0) done->complete(outcome());
    });
  }
  if (*remaining == 0) done->complete(outcome());
  return done;
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
      (void)reset_queue(*q);
    }
  }
  // The queue object goes: its IRQ resources are released and waiters of a verification still
  // running are told (the kernel flushes the work first).
  free_aqic_resources(*q);
  end_verification(*q);
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
