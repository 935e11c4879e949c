// ABI strings of the driver core, spelled once (driver-core.md §2).
#pragma once

#include <string_view>

namespace apemu::core::abi {

inline constexpr std::string_view kDevices = "devices";
inline constexpr std::string_view kBus = "bus";
inline constexpr std::string_view kClass = "class";
inline constexpr std::string_view kKernel = "kernel";
inline constexpr std::string_view kModule = "module";
inline constexpr std::string_view kVirtual = "virtual";
inline constexpr std::string_view kDrivers = "drivers";
inline constexpr std::string_view kUevent = "uevent";
inline constexpr std::string_view kUeventSeqnum = "uevent_seqnum";
inline constexpr std::string_view kSubsystem = "subsystem";
inline constexpr std::string_view kDriver = "driver";
inline constexpr std::string_view kDevice = "device";
inline constexpr std::string_view kDev = "dev"; ///< the MAJ:MIN attribute and /sys/dev
inline constexpr std::string_view kPower = "power";
inline constexpr std::string_view kBind = "bind";
inline constexpr std::string_view kUnbind = "unbind";
inline constexpr std::string_view kDriversProbe = "drivers_probe";
inline constexpr std::string_view kDriversAutoprobe = "drivers_autoprobe";
inline constexpr std::string_view kDriverOverride = "driver_override";
inline constexpr std::string_view kOnline = "online";

} // namespace apemu::core::abi
