// A live machine: the Testbed's tree served through FUSE, uevents delivered to real udev
// clients (udev netlink group in the caller's network namespace, /run/udev database), the
// control socket for `apemu ctl`, and the runtime's executor thread (timers such as the AP bus
// config timer, reactions of user space). Used by `apemu serve` and `apemu run`.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "apemu/base/result.h"
#include "apemu/testbed/testbed.h"

namespace apemu::fusefs {
class FuseServer;
}
namespace apemu::netlink {
class UdevSender;
class UdevDatabase;
} // namespace apemu::netlink

namespace apemu::testbed {

class ControlServer;

struct LiveOptions {
  std::string mountpoint;     ///< where the tree is mounted (an existing directory)
  bool netlink = false;       ///< broadcast udev-format events (only in a private netns!)
  std::string udev_root;      ///< write a udev database here ("" = none)
  std::string control_socket; ///< path of the control socket ("" = none)
  /// Save the machine's state (Testbed::enable_state) at every commit point: after each store,
  /// control command and batch of executor work.
  bool persist = false;
  /// Called (on a FUSE thread) when the mount is taken away from outside (see
  /// fusefs::Options::on_lost).
  std::function<void()> on_mount_lost;
  /// fusefs::Options::refuse_own_process: set when the mount is this process's own /sys.
  bool refuse_own_process = false;
};

class LiveSession {
public:
  /// Mounts, starts the event delivery and the control socket. Returns: the errno of the first
  /// failing step (mount, socket, database); nothing is left behind on failure.
  static Result<std::unique_ptr<LiveSession>> start(Testbed& tb, const LiveOptions& opt);
  ~LiveSession();
  /// Stops the control socket, drains events, unmounts. Idempotent.
  void stop();
  /// Waits until queued uevents were sent and tree changes invalidated in the kernel caches.
  void flush();
  fusefs::FuseServer& fuse() { return *m_fuse; }

private:
  LiveSession() = default;
  Testbed* m_tb = nullptr;
  std::unique_ptr<netlink::UdevDatabase> m_db;
  std::unique_ptr<netlink::UdevSender> m_sender;
  std::unique_ptr<fusefs::FuseServer> m_fuse;
  std::unique_ptr<ControlServer> m_control;
  int m_subscription = 0;
};

} // namespace apemu::testbed
