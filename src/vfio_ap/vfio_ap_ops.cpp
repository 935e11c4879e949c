// vfio_ap's rules: mdev probe/remove, the assignment attributes with their exact check order
// and errno, filtering into the shadow APCB and hot plug, queue probe/remove, in_use, host
// configuration changes, open/close of the VFIO device, device requests and queue resets
// (drivers/s390/crypto/vfio_ap_ops.c; vfio-ap.md §3, §4, §5, §9). Profile differences are
// listed in vfio_ap.h.
#include <algorithm>
#include <cstdio>

#include "apemu/base/parse.h"
#include "apemu/vfio_ap/abi_names.h"
#include "apemu/vfio_ap/vfio_ap.h"
#include "vfio_ap_private.h"

namespace apemu::vfio_ap {

namespace {

/// Bytes of a complete ap_config value: three "0x" + 64 digits masks and separators
/// (AP_CONFIG_STRLEN, §3.8).
constexpr std::size_t kApConfigStrlen = 201;
/// A show() buffer holds at most PAGE_SIZE - 1 characters (sysfs_emit_at, §3.6).
constexpr std::size_t kShowMax = 4095;

unsigned apqn_index(unsigned apid, unsigned apqi) { return apid * ap::kMaxApIds + apqi; }

/// Response codes after which a queue may be passed to a guest (§4.1 step 3).
bool passable_rc(int rc) {
  return rc == ap::rc::kNormal || rc == ap::rc::kDeconfigured || rc == ap::rc::kCheckstopped;
}

/// ap_hex2bitmap on one ap_config token (§3.8 step 4). Returns: EINVAL.
Result<IdSet> hex2bitmap(std::string_view s) {
  std::size_t pos = 0;
  if (s.size() >= 2 && s[0] == '0' && s[1] == 'x') pos = 1;
  if (pos < s.size() && s[pos] == 'x') ++pos;
  IdSet out;
  unsigned i = 0;
  for (; pos < s.size() && i < 256; ++pos) {
    const char c = s[pos];
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      break;
    for (unsigned n = 0; n < 4; ++n)
      if (v & (0x8 >> n)) out.set(i + n);
    i += 4;
  }
  if (pos < s.size() && s[pos] == '\n') ++pos;
  if (pos < s.size()) return Error(EINVAL, "bad ap_config mask");
  return out;
}

void erase_from(std::vector<MatrixMdev*>& v, MatrixMdev* m) {
  auto it = std::find(v.begin(), v.end(), m);
  if (it != v.end()) v.erase(it);
}

} // namespace

std::string apqn_name(unsigned apid, unsigned apqi) {
  char b[16];
  std::snprintf(b, sizeof b, "%02x.%04x", apid, apqi);
  return b;
}

// ---- common helpers -----------------------------------------------------------------------------

MatrixMdev& VfioAp::mdev_of(core::Device& d) { return *static_cast<MatrixMdev*>(d.drvdata()); }

std::string VfioAp::mdev_prefix(const MatrixMdev& m) const {
  // dev_warn: "<driver> <device>: "
  return m.mdev().driver_string() + " " + m.name() + ": ";
}

void VfioAp::set_info(const ap::Qci& qci) {
  if (qci.available) {
    m_info = qci;
  } else {
    // No QCI: the cached block stays all zero (§1.5, §2.2).
    m_info = ap::Qci{};
    m_info.available = false;
    m_info.apsc = m_info.apxa = m_info.qact = m_info.rc8a = m_info.apsb = false;
    m_info.na = m_info.nd = 0;
  }
  m_info_apm = IdSet::from_mask(m_info.apm);
  m_info_aqm = IdSet::from_mask(m_info.aqm);
  m_info_adm = IdSet::from_mask(m_info.adm);
}

ApMatrix VfioAp::init_matrix() const {
  // vfio_ap_matrix_init: Na/Nd with APXA, else 63/15/15 (§2.2).
  ApMatrix mx;
  mx.apm_max = m_info.apxa ? m_info.na : 63;
  mx.aqm_max = m_info.apxa ? m_info.nd : 15;
  mx.adm_max = m_info.apxa ? m_info.nd : 15;
  return mx;
}

std::vector<MatrixMdev*> VfioAp::mdevs() const {
  core().held();
  std::vector<MatrixMdev*> out;
  out.reserve(m_list.size());
  for (auto it = m_list.rbegin(); it != m_list.rend(); ++it) out.push_back(it->get());
  return out;
}

MatrixMdev* VfioAp::find_mdev(std::string_view uuid) const {
  core().held();
  auto parsed = parse_uuid(uuid);
  if (!parsed) return nullptr;
  const std::string name = parsed->str();
  for (const auto& m : m_list)
    if (m->name() == name) return m.get();
  return nullptr;
}

VfioApQueue* VfioAp::queue(unsigned apid, unsigned apqi) const {
  if (apid >= ap::kMaxApIds || apqi >= ap::kMaxApIds || m_queues.empty()) return nullptr;
  return m_queues[apqn_index(apid, apqi)].get();
}

bool VfioAp::apqn_bound_to_vfio_ap(unsigned apid, unsigned apqi) const {
  if (!m_ap_driver) return false;
  core::Core& core = m_bus->core();
  core.held();
  return core.driver_for_each_device(*m_ap_driver, nullptr, [&](core::Device& d) {
           const auto& q = static_cast<const ap::ApQueue&>(d);
           return q.apid() == apid && q.apqi() == apqi ? 1 : 0;
         }) == 1;
}

MatrixMdev* VfioAp::mdev_for_apqn(unsigned apid, unsigned apqi) const {
  // The first mdev in list order (newest first) whose matrix holds the APQN.
  MatrixMdev* best = nullptr;
  for (MatrixMdev* m : m_by_apid[apid])
    if (m->m_matrix.aqm.test(apqi) && (!best || m->seq() > best->seq())) best = m;
  return best;
}

std::vector<VfioApQueue*> VfioAp::linked_queues(const MatrixMdev& m) const {
  std::vector<VfioApQueue*> out;
  m.m_matrix.apm.for_each([&](unsigned a) {
    m.m_matrix.aqm.for_each([&](unsigned d) {
      VfioApQueue* q = queue(a, d);
      if (q && q->m_mdev == &m) out.push_back(q);
    });
  });
  return out;
}

// ---- resets (§5.6) ------------------------------------------------------------------------------

void VfioAp::reset_queue(VfioApQueue& q) {
  // PQAP(ZAPQ): the firmware answers as TAPQ would for this APQN.
  const int rc = m_bus->hw().tapq(q.m_apid, q.m_apqi).rc;
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
    core().log().warn("WARNING: PQAP/ZAPQ for " + apqn_name(q.m_apid, q.m_apqi) +
                      " failed with invalid rc=" + std::to_string(rc));
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

void VfioAp::reset_queues_for_apids(MatrixMdev& m, const IdSet& apids) {
  // Every linked queue (apid, apqi) with apqi in the shadow's aqm (§4.1).
  std::vector<VfioApQueue*> qs;
  apids.for_each([&](unsigned a) {
    m.m_shadow.aqm.for_each([&](unsigned d) {
      VfioApQueue* q = queue(a, d);
      if (q && q->m_mdev == &m) qs.push_back(q);
    });
  });
  (void)reset_queues(qs);
}

// ---- filtering and the guest APCB (§4.1, §4.6) --------------------------------------------------

bool VfioAp::passable(const MatrixMdev& m, unsigned apid, unsigned apqi) const {
  const VfioApQueue* q = queue(apid, apqi);
  return q && q->m_mdev == &m && passable_rc(q->m_reset_rc);
}

bool VfioAp::filter_matrix(MatrixMdev& m, IdSet& apm_filtered) {
  const IdSet prev_apm = m.m_shadow.apm, prev_aqm = m.m_shadow.aqm;
  const ApMatrix fresh = init_matrix();
  m.m_shadow.apm_max = fresh.apm_max;
  m.m_shadow.aqm_max = fresh.aqm_max;
  m.m_shadow.adm_max = fresh.adm_max;
  apm_filtered = IdSet{};
  // Over-provisioned resources (assigned, not in the host configuration) stay hidden.
  m.m_shadow.apm = m.m_matrix.apm & m_info_apm;
  m.m_shadow.aqm = m.m_matrix.aqm & m_info_aqm;
  // An adapter is the unit the architecture can hide: one missing queue drops it.
  const IdSet apids = m.m_shadow.apm;
  apids.for_each([&](unsigned a) {
    bool ok = true;
    m.m_shadow.aqm.for_each([&](unsigned d) {
      if (ok && !passable(m, a, d)) ok = false;
    });
    if (!ok) {
      m.m_shadow.apm.clear(a);
      if (prev_apm.test(a)) apm_filtered.set(a);
    }
  });
  return !(m.m_shadow.apm == prev_apm) || !(m.m_shadow.aqm == prev_aqm);
}

bool VfioAp::filter_cdoms(MatrixMdev& m) {
  const IdSet prev = m.m_shadow.adm;
  m.m_shadow.adm = m.m_matrix.adm & m_info_adm;
  return !(prev == m.m_shadow.adm);
}

void VfioAp::update_guest_apcb(MatrixMdev& m) {
  if (!m.m_kvm) return;
  m.m_kvm->crypto_set_masks(m.m_shadow.apm.to_mask(), m.m_shadow.aqm.to_mask(),
                            m.m_shadow.adm.to_mask());
  // [6.15+] every APCB update is signalled on the configuration-change eventfd.
  if (m.m_cfg_chg_trigger) m.m_cfg_chg_trigger->signal();
}

// ---- ownership and sharing (§3.3 step 5, §4.5)
// ----------------------------------------------------

bool VfioAp::owned_by_default(const IdSet& apm, const IdSet& aqm) {
  if (m_bus->override_count() > 0)
    return m_bus->matrix_owned_by_default(apm.to_mask(), aqm.to_mask());
  // Without driver_override, an APQN is default-owned iff its APID is in apmask and its APQI
  // in aqmask, so the matrix test reduces to two intersections.
  if (!m_masks_cached || !(m_seen_apmask == m_bus->apmask()) ||
      !(m_seen_aqmask == m_bus->aqmask())) {
    m_seen_apmask = m_bus->apmask();
    m_seen_aqmask = m_bus->aqmask();
    m_apmask = IdSet::from_mask(m_seen_apmask);
    m_aqmask = IdSet::from_mask(m_seen_aqmask);
    m_masks_cached = true;
  }
  return apm.intersects(m_apmask) && aqm.intersects(m_aqmask);
}

MatrixMdev* VfioAp::find_sharer(const MatrixMdev& m, const IdSet* new_apids,
                                const IdSet* new_apqis) const {
  // The kernel walks the mdev list (newest first) and reports the first mdev whose apm and aqm
  // both intersect the new matrix. Assignments never overlap before a change, so any such mdev
  // holds one of the newly added ids: the per-id index yields the same candidates.
  MatrixMdev* best = nullptr;
  auto consider = [&](MatrixMdev* o) {
    if (o == &m || (best && best->seq() >= o->seq())) return;
    if (m.m_matrix.apm.intersects(o->m_matrix.apm) && m.m_matrix.aqm.intersects(o->m_matrix.aqm))
      best = o;
  };
  if (!new_apids && !new_apqis) {
    for (const auto& o : m_list) consider(o.get());
    return best;
  }
  if (new_apids)
    new_apids->for_each([&](unsigned a) {
      for (MatrixMdev* o : m_by_apid[a]) consider(o);
    });
  if (new_apqis)
    new_apqis->for_each([&](unsigned d) {
      for (MatrixMdev* o : m_by_apqi[d]) consider(o);
    });
  return best;
}

void VfioAp::log_sharing(const MatrixMdev& assignee, const MatrixMdev& holder) const {
  const IdSet apm = assignee.m_matrix.apm & holder.m_matrix.apm;
  const IdSet aqm = assignee.m_matrix.aqm & holder.m_matrix.aqm;
  apm.for_each([&](unsigned a) {
    aqm.for_each([&](unsigned d) {
      core().log().warn(mdev_prefix(assignee) + "Userspace may not assign queue " +
                        apqn_name(a, d) + " to mdev: already assigned to " + holder.name());
    });
  });
}

Result<void> VfioAp::validate_masks(MatrixMdev& m, const IdSet* new_apids, const IdSet* new_apqis) {
  if (owned_by_default(m.m_matrix.apm, m.m_matrix.aqm))
    return Error(EADDRNOTAVAIL, "an APQN is reserved for the host's default drivers");
  if (MatrixMdev* o = find_sharer(m, new_apids, new_apqis)) {
    log_sharing(m, *o);
    return Error(EADDRINUSE, "an APQN is assigned to mdev " + o->name());
  }
  return {};
}

void VfioAp::index_set(MatrixMdev& m, const ApMatrix& old) {
  old.apm.minus(m.m_matrix.apm).for_each([&](unsigned a) { erase_from(m_by_apid[a], &m); });
  m.m_matrix.apm.minus(old.apm).for_each([&](unsigned a) { m_by_apid[a].push_back(&m); });
  old.aqm.minus(m.m_matrix.aqm).for_each([&](unsigned d) { erase_from(m_by_apqi[d], &m); });
  m.m_matrix.aqm.minus(old.aqm).for_each([&](unsigned d) { m_by_apqi[d].push_back(&m); });
}

void VfioAp::link_apqn(MatrixMdev& m, unsigned apid, unsigned apqi) {
  // Only queue devices bound to vfio_ap have a vfio_ap queue.
  if (VfioApQueue* q = queue(apid, apqi)) q->m_mdev = &m;
}

// ---- hot unplug (§3.4)
// ----------------------------------------------------------------------------

void VfioAp::hot_unplug_adapters(MatrixMdev& m, const IdSet& apids) {
  if (apids.none()) return;
  std::vector<VfioApQueue*> qlist;
  apids.for_each([&](unsigned a) {
    m.m_matrix.aqm.for_each([&](unsigned d) {
      VfioApQueue* q = queue(a, d);
      if (!q || q->m_mdev != &m) return;
      q->m_mdev = nullptr; // unlink
      if (m.m_shadow.contains(a, d)) qlist.push_back(q);
    });
  });
  const IdSet gone = m.m_shadow.apm & apids;
  if (gone.any()) {
    m.m_shadow.apm = m.m_shadow.apm.minus(apids);
    update_guest_apcb(m);
  }
  (void)reset_queues(qlist);
}

void VfioAp::hot_unplug_domains(MatrixMdev& m, const IdSet& apqis) {
  if (apqis.none()) return;
  std::vector<VfioApQueue*> qlist;
  m.m_matrix.apm.for_each([&](unsigned a) {
    apqis.for_each([&](unsigned d) {
      VfioApQueue* q = queue(a, d);
      if (!q || q->m_mdev != &m) return;
      q->m_mdev = nullptr;
      if (m.m_shadow.contains(a, d)) qlist.push_back(q);
    });
  });
  const IdSet gone = m.m_shadow.aqm & apqis;
  if (gone.any()) {
    m.m_shadow.aqm = m.m_shadow.aqm.minus(apqis);
    update_guest_apcb(m);
  }
  (void)reset_queues(qlist);
}

// ---- assign / unassign (§3.3, §3.4, §3.10)
// ------------------------------------------------------------

Result<void> VfioAp::assign_adapter(MatrixMdev& m, std::string_view text) {
  return assign_id(m, text, true);
}
Result<void> VfioAp::assign_domain(MatrixMdev& m, std::string_view text) {
  return assign_id(m, text, false);
}
Result<void> VfioAp::unassign_adapter(MatrixMdev& m, std::string_view text) {
  return unassign_id(m, text, true);
}
Result<void> VfioAp::unassign_domain(MatrixMdev& m, std::string_view text) {
  return unassign_id(m, text, false);
}

Result<void> VfioAp::assign_id(MatrixMdev& m, std::string_view text, bool adapter) {
  core().held();
  if (legacy()) return assign_id_legacy(m, text, adapter ? 0 : 1);
  APEMU_TRY(std::uint64_t id, kstrtoul(text, 0));
  if (id > (adapter ? m.m_matrix.apm_max : m.m_matrix.aqm_max)) return Error(ENODEV);
  const unsigned n = static_cast<unsigned>(id);
  IdSet& mask = adapter ? m.m_matrix.apm : m.m_matrix.aqm;
  if (mask.test(n)) return {}; // already assigned: no re-filter, no log
  mask.set(n);
  IdSet one;
  one.set(n);
  if (auto r = validate_masks(m, adapter ? &one : nullptr, adapter ? nullptr : &one); !r) {
    mask.clear(n);
    return r;
  }
  (adapter ? m_by_apid : m_by_apqi)[n].push_back(&m);
  if (adapter)
    m.m_matrix.aqm.for_each([&](unsigned d) { link_apqn(m, n, d); });
  else
    m.m_matrix.apm.for_each([&](unsigned a) { link_apqn(m, a, n); });
  IdSet filtered;
  if (filter_matrix(m, filtered)) {
    update_guest_apcb(m);
    reset_queues_for_apids(m, filtered);
  }
  return {};
}

Result<void> VfioAp::unassign_id(MatrixMdev& m, std::string_view text, bool adapter) {
  core().held();
  if (legacy()) return unassign_id_legacy(m, text, adapter ? 0 : 1);
  APEMU_TRY(std::uint64_t id, kstrtoul(text, 0));
  if (id > (adapter ? m.m_matrix.apm_max : m.m_matrix.aqm_max)) return Error(ENODEV);
  const unsigned n = static_cast<unsigned>(id);
  IdSet& mask = adapter ? m.m_matrix.apm : m.m_matrix.aqm;
  if (!mask.test(n)) return {};
  mask.clear(n);
  erase_from((adapter ? m_by_apid : m_by_apqi)[n], &m);
  IdSet one;
  one.set(n);
  if (adapter)
    hot_unplug_adapters(m, one);
  else
    hot_unplug_domains(m, one);
  return {};
}

Result<void> VfioAp::assign_control_domain(MatrixMdev& m, std::string_view text) {
  core().held();
  if (legacy()) return assign_id_legacy(m, text, 2);
  APEMU_TRY(std::uint64_t id, kstrtoul(text, 0));
  if (id > m.m_matrix.adm_max) return Error(ENODEV);
  const unsigned n = static_cast<unsigned>(id);
  if (m.m_matrix.adm.test(n)) return {};
  // No reservation and no sharing check: control domains may be shared (§3.5).
  m.m_matrix.adm.set(n);
  if (filter_cdoms(m)) update_guest_apcb(m);
  return {};
}

Result<void> VfioAp::unassign_control_domain(MatrixMdev& m, std::string_view text) {
  core().held();
  if (legacy()) return unassign_id_legacy(m, text, 2);
  APEMU_TRY(std::uint64_t id, kstrtoul(text, 0));
  if (id > m.m_matrix.adm_max) return Error(ENODEV);
  const unsigned n = static_cast<unsigned>(id);
  if (!m.m_matrix.adm.test(n)) return {};
  m.m_matrix.adm.clear(n);
  if (m.m_shadow.adm.test(n)) {
    m.m_shadow.adm.clear(n);
    update_guest_apcb(m);
  }
  return {};
}

/// The common prefix of the ≤5.19 stores (§3.10): EBUSY while attached (before parsing), the
/// kstrtoul errors, ENODEV above the maximum id of that kind (0 adapter, 1 domain, 2 control).
static Result<unsigned> legacy_id(const MatrixMdev& m, std::string_view text, int kind) {
  if (m.kvm()) return Error(EBUSY, "a guest uses the mdev");
  APEMU_TRY(std::uint64_t id, kstrtoul(text, 0));
  const unsigned max = kind == 0   ? m.matrix().apm_max
                       : kind == 1 ? m.matrix().aqm_max
                                   : m.matrix().adm_max;
  if (id > max) return Error(ENODEV);
  return static_cast<unsigned>(id);
}

Result<void> VfioAp::assign_id_legacy(MatrixMdev& m, std::string_view text, int kind) {
  APEMU_TRY(const unsigned n, legacy_id(m, text, kind));
  if (kind == 2) {
    m.m_matrix.adm.set(n);
    return {};
  }
  // Reservation = "bound to vfio_ap": every APQN of the new id with the other dimension's
  // assigned ids must be a queue bound to vfio_ap; with none assigned, at least one.
  const IdSet& others = kind == 0 ? m.m_matrix.aqm : m.m_matrix.apm;
  bool reserved = true;
  if (others.none()) {
    reserved = false;
    for (unsigned o = 0; o < ap::kMaxApIds && !reserved; ++o)
      reserved = (kind == 0 ? queue(n, o) : queue(o, n)) != nullptr;
  } else {
    others.for_each([&](unsigned o) {
      if (!(kind == 0 ? queue(n, o) : queue(o, n))) reserved = false;
    });
  }
  if (!reserved) return Error(EADDRNOTAVAIL, "an APQN is not bound to vfio_ap");
  IdSet& mask = kind == 0 ? m.m_matrix.apm : m.m_matrix.aqm;
  const bool was = mask.test(n);
  mask.set(n);
  IdSet one;
  one.set(n);
  if (find_sharer(m, kind == 0 ? &one : nullptr, kind == 1 ? &one : nullptr)) {
    if (!was) mask.clear(n);
    return Error(EADDRINUSE);
  }
  if (!was) {
    (kind == 0 ? m_by_apid : m_by_apqi)[n].push_back(&m);
    if (kind == 0)
      m.m_matrix.aqm.for_each([&](unsigned d) { link_apqn(m, n, d); });
    else
      m.m_matrix.apm.for_each([&](unsigned a) { link_apqn(m, a, n); });
  }
  return {};
}

Result<void> VfioAp::unassign_id_legacy(MatrixMdev& m, std::string_view text, int kind) {
  APEMU_TRY(const unsigned n, legacy_id(m, text, kind));
  if (kind == 2) {
    m.m_matrix.adm.clear(n);
    return {};
  }
  IdSet& mask = kind == 0 ? m.m_matrix.apm : m.m_matrix.aqm;
  if (!mask.test(n)) return {};
  // Unlink while the bit is still set, then clear it.
  if (kind == 0)
    m.m_matrix.aqm.for_each([&](unsigned d) {
      if (VfioApQueue* q = queue(n, d); q && q->m_mdev == &m) q->m_mdev = nullptr;
    });
  else
    m.m_matrix.apm.for_each([&](unsigned a) {
      if (VfioApQueue* q = queue(a, n); q && q->m_mdev == &m) q->m_mdev = nullptr;
    });
  mask.clear(n);
  erase_from((kind == 0 ? m_by_apid : m_by_apqi)[n], &m);
  return {};
}

// ---- ap_config (§3.8)
// -----------------------------------------------------------------------------

Result<void> VfioAp::ap_config_store(MatrixMdev& m, std::string_view text) {
  core().held();
  if (legacy()) return Error(EOPNOTSUPP, "ap_config needs a 6.10+ profile");
  // kstrndup(buf, AP_CONFIG_STRLEN): at most 201 bytes, up to the first NUL.
  text = text.substr(0, kApConfigStrlen);
  text = text.substr(0, text.find('\0'));
  // strsep(",\n") three times; a NULL (no separator left) before the third mask is EINVAL.
  IdSet masks[3];
  std::size_t start = 0;
  bool rest_null = false;
  for (auto& mask : masks) {
    if (rest_null) return Error(EINVAL, "ap_config needs three masks");
    const std::size_t sep = text.find_first_of(",\n", start);
    std::string_view tok;
    if (sep == std::string_view::npos) {
      tok = text.substr(start);
      rest_null = true;
    } else {
      tok = text.substr(start, sep - start);
      start = sep + 1;
    }
    APEMU_TRY(mask, hex2bitmap(tok));
  }
  const ApMatrix old = m.m_matrix;
  ApMatrix next = old;
  next.apm = masks[0];
  next.aqm = masks[1];
  next.adm = masks[2];
  const IdSet removed_apm = old.apm.minus(next.apm), removed_aqm = old.aqm.minus(next.aqm);
  const IdSet added_apm = next.apm.minus(old.apm), added_aqm = next.aqm.minus(old.aqm);

  // Validate the new state in place; any failure restores the old one (all or nothing).
  m.m_matrix = next;
  auto restore = [&](Error e) -> Result<void> {
    m.m_matrix = old;
    return e;
  };
  if (auto r = validate_masks(m, nullptr, nullptr); !r) return restore(r.error());
  // The range check comes after ownership and sharing here (§10.5).
  if (next.apm.minus(next.apm.up_to(next.apm_max)).any() ||
      next.aqm.minus(next.aqm.up_to(next.aqm_max)).any() ||
      next.adm.minus(next.adm.up_to(next.adm_max)).any())
    return restore(Error(ENODEV, "a mask has an id above the maximum"));

  // Unplug with the old masks in place, then install the new ones and link what was added.
  m.m_matrix = old;
  hot_unplug_adapters(m, removed_apm);
  hot_unplug_domains(m, removed_aqm);
  m.m_matrix = next;
  index_set(m, old);
  added_apm.for_each(
      [&](unsigned a) { m.m_matrix.aqm.for_each([&](unsigned d) { link_apqn(m, a, d); }); });
  added_aqm.for_each(
      [&](unsigned d) { m.m_matrix.apm.for_each([&](unsigned a) { link_apqn(m, a, d); }); });
  IdSet filtered;
  bool update = filter_matrix(m, filtered);
  update |= filter_cdoms(m);
  if (update) {
    update_guest_apcb(m);
    reset_queues_for_apids(m, filtered);
  }
  return {};
}

std::string VfioAp::ap_config_show(const MatrixMdev& m) const {
  core().held();
  return m.m_matrix.apm.hex() + "," + m.m_matrix.aqm.hex() + "," + m.m_matrix.adm.hex() + "\n";
}

// ---- shows (§3.6, §3.7, §4.7)
// -------------------------------------------------------------------------

std::string VfioAp::show_apqns(const ApMatrix& mx) {
  const IdSet apm = mx.apm.up_to(mx.apm_max), aqm = mx.aqm.up_to(mx.aqm_max);
  std::string out;
  char b[16];
  auto emit = [&](int n) {
    if (out.size() < kShowMax) out.append(b, static_cast<std::size_t>(n));
  };
  if (apm.any() && aqm.any()) {
    apm.for_each([&](unsigned a) {
      aqm.for_each([&](unsigned d) { emit(std::snprintf(b, sizeof b, "%02x.%04x\n", a, d)); });
    });
  } else if (apm.any()) {
    apm.for_each([&](unsigned a) { emit(std::snprintf(b, sizeof b, "%02x.\n", a)); });
  } else if (aqm.any()) {
    aqm.for_each([&](unsigned d) { emit(std::snprintf(b, sizeof b, ".%04x\n", d)); });
  }
  if (out.size() > kShowMax) out.resize(kShowMax); // cut mid-line, as the page buffer does
  return out;
}

std::string VfioAp::matrix_show(const MatrixMdev& m) const {
  core().held();
  return show_apqns(m.m_matrix);
}

std::string VfioAp::guest_matrix_show(const MatrixMdev& m) const {
  core().held();
  return show_apqns(m.m_shadow);
}

std::string VfioAp::control_domains_show(const MatrixMdev& m) const {
  core().held();
  std::string out;
  char b[16];
  m.m_matrix.adm.up_to(m.m_matrix.adm_max).for_each([&](unsigned d) {
    std::snprintf(b, sizeof b, "%04x\n", d);
    out += b;
  });
  return out;
}

std::string VfioAp::queue_status(const VfioApQueue& q) const {
  core().held();
  const MatrixMdev* m = mdev_for_apqn(q.m_apid, q.m_apqi);
  if (!m) return std::string(abi::kQueueUnassigned) + "\n";
  if (m->m_kvm && m->m_shadow.contains(q.m_apid, q.m_apqi))
    return std::string(abi::kQueueInUse) + "\n";
  return std::string(abi::kQueueAssigned) + "\n";
}

// ---- mdev driver (§5.1, §5.4)
// -------------------------------------------------------------------------

Result<MatrixMdev*> VfioAp::create_mdev(std::string_view uuid) {
  core().held();
  APEMU_TRY(Uuid id, parse_uuid(uuid));
  APEMU_TRY(mdev::MdevDevice * d, m_mdevs->create_device(mdev_type(), id));
  return &mdev_of(*d);
}

Result<void> VfioAp::remove_mdev(MatrixMdev& m) {
  core().held();
  return m_mdevs->remove_device(m.mdev());
}

Result<void> VfioAp::mdev_probe(core::Device& dev) {
  mdev::MdevDevice& md = mdev::to_mdev_device(dev);
  std::unique_ptr<MatrixMdev> m(new MatrixMdev(*this, md, m_next_seq++));
  // Maxima frozen at creation (§2.2, §10.6); the shadow starts empty.
  m->m_matrix = init_matrix();
  m->m_shadow = init_matrix();
  // vfio_register_emulated_iommu_dev (the legacy mdev bus attached the group itself).
  if (!legacy()) APEMU_TRY_VOID(m_mdevs->iommu_group_add_device(md));
  dev.set_drvdata(m.get());
  m_list.push_back(std::move(m));
  return {};
}

Result<void> VfioAp::mdev_unregister_wait(mdev::MdevDevice& dev) {
  MatrixMdev& m = mdev_of(dev);
  if (legacy()) {
    if (m.m_kvm) return Error(EBUSY, "a guest uses the mdev");
    return {};
  }
  if (!m.m_open) return {};
  // vfio_unregister_group_dev: ask the user to release the device (count 0 first).
  request(m, 0);
  if (!m.m_open) return {};
  core().log().warn(mdev_prefix(m) +
                    "Device is currently in use, task \"apemu\" blocked until device is released");
  return Error(EBUSY,
               "the mdev is in use and its user did not release it (the kernel would block)");
}

void VfioAp::mdev_remove(core::Device& dev) {
  MatrixMdev& m = mdev_of(dev);
  // Reached with the device still open only when the parent goes away (module unload).
  if (m.m_open) close_device(m);
  if (!legacy()) m_mdevs->iommu_group_remove_device(m.mdev());
  // Reset and unlink every linked queue; the queues stay bound to vfio_ap.
  const auto qs = linked_queues(m);
  (void)reset_queues(qs);
  for (VfioApQueue* q : qs) q->m_mdev = nullptr;
  m.m_matrix.apm.for_each([&](unsigned a) { erase_from(m_by_apid[a], &m); });
  m.m_matrix.aqm.for_each([&](unsigned d) { erase_from(m_by_apqi[d], &m); });
  dev.set_drvdata(nullptr);
  auto it =
      std::find_if(m_list.begin(), m_list.end(), [&](const auto& p) { return p.get() == &m; });
  if (it != m_list.end()) m_list.erase(it);
}

// ---- AP queue driver (§4.2, §4.3, §4.5)
// ----------------------------------------------------------------

Result<void> VfioAp::queue_probe(core::Device& dev) {
  auto* aq = dynamic_cast<ap::ApQueue*>(&dev);
  if (!aq) return Error(ENODEV);
  std::unique_ptr<VfioApQueue> q(new VfioApQueue(*this, *aq));
  VfioApQueue* raw = q.get();
  m_queues[apqn_index(raw->m_apid, raw->m_apqi)] = std::move(q);
  if (MatrixMdev* m = mdev_for_apqn(raw->m_apid, raw->m_apqi)) {
    raw->m_mdev = m;
    // While a host configuration add is pending, on_scan_complete filters.
    if (!legacy() && m->m_apm_add.none() && m->m_aqm_add.none()) {
      IdSet filtered;
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
  const unsigned a = q->m_apid, d = q->m_apqi;
  MatrixMdev* m = q->m_mdev;
  if (!legacy()) {
    if (m && m->m_shadow.contains(a, d)) {
      // A single APQN cannot be hidden: the whole adapter leaves the guest.
      m->m_shadow.apm.clear(a);
      update_guest_apcb(*m);
      std::vector<VfioApQueue*> qs;
      m->m_shadow.aqm.for_each([&](unsigned i) {
        VfioApQueue* lq = queue(a, i);
        if (lq && lq->m_mdev == m) qs.push_back(lq);
      });
      if (std::find(qs.begin(), qs.end(), q) == qs.end()) qs.push_back(q);
      (void)reset_queues(qs);
    } else if (m_info_apm.test(a) && m_info_aqm.test(d)) {
      // Outside the host configuration a ZAPQ would answer rc 01: only reset inside.
      reset_queue(*q);
    }
  }
  q->m_mdev = nullptr;
  dev.set_drvdata(nullptr);
  m_queues[apqn_index(a, d)].reset();
}

int VfioAp::resource_in_use(const ap::Mask256& apm_mask, const ap::Mask256& aqm_mask) {
  core().held();
  const IdSet apm = IdSet::from_mask(apm_mask), aqm = IdSet::from_mask(aqm_mask);
  for (MatrixMdev* m : mdevs()) {
    const IdSet a = apm & m->m_matrix.apm, d = aqm & m->m_matrix.aqm;
    if (a.none() || d.none()) continue;
    a.for_each([&](unsigned x) {
      d.for_each([&](unsigned y) {
        core().log().warn(mdev_prefix(*m) + "Can not reserve queue " + apqn_name(x, y) +
                          " for host driver: in use by mdev");
      });
    });
    return EADDRINUSE;
  }
  return 0;
}

// ---- host configuration changes (§4.4)
// ------------------------------------------------------------------

void VfioAp::on_config_changed() {
  core().held();
  const IdSet prev_apm = m_info_apm, prev_aqm = m_info_aqm, prev_adm = m_info_adm;
  set_info(m_bus->hw().qci());
  const IdSet cur_apm = m_info_apm, cur_aqm = m_info_aqm, cur_adm = m_info_adm;

  // Removal: per mdev, unplug what was removed and is assigned (the intended semantics; the
  // kernel's accumulated flag and inverted control-domain intersection are not reproduced).
  const IdSet aprem = prev_apm.minus(cur_apm), aqrem = prev_aqm.minus(cur_aqm),
              cdrem = prev_adm.minus(cur_adm);
  if (aprem.any() || aqrem.any() || cdrem.any()) {
    for (MatrixMdev* m : mdevs()) {
      const IdSet a = aprem & m->m_matrix.apm, q = aqrem & m->m_matrix.aqm,
                  c = cdrem & m->m_matrix.adm;
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
  IdSet apm_add = cur_apm.minus(prev_apm);
  const IdSet aqm_add = cur_aqm.minus(prev_aqm), adm_add = cur_adm.minus(prev_adm);
  if ((apm_add.any() || aqm_add.any() || adm_add.any()) && !m_list.empty()) {
    // Drop new adapters older than CEX4 or of unknown type (TAPQ on the new APQNs).
    const IdSet candidates = apm_add;
    candidates.for_each([&](unsigned a) {
      bool drop = false;
      aqm_add.for_each([&](unsigned d) {
        if (drop) return;
        const ap::TapqResult t = m_bus->hw().tapq(a, d);
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
    IdSet filtered; // empty when only control domains were added (§4.4 last defect)
    bool update = false;
    if (adapters || domains) update = filter_matrix(*m, filtered);
    if (cdoms) update |= filter_cdoms(*m);
    if (update) update_guest_apcb(*m);
    reset_queues_for_apids(*m, filtered);
    m->m_apm_add = m->m_aqm_add = m->m_adm_add = IdSet{};
  }
}

// ---- the VFIO device (§5.2, §5.3, §5.5, §7)
// ---------------------------------------------------------------

Result<void> VfioAp::open_device(MatrixMdev& m, std::shared_ptr<KvmGuest> kvm) {
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
    if (legacy()) {
      // ≤5.x: the guest gets the assigned masks as they are, once.
      m.m_kvm->crypto_set_masks(m.m_matrix.apm.to_mask(), m.m_matrix.aqm.to_mask(),
                                m.m_matrix.adm.to_mask());
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
  if (!m.m_kvm) return;
  if (m.m_kvm->pqap_hook() == m.name()) m.m_kvm->set_pqap_hook({});
  m.m_kvm->crypto_clear_masks(); // not signalled on cfg_chg
  (void)reset_queues(linked_queues(m));
  m.m_kvm.reset();
}

Result<void> VfioAp::device_reset(MatrixMdev& m) {
  core().held();
  if (const int rc = reset_queues(linked_queues(m)); rc) return Error(rc);
  return {};
}

Result<void> VfioAp::set_irq_eventfd(MatrixMdev& m, IrqIndex index, std::shared_ptr<EventFd> fd) {
  core().held();
  if (legacy()) return Error(EOPNOTSUPP, "no VFIO IRQs before ~6.7");
  switch (index) {
  case IrqIndex::Request:
    m.m_req_trigger = std::move(fd);
    return {};
  case IrqIndex::CfgChg:
    m.m_cfg_chg_trigger = std::move(fd);
    return {};
  }
  return Error(EINVAL);
}

void VfioAp::request(MatrixMdev& m, unsigned count) {
  core().held();
  if (m.m_kvm) {
    // [6.15+] the guest loses its AP resources at once and is told so.
    m.m_kvm->crypto_clear_masks();
    if (m.m_cfg_chg_trigger) m.m_cfg_chg_trigger->signal();
  }
  if (m.m_req_trigger) {
    if (count % 10 == 0)
      core().log().info(mdev_prefix(m) + "Relaying device request to user (#" +
                        std::to_string(count) + ")");
    // Keep the eventfd alive across a reaction that unregisters it.
    auto fd = m.m_req_trigger;
    fd->signal();
  } else if (count == 0) {
    core().log().info(mdev_prefix(m) +
                      "No device request registered, blocked until released by user");
  }
}

Result<std::shared_ptr<KvmGuest>> VfioAp::guest_start(MatrixMdev& m, GuestOptions opt) {
  core().held();
  if (m.m_open) return Error(EBUSY, "mdev " + m.name() + " is already used by a guest");
  if (opt.name.empty()) opt.name = "guest-" + m.name().substr(0, 8);
  auto kvm = std::make_shared<KvmGuest>(opt.name, opt.format, opt.has_crycb);
  if (!legacy()) {
    if (opt.honour_requests) {
      // QEMU's vfio-ap device unplugs itself when the kernel requests the device.
      auto fd = std::make_shared<EventFd>();
      const std::string uuid = m.name();
      fd->on_signal = [this, uuid] {
        if (MatrixMdev* mm = find_mdev(uuid)) (void)guest_stop(*mm);
      };
      (void)set_irq_eventfd(m, IrqIndex::Request, fd);
    }
    if (opt.cfg_chg_eventfd)
      (void)set_irq_eventfd(m, IrqIndex::CfgChg, std::make_shared<EventFd>());
  }
  if (auto r = open_device(m, kvm); !r) {
    if (!legacy()) {
      (void)set_irq_eventfd(m, IrqIndex::Request, nullptr);
      (void)set_irq_eventfd(m, IrqIndex::CfgChg, nullptr);
    }
    return r.error();
  }
  core().log().info("apemu: guest " + opt.name + " started with mdev " + m.name());
  return kvm;
}

Result<void> VfioAp::guest_stop(MatrixMdev& m) {
  core().held();
  if (!m.m_open) return Error(ENODEV, "no guest uses mdev " + m.name());
  const std::string name = m.m_kvm ? m.m_kvm->name() : std::string("(no crycb)");
  close_device(m);
  // QEMU's unrealize unregisters its notifiers (SET_IRQS with fd -1).
  if (!legacy()) {
    m.m_req_trigger.reset();
    m.m_cfg_chg_trigger.reset();
  }
  core().log().info("apemu: guest " + name + " stopped, mdev " + m.name() + " released");
  return {};
}

} // namespace apemu::vfio_ap
