// The s390 vfio_ap driver (drivers/s390/crypto/vfio_ap_drv.c, vfio_ap_ops.c,
// vfio_ap_private.h; vfio-ap.md is the specification, each rule cites its section).
//
// VfioAp is the loaded module: the root device /sys/devices/vfio_ap (with its `module` link),
// the private `matrix` bus, the one `matrix` device bound to the matrix driver `vfio_ap`
// (suppress_bind_attrs, the `features` file), the AP queue driver `vfio_ap` (non-default,
// CEX4..CEX8 queues, in_use/on_config_changed/on_scan_complete, the queue `status` file), the
// mdev driver `vfio_ap_mdev` and the mdev type `vfio_ap-passthrough` whose instances are the
// MatrixMdevs. Every mdev attribute (assign_*, unassign_*, ap_config, matrix, guest_matrix,
// control_domains) follows vfio-ap.md §3 in check order and errno; the guest's view is the
// shadow APCB derived by filtering (§4.1) and pushed to the attached KvmGuest (hot plug).
//
// Kernel profiles (VfioApOptions::profile):
//  * "6.16" (default): everything above, as in a ~v6.16 tree.
//  * "4.20" (the first vfio_ap, before the 2019 matrix-bus patch, vfio-ap.md §1.6, §1.7):
//    - the matrix device is registered bus-less below /sys/devices/vfio_ap: no `matrix` bus,
//      no `subsystem` or `driver` link, no uevents (libudev/udevadm see no subsystem); the
//      kernel forced its driver pointer, which apemu cannot do (binding only through the core),
//      so the type prefix "vfio_ap" is passed to the mdev core explicitly;
//    - the legacy mdev core (mdev bus binds `vfio_mdev`; vendor callbacks create/remove;
//      no MDEV_STATE events are visible for the bus-less parent); exhausted instances → EPERM;
//    - no `features`, `guest_matrix`, `ap_config` and no queue `status` file; no in_use (mask
//      writes are never vetoed), no host configuration-change handling;
//    - assignment semantics of §3.10: EBUSY while a guest is attached (checked before parsing),
//      then EINVAL/ERANGE, ENODEV, the "bound to vfio_ap" reservation check (EADDRNOTAVAIL),
//      then sharing (EADDRINUSE), no log lines; unassign of an unassigned id just succeeds;
//    - the guest gets the raw mdev masks once at attach (no filtering, no hot plug);
//    - `remove` while a guest is attached fails with EBUSY (§3.11).
//
// Locking: the single model lock (core::Core::lock) stands for ap_perms_mutex, guests_lock,
// kvm->lock and mdevs_lock (§8); every public function takes it.
//
// Divergences: no PQAP(AQIC) interception, no NIB pinning, no VFIO ioctls beyond RESET and
// SET_IRQS as C++ calls (§6, §7 are the kvm layer's business); no s390dbf area. Queue resets
// (ZAPQ) complete at once: the verification sees the firmware's TAPQ answer immediately.
// A `remove` while the device is open relays one device request (§5.5); QEMU-like users
// (guest_start) release the device in response, and the removal completes. A user that ignores
// the request would block the writer forever in the kernel; apemu cannot block while holding
// the model lock, so the write fails with EBUSY instead. The kernel's stale queue back-pointer
// after an unassignment (§3.4) has no observable effect and is not modelled.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/ap/ap_bus.h"
#include "apemu/base/result.h"
#include "apemu/mdev/mdev.h"
#include "apemu/vfio_ap/id_set.h"
#include "apemu/vfio_ap/kvm_guest.h"

