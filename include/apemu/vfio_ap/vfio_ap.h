// The s390 vfio_ap driver (drivers/s390/crypto/vfio_ap_drv.c, vfio_ap_ops.c,
// vfio_ap_private.h; vfio-ap.md is the specification, each rule cites its section).
//
// VfioAp is the loaded module. Its parts mirror the kernel's objects, one file each:
//  * drv.cpp (vfio_ap_drv.c): module init/exit, the root device /sys/devices/vfio_ap, the
//    private `matrix` bus, the `matrix` device and its driver (`features`);
//  * queue_driver.cpp: the AP queue driver `vfio_ap` (non-default; probe/remove, in_use,
//    host configuration changes, the queue `status` file);
//  * mdev_ops.cpp: the mdev rules — every assign_*/unassign_*/ap_config store validates in the
//    kernel's order, then hands the new matrix to commit(), the one path that updates the
//    per-id index, the queue links, the shadow APCB (filtering), the guest's CRYCB and resets;
//  * vfio_device.cpp: the VFIO device of an mdev (open/close, RESET, SET_IRQS, the device
//    request callback and the wait of a `remove` for the user to let go).
//
// The kernel profile (profile::KernelProfile) selects between the first vfio_ap (4.20: a
// bus-less matrix device, the static assignment rules of §3.10 — EBUSY while a guest is
// attached, the "bound to vfio_ap" reservation, raw masks given to the guest once — and remove
// failing with EBUSY), the ≤5.19 static rules with the matrix bus, and dynamic configuration
// (6.0+: shadow APCB, hot plug, in_use, host configuration changes), plus the attributes and
// interfaces each kernel has (guest_matrix, ap_config, features, queue status, request and
// config-change eventfds).
//
// The guest side is KVM's (kvm::Kvm, below this library); QEMU's part (starting a guest,
// reacting to eventfds) is user space and lives in testbed.
//
// Locking: every public function requires the machine lock (it stands for ap_perms_mutex,
// guests_lock, kvm->lock and mdevs_lock, §8).
//
// Divergences: no PQAP(AQIC) interception yet, no NIB pinning, no s390dbf area. Queue resets
// (ZAPQ) complete at once: the verification sees the firmware's TAPQ answer immediately. The
// kernel's stale queue back-pointer after an unassignment (§3.4) has no observable effect and is
// not modelled.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/ap/ap_bus.h"
#include "apemu/base/ap_ids.h"
#include "apemu/base/eventfd.h"
#include "apemu/base/result.h"
#include "apemu/kvm/kvm.h"
#include "apemu/mdev/mdev.h"

