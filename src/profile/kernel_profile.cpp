// The kernel profile table (see kernel_profile.h). Each row is what the specs' version tables
// say for that kernel. "(chosen)" marks a feature whose version the specs give only roughly
// ("≈5.1x", "newer 6.x"): the row follows the reasoning in the comment.
#include "apemu/profile/kernel_profile.h"

#include <array>
#include <cerrno>
#include <string>

namespace apemu::profile {

namespace {

constexpr std::array<KernelProfile, 5> kProfiles = {{
    {
        .name = "4.20",
        .stands_for = "upstream 4.20 (December 2018), the first kernel with vfio_ap",
        .summary = "first vfio_ap: bus-less matrix device, static assignment, remove EBUSY in use",
        .uevent_num_envp = 32,
        .bind_reports_probe_errors = false,
        .ap_min_card_type = 6,
        .ap_card_depth_qd_plus_one = false,
        .ap_max_msg_size = MaxMsgSize::Absent,
        .ap_config_attrs = false,
        .ap_queue_functions_attr = false,
        .ap_request_count_dash = false,
        // (chosen) bindings/scans and their uevents came with the ≈5.10 bus rework.
        .ap_bindings = false,
        .ap_bindings_once = false,
        .ap_queue_driver_override = false,
        .ap_mask_uevents = false,
        .ap_in_use = InUseArgs::None,
        .ap_bus_features = false,
        .ap_uevent_mode = false,
        .ap_poll_timeout_kstrtoul = false,
        .ap_poll_thread_kstrtobool = false,
        .mdev_vendor_driver_binds = false,
        .mdev_exhausted_errno = EPERM,
        .vfio_ap_matrix_bus = false,
        .vfio_ap_dynamic_config = false,
        .vfio_ap_queue_status = false,
        .vfio_ap_ap_config = false,
        .vfio_ap_features = false,
        .vfio_ap_request_irq = false,
        .vfio_ap_cfg_chg_irq = false,
        .mdev_remove_in_use = MdevRemoveInUse::Ebusy,
        .vfio_ap_aqic = false,
        .vfio_ap_aqic_gisc_failure_rc = 0x08,
    },
    {
        .name = "5.15",
        .stands_for = "Ubuntu 22.04 LTS (5.15); SUSE SLE 15 SP4/SP5 (5.14) behave alike",
        .summary = "matrix bus, AQIC interrupts, static assignment, remove blocks in use",
        .uevent_num_envp = 64,
        .bind_reports_probe_errors = true,
        .ap_min_card_type = 6,
        .ap_card_depth_qd_plus_one = false,
        // (chosen) max_msg_size and TAPQ ml arrived with 6.x, not 5.1x.
        .ap_max_msg_size = MaxMsgSize::Absent,
        .ap_config_attrs = true,
        .ap_queue_functions_attr = false,
        // (chosen) the "-" for UNINITIATED queues is 6.x.
        .ap_request_count_dash = false,
        .ap_bindings = true,
        .ap_bindings_once = false,
        .ap_queue_driver_override = false,
        .ap_mask_uevents = true,
        .ap_in_use = InUseArgs::CurrentMasks,
        .ap_bus_features = false,
        // ap-bus.md §3.4: the older content lasted through ≈5.1x.
        .ap_uevent_mode = false,
        .ap_poll_timeout_kstrtoul = false,
        .ap_poll_thread_kstrtobool = false,
        // (chosen) vfio_mdev.c went away in 5.16; 5.15 binds mdevs to the generic vfio_mdev.
        .mdev_vendor_driver_binds = false,
        .mdev_exhausted_errno = EPERM,
        .vfio_ap_matrix_bus = true,
        .vfio_ap_dynamic_config = false,
        .vfio_ap_queue_status = false,
        .vfio_ap_ap_config = false,
        .vfio_ap_features = false,
        .vfio_ap_request_irq = false,
        .vfio_ap_cfg_chg_irq = false,
        .mdev_remove_in_use = MdevRemoveInUse::Block,
        .vfio_ap_aqic = true,
        .vfio_ap_aqic_gisc_failure_rc = 0x08,
    },
    {
        .name = "6.1",
        .stands_for = "Debian 12 bookworm (6.1)",
        .summary = "vfio_ap dynamic configuration (guest_matrix, hot plug, in_use), EUSERS",
        .uevent_num_envp = 64,
        .bind_reports_probe_errors = true,
        .ap_min_card_type = 6,
        .ap_card_depth_qd_plus_one = false,
        .ap_max_msg_size = MaxMsgSize::MlOver0,
        .ap_config_attrs = true,
        .ap_queue_functions_attr = false,
        .ap_request_count_dash = true,
        .ap_bindings = true,
        .ap_bindings_once = false,
        .ap_queue_driver_override = false,
        .ap_mask_uevents = true,
        .ap_in_use = InUseArgs::CurrentMasks,
        // (chosen) the bus `features` attribute is later than 6.1.
        .ap_bus_features = false,
        // (chosen) MODE= arrived with the 6.0-era uevent rework.
        .ap_uevent_mode = true,
        .ap_poll_timeout_kstrtoul = false,
        .ap_poll_thread_kstrtobool = false,
        .mdev_vendor_driver_binds = true,
        .mdev_exhausted_errno = EUSERS,
        .vfio_ap_matrix_bus = true,
        .vfio_ap_dynamic_config = true,
        // (chosen) queue `status` is ~6.1/6.2: absent in 6.1.
        .vfio_ap_queue_status = false,
        .vfio_ap_ap_config = false,
        .vfio_ap_features = false,
        .vfio_ap_request_irq = false,
        .vfio_ap_cfg_chg_irq = false,
        .mdev_remove_in_use = MdevRemoveInUse::Block,
        .vfio_ap_aqic = true,
        .vfio_ap_aqic_gisc_failure_rc = 0x08,
    },
    {
        .name = "6.16",
        .stands_for = "mainline 6.15-6.18 and the distributions that track it; Debian 13 (6.12) "
                      "and Ubuntu 24.04 (6.8) are closest to it",
        .summary = "current vfio_ap (ap_config, features, request and config-change eventfds)",
        .uevent_num_envp = 64,
        .bind_reports_probe_errors = true,
        .ap_min_card_type = 10,
        .ap_card_depth_qd_plus_one = false,
        .ap_max_msg_size = MaxMsgSize::MlOver0,
        .ap_config_attrs = true,
        .ap_queue_functions_attr = true,
        .ap_request_count_dash = true,
        .ap_bindings = true,
        .ap_bindings_once = false,
        .ap_queue_driver_override = false,
        .ap_mask_uevents = true,
        .ap_in_use = InUseArgs::CurrentMasks,
        .ap_bus_features = true,
        .ap_uevent_mode = true,
        .ap_poll_timeout_kstrtoul = true,
        // (chosen) together with the poll_timeout rework (≈6.5).
        .ap_poll_thread_kstrtobool = true,
        .mdev_vendor_driver_binds = true,
        .mdev_exhausted_errno = EUSERS,
        .vfio_ap_matrix_bus = true,
        .vfio_ap_dynamic_config = true,
        .vfio_ap_queue_status = true,
        .vfio_ap_ap_config = true,
        .vfio_ap_features = true,
        .vfio_ap_request_irq = true,
        .vfio_ap_cfg_chg_irq = true,
        .mdev_remove_in_use = MdevRemoveInUse::Block,
        .vfio_ap_aqic = true,
        .vfio_ap_aqic_gisc_failure_rc = 0x06,
    },
    {
        .name = "6.19",
        .stands_for = "mainline 6.19 (2026) and later: the newest AP bus",
        .summary = "6.16 plus the 6.19 AP bus: queue driver_override, depth qd+1, in_use all ones",
        .uevent_num_envp = 64,
        .bind_reports_probe_errors = true,
        .ap_min_card_type = 10,
        .ap_card_depth_qd_plus_one = true,
        .ap_max_msg_size = MaxMsgSize::MlOver3,
        .ap_config_attrs = true,
        .ap_queue_functions_attr = true,
        .ap_request_count_dash = true,
        .ap_bindings = true,
        .ap_bindings_once = true,
        .ap_queue_driver_override = true,
        .ap_mask_uevents = true,
        .ap_in_use = InUseArgs::AllOnes,
        .ap_bus_features = true,
        .ap_uevent_mode = true,
        .ap_poll_timeout_kstrtoul = true,
        .ap_poll_thread_kstrtobool = true,
        .mdev_vendor_driver_binds = true,
        .mdev_exhausted_errno = EUSERS,
        .vfio_ap_matrix_bus = true,
        .vfio_ap_dynamic_config = true,
        .vfio_ap_queue_status = true,
        .vfio_ap_ap_config = true,
        .vfio_ap_features = true,
        .vfio_ap_request_irq = true,
        .vfio_ap_cfg_chg_irq = true,
        .mdev_remove_in_use = MdevRemoveInUse::Block,
        .vfio_ap_aqic = true,
        .vfio_ap_aqic_gisc_failure_rc = 0x06,
    },
}};

} // namespace

std::span<const KernelProfile> all_profiles() { return kProfiles; }

const KernelProfile& default_profile() { return kProfiles.back(); }

Result<const KernelProfile*> find_profile(std::string_view name) {
  std::string known;
  for (const auto& p : kProfiles) {
    if (p.name == name) return &p;
    known += (known.empty() ? "" : ", ") + std::string(p.name);
  }
  return Error(EINVAL, "unknown kernel profile '" + std::string(name) + "' (" + known + ")");
}

} // namespace apemu::profile
