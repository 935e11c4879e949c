// `apemu run` and `apemu serve`: process-level setup around a LiveSession.
//
// run: like umockdev-run. In a private mount and network namespace it mounts the emulated tree
// on /sys and gives CMD private writable places: an empty /run (with /run/udev holding the udev
// database and control file, /run/apemu the control socket), empty /etc/mdevctl.d (with
// mdevctl 1.2's script directories), /etc/udev/rules.d, /var/lib/libvirt, /var/cache/libvirt and
// /var/log/libvirt, an /etc/libvirt overlaid on the host's (readable, changes private), and an
// empty tmpfs at each RunOptions::private_dirs entry. It sets SYSTEMD_DEVICE_VERIFY_SYSFS=0 and
// APEMU_CTL, runs CMD and returns its exit code. Nothing CMD writes in those places reaches the
// host, and apemu itself never writes to the host's filesystems: a place missing on the host is
// created on a tmpfs shadowing its parent (run.cpp, class Privatizer).
#pragma once

#include <string>
#include <vector>

#include "apemu/base/result.h"

namespace apemu::testbed {

struct RunOptions {
  std::string topology;          ///< topology file ("" = default)
  std::vector<std::string> argv; ///< command; empty = interactive shell when stdin is a tty
  bool verbose = false;
  std::string kernel_profile; ///< profile::KernelProfile name; empty: the newest
  /// Machine time moves only with `apemu ctl clock advance` (deterministic scripts).
  bool virtual_clock = false;
  /// Keep the machine's state in this directory across runs (state.h); "" = none.
  std::string state_dir;
  /// --private PATH: each an existing host directory (not /, nor below /sys or /run) that CMD
  /// sees as an empty tmpfs with the directory's mode and owner; mounted after the built-in
  /// places, in order.
  std::vector<std::string> private_dirs;
};

/// Must be called while the process is still single-threaded (unshare needs it for a clean
/// namespace switch). Returns: CMD's exit status (128+signal when killed); EPERM when namespaces
/// or mounts are not permitted; EINVAL without CMD and without a terminal; for a --private PATH
/// (checked before any namespace exists) ENOENT/EACCES/... from stat, ENOTDIR when it is not a
/// directory, EINVAL for /, /sys and /run or below. Error contexts carry the errno name.
Result<int> run_isolated(const RunOptions& opt);

struct ServeOptions {
  std::string topology;
  std::string mountpoint;
  std::string control_socket; ///< "" = default_control_socket()
  std::string udev_root;      ///< optional udev database directory
  bool verbose = false;
  std::string kernel_profile; ///< profile::KernelProfile name; empty: the newest
  bool virtual_clock = false; ///< see RunOptions
  std::string state_dir;      ///< see RunOptions
};

/// Serves until SIGINT or SIGTERM, then unmounts cleanly. Prints "READY <mountpoint>" on
/// stdout once mounted. Returns: 0, or the errno of a failed setup step.
Result<int> serve(const ServeOptions& opt);

} // namespace apemu::testbed