namespace apemu::vfio_ap {

class VfioAp;
class MatrixMdev;

/// struct ap_matrix: three 256-bit masks and the maxima they are checked against.
struct ApMatrix {
  unsigned apm_max = 0, aqm_max = 0, adm_max = 0;
  ApidMask apm;
  ApqiMask aqm, adm;
  bool contains(Apqn q) const { return apm.test(q.apid) && aqm.test(q.apqi); }
};

/// struct vfio_ap_queue: vfio_ap's state of an AP queue device bound to it (vfio-ap.md §2.4).
class VfioApQueue {
public:
  Apqn apqn() const { return m_apqn; }
  ap::ApQueue& device() const { return *m_dev; }
  /// The mdev this queue is linked to (in its qtable), or null.
  MatrixMdev* matrix_mdev() const { return m_mdev; }
  /// Response code of the last ZAPQ the driver issued (reset_status; 0 at probe).
  int reset_rc() const { return m_reset_rc; }
  /// Number of resets (ZAPQ) issued for this queue by vfio_ap.
  std::uint64_t resets() const { return m_resets; }
  /// saved_isc (0xff = none); stays 0xff without AQIC interception.
  unsigned saved_isc() const { return m_saved_isc; }

private:
  friend class VfioAp;
  VfioApQueue(ap::ApQueue& dev) : m_dev(&dev), m_apqn(dev.apqn()) {}
  ap::ApQueue* m_dev;
  Apqn m_apqn;
  MatrixMdev* m_mdev = nullptr;
  int m_reset_rc = 0;
  std::uint64_t m_resets = 0;
  unsigned m_saved_isc = 0xff;
};

/// VFIO AP device IRQ indexes (VFIO_AP_REQ_IRQ_INDEX, VFIO_AP_CFG_CHG_IRQ_INDEX).
enum class IrqIndex { Request = 0, CfgChg = 1 };

/// struct ap_matrix_mdev: one vfio_ap mdev (vfio-ap.md §2.3).
class MatrixMdev {
public:
  MatrixMdev(const MatrixMdev&) = delete;
  MatrixMdev& operator=(const MatrixMdev&) = delete;
  mdev::MdevDevice& mdev() const { return *m_mdev; }
  /// The lower-case UUID (the device name).
  const std::string& name() const { return m_mdev->name(); }
  VfioAp& vfio_ap() const { return *m_vfio; }
  /// What the administrator assigned.
  const ApMatrix& matrix() const { return m_matrix; }
  /// What the guest sees, or would see when attached (guest_matrix).
  const ApMatrix& shadow_apcb() const { return m_shadow; }
  /// The attached guest, or null.
  kvm::Kvm* kvm() const { return m_kvm.get(); }
  /// True between a successful open_device and close_device (with or without a KVM CRYCB).
  bool opened() const { return m_open; }
  /// Resources added to the host configuration and assigned here, between on_config_changed
  /// and on_scan_complete.
  const ApidMask& apm_add() const { return m_apm_add; }
  const ApqiMask& aqm_add() const { return m_aqm_add; }
  const ApqiMask& adm_add() const { return m_adm_add; }
  const std::shared_ptr<EventFd>& req_trigger() const { return m_req_trigger; }
  const std::shared_ptr<EventFd>& cfg_chg_trigger() const { return m_cfg_chg_trigger; }
  /// True while a `remove` waits for the user to close the device.
  bool remove_pending() const { return static_cast<bool>(m_release); }
  /// Creation sequence number (the mdev list is newest first).
  std::uint64_t seq() const { return m_seq; }

private:
  friend class VfioAp;
  MatrixMdev(VfioAp& v, mdev::MdevDevice& m, std::uint64_t seq)
      : m_vfio(&v), m_mdev(&m), m_seq(seq) {}
  VfioAp* m_vfio;
  mdev::MdevDevice* m_mdev;
  std::uint64_t m_seq;
  ApMatrix m_matrix, m_shadow;
  std::shared_ptr<kvm::Kvm> m_kvm;
  bool m_open = false;
  ApidMask m_apm_add;
  ApqiMask m_aqm_add, m_adm_add;
  std::shared_ptr<EventFd> m_req_trigger, m_cfg_chg_trigger;
  /// A `remove` waiting for the user to release the device: completed by close_device.
  std::shared_ptr<Completion> m_release;
  Runtime::TimerId m_request_timer = 0;
  unsigned m_request_count = 0;
};

class VfioAp {
public:
  /// Module init (vfio-ap.md §1.5): root device, (5.0+) matrix bus, matrix device and driver,
  /// the AP queue driver (binds the queues outside apmask × aqmask), the mdev driver and the
  /// parent with its type. Emits: add/bind of matrix, binds of queues, change MDEV_STATE.
  /// Returns: EINVAL when the mdev core and the AP bus are of different machines; the errno of
  /// the failing step; everything before it is undone.
  static Result<std::unique_ptr<VfioAp>> create(ap::ApBus& bus, mdev::MdevBus& mdevs);
  /// Module exit, in reverse. Every mdev must be closed by its user first (the kernel blocks
  /// otherwise): asserted.
  ~VfioAp();
  VfioAp(const VfioAp&) = delete;
  VfioAp& operator=(const VfioAp&) = delete;

  core::Core& core() const { return m_bus->core(); }
  const profile::KernelProfile& profile() const { return core().profile(); }
  ap::ApBus& ap_bus() const { return *m_bus; }
  mdev::MdevBus& mdev_bus() const { return *m_mdevs; }
  core::Device& root() const { return *m_root; }
  core::Device& matrix_device() const { return *m_matrix; }
  mdev::MdevType& mdev_type() const;
  /// The cached host configuration (matrix_dev->info; all zero without QCI).
  const ap::Qci& info() const { return m_info; }

  /// mdev_list: newest first.
  std::vector<MatrixMdev*> mdevs() const;
  MatrixMdev* find_mdev(std::string_view uuid) const;
  /// The vfio_ap queue of a queue device bound to vfio_ap, or null.
  VfioApQueue* queue(Apqn q) const {
    // Inline: the assignment paths look queues up for every APQN they touch.
    return m_queues.empty() ? nullptr : m_queues[q.qid()].get();
  }
  /// Total ZAPQs issued by vfio_ap.
  std::uint64_t reset_count() const { return m_total_resets; }