namespace apemu::vfio_ap {

class VfioAp;
class MatrixMdev;

enum class KernelProfile { V4_20, V6_16 };

/// Parses "6.16" or "4.20". Returns: EINVAL for anything else.
Result<KernelProfile> parse_kernel_profile(std::string_view text);
std::string_view kernel_profile_name(KernelProfile p);

/// struct ap_matrix: three 256-bit masks and the maxima they are checked against.
struct ApMatrix {
  unsigned apm_max = 0, aqm_max = 0, adm_max = 0;
  IdSet apm, aqm, adm;
  /// True when (apid, apqi) is in apm × aqm.
  bool contains(unsigned apid, unsigned apqi) const { return apm.test(apid) && aqm.test(apqi); }
};

/// struct vfio_ap_queue: vfio_ap's state of an AP queue device bound to it (vfio-ap.md §2.4).
class VfioApQueue {
public:
  unsigned apid() const { return m_apid; }
  unsigned apqi() const { return m_apqi; }
  ap::ApQueue& device() const { return *m_dev; }
  /// The mdev this queue is linked to (in its qtable), or null.
  MatrixMdev* matrix_mdev() const { return m_mdev; }
  /// Response code of the last ZAPQ the driver issued (reset_status; 0 at probe).
  int reset_rc() const { return m_reset_rc; }
  /// Number of resets (ZAPQ) issued for this queue by vfio_ap.
  std::uint64_t resets() const { return m_resets; }
  /// saved_isc (0xff = none); stays 0xff without AQIC interception.
  unsigned saved_isc() const { return m_saved_isc; }
  VfioAp& vfio_ap() const { return *m_vfio; }

private:
  friend class VfioAp;
  VfioApQueue(VfioAp& v, ap::ApQueue& dev)
      : m_vfio(&v), m_dev(&dev), m_apid(dev.apid()), m_apqi(dev.apqi()) {}
  VfioAp* m_vfio;
  ap::ApQueue* m_dev;
  unsigned m_apid, m_apqi;
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
  KvmGuest* kvm() const { return m_kvm.get(); }
  /// True between a successful open_device and close_device (with or without a KVM CRYCB).
  bool opened() const { return m_open; }
  /// Resources added to the host configuration and assigned here, between on_config_changed
  /// and on_scan_complete.
  const IdSet& apm_add() const { return m_apm_add; }
  const IdSet& aqm_add() const { return m_aqm_add; }
  const IdSet& adm_add() const { return m_adm_add; }
  const std::shared_ptr<EventFd>& req_trigger() const { return m_req_trigger; }
  const std::shared_ptr<EventFd>& cfg_chg_trigger() const { return m_cfg_chg_trigger; }
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
  std::shared_ptr<KvmGuest> m_kvm;
  bool m_open = false;
  IdSet m_apm_add, m_aqm_add, m_adm_add;
  std::shared_ptr<EventFd> m_req_trigger, m_cfg_chg_trigger;
};

/// How guest_start runs a guest, QEMU style.
struct GuestOptions {
  std::string name; ///< empty: "guest-<first 8 UUID chars>"
  CrycbFormat format = CrycbFormat::Format2;
  bool has_crycb = true;
  /// Register the request eventfd and release the device when it fires (QEMU's vfio-ap does).
  bool honour_requests = true;
  /// Register the configuration-change eventfd (counted only) [6.15+].
  bool cfg_chg_eventfd = true;
};

struct VfioApOptions {
  KernelProfile profile = KernelProfile::V6_16;
};

class VfioAp {
public:
  /// Module init (vfio-ap.md §1.5): root device, (6.16) matrix bus, matrix device and driver,
  /// the AP queue driver (binds the queues outside apmask × aqmask), the mdev driver and the
  /// parent with its type. Emits: add/bind of matrix, binds of queues, change MDEV_STATE.
  /// Returns: the errno of the failing step; everything before it is undone.
  static Result<std::unique_ptr<VfioAp>> create(ap::ApBus& bus, mdev::MdevBus& mdevs,
                                                VfioApOptions opt = {});
  /// Module exit, in reverse; attached guests are detached first (as their users would have to).
  ~VfioAp();
  VfioAp(const VfioAp&) = delete;
  VfioAp& operator=(const VfioAp&) = delete;

