// The udev database (/run/udev) as udevd leaves it for sd-device readers.
//
// Mirrors systemd's device_update_db / device_read_db (src/libsystemd/sd-device/device-private.c,
// sd-device.c; driver-core.md §3.9): one file per device under <root>/data named by the device
// id (+<subsystem>:<sysname>, +drivers:<bus>:<driver>), holding "I:<usec>", "E:KEY=VALUE" for
// persisted properties and "V:1", written atomically (temporary file + rename, mode 0644).
// Readers treat the file's existence as "initialized" and take USEC_INITIALIZED from I:.
//
// Divergences from udevd: (1) udevd writes no file for a device that has neither devnum,
// ifindex, links, persisted properties nor tags (and deletes an old one); the emulator writes
// one for every device so that `udevadm info` and libudev report emulated devices as
// initialized with a USEC_INITIALIZED. (2) No S:/L:/G:/Q: records, and <root>/tags and
// <root>/links stay empty. (3) <root>/control is an empty regular file, not udevd's control
// socket: sd-device only tests its existence (access(F_OK)) to decide whether a "udev" monitor
// may subscribe to group 2 when /dev is not a devtmpfs; nothing connects to it.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/uevent/event.h"

namespace apemu::netlink {

/// A udev database rooted at a directory (normally /run/udev inside the emulator's private
/// mount namespace). All methods are thread-safe (one internal leaf mutex); they do file I/O,
/// so call them from the udev sender's worker (UdevSenderOptions::prepare), not under the model
/// lock.
class UdevDatabase {
public:
  using Properties = std::vector<std::pair<std::string, std::string>>;

  explicit UdevDatabase(std::string root = "/run/udev");

  const std::string& root() const { return m_root; }
  /// "<root>/data/<id>".
  std::string data_path(std::string_view id) const;

  /// Creates <root> (if missing), <root>/data, <root>/tags, <root>/links (mode 0755) and, when
  /// nothing exists there yet, the empty regular file <root>/control (mode 0644). Idempotent.
  /// Returns: ENOTDIR: one of the directories exists and is not a directory; otherwise the errno
  /// of mkdir()/open() (EACCES, EROFS, ENOENT for a missing parent of <root>, ...).
  Result<void> init();

  /// Writes <root>/data/<device id> atomically: "I:<usec>" (when non-zero), one
  /// "E:KEY=VALUE" per persisted property, then "V:1". `driver_subsystem` is the bus of a
  /// driver when `subsystem` is "drivers".
  /// Returns: the errors of device_id() (ENOENT, EINVAL, ENAMETOOLONG); EINVAL: a key is empty
  /// or contains '=' or a newline, or a value contains a newline; otherwise the errno of the
  /// file operations (ENOENT when init() was not run).
  Result<void> add(std::string_view subsystem, std::string_view sysname,
                   const Properties& properties, std::uint64_t usec_initialized,
                   std::string_view driver_subsystem = {});

  /// A device named by (subsystem, sysname); see add().
  using DeviceName = std::pair<std::string, std::string>;

  /// Coldplug: gives every device in `devices` the entry add(subsystem, sysname, {}, usec)
  /// would write, as hard links to one file (what udevd has after `udevadm trigger`, for
  /// 65,793 devices of max.toml in a fraction of the time). The entries share their content,
  /// not their fate: every later update of one device (add(), remove(), on_event()) replaces or
  /// deletes only that device's directory entry, as each is written by rename() or unlink().
  /// An existing entry is replaced. Returns: the errors of add() for the first failing device
  /// (the other devices get their entries all the same).
  Result<void> add_coldplug(const std::vector<DeviceName>& devices, std::uint64_t usec_initialized);

  /// Deletes <root>/data/<device id>.
  /// Returns: the errors of device_id(); ENOENT: no entry exists; otherwise the unlink() errno.
  Result<void> remove(std::string_view subsystem, std::string_view sysname,
                      std::string_view driver_subsystem = {});

  /// The I: value of an entry (0 when the file has no I: line).
  /// Returns: the errors of device_id(); ENOENT: no entry; otherwise the open()/read() errno.
  Result<std::uint64_t> usec_initialized(std::string_view subsystem, std::string_view sysname,
                                         std::string_view driver_subsystem = {}) const;

  /// Applies one uevent the way udevd's database does and returns the USEC_INITIALIZED that
  /// belongs into the broadcast of this event (0 when the event is skipped):
  /// - remove: deletes the entry; returns its old I: value.
  /// - move: moves the entry from the DEVPATH_OLD name to the new one, keeping I:.
  /// - every other action: keeps an existing entry untouched (udevd carries I: over from the
  ///   old database entry) or writes a new one with I: = monotonic_usec().
  /// The sysname is the last DEVPATH element. Devices (DEVPATH below /devices/) and drivers
  /// (SUBSYSTEM=drivers, id +drivers:<bus>:<driver>) get entries; bus, module and class
  /// kobjects are skipped, since sd-device gives them a different subsystem ("subsystem")
  /// when it looks them up by path. Errors are counted in errors(), never thrown.
  std::uint64_t on_event(const uevent::Event& ev);

  /// Failures of on_event() so far.
  std::uint64_t errors() const;
  /// The most recent on_event() failure (code 0 if none).
  Error last_error() const;

private:
  Result<std::string> path_for(std::string_view subsystem, std::string_view sysname,
                               std::string_view driver_subsystem) const;
  Result<void> write_locked(const std::string& path, const Properties& properties,
                            std::uint64_t usec_initialized);
  /// Writes a new file with the entry's text next to `path`; returns its (temporary) name.
  Result<std::string> write_temp_locked(const std::string& path, const Properties& properties,
                                        std::uint64_t usec_initialized);
  Result<std::uint64_t> read_usec_locked(const std::string& path) const;
  Result<std::uint64_t> apply_locked(const uevent::Event& ev);

  const std::string m_root;
  mutable std::mutex m_mutex; // leaf lock: serialises file operations and the counters
  std::uint64_t m_errors = 0;
  Error m_last_error{0};
};

} // namespace apemu::netlink
