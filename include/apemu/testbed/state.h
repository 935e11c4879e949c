// Persistent machine state (`apemu serve --state DIR`, `apemu run --state DIR`).
//
// What a restart keeps: the hardware as changed at run time (adapters added or removed with
// `apemu ctl`, SCLP config, checkstops, usage and control domains), the AP bus settings (apmask,
// aqmask, ap_domain, config_time, poll_thread, poll_timeout), queue driver_overrides (with the
// driver they were bound to), the zcrypt online flags and every mdev with its type and
// assignment. Guests are not kept (their QEMU processes are gone too), nor are the counters of
// past events (SEQNUM, `scans`, `bindings_complete_count`, request counts): they start afresh.
//
// The file DIR/state holds one header line "apemu-state 1 <payload bytes> <crc32 hex>" and a
// JSON payload. Every change is written to DIR/state.tmp, fsync-ed and renamed over DIR/state
// (then the directory is fsync-ed) before the write(2) or `apemu ctl` command that made it
// returns, so a crash leaves either the old or the new state, never a mix. A torn or corrupt
// file is refused with its path and the byte offset where it goes wrong; nothing is restored
// from it then.
//
// Restore order (so bindings come out as before): hardware and a scan, bus settings, overrides
// (with a reprobe of the queues whose saved driver differs), masks (binding revision), online
// flags, then the mdevs in creation order with their assignments.
//
// Locking: every function requires the machine lock.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "apemu/base/result.h"

namespace apemu::testbed {

class Testbed;

/// The machine's persistent state as the file's JSON payload.
std::string state_snapshot(Testbed& tb);
/// Applies a payload to a freshly booted machine. `source` names the file for errors.
/// Returns: EINVAL naming `source` and the JSON path of a bad value (or the restore step that
/// failed, with its errno).
Result<void> state_restore(Testbed& tb, std::string_view payload, const std::string& source);

/// Frames a payload as a state file (header line + payload).
std::string state_encode(std::string_view payload);
/// Checks a state file's framing and JSON syntax. Returns: the payload; EINVAL naming `source`
/// and the byte offset of the first problem (torn file, checksum mismatch, JSON syntax).
Result<std::string> state_decode(std::string_view file, const std::string& source);

/// A state directory: loading at start, durable saving after every change.
class StateDir {
public:
  /// Creates DIR if missing. Returns: the errno of mkdir/open.
  static Result<StateDir> open(const std::string& dir);
  /// The saved payload, or nullopt when DIR holds no state yet. Returns: state_decode's errors,
  /// the errno of the read.
  Result<std::optional<std::string>> load() const;
  /// Saves `payload` durably unless it equals what was saved last (write, fsync, rename, fsync
  /// of the directory). Returns: the errno of the failing step (ENOSPC, EIO ...).
  Result<void> save(const std::string& payload);
  const std::string& path() const { return m_file; }

private:
  std::string m_dir, m_file;
  std::string m_last; ///< the payload on disk
};

} // namespace apemu::testbed
