// Kernel profiles: which Linux kernel the emulated machine behaves like.
//
// One const row per profile, defined in one place (src/profile/kernel_profile.cpp), at the
// bottom of the dependency graph. Every subsystem (driver core, AP bus, zcrypt, mdev, vfio_ap)
// asks a row about a *feature*, a *format* or an *errno* — never about a version number. A row
// lists the behaviour of the spec's version tables (ap-bus.md §11, vfio-ap.md §1.7, the [ver]
// notes of driver-core.md) as they stand in that kernel; where the specs leave a version
// uncertain, the table's comment says which way the row was chosen.
//
// @code
//   const profile::KernelProfile& p = core.profile();
//   const int depth = p.ap_card_depth_qd_plus_one ? qd + 1 : qd;
// @endcode
#pragma once

#include <span>
#include <string_view>

#include "apemu/base/result.h"

namespace apemu::profile {

/// The arguments the AP bus passes to a driver's in_use callback on an apmask/aqmask write.
enum class InUseArgs {
  None,         ///< no in_use veto at all (before ~5.10)
  CurrentMasks, ///< newly set ids × the current other mask (≤6.18)
  AllOnes,      ///< newly set ids × all ones (6.19+)
};

/// How the card attribute `max_msg_size` is formed (ap-bus.md §4.1).
enum class MaxMsgSize {
  Absent,  ///< no attribute (older kernels)
  MlOver0, ///< ml × 4096 if ml > 0, else 12288
  MlOver3, ///< ml × 4096 if ml > 3, else 12288 (newest)
};

/// How vfio_ap answers an mdev `remove` while its VFIO device is open (vfio-ap.md §3.11).
enum class MdevRemoveInUse {
  Ebusy, ///< fails with EBUSY (4.20)
  Block, ///< blocks the writer until user space closes the device (~5.13+)
};

struct KernelProfile {
  std::string_view name;       ///< "--kernel NAME"
  std::string_view stands_for; ///< which real kernels and distributions it stands for
  std::string_view summary;    ///< one line for `apemu kernels`

  // ---- driver core (driver-core.md) -----------------------------------------------------------
  /// UEVENT_NUM_ENVP: 32 before 5.8, 64 since.
  unsigned uevent_num_envp;
  /// 5.13+: a `bind` write returns EBUSY (bound), EAGAIN (deferred) or the probe's errno; before,
  /// every failure was ENODEV (driver-core.md §2.4).
  bool bind_reports_probe_errors;

  // ---- AP bus and zcrypt (ap-bus.md §11) ------------------------------------------------------
  /// The lowest raw AP type that gets a card: 6 (CEX2A, with the cex2* drivers, ≤6.4) or 10.
  int ap_min_card_type;
  /// Card `depth` and the queue fill limit: qd + 1 (upstream 3317785a8803) instead of qd.
  bool ap_card_depth_qd_plus_one;
  MaxMsgSize ap_max_msg_size;
  /// Card and queue `config` and `chkstop`, CONFIG= change uevents (≈5.1x).
  bool ap_config_attrs;
  /// Queue `ap_functions` (the SE era, ≈6.5).
  bool ap_queue_functions_attr;
  /// Queue `request_count` reads "-" while the queue is UNINITIATED (newer kernels).
  bool ap_request_count_dash;
  /// Bus `bindings` and `scans`, the INITSCAN=done and BINDINGS=complete uevents (≈5.10).
  bool ap_bindings;
  /// 6.19: BINDINGS=complete only on the transition to complete, with COMPLETECOUNT and the
  /// bus `bindings_complete_count`; before, on every successful check (every scan).
  bool ap_bindings_once;
  /// 6.19: queue `driver_override` through the generic mechanism; overrides and non-default
  /// masks exclude each other (EINVAL).
  bool ap_queue_driver_override;
  /// APMASK=/AQMASK= change uevents on /devices/ap (≈5.10).
  bool ap_mask_uevents;
  InUseArgs ap_in_use;
  /// Bus `features` (newer 6.x).
  bool ap_bus_features;
  /// MODE= on card and queue uevents, DEV_TYPE/MODALIAS on cards only (newer); else DEV_TYPE
  /// and MODALIAS on both and no MODE.
  bool ap_uevent_mode;
  /// `poll_timeout` store: kstrtoul base 0, 0..120e9 (≈6.5+); else sscanf, 1..120e9.
  bool ap_poll_timeout_kstrtoul;
  /// `poll_thread` store: kstrtobool (newer); else sscanf("%d").
  bool ap_poll_thread_kstrtobool;

  // ---- mdev core ------------------------------------------------------------------------------
  /// ≥5.16: the vendor's mdev driver binds mdevs; before, the generic `vfio_mdev` did and the
  /// vendor was called through mdev_parent_ops.
  bool mdev_vendor_driver_binds;
  /// `create` with no instance left: EUSERS (mdev core, 6.1+) or EPERM (vfio_ap ≤6.0).
  int mdev_exhausted_errno;

  // ---- vfio_ap (vfio-ap.md §1.7) --------------------------------------------------------------
  /// 5.0+: the private `matrix` bus and matrix driver (4.20: a bus-less matrix device).
  bool vfio_ap_matrix_bus;
  /// 6.0+: shadow APCB with filtering, hot plug, `guest_matrix`, in_use, host config changes,
  /// assignment without the "bound to vfio_ap" rule. Before: the static rules of §3.10.
  bool vfio_ap_dynamic_config;
  /// Queue `status` (~6.1/6.2).
  bool vfio_ap_queue_status;
  /// mdev `ap_config` (6.10).
  bool vfio_ap_ap_config;
  /// matrix `features` (6.12).
  bool vfio_ap_features;
  /// VFIO_AP_REQ_IRQ_INDEX and the device request callback (~6.7).
  bool vfio_ap_request_irq;
  /// VFIO_AP_CFG_CHG_IRQ_INDEX; the request callback also clears the guest's masks (6.15).
  bool vfio_ap_cfg_chg_irq;
  MdevRemoveInUse mdev_remove_in_use;
  /// PQAP(AQIC) interception and vfio_ap_queue interrupt state (5.3+).
  bool vfio_ap_aqic;
  /// AQIC response code when the GISA ISC registration fails: 0x06 (6.5+) or 0x08.
  int vfio_ap_aqic_gisc_failure_rc;
};

/// Every profile, oldest first.
std::span<const KernelProfile> all_profiles();
/// The newest profile, used unless `--kernel` says otherwise.
const KernelProfile& default_profile();
/// The profile named `name`. Returns: EINVAL naming the known profiles.
Result<const KernelProfile*> find_profile(std::string_view name);

} // namespace apemu::profile