  // ---- mdev lifecycle through the mdev core (the `create` / `remove` files) -------------------
  /// Same as writing the UUID to the type's `create`. Returns: its errors (EEXIST ...).
  Result<MatrixMdev*> create_mdev(std::string_view uuid);
  /// Same as writing "1" to `remove` (see mdev::MdevBus::remove_device for `blocker`).
  /// Returns: ENODEV, EAGAIN; 4.20: EBUSY while a guest is attached; later: kEIocbQueued when
  /// the device is open (the removal completes when its user closes it).
  Result<void> remove_mdev(MatrixMdev& m, kernfs::Blocker* blocker = nullptr);

  // ---- the mdev attributes (vfio-ap.md §3), same input, output and errno as the files --------
  /// Returns: EINVAL/ERANGE (parse), ENODEV (id above the mdev's maximum), EADDRNOTAVAIL
  /// (an APQN of the new matrix is reserved for the host's default drivers; ≤5.19: not bound
  /// to vfio_ap), EADDRINUSE (an APQN is assigned to another mdev; one log line per shared
  /// APQN); ≤5.19: EBUSY first while a guest is attached.
  Result<void> assign_adapter(MatrixMdev& m, std::string_view text);
  Result<void> assign_domain(MatrixMdev& m, std::string_view text);
  /// Returns: EINVAL/ERANGE, ENODEV; never a sharing error. Hot-unplugs and resets.
  Result<void> unassign_adapter(MatrixMdev& m, std::string_view text);
  Result<void> unassign_domain(MatrixMdev& m, std::string_view text);
  /// Returns: EINVAL/ERANGE, ENODEV (no ownership or sharing check, §3.5).
  Result<void> assign_control_domain(MatrixMdev& m, std::string_view text);
  Result<void> unassign_control_domain(MatrixMdev& m, std::string_view text);
  /// ap_config write (§3.8), all or nothing. Returns: EINVAL (grammar, fewer than three
  /// masks), EADDRNOTAVAIL, EADDRINUSE, then ENODEV (bit above a maximum); EOPNOTSUPP in
  /// profiles without ap_config.
  Result<void> ap_config_store(MatrixMdev& m, std::string_view text);
  std::string ap_config_show(const MatrixMdev& m) const;
  std::string matrix_show(const MatrixMdev& m) const;
  std::string guest_matrix_show(const MatrixMdev& m) const;
  std::string control_domains_show(const MatrixMdev& m) const;
  /// The queue `status` file (§4.7).
  std::string queue_status(const VfioApQueue& q) const;

  // ---- the VFIO device (§5.2–§5.6, §7) ---------------------------------------------------------
  /// open_device with the KVM the user associated. Returns: EINVAL (no KVM), EPERM (another mdev
  /// is attached to this KVM; the PQAP hook stays redirected, §10.8), EBUSY (already open).
  /// Emits: an APCB write of the current shadow (static profiles: the raw masks).
  Result<void> open_device(MatrixMdev& m, std::shared_ptr<kvm::Kvm> kvm);
  /// close_device: clears the guest's APCB, resets every linked queue, detaches. No-op when
  /// not open. A `remove` waiting for the device completes here: `m` may be gone afterwards.
  void close_device(MatrixMdev& m);
  /// VFIO_DEVICE_RESET. Returns: EIO when a linked queue's reset answered a non-zero code.
  Result<void> device_reset(MatrixMdev& m);
  /// VFIO_DEVICE_SET_IRQS with one eventfd (null = fd -1, unregister). Returns: EINVAL for an
  /// unknown index or one the profile lacks (CfgChg before 6.15); EOPNOTSUPP before ~6.7.
  Result<void> set_irq_eventfd(MatrixMdev& m, IrqIndex index, std::shared_ptr<EventFd> fd);
  /// The VFIO core's device request callback (§5.5), ~6.7+.
  void request(MatrixMdev& m, unsigned count);

private:
  explicit VfioAp(ap::ApBus& bus, mdev::MdevBus& mdevs) : m_bus(&bus), m_mdevs(&mdevs) {}
  friend struct VfioApAttrs;
  Result<void> init();
  void teardown();
  ApMatrix init_matrix() const;
  /// Sets the three maximum ids of `mx` as vfio_ap_matrix_init does.
  void init_maxes(ApMatrix& mx) const;
  std::string mdev_prefix(const MatrixMdev& m) const;
  static MatrixMdev& mdev_of(core::Device& d);

