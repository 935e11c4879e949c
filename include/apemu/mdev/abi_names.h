// ABI strings of the mdev core and the IOMMU group files it relies on, spelled once
// (drivers/vfio/mdev/mdev_core.c, mdev_sysfs.c, mdev_driver.c, drivers/iommu/iommu.c;
// driver-core.md §2.8, clients.md §1).
#pragma once

#include <string_view>

namespace apemu::mdev::abi {

inline constexpr std::string_view kMdevBus = "mdev";                // mdev_bus_type.name
inline constexpr std::string_view kMdevBusCompatClass = "mdev_bus"; // class_compat_register
inline constexpr std::string_view kSupportedTypes = "mdev_supported_types";
inline constexpr std::string_view kCreate = "create";
inline constexpr std::string_view kName = "name";
inline constexpr std::string_view kDeviceApi = "device_api";
inline constexpr std::string_view kAvailableInstances = "available_instances";
inline constexpr std::string_view kDescription = "description";
inline constexpr std::string_view kDevices = "devices";
inline constexpr std::string_view kRemove = "remove";
inline constexpr std::string_view kMdevType = "mdev_type";
inline constexpr std::string_view kMdevState = "MDEV_STATE";
inline constexpr std::string_view kRegistered = "registered";
inline constexpr std::string_view kUnregistered = "unregistered";
/// The generic VFIO driver of mdev devices before the vendor drivers bound directly (≤5.x).
inline constexpr std::string_view kVfioMdev = "vfio_mdev";

// IOMMU groups (iommu_group_alloc / iommu_group_add_device).
inline constexpr std::string_view kIommuGroups = "iommu_groups"; // /sys/kernel/iommu_groups
inline constexpr std::string_view kIommuGroup = "iommu_group";   // link in the device directory
inline constexpr std::string_view kReservedRegions = "reserved_regions";
inline constexpr std::string_view kType = "type";

} // namespace apemu::mdev::abi
