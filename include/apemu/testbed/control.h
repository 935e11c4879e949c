// The control channel of a running instance (`apemu ctl`): a Unix stream socket (mode 0600)
// speaking JSON lines (control_protocol.h, docs/control.md). The server serves many clients at
// once from one poll loop; each client must send its request within a deadline and the request
// must fit kMaxRequestBytes; only root and the socket's owner may run commands (SO_PEERCRED).
// A command's reply is sent only after the tree changes it caused reached the kernel's caches
// (the `after_command` hook), so a client that reads /sys right after `apemu ctl` returns sees
// the change, as after a sysfs write.
//
// Verbs (each maps to a C++ call on the Testbed):
//   scan                                  force an AP bus scan
//   show                                  the `apemu show` table and matrix
//   tree [PATH]                           the D/A/L dump
//   dmesg                                 the emulated kernel log
//   card add ID TYPE MODE [DOMAINS]       hot plug an adapter (TYPE CEX4..CEX8, MODE accel|cca|ep11)
//   card remove ID                        hot unplug
//   card config ID on|off                 SCLP (de)configure (as the card's `config` file)
//   card chkstop ID on|off                inject or clear a checkstop (seen at the next scan)
//   domain add|remove N                   usage domain change (configuration change + scan)
//   control-domain add|remove N           control domain change
//   guest start --mdev UUID [--name N]    start a KVM guest on the mdev as QEMU would: register
//                                         the request and config-change eventfds, open the VFIO
//                                         device (the guest gets the mdev's shadow APCB)
//   guest stop --mdev UUID                close the device (APCB cleared, linked queues reset)
//   guest show [--mdev UUID]              the guests' CRYCB masks: apm/aqm/adm as hex and lists,
//                                         plus APCB write and config-change signal counts
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/testbed/control_protocol.h"
#include "apemu/testbed/testbed.h"

namespace apemu::testbed {

/// Runs one command. Returns: its output (text, and JSON where the verb has a structured
/// result), or the errno of the failed operation (EINVAL for unknown verbs or bad arguments).
/// Locking: machine lock held (the control server takes it per command).
Result<CommandOutput> execute_command(Testbed& tb, const std::vector<std::string>& argv);

struct ControlServerOptions {
  std::string path;
  /// A client must deliver its whole request, and take its whole reply, within this time.
  std::chrono::milliseconds client_timeout{5000};
  /// Connections served at once; more wait in the listen backlog.
  unsigned max_clients = 64;
  /// The commit point of a command: runs under the machine lock right after it (e.g. making
  /// the machine's state durable); an error replaces the command's reply.
  std::function<Result<void>()> commit;
  /// Runs after every command, without the machine lock: makes its effect visible (flushes
  /// cache invalidations and uevents) before the reply goes out.
  std::function<void()> after_command;
};

class ControlServer {
public:
  /// Binds `opt.path` with mode 0600 and serves on a thread. Returns: EADDRINUSE when a live
  /// server answers on that path, EEXIST when the path exists and is not a socket (nothing is
  /// deleted then), ENAMETOOLONG, or the errno of socket/bind/listen. A stale socket (nobody
  /// listening) is replaced.
  static Result<std::unique_ptr<ControlServer>> start(Testbed& tb, ControlServerOptions opt);
  ~ControlServer();

  struct Impl;

private:
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// Client side: sends argv to the socket at `path` and waits at most `timeout` for the reply.
/// Returns: the reply (its output, or the remote errno with its message); connection errors as
/// their errno (ETIMEDOUT when the server does not answer in time).
Result<ControlReply> ctl_call(const std::string& path, const ControlRequest& req,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));
/// ctl_call for text: the output, or the remote errno with its message as context.
Result<std::string> ctl_request(const std::string& path, const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// The default socket path: $APEMU_CTL if set, else /run/apemu/ctl.sock.
std::string default_control_socket();

} // namespace apemu::testbed