  KernelProfile profile() const { return m_opt.profile; }
  core::Core& core() const { return m_bus->core(); }
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
  VfioApQueue* queue(unsigned apid, unsigned apqi) const;
  /// The kernel's "is this APQN reserved for vfio_ap" check: walks the vfio_ap AP driver's
  /// bound devices through the core (driver_for_each_device), so only queues whose binding
  /// completed count; there is no hand-set driver pointer anywhere (driver-core.md §1.10).
  /// Locking: takes the model lock.
  bool apqn_bound_to_vfio_ap(unsigned apid, unsigned apqi) const;
  /// Total ZAPQs issued by vfio_ap.
  std::uint64_t reset_count() const { return m_total_resets; }

  // ---- mdev lifecycle through the mdev core (the `create` / `remove` files) -------------------
  /// Same as writing the UUID to the type's `create`. Returns: its errors (EEXIST ...).
  Result<MatrixMdev*> create_mdev(std::string_view uuid);
  /// Same as writing "1" to `remove`. Returns: EBUSY (4.20 while attached; 6.16 when the user
  /// does not release the device on request), ENODEV, EAGAIN.
  Result<void> remove_mdev(MatrixMdev& m);

  // ---- the mdev attributes (vfio-ap.md §3), same input, output and errno as the files --------
  /// Returns: EINVAL/ERANGE (parse), ENODEV (id above the mdev's maximum), EADDRNOTAVAIL
  /// (an APQN of the new matrix is reserved for the host's default drivers), EADDRINUSE (an
  /// APQN is assigned to another mdev; one log line per shared APQN); 4.20: EBUSY first.
  Result<void> assign_adapter(MatrixMdev& m, std::string_view text);
  Result<void> assign_domain(MatrixMdev& m, std::string_view text);
  /// Returns: EINVAL/ERANGE, ENODEV; never a sharing error. Hot-unplugs and resets.
  Result<void> unassign_adapter(MatrixMdev& m, std::string_view text);
  Result<void> unassign_domain(MatrixMdev& m, std::string_view text);
  /// Returns: EINVAL/ERANGE, ENODEV (no ownership or sharing check, §3.5).
  Result<void> assign_control_domain(MatrixMdev& m, std::string_view text);
  Result<void> unassign_control_domain(MatrixMdev& m, std::string_view text);
  /// ap_config write (§3.8), all or nothing. Returns: EINVAL (grammar, fewer than three
  /// masks), EADDRNOTAVAIL, EADDRINUSE, then ENODEV (bit above a maximum).
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
  /// Emits: an APCB write of the current shadow (4.20: the raw masks).
  Result<void> open_device(MatrixMdev& m, std::shared_ptr<KvmGuest> kvm);
  /// close_device: clears the guest's APCB, resets every linked queue, detaches. No-op when
  /// not open.
  void close_device(MatrixMdev& m);
  /// VFIO_DEVICE_RESET. Returns: EIO when a linked queue's reset answered a non-zero code.
  Result<void> device_reset(MatrixMdev& m);
  /// VFIO_DEVICE_SET_IRQS with one eventfd (null = fd -1, unregister). Returns: EINVAL for an
  /// unknown index; 4.20: EOPNOTSUPP.
  Result<void> set_irq_eventfd(MatrixMdev& m, IrqIndex index, std::shared_ptr<EventFd> fd);
  /// The VFIO core's device request callback (§5.5).
  void request(MatrixMdev& m, unsigned count);

