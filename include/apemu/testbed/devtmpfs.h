// Device nodes for the emulated machine's char devices inside `apemu run`, as devtmpfs makes
// them (drivers/base/devtmpfs.c): /dev/<DEVNAME> appears while its device (a class device with a
// devt: /dev/z90crypt, /dev/zcrypt_<name>) is registered, synchronously, before the store that
// made the device returns (as devtmpfs_create_node does inside device_add).
//
// The nodes go into a directory that must be private to the run (run.cpp shadows /dev with a
// tmpfs that keeps the host's entries). That tmpfs is mounted nodev, so opening such a node fails
// with EACCES and never reaches a host driver that happens to own the same numbers; stat(2)
// shows a character device with the device's MAJ:MIN, which is what zcryptctl checks.
// Without CAP_MKNOD (an unprivileged run in a user namespace cannot create device nodes) the node
// is a bind mount of the host's /dev/null, remounted nodev: a character device, but with 1:3 as
// its numbers (a divergence, see README).
//
// Locking: the event handler runs under the machine lock (uevent subscribers do); start() and
// the destructor take it.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "apemu/base/result.h"
#include "apemu/core/core.h"

namespace apemu::testbed {

class DevNodes {
public:
  /// Creates the nodes of every registered device with a devt in `dir` and follows add/remove
  /// uevents from then on. Returns: the errno of the first node that could not be made.
  static Result<std::unique_ptr<DevNodes>> start(core::Core& core, std::string dir);
  /// Stops following events and removes the nodes it made.
  ~DevNodes();
  DevNodes(const DevNodes&) = delete;
  DevNodes& operator=(const DevNodes&) = delete;

private:
  DevNodes(core::Core& core, std::string dir) : m_core(&core), m_dir(std::move(dir)) {}
  Result<void> make(const std::string& name, unsigned major, unsigned minor);
  void remove(const std::string& name);
  core::Core* m_core;
  std::string m_dir;
  int m_subscription = 0;
  std::set<std::string> m_made;    ///< node names this object created
  std::set<std::string> m_mounted; ///< those that are /dev/null bind mounts
};

} // namespace apemu::testbed
