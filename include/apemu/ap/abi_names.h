// ABI strings of the AP bus and zcrypt, spelled once (ap-bus.md §1–§4).
#pragma once

#include <string_view>

namespace apemu::ap::abi {

inline constexpr std::string_view kAp = "ap";                  // bus, root device
inline constexpr std::string_view kApCardType = "ap_card";     // device_type name
inline constexpr std::string_view kApQueueType = "ap_queue";
inline constexpr std::string_view kCex4Card = "cex4card";      // zcrypt default drivers
inline constexpr std::string_view kCex4Queue = "cex4queue";
inline constexpr std::string_view kZcryptCex4Module = "zcrypt_cex4";
// ≤6.4: CEX2/CEX3 accelerators and coprocessors
inline constexpr std::string_view kCex2aCard = "cex2acard";
inline constexpr std::string_view kCex2aQueue = "cex2aqueue";
inline constexpr std::string_view kZcryptCex2aModule = "zcrypt_cex2a";
inline constexpr std::string_view kCex2cCard = "cex2card";
inline constexpr std::string_view kCex2cQueue = "cex2cqueue";
inline constexpr std::string_view kZcryptCex2cModule = "zcrypt_cex2c";

// zcrypt device nodes (zcrypt_api.c; ap-bus.md §8.1)
inline constexpr std::string_view kZcryptClass = "zcrypt";     // class, char region name
inline constexpr std::string_view kMiscClass = "misc";         // drivers/char/misc.c
inline constexpr std::string_view kZ90crypt = "z90crypt";      // the misc device
inline constexpr std::string_view kZcdnCreate = "create";      // class attributes
inline constexpr std::string_view kZcdnDestroy = "destroy";
inline constexpr std::string_view kZcdnPrefix = "zcrypt_";     // name of an unnamed node
/// MISC_MAJOR.
inline constexpr unsigned kMiscMajor = 10;
/// The dynamic numbers a boot without other dynamic users would get: alloc_chrdev_region hands
/// out majors from 254 downwards; misc_register's first dynamic minor is 127 in the legacy
/// range. A real machine's other drivers may have taken these first.
inline constexpr unsigned kZcryptDynamicMajor = 254;
inline constexpr unsigned kZ90cryptDynamicMinor = 127;
/// ZCRYPT_MAX_MINOR_NODES.
inline constexpr unsigned kZcryptMaxMinorNodes = 256;

} // namespace apemu::ap::abi