  // ---- guests as QEMU runs them (used by `apemu ctl guest ...`) --------------------------------
  /// Creates a KVM guest, registers eventfds as QEMU does and opens the device.
  /// Returns: open_device's errors; EBUSY when a guest already uses the mdev.
  Result<std::shared_ptr<KvmGuest>> guest_start(MatrixMdev& m, GuestOptions opt = {});
  /// Closes the device and unregisters the eventfds. Returns: ENODEV when not open.
  Result<void> guest_stop(MatrixMdev& m);

private:
  explicit VfioAp(ap::ApBus& bus, mdev::MdevBus& mdevs, VfioApOptions opt)
      : m_bus(&bus), m_mdevs(&mdevs), m_opt(opt) {}
  friend struct VfioApAttrs;
  bool legacy() const { return m_opt.profile == KernelProfile::V4_20; }
  Result<void> init();
  void teardown();
  ApMatrix init_matrix() const;
  std::string mdev_prefix(const MatrixMdev& m) const;
  static std::string show_apqns(const ApMatrix& mx);

  // mdev driver callbacks
  Result<void> mdev_probe(core::Device& dev);
  void mdev_remove(core::Device& dev);
  Result<void> mdev_unregister_wait(mdev::MdevDevice& dev);
  // AP driver callbacks
  Result<void> queue_probe(core::Device& dev);
  void queue_remove(core::Device& dev);
  int resource_in_use(const ap::Mask256& apm, const ap::Mask256& aqm);
  void on_config_changed();
  void on_scan_complete();

  // assignments
  Result<void> assign_id(MatrixMdev& m, std::string_view text, bool adapter);
  Result<void> unassign_id(MatrixMdev& m, std::string_view text, bool adapter);
  Result<void> assign_id_legacy(MatrixMdev& m, std::string_view text, int kind);
  Result<void> unassign_id_legacy(MatrixMdev& m, std::string_view text, int kind);
  Result<void> validate_masks(MatrixMdev& m, const IdSet* new_apids, const IdSet* new_apqis);
  bool owned_by_default(const IdSet& apm, const IdSet& aqm);
  MatrixMdev* find_sharer(const MatrixMdev& m, const IdSet* new_apids,
                          const IdSet* new_apqis) const;
  void log_sharing(const MatrixMdev& assignee, const MatrixMdev& holder) const;
  void index_set(MatrixMdev& m, const ApMatrix& old_matrix);
  void link_apqn(MatrixMdev& m, unsigned apid, unsigned apqi);
  void hot_unplug_adapters(MatrixMdev& m, const IdSet& apids);
  void hot_unplug_domains(MatrixMdev& m, const IdSet& apqis);
  bool filter_matrix(MatrixMdev& m, IdSet& apm_filtered);
  bool filter_cdoms(MatrixMdev& m);
  bool passable(const MatrixMdev& m, unsigned apid, unsigned apqi) const;
  void update_guest_apcb(MatrixMdev& m);
  void reset_queue(VfioApQueue& q);
  int reset_queues(const std::vector<VfioApQueue*>& qs);
  void reset_queues_for_apids(MatrixMdev& m, const IdSet& apids);
  void set_info(const ap::Qci& qci);
  std::vector<VfioApQueue*> linked_queues(const MatrixMdev& m) const;
  MatrixMdev* mdev_for_apqn(unsigned apid, unsigned apqi) const;
  static MatrixMdev& mdev_of(core::Device& d);

  ap::ApBus* m_bus;
  mdev::MdevBus* m_mdevs;
  VfioApOptions m_opt;
  ap::Qci m_info;
  IdSet m_info_apm, m_info_aqm, m_info_adm; ///< m_info's masks
  ap::Mask256 m_seen_apmask, m_seen_aqmask; ///< the bus masks m_apmask/m_aqmask were made from
  IdSet m_apmask, m_aqmask;
  bool m_masks_cached = false;
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
  std::array<std::vector<MatrixMdev*>, ap::kMaxApIds> m_by_apid, m_by_apqi;
  std::vector<std::unique_ptr<VfioApQueue>> m_queues; ///< by apid * 256 + apqi
  std::uint64_t m_total_resets = 0;
};

} // namespace apemu::vfio_ap
