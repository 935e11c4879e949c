// The udev ("libudev") netlink message format and the udev database key, as pure functions.
//
// Models what systemd-udevd broadcasts on NETLINK_KOBJECT_UEVENT multicast group 2 after it has
// processed a kernel event (systemd src/libsystemd/sd-device/device-monitor.c:
// device_monitor_send_device, struct monitor_netlink_header; driver-core.md §3.7) and the device
// id that names a device's file under /run/udev/data (device_get_device_id, §4.3).
//
// Divergences from udevd: no rules run, so the properties are the kernel's plus
// UDEV_DATABASE_VERSION, USEC_INITIALIZED and optional tags; DEVLINKS and ID_* never appear.
// MurmurHash2 loads 4-byte blocks in host byte order exactly as systemd's copy does, so hashes
// (and the receivers' BPF filters computed with them) agree on the same machine but differ
// between little- and big-endian hosts (s390x).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/uevent/event.h"

namespace apemu::netlink {

/// UDEV_MONITOR_MAGIC; stored big-endian at offset 8 of the header.
inline constexpr std::uint32_t kUdevMonitorMagic = 0xfeedcafe;
/// sizeof(monitor_netlink_header): the 8-byte "libudev\0" prefix plus eight 32-bit fields.
inline constexpr std::size_t kUdevHeaderSize = 40;
/// MONITOR_GROUP_UDEV: the multicast group (bit value) udev messages are sent to.
inline constexpr std::uint32_t kUdevMonitorGroup = 2;
/// Receive buffer of older sd-device monitors (a fixed 8192-byte union in
/// device_monitor_receive_device): longer datagrams arrive with MSG_TRUNC and are dropped.
/// Newer versions size the buffer from the pending datagram; Debian 12's libudev 252.39 has
/// that backport and accepted a 9136-byte message when probed.
inline constexpr std::size_t kSdDeviceMonitorBuffer = 8192;
/// LATEST_UDEV_DATABASE_VERSION, sent as UDEV_DATABASE_VERSION=1 and written as V:1.
inline constexpr int kUdevDatabaseVersion = 1;

/// What udevd adds to a kernel event besides the kernel's own properties.
struct UdevExtras {
  /// USEC_INITIALIZED (CLOCK_MONOTONIC microseconds of the first time udevd saw the device);
  /// 0 leaves the property out.
  std::uint64_t usec_initialized = 0;
  /// Tags, sent as TAGS= and CURRENT_TAGS= (":a:b:") and folded into the header's tag bloom.
  std::vector<std::string> tags;
};

/// Classic 32-bit MurmurHash2 (m = 0x5bd1e995, r = 24, h = seed ^ len) with host-order block
/// loads, bit-identical to systemd's src/basic/MurmurHash2.c on the same machine.
std::uint32_t murmur_hash2(std::string_view data, std::uint32_t seed = 0);

/// The 64-bit bloom word of one tag (string_bloom64): bits (h & 63), (h >> 6 & 63),
/// (h >> 12 & 63) and (h >> 18 & 63) of h = murmur_hash2(tag).
std::uint64_t tag_bloom(std::string_view tag);

/// Builds one udev-format datagram for `ev`: the 40-byte header (prefix "libudev\0"; magic
/// big-endian; header_size, properties_off and properties_len in host order; subsystem hash,
/// devtype hash (0 without DEVTYPE) and tag bloom hi/lo big-endian) followed by KEY=VALUE\0
/// strings: UDEV_DATABASE_VERSION=1, every variable of `ev.env` in order (ACTION ... SEQNUM),
/// USEC_INITIALIZED when non-zero, then TAGS= and CURRENT_TAGS= when tags are given.
///
/// Pure; the result may exceed kSdDeviceMonitorBuffer only for events far beyond the kernel's
/// 2048-byte environment limit.
///
/// @code
///   std::string msg = build_udev_message(ev, UdevExtras{monotonic_usec(), {"systemd"}});
///   // sendmsg(fd, msg) to sockaddr_nl{.nl_groups = kUdevMonitorGroup}
/// @endcode
std::string build_udev_message(const uevent::Event& ev, const UdevExtras& extras);

/// The udev database key of a device without devnum or ifindex (§4.3): "+<subsystem>:<sysname>",
/// or "+drivers:<driver_subsystem>:<sysname>" when `subsystem` is "drivers". `sysname` is the
/// raw kernel name (devpath basename, '!' kept).
///
/// Returns: ENOENT: `subsystem` is empty (sd-device has no subsystem, hence no id);
/// EINVAL: subsystem "drivers" without a driver subsystem, or the id is not a valid file name
/// (empty sysname, '/' or NUL inside, "." or "..");
/// ENAMETOOLONG: the id is longer than NAME_MAX.
Result<std::string> device_id(std::string_view subsystem, std::string_view sysname,
                              std::string_view driver_subsystem = {});

/// The bus of a driver kobject: "<bus>" from a devpath "/bus/<bus>/drivers/<driver>" (the path
/// element before "drivers", as device_set_drivers_subsystem derives it); nullopt otherwise.
std::optional<std::string> driver_subsystem_from_devpath(std::string_view devpath);

/// The last element of a devpath ("" for "" or "/").
std::string_view devpath_sysname(std::string_view devpath);

/// CLOCK_MONOTONIC in microseconds (what udevd stores as USEC_INITIALIZED). Not pure.
std::uint64_t monotonic_usec();

} // namespace apemu::netlink
