// vfio_ap's mdev rules: mdev probe/remove, the assignment attributes with their exact check
// order and errno, the one commit path, filtering into the shadow APCB and hot plug
// (drivers/s390/crypto/vfio_ap_ops.c; vfio-ap.md §3, §4.1, §4.6, §5.1, §5.4, §9, §10).
#include <algorithm>
#include <cstdio>

#include "apemu/ap/ap_mask.h"
#include "apemu/base/parse.h"
#include "apemu/vfio_ap/abi_names.h"
#include "private.h"

namespace apemu::vfio_ap {

namespace {

/// Bytes of a complete ap_config value: three "0x" + 64 digits masks and separators
/// (AP_CONFIG_STRLEN, §3.8).
constexpr std::size_t kApConfigStrlen = 201;
/// A show() buffer holds at most PAGE_SIZE - 1 characters (sysfs_emit_at, §3.6).
constexpr std::size_t kShowMax = 4095;

/// Response codes after which a queue may be passed to a guest (§4.1 step 3).
bool passable_rc(int rc) {
  return rc == ap::rc::kNormal || rc == ap::rc::kDeconfigured || rc == ap::rc::kCheckstopped;
}

void erase_from(std::vector<MatrixMdev*>& v, MatrixMdev* m) {
  auto it = std::find(v.begin(), v.end(), m);
  if (it != v.end()) v.erase(it);
}

} // namespace

// ---- mdev driver (§5.1, §5.4) -------------------------------------------------------------------

Result<MatrixMdev*> VfioAp::create_mdev(std::string_view uuid) {
  core().held();
  APEMU_TRY(Uuid id, parse_uuid(uuid));
  APEMU_TRY(mdev::MdevDevice * d, m_mdevs->create_device(mdev_type(), id));
  return &mdev_of(*d);
}

Result<void> VfioAp::remove_mdev(MatrixMdev& m, kernfs::Blocker* blocker) {
  core().held();
  return m_mdevs->remove_device(m.mdev(), blocker);
}

Result<void> VfioAp::mdev_probe(core::Device& dev) {
  mdev::MdevDevice& md = mdev::to_mdev_device(dev);
  std::unique_ptr<MatrixMdev> m(new MatrixMdev(*this, md, m_next_seq++));
  // Maxima frozen at creation (§2.2, §10.6); the shadow starts empty.
  m->m_matrix = init_matrix();
  m->m_shadow = init_matrix();
  // vfio_register_emulated_iommu_dev (the legacy mdev bus attached the group itself).
  if (m_mdevs->vendor_driver_binds()) APEMU_TRY_VOID(m_mdevs->iommu_group_add_device(md));
  dev.set_drvdata(m.get());
  m_list.push_back(std::move(m));
  return {};
}

void VfioAp::mdev_remove(core::Device& dev) {
  MatrixMdev& m = mdev_of(dev);
  if (m.m_request_timer) core().runtime().cancel(m.m_request_timer);
  if (m_mdevs->vendor_driver_binds()) m_mdevs->iommu_group_remove_device(m.mdev());
  // Reset and unlink every linked queue; the queues stay bound to vfio_ap.
  const auto qs = linked_queues(m);
  (void)reset_queues(qs);
  for (VfioApQueue* q : qs) q->m_mdev = nullptr;
  m.m_matrix.apm.for_each([&](Apid a) { erase_from(m_by_apid[id(a)], &m); });
  m.m_matrix.aqm.for_each([&](Apqi d) { erase_from(m_by_apqi[id(d)], &m); });
  dev.set_drvdata(nullptr);
  auto it =
      std::find_if(m_list.begin(), m_list.end(), [&](const auto& p) { return p.get() == &m; });
  if (it != m_list.end()) m_list.erase(it);
}

// ---- filtering and the guest APCB (§4.1, §4.6) --------------------------------------------------

bool VfioAp::passable(const MatrixMdev& m, Apqn apqn) const {
  const VfioApQueue* q = queue(apqn);
  return q && q->m_mdev == &m && passable_rc(q->m_reset_rc);
}

bool VfioAp::filter_matrix(MatrixMdev& m, ApidMask& apm_filtered) {
  const ApidMask prev_apm = m.m_shadow.apm;
  const ApqiMask prev_aqm = m.m_shadow.aqm;
  init_maxes(m.m_shadow);
  apm_filtered = ApidMask{};
  // Over-provisioned resources (assigned, not in the host configuration) stay hidden.
  m.m_shadow.apm = m.m_matrix.apm & m_info.apm;
  m.m_shadow.aqm = m.m_matrix.aqm & m_info.aqm;
  // An adapter is the unit the architecture can hide: one missing queue drops it.
  const ApidMask apids = m.m_shadow.apm;
  apids.for_each([&](Apid a) {
    bool ok = true;
    m.m_shadow.aqm.for_each([&](Apqi d) { ok = ok && passable(m, {a, d}); });
    if (!ok) {
      m.m_shadow.apm.clear(a);
      if (prev_apm.test(a)) apm_filtered.set(a);
    }
  });
  return !(m.m_shadow.apm == prev_apm) || !(m.m_shadow.aqm == prev_aqm);
}

bool VfioAp::filter_cdoms(MatrixMdev& m) {
  const ApqiMask prev = m.m_shadow.adm;
  m.m_shadow.adm = m.m_matrix.adm & m_info.adm;
  return !(prev == m.m_shadow.adm);
}

void VfioAp::update_guest_apcb(MatrixMdev& m) {
  if (!m.m_kvm) return;
  m.m_kvm->crypto_set_masks(m.m_shadow.apm, m.m_shadow.aqm, m.m_shadow.adm);
  // [6.15+] every APCB update is signalled on the configuration-change eventfd.
  if (m.m_cfg_chg_trigger) m.m_cfg_chg_trigger->signal();
}

// ---- the commit path ----------------------------------------------------------------------------

void VfioAp::hot_unplug(MatrixMdev& m, const ApidMask& apids, const ApqiMask& apqis) {
  // vfio_ap_mdev_hot_unplug_adapters, then _domains, with the old matrix in place: each
  // unlinks the queues of the removed ids, takes them out of the shadow (an APCB write when
  // that changed it) and resets those the guest could use.
  std::vector<VfioApQueue*> qlist;
  auto unlink = [&](Apqn apqn) {
    VfioApQueue* q = queue(apqn);
    if (!q || q->m_mdev != &m) return;
    q->m_mdev = nullptr;
    if (m.m_shadow.contains(apqn)) qlist.push_back(q);
  };
  if (apids.any()) {
    apids.for_each([&](Apid a) { m.m_matrix.aqm.for_each([&](Apqi d) { unlink({a, d}); }); });
    if (m.m_shadow.apm.intersects(apids)) {
      m.m_shadow.apm = m.m_shadow.apm.minus(apids);
      update_guest_apcb(m);
    }
    (void)reset_queues(qlist);
    qlist.clear();
  }
  if (apqis.any()) {
    m.m_matrix.apm.for_each([&](Apid a) { apqis.for_each([&](Apqi d) { unlink({a, d}); }); });
    if (m.m_shadow.aqm.intersects(apqis)) {
      m.m_shadow.aqm = m.m_shadow.aqm.minus(apqis);
      update_guest_apcb(m);
    }
    (void)reset_queues(qlist);
  }
}

void VfioAp::commit(MatrixMdev& m, const ApMatrix& next, Refilter refilter) {
  const ApMatrix old = m.m_matrix;
  const ApidMask removed_apm = old.apm.minus(next.apm), added_apm = next.apm.minus(old.apm);
  const ApqiMask removed_aqm = old.aqm.minus(next.aqm), added_aqm = next.aqm.minus(old.aqm);
  const ApqiMask removed_adm = old.adm.minus(next.adm);
  // 1. Unplug what goes away, with the old masks in place.
  if (removed_apm.any() || removed_aqm.any()) hot_unplug(m, removed_apm, removed_aqm);
  // 2. The new assignment and its index.
  m.m_matrix = next;
  removed_apm.for_each([&](Apid a) { erase_from(m_by_apid[id(a)], &m); });
  added_apm.for_each([&](Apid a) { m_by_apid[id(a)].push_back(&m); });
  removed_aqm.for_each([&](Apqi d) { erase_from(m_by_apqi[id(d)], &m); });
  added_aqm.for_each([&](Apqi d) { m_by_apqi[id(d)].push_back(&m); });
  // 3. Link the queues (bound to vfio_ap) of what was added.
  auto link = [&](Apqn apqn) {
    if (VfioApQueue* q = queue(apqn)) q->m_mdev = &m;
  };
  added_apm.for_each([&](Apid a) { next.aqm.for_each([&](Apqi d) { link({a, d}); }); });
  if (added_aqm.any())
    next.apm.minus(added_apm).for_each(
        [&](Apid a) { added_aqm.for_each([&](Apqi d) { link({a, d}); }); });
  if (!profile().vfio_ap_dynamic_config) return; // ≤5.19: no shadow; the guest got raw masks
  // 4. The guest's view.
  ApidMask filtered;
  bool update = false;
  if (refilter.apqns) update |= filter_matrix(m, filtered);
  if (refilter.cdoms) {
    update |= filter_cdoms(m);
  } else if (m.m_shadow.adm.intersects(removed_adm)) {
    m.m_shadow.adm = m.m_shadow.adm.minus(removed_adm);
    update = true;
  }
  if (update) {
    update_guest_apcb(m);
    reset_queues_for_apids(m, filtered);
  }
}

// ---- ownership and sharing (§3.3 step 5, §3.10, §4.5) ------------------------------------------

MatrixMdev* VfioAp::find_sharer(const MatrixMdev& m, const ApMatrix& next,
                                const ApidMask* new_apids, const ApqiMask* new_apqis) const {
  // The kernel walks the mdev list (newest first) and reports the first mdev whose apm and aqm
  // both intersect the new matrix. Assignments never overlap before a change, so any such mdev
  // holds one of the newly added ids: the per-id index yields the same candidates.
  MatrixMdev* best = nullptr;
  auto consider = [&](MatrixMdev* o) {
    if (o == &m || (best && best->seq() >= o->seq())) return;
    if (next.apm.intersects(o->m_matrix.apm) && next.aqm.intersects(o->m_matrix.aqm)) best = o;
  };
  if (!new_apids && !new_apqis) {
    for (const auto& o : m_list) consider(o.get());
    return best;
  }
  if (new_apids)
    new_apids->for_each([&](Apid a) {
      for (MatrixMdev* o : m_by_apid[id(a)]) consider(o);
    });
  if (new_apqis)
    new_apqis->for_each([&](Apqi d) {
      for (MatrixMdev* o : m_by_apqi[id(d)]) consider(o);
    });
  return best;
}

void VfioAp::log_sharing(const MatrixMdev& assignee, const ApMatrix& next,
                         const MatrixMdev& holder) const {
  const ApidMask apm = next.apm & holder.m_matrix.apm;
  const ApqiMask aqm = next.aqm & holder.m_matrix.aqm;
  apm.for_each([&](Apid a) {
    aqm.for_each([&](Apqi d) {
      core().log().warn(mdev_prefix(assignee) + "Userspace may not assign queue " +
                        Apqn{a, d}.name() + " to mdev: already assigned to " + holder.name());
    });
  });
}

Result<void> VfioAp::validate(MatrixMdev& m, const ApMatrix& next, const ApidMask* new_apids,
                              const ApqiMask* new_apqis) {
  if (m_bus->matrix_owned_by_default(next.apm, next.aqm))
    return Error(EADDRNOTAVAIL, "an APQN is reserved for the host's default drivers");
  if (MatrixMdev* o = find_sharer(m, next, new_apids, new_apqis)) {
    log_sharing(m, next, *o);
    return Error(EADDRINUSE, "an APQN is assigned to mdev " + o->name());
  }
  return {};
}

bool VfioAp::reserved_for_vfio_ap(const ApMatrix& next, Apid* apid, Apqi* apqi) const {
  // ≤5.19 (§3.10): every APQN of the new id with the other dimension's assigned ids must be a
  // queue bound to vfio_ap; with none assigned, at least one such queue must exist.
  if (apid) {
    if (next.aqm.none()) {
      for (unsigned d = 0; d < kMaxApIds; ++d)
        if (queue({*apid, to_apqi(d)})) return true;
      return false;
    }
    bool all = true;
    next.aqm.for_each([&](Apqi d) { all = all && queue({*apid, d}); });
    return all;
  }
  if (next.apm.none()) {
    for (unsigned a = 0; a < kMaxApIds; ++a)
      if (queue({to_apid(a), *apqi})) return true;
    return false;
  }
  bool all = true;
  next.apm.for_each([&](Apid a) { all = all && queue({a, *apqi}); });
  return all;
}

// ---- assign / unassign (§3.3, §3.4, §3.5, §3.10) ------------------------------------------------

Result<unsigned> VfioAp::parse_id(const MatrixMdev& m, std::string_view text, IdKind kind) const {
  // ≤5.19: EBUSY while a guest is attached, before parsing (§3.9).
  if (!profile().vfio_ap_dynamic_config && m.m_kvm) return Error(EBUSY, "a guest uses the mdev");
  APEMU_TRY(std::uint64_t id, kstrtoul(text, 0));
  const unsigned max = kind == IdKind::Adapter  ? m.m_matrix.apm_max
                       : kind == IdKind::Domain ? m.m_matrix.aqm_max
                                                : m.m_matrix.adm_max;
  if (id > max) return Error(ENODEV);
  return static_cast<unsigned>(id);
}

Result<void> VfioAp::assign_id(MatrixMdev& m, std::string_view text, IdKind kind) {
  core().held();
  APEMU_TRY(const unsigned n, parse_id(m, text, kind));
  const bool dynamic = profile().vfio_ap_dynamic_config;
  ApMatrix next = m.m_matrix;
  if (kind == IdKind::ControlDomain) {
    // No reservation and no sharing check: control domains may be shared (§3.5).
    if (next.adm.test(to_apqi(n))) return {};
    next.adm.set(to_apqi(n));
    commit(m, next, {.apqns = false, .cdoms = true});
    return {};
  }
  Apid apid = to_apid(n);
  Apqi apqi = to_apqi(n);
  const bool adapter = kind == IdKind::Adapter;
  const bool already = adapter ? next.apm.test(apid) : next.aqm.test(apqi);
  // Already assigned: no re-filter, no log (dynamic); the static rules still check (§3.10).
  if (already && dynamic) return {};
  if (!dynamic && !reserved_for_vfio_ap(next, adapter ? &apid : nullptr, adapter ? nullptr : &apqi))
    return Error(EADDRNOTAVAIL, "an APQN is not bound to vfio_ap");
  if (adapter) next.apm.set(apid);
  else next.aqm.set(apqi);
  ApidMask one_apid;
  ApqiMask one_apqi;
  if (adapter) one_apid.set(apid);
  else one_apqi.set(apqi);
  const ApidMask* new_apids = adapter ? &one_apid : nullptr;
  const ApqiMask* new_apqis = adapter ? nullptr : &one_apqi;
  if (dynamic) {
    APEMU_TRY_VOID(validate(m, next, new_apids, new_apqis));
  } else if (find_sharer(m, next, new_apids, new_apqis)) {
    return Error(EADDRINUSE); // no log lines before 6.0
  }
  if (!already) commit(m, next, {.apqns = true, .cdoms = false});
  return {};
}

Result<void> VfioAp::unassign_id(MatrixMdev& m, std::string_view text, IdKind kind) {
  core().held();
  APEMU_TRY(const unsigned n, parse_id(m, text, kind));
  ApMatrix next = m.m_matrix;
  switch (kind) {
  case IdKind::Adapter:
    if (!next.apm.test(to_apid(n))) return {};
    next.apm.clear(to_apid(n));
    break;
  case IdKind::Domain:
    if (!next.aqm.test(to_apqi(n))) return {};
    next.aqm.clear(to_apqi(n));
    break;
  case IdKind::ControlDomain:
    if (!next.adm.test(to_apqi(n))) return {};
    next.adm.clear(to_apqi(n));
    break;
  }
  commit(m, next, {});
  return {};
}

Result<void> VfioAp::assign_adapter(MatrixMdev& m, std::string_view text) {
  return assign_id(m, text, IdKind::Adapter);
}
Result<void> VfioAp::assign_domain(MatrixMdev& m, std::string_view text) {
  return assign_id(m, text, IdKind::Domain);
}
Result<void> VfioAp::assign_control_domain(MatrixMdev& m, std::string_view text) {
  return assign_id(m, text, IdKind::ControlDomain);
}
Result<void> VfioAp::unassign_adapter(MatrixMdev& m, std::string_view text) {
  return unassign_id(m, text, IdKind::Adapter);
}
Result<void> VfioAp::unassign_domain(MatrixMdev& m, std::string_view text) {
  return unassign_id(m, text, IdKind::Domain);
}
Result<void> VfioAp::unassign_control_domain(MatrixMdev& m, std::string_view text) {
  return unassign_id(m, text, IdKind::ControlDomain);
}

// ---- ap_config (§3.8) ---------------------------------------------------------------------------

Result<void> VfioAp::ap_config_store(MatrixMdev& m, std::string_view text) {
  core().held();
  if (!profile().vfio_ap_ap_config) return Error(EOPNOTSUPP, "ap_config needs a 6.10+ profile");
  // kstrndup(buf, AP_CONFIG_STRLEN): at most 201 bytes, up to the first NUL.
  text = text.substr(0, kApConfigStrlen);
  text = text.substr(0, text.find('\0'));
  // strsep(",\n") three times; a NULL (no separator left) before the third mask is EINVAL.
  std::string_view tokens[3];
  std::size_t start = 0;
  bool rest_null = false;
  for (auto& tok : tokens) {
    if (rest_null) return Error(EINVAL, "ap_config needs three masks");
    const std::size_t sep = text.find_first_of(",\n", start);
    if (sep == std::string_view::npos) {
      tok = text.substr(start);
      rest_null = true;
    } else {
      tok = text.substr(start, sep - start);
      start = sep + 1;
    }
  }
  ApMatrix next = m.m_matrix;
  APEMU_TRY(next.apm, ap::hex2bitmap<Apid>(tokens[0]));
  APEMU_TRY(next.aqm, ap::hex2bitmap<Apqi>(tokens[1]));
  APEMU_TRY(next.adm, ap::hex2bitmap<Apqi>(tokens[2]));
  APEMU_TRY_VOID(validate(m, next, nullptr, nullptr));
  // The range check comes after ownership and sharing here (§10.5).
  if (next.apm.minus(next.apm.up_to(next.apm_max)).any() ||
      next.aqm.minus(next.aqm.up_to(next.aqm_max)).any() ||
      next.adm.minus(next.adm.up_to(next.adm_max)).any())
    return Error(ENODEV, "a mask has an id above the maximum");
  commit(m, next, {.apqns = true, .cdoms = true});
  return {};
}

std::string VfioAp::ap_config_show(const MatrixMdev& m) const {
  core().held();
  return m.m_matrix.apm.hex() + "," + m.m_matrix.aqm.hex() + "," + m.m_matrix.adm.hex() + "\n";
}

// ---- shows (§3.6, §3.7, §4.7) -------------------------------------------------------------------

namespace {

std::string show_apqns(const ApMatrix& mx) {
  const ApidMask apm = mx.apm.up_to(mx.apm_max);
  const ApqiMask aqm = mx.aqm.up_to(mx.aqm_max);
  std::string out;
  char b[16];
  auto emit = [&](int n) {
    if (out.size() < kShowMax) out.append(b, static_cast<std::size_t>(n));
  };
  if (apm.any() && aqm.any()) {
    apm.for_each([&](Apid a) {
      aqm.for_each([&](Apqi d) { emit(std::snprintf(b, sizeof b, "%02x.%04x\n", id(a), id(d))); });
    });
  } else if (apm.any()) {
    apm.for_each([&](Apid a) { emit(std::snprintf(b, sizeof b, "%02x.\n", id(a))); });
  } else if (aqm.any()) {
    aqm.for_each([&](Apqi d) { emit(std::snprintf(b, sizeof b, ".%04x\n", id(d))); });
  }
  if (out.size() > kShowMax) out.resize(kShowMax); // cut mid-line, as the page buffer does
  return out;
}

} // namespace

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
  m.m_matrix.adm.up_to(m.m_matrix.adm_max).for_each([&](Apqi d) {
    std::snprintf(b, sizeof b, "%04x\n", id(d));
    out += b;
  });
  return out;
}

} // namespace apemu::vfio_ap