  // mdev driver callbacks (mdev_ops.cpp)
  Result<void> mdev_probe(core::Device& dev);
  void mdev_remove(core::Device& dev);
  /// The wait of vfio_unregister_group_dev (vfio_device.cpp): null when the device is not in
  /// use, else a completion that close_device completes.
  Result<std::shared_ptr<Completion>> mdev_unregister_wait(mdev::MdevDevice& dev);
  void rerequest(MatrixMdev& m);

  // AP queue driver (queue_driver.cpp)
  Result<void> queue_probe(core::Device& dev);
  void queue_remove(core::Device& dev);
  int resource_in_use(const ApidMask& apm, const ApqiMask& aqm);
  void on_config_changed();
  void on_scan_complete();
  void set_info(const ap::Qci& qci);

  // the assignment rules (mdev_ops.cpp)
  enum class IdKind { Adapter, Domain, ControlDomain };
  /// Parses an id of `kind` for `m` (kstrtoul base 0) and checks it against the maximum.
  /// Returns: EINVAL/ERANGE, ENODEV; ≤5.19: EBUSY first while a guest is attached.
  Result<unsigned> parse_id(const MatrixMdev& m, std::string_view text, IdKind kind) const;
  Result<void> assign_id(MatrixMdev& m, std::string_view text, IdKind kind);
  Result<void> unassign_id(MatrixMdev& m, std::string_view text, IdKind kind);
  /// Ownership and sharing of `next` for `m` (dynamic profiles, §3.3 step 5, §3.8).
  Result<void> validate(MatrixMdev& m, const ApMatrix& next, const ApidMask* new_apids,
                        const ApqiMask* new_apqis);
  /// ≤5.19 reservation: the new id's APQNs must be queues bound to vfio_ap (§3.10).
  bool reserved_for_vfio_ap(const ApMatrix& next, Apid* apid, Apqi* apqi) const;
  MatrixMdev* find_sharer(const MatrixMdev& m, const ApMatrix& next, const ApidMask* new_apids,
                          const ApqiMask* new_apqis) const;
  void log_sharing(const MatrixMdev& assignee, const ApMatrix& next,
                   const MatrixMdev& holder) const;
  /// What to recompute after an assignment change.
  struct Refilter {
    bool apqns = false; ///< filter_matrix (adapters/domains were added)
    bool cdoms = false; ///< filter_cdoms (control domains were added)
  };
  /// The one path of an assignment change: hot-unplugs what `next` removes (APCB write and
  /// resets, with the old matrix in place), installs `next`, updates the index and the queue
  /// links, refilters, writes the guest's APCB once if the shadow changed and resets the
  /// queues of filtered adapters (the sequence of vfio_ap's ap_config_store, which the single
  /// attributes are special cases of).
  void commit(MatrixMdev& m, const ApMatrix& next, Refilter refilter);
  void hot_unplug(MatrixMdev& m, const ApidMask& apids, const ApqiMask& apqis);
  bool filter_matrix(MatrixMdev& m, ApidMask& apm_filtered);
  bool filter_cdoms(MatrixMdev& m);
  bool passable(const MatrixMdev& m, Apqn q) const;
  void update_guest_apcb(MatrixMdev& m);
  void reset_queue(VfioApQueue& q);
  int reset_queues(const std::vector<VfioApQueue*>& qs);
  void reset_queues_for_apids(MatrixMdev& m, const ApidMask& apids);
  std::vector<VfioApQueue*> linked_queues(const MatrixMdev& m) const;
  MatrixMdev* mdev_for_apqn(Apqn q) const;

  ap::ApBus* m_bus;
  mdev::MdevBus* m_mdevs;
  ap::Qci m_info;
  core::Ref<core::Device> m_root;
  core::Bus* m_matrix_bus = nullptr;
  core::Ref<core::Device> m_matrix;
  core::Driver* m_matrix_driver = nullptr;
  core::Driver* m_ap_driver = nullptr;
  mdev::MdevDriver* m_mdev_driver = nullptr;
  mdev::MdevParent* m_parent = nullptr;
  std::vector<std::unique_ptr<MatrixMdev>> m_list; ///< creation order (mdev_list reversed)
  std::uint64_t m_next_seq = 1;
  /// Mdevs that have the id assigned, per APID and per APQI (the sharing check's candidates).
  std::array<std::vector<MatrixMdev*>, kMaxApIds> m_by_apid, m_by_apqi;
  std::vector<std::unique_ptr<VfioApQueue>> m_queues; ///< by qid
  std::uint64_t m_total_resets = 0;
};

} // namespace apemu::vfio_ap
