// The zcrypt default drivers `cex4card` and `cex4queue` (zcrypt_cex4.c, zcrypt_card.c,
// zcrypt_queue.c; ap-bus.md §4.2, §4.4, §7) and, up to 6.4, the CEX2/CEX3 drivers of
// zcrypt_cex2a.c and zcrypt_cex2c.c: they bind every card and the queues in apmask × aqmask,
// and add the zcrypt attributes (type, online, load, serialnr, mkvps ...) while bound.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/ap/ap_bus.h"

namespace apemu::ap {

class ZcryptNodes;

class Zcrypt {
public:
  /// Registers the device nodes (zcrypt module: z90crypt and the class zcrypt, when the profile
  /// has them), then cex4card and cex4queue (module zcrypt_cex4) and, in profiles that still have
  /// CEX2/CEX3 support (≤6.4), cex2acard/cex2aqueue and cex2card/cex2cqueue. Emits: their
  /// bind events.
  static Result<std::unique_ptr<Zcrypt>> create(ApBus& bus);
  ~Zcrypt();
  Zcrypt(const Zcrypt&) = delete;
  Zcrypt& operator=(const Zcrypt&) = delete;

  /// The card `online` store (also `chzcrypt -e/-d`). Returns: EINVAL (not 0/1), ENODEV
  /// (going online while deconfigured or check-stopped).
  static Result<void> set_card_online(ApCard& card, bool on);
  /// The queue `online` store. Returns: ENODEV (queue or card deconfigured/check-stopped),
  /// EINVAL (going online while the card is soft-offline).
  static Result<void> set_queue_online(ApQueue& q, bool on);

  /// The device nodes (null when the profile has none).
  ZcryptNodes* nodes() const { return m_nodes.get(); }

private:
  explicit Zcrypt(ApBus& bus) : m_bus(&bus) {}
  ApBus* m_bus;
  std::unique_ptr<ZcryptNodes> m_nodes;
  std::vector<core::Driver*> m_drivers; ///< registration order
};

/// The ioctl numbers a zcrypt node allows: bit n (MSB-first, as every AP mask) for ioctl number
/// n (_IOC_NR), 0..255. The same 256-bit type as a domain mask.
using IoctlMask = IdMask<Apqi>;

/// A zcrypt multi-node device (struct zcdn_device): /sys/devices/virtual/zcrypt/<name>, class
/// `zcrypt`, char device <major>:<minor> with its four filter masks (ap-bus.md §8.1).
class ZcdnDevice final : public core::Device {
public:
  ZcdnDevice(core::DeviceKey k, std::string name, unsigned minor);
  unsigned node_minor() const { return m_minor_nr; }
  ApidMask apmask;
  ApqiMask aqmask;
  ApqiMask admask;
  IoctlMask ioctlmask;

private:
  unsigned m_minor_nr;
};

/// The zcrypt device nodes of zcrypt_api.c: the misc device `z90crypt` (/dev/z90crypt, all
/// adapters, domains and ioctls) and the class `zcrypt` whose `create`/`destroy` files make and
/// remove extra nodes ("zcdn") that filter adapters, usage and control domains and ioctls.
///
/// Divergences: the numbers are fixed (abi::kZcryptDynamicMajor, kZ90cryptDynamicMinor) where a
/// kernel allocates them dynamically; the nodes have no file operations (the zcrypt ioctl API is
/// not emulated), so a destroyed node goes at once rather than at its last close.
///
/// Locking: every function requires the machine lock.
class ZcryptNodes {
public:
  /// Registers the class `zcrypt` (Emits: add /class/zcrypt), the class `misc` unless the
  /// machine has one, and the misc device z90crypt (Emits: add with MAJOR=10, DEVNAME).
  /// Returns: the core's errors.
  static Result<std::unique_ptr<ZcryptNodes>> create(core::Core& core);
  ~ZcryptNodes();
  ZcryptNodes(const ZcryptNodes&) = delete;
  ZcryptNodes& operator=(const ZcryptNodes&) = delete;

  /// The `create` store (zcdn_create): leading whitespace skipped, at most 31 characters kept,
  /// trailing whitespace trimmed; an empty name becomes zcrypt_<minor>. The node takes the
  /// lowest free minor and starts with all masks zero. Emits: add (SUBSYSTEM=zcrypt, MAJOR,
  /// MINOR, DEVNAME). Returns: the node, EEXIST (a node of that name exists), ENOSPC (all 256
  /// minors taken), EINVAL (a name the core cannot use).
  Result<ZcdnDevice*> create_node(std::string_view text);
  /// The `destroy` store (zcdn_destroy), same name handling. Emits: remove. Returns: ENOENT.
  Result<void> destroy_node(std::string_view text);
  /// The nodes in minor order.
  std::vector<ZcdnDevice*> nodes() const;
  ZcdnDevice* find(std::string_view name) const;
  unsigned char_major() const { return m_major; }

private:
  explicit ZcryptNodes(core::Core& core) : m_core(&core) {}
  core::Core* m_core;
  unsigned m_major;
  core::Class* m_class = nullptr;
  core::Class* m_misc = nullptr; ///< registered here (null when the machine had one)
  core::Ref<core::Device> m_z90crypt;
  std::vector<core::Ref<ZcdnDevice>> m_nodes;
};

/// The zcrypt type string, e.g. "CEX8C" (type number from hwtype, suffix from the mode).
std::string zcrypt_type_name(const ApCard& card);

} // namespace apemu::ap
