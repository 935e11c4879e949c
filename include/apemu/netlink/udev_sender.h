// Delivery of udev-format uevents to real libudev monitors over NETLINK_KOBJECT_UEVENT group 2.
//
// Plays the part of systemd-udevd's broadcast (device_monitor_send_device): every emulated
// uevent is re-sent, in SEQNUM order, as a "libudev" message that udev_monitor_new_from_netlink
// (udev, "udev") receivers accept (driver-core.md §3.7, §3.8). Kernel-group (group 1) messages
// are not produced: receivers drop group-1 messages from a non-zero port id.
//
// Requirements and divergences: sending to a multicast group needs CAP_NET_ADMIN in the
// socket's network namespace, and receivers accept only senders with uid 0 (SCM_CREDENTIALS).
// The emulator runs the sender inside a private network namespace (unshare(CLONE_NEWNET)) so
// that its messages never reach the host's udev monitors; only monitors created in that
// namespace see them. Messages lost at full receivers are not reported to the sender, exactly
// as with udevd.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "apemu/base/log.h"
#include "apemu/base/result.h"
#include "apemu/netlink/udev_message.h"
#include "apemu/uevent/event.h"

namespace apemu::netlink {

/// Configuration of a UdevSender (a namespace-scope type so that `create()` can default it).
struct UdevSenderOptions {
  /// Called on the worker thread, in SEQNUM order, right before each message is built; returns
  /// what udevd would add (USEC_INITIALIZED, tags). udevd writes its database before it
  /// broadcasts, so this is where UdevDatabase::on_event belongs. Default (empty): only
  /// USEC_INITIALIZED = monotonic_usec() at send time.
  std::function<UdevExtras(const uevent::Event&)> prepare;
  /// Destination multicast group bit (MONITOR_GROUP_UDEV). 0: nothing is sent, `prepare`
  /// still runs (keeps a udev database without broadcasting, e.g. outside a private netns).
  std::uint32_t group = kUdevMonitorGroup;
  /// Where send errors are reported (may be null). Must outlive the sender.
  Log* log = nullptr;
};

/// A netlink socket plus a worker thread that turns queued events into udev messages.
///
/// Enqueueing copies the event and never blocks on I/O, so it is safe from a
/// uevent::Broadcaster subscriber running under the model lock. The worker builds and sends
/// messages in queue order.
///
/// @code
///   UdevDatabase db("/run/udev");
///   APEMU_TRY_VOID(db.init());
///   UdevSenderOptions opts;
///   opts.prepare = [&db](const uevent::Event& ev) { return UdevExtras{db.on_event(ev), {}}; };
///   APEMU_TRY(auto sender, UdevSender::create(std::move(opts)));
///   broadcaster.subscribe([s = sender.get()](const uevent::Event& ev) { s->enqueue(ev); });
/// @endcode
class UdevSender {
public:
  using Options = UdevSenderOptions;

  /// Opens socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT), binds it to an
  /// automatic port id with no groups and starts the worker thread.
  ///
  /// Returns: the errno of socket() or bind(), e.g. EPROTONOSUPPORT (no uevent netlink),
  /// EMFILE/ENFILE, ENOMEM. Lacking CAP_NET_ADMIN does not fail here: sends then fail with
  /// EPERM and are counted in errors().
  static Result<std::unique_ptr<UdevSender>> create(Options options = {});

  /// Drains the queue (as flush()), then stops and joins the worker and closes the socket.
  /// Locking: as flush(); unsubscribe the sender from the Broadcaster first.
  ~UdevSender();

  UdevSender(const UdevSender&) = delete;
  UdevSender& operator=(const UdevSender&) = delete;

  /// Queues a copy of `ev` for sending. Never blocks on I/O.
  /// Locking: may be called with the model lock held; takes only the sender's leaf mutex.
  void enqueue(const uevent::Event& ev);

  /// Waits until every event enqueued before the call has been sent (or has failed).
  /// Locking: must not be called with the model lock held if `prepare` takes it.
  void flush();

  /// Messages handed to the kernel successfully (including those with no listener).
  std::uint64_t sent() const;
  /// sendmsg failures other than ENOBUFS, ECONNREFUSED and ESRCH (no or full listeners, which
  /// the kernel and udevd ignore).
  std::uint64_t errors() const;
  /// The errno of the most recent counted failure, 0 if none.
  int last_error() const;
  /// The port id the kernel assigned to the socket.
  std::uint32_t port_id() const { return m_port_id; }

private:
  UdevSender(int fd, std::uint32_t port_id, Options options);
  void run();
  void send_one(const uevent::Event& ev);

  const int m_fd;
  const std::uint32_t m_port_id;
  const Options m_options;

  mutable std::mutex m_mutex; // leaf lock: protects everything below
  std::condition_variable m_work_cv;
  std::condition_variable m_idle_cv;
  std::deque<uevent::Event> m_queue;
  std::uint64_t m_enqueued = 0;
  std::uint64_t m_done = 0;
  std::uint64_t m_sent = 0;
  std::uint64_t m_errors = 0;
  int m_last_error = 0;
  bool m_stop = false;
  std::thread m_worker; // last: starts after every other member is initialised
};

} // namespace apemu::netlink
