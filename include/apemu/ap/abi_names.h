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

} // namespace apemu::ap::abi
