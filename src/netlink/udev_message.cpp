// udev message construction and device ids (systemd device-monitor.c, device-private.c).
#include "apemu/netlink/udev_message.h"

#include <climits>
#include <cstring>
#include <ctime>

namespace apemu::netlink {
namespace {

void put_be32(std::string& out, std::size_t off, std::uint32_t v) {
  out[off + 0] = static_cast<char>((v >> 24) & 0xff);
  out[off + 1] = static_cast<char>((v >> 16) & 0xff);
  out[off + 2] = static_cast<char>((v >> 8) & 0xff);
  out[off + 3] = static_cast<char>(v & 0xff);
}

// The header's size fields are plain `unsigned` in host order (monitor_netlink_header).
void put_host32(std::string& out, std::size_t off, std::uint32_t v) {
  std::memcpy(out.data() + off, &v, sizeof v);
}

void append_property(std::string& out, std::string_view key, std::string_view value) {
  out.append(key);
  out += '=';
  out.append(value);
  out += '\0';
}

} // namespace

std::uint32_t murmur_hash2(std::string_view data, std::uint32_t seed) {
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  std::size_t len = data.size();
  // systemd passes the length as int; truncation to 32 bits matches it for any real string.
  std::uint32_t h = seed ^ static_cast<std::uint32_t>(len);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  while (len >= 4) {
    std::uint32_t k;
    std::memcpy(&k, p, 4); // host byte order, as systemd's *(uint32_t*)data
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
    p += 4;
    len -= 4;
  }
  switch (len) {
  case 3:
    h ^= static_cast<std::uint32_t>(p[2]) << 16;
    [[fallthrough]];
  case 2:
    h ^= static_cast<std::uint32_t>(p[1]) << 8;
    [[fallthrough]];
  case 1:
    h ^= p[0];
    h *= m;
    break;
  default:
    break;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

std::uint64_t tag_bloom(std::string_view tag) {
  const std::uint32_t h = murmur_hash2(tag);
  std::uint64_t bits = 0;
  bits |= std::uint64_t{1} << (h & 63);
  bits |= std::uint64_t{1} << ((h >> 6) & 63);
  bits |= std::uint64_t{1} << ((h >> 12) & 63);
  bits |= std::uint64_t{1} << ((h >> 18) & 63);
  return bits;
}

std::string build_udev_message(const uevent::Event& ev, const UdevExtras& extras) {
  std::string props;
  append_property(props, "UDEV_DATABASE_VERSION", std::to_string(kUdevDatabaseVersion));
  for (const auto& [key, value] : ev.env)
    append_property(props, key, value);
  if (extras.usec_initialized != 0)
    append_property(props, "USEC_INITIALIZED", std::to_string(extras.usec_initialized));
  std::uint64_t bloom = 0;
  if (!extras.tags.empty()) {
    std::string joined = ":";
    for (const auto& tag : extras.tags) {
      joined += tag;
      joined += ':';
      bloom |= tag_bloom(tag);
    }
    append_property(props, "TAGS", joined);
    append_property(props, "CURRENT_TAGS", joined);
  }

  std::string out(kUdevHeaderSize, '\0');
  std::memcpy(out.data(), "libudev", 8); // 7 characters plus the NUL
  put_be32(out, 8, kUdevMonitorMagic);
  put_host32(out, 12, static_cast<std::uint32_t>(kUdevHeaderSize));
  put_host32(out, 16, static_cast<std::uint32_t>(kUdevHeaderSize));
  put_host32(out, 20, static_cast<std::uint32_t>(props.size()));
  put_be32(out, 24, murmur_hash2(ev.subsystem()));
  if (auto devtype = ev.get("DEVTYPE")) put_be32(out, 28, murmur_hash2(*devtype));
  put_be32(out, 32, static_cast<std::uint32_t>(bloom >> 32));
  put_be32(out, 36, static_cast<std::uint32_t>(bloom & 0xffffffffu));
  out += props;
  return out;
}

Result<std::string> device_id(std::string_view subsystem, std::string_view sysname,
                              std::string_view driver_subsystem) {
  if (subsystem.empty()) return Error(ENOENT, "device has no subsystem");
  std::string id = "+";
  id.append(subsystem);
  id += ':';
  if (subsystem == "drivers") {
    if (driver_subsystem.empty()) return Error(EINVAL, "driver without a bus");
    id.append(driver_subsystem);
    id += ':';
  }
  if (sysname.empty() || sysname == "." || sysname == "..") return Error(EINVAL, "invalid sysname");
  id.append(sysname);
  // filename_is_valid(): no '/' and no NUL anywhere (subsystem and bus included).
  if (id.find('/') != std::string::npos || id.find('\0') != std::string::npos)
    return Error(EINVAL, "device id is not a valid file name");
  if (id.size() > NAME_MAX) return Error(ENAMETOOLONG, "device id longer than NAME_MAX");
  return id;
}

std::optional<std::string> driver_subsystem_from_devpath(std::string_view devpath) {
  std::size_t pos = devpath.find("/drivers/");
  if (pos == std::string_view::npos) {
    constexpr std::string_view kTail = "/drivers";
    if (devpath.size() < kTail.size() || devpath.substr(devpath.size() - kTail.size()) != kTail)
      return std::nullopt;
    pos = devpath.size() - kTail.size();
  }
  const std::string_view before = devpath.substr(0, pos);
  const std::size_t slash = before.rfind('/');
  const std::string_view bus = slash == std::string_view::npos ? before : before.substr(slash + 1);
  if (bus.empty() || bus == "." || bus == "..") return std::nullopt;
  return std::string(bus);
}

std::string_view devpath_sysname(std::string_view devpath) {
  while (!devpath.empty() && devpath.back() == '/')
    devpath.remove_suffix(1);
  const std::size_t slash = devpath.rfind('/');
  return slash == std::string_view::npos ? devpath : devpath.substr(slash + 1);
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

} // namespace apemu::netlink
