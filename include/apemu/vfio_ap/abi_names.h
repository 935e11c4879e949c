// ABI strings of vfio_ap, spelled once (drivers/s390/crypto/vfio_ap_drv.c, vfio_ap_ops.c;
// vfio-ap.md §1.1, §1.2, §3, §4.7).
#pragma once

#include <string_view>

namespace apemu::vfio_ap::abi {

inline constexpr std::string_view kVfioAp =
    "vfio_ap";                                        // VFIO_AP_ROOT_NAME, VFIO_AP_DRV_NAME, module
inline constexpr std::string_view kMatrix = "matrix"; // VFIO_AP_DEV_NAME, the matrix bus
inline constexpr std::string_view kVfioApMdev = "vfio_ap_mdev";   // the mdev driver
inline constexpr std::string_view kTypeSysfsName = "passthrough"; // VFIO_AP_MDEV_TYPE_HWVIRT
inline constexpr std::string_view kTypeName =
    "VFIO AP Passthrough Device";                         // VFIO_AP_MDEV_NAME_HWVIRT
inline constexpr std::string_view kDeviceApi = "vfio-ap"; // VFIO_DEVICE_API_AP_STRING
/// MAX_ZDEV_ENTRIES_EXT: 256 adapters × 256 domains.
inline constexpr unsigned kMaxInstances = 65536;

// mdev attributes
inline constexpr std::string_view kAssignAdapter = "assign_adapter";
inline constexpr std::string_view kUnassignAdapter = "unassign_adapter";
inline constexpr std::string_view kAssignDomain = "assign_domain";
inline constexpr std::string_view kUnassignDomain = "unassign_domain";
inline constexpr std::string_view kAssignControlDomain = "assign_control_domain";
inline constexpr std::string_view kUnassignControlDomain = "unassign_control_domain";
inline constexpr std::string_view kApConfig = "ap_config";
inline constexpr std::string_view kControlDomains = "control_domains";
inline constexpr std::string_view kMatrixAttr = "matrix";
inline constexpr std::string_view kGuestMatrix = "guest_matrix";

// matrix device and AP queue attributes
inline constexpr std::string_view kFeatures = "features";
inline constexpr std::string_view kFeaturesValue = "guest_matrix hotplug ap_config\n";
inline constexpr std::string_view kStatus = "status";
inline constexpr std::string_view kQueueAssigned = "assigned";     // AP_QUEUE_ASSIGNED
inline constexpr std::string_view kQueueUnassigned = "unassigned"; // AP_QUEUE_UNASSIGNED
inline constexpr std::string_view kQueueInUse = "in use";          // AP_QUEUE_IN_USE

} // namespace apemu::vfio_ap::abi
