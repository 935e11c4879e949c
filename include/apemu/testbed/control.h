// The control channel of a running instance (`apemu ctl`): a Unix stream socket (mode 0600)
// taking one command line per connection and answering "OK\n<output>" or
// "ERR <ERRNO-NAME> <message>\n".
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

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/testbed/testbed.h"

namespace apemu::testbed {

/// Runs one command. Returns: its output, or the errno of the failed operation (EINVAL for
/// unknown verbs or bad arguments).
Result<std::string> execute_command(Testbed& tb, const std::vector<std::string>& argv);

class ControlServer {
public:
  /// Binds `path` (replacing a stale socket), chmod 0600, and serves on a thread.
  static Result<std::unique_ptr<ControlServer>> start(Testbed& tb, const std::string& path);
  ~ControlServer();

private:
  ControlServer() = default;
  void serve();
  Testbed* m_tb = nullptr;
  std::string m_path;
  int m_fd = -1;
  int m_wake[2] = {-1, -1};
  std::thread m_thread;
};

/// Client side: sends argv to the socket at `path`. Returns: the command's output, or the
/// remote errno with its message as context; connection errors as their errno.
Result<std::string> ctl_request(const std::string& path, const std::vector<std::string>& argv);

/// The default socket path: $APEMU_CTL if set, else /run/apemu/ctl.sock.
std::string default_control_socket();

} // namespace apemu::testbed
