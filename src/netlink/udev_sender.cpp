// The udev-group netlink sender (systemd device_monitor_send_device, run on a worker thread).
#include "apemu/netlink/udev_sender.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace apemu::netlink {

Result<std::unique_ptr<UdevSender>> UdevSender::create(Options options) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  if (fd < 0) return Error(errno, "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)");
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_pid = 0;    // let the kernel pick a port id
  addr.nl_groups = 0; // we only send
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    const int err = errno;
    close(fd);
    return Error(err, "bind(netlink uevent socket)");
  }
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    const int err = errno;
    close(fd);
    return Error(err, "getsockname(netlink uevent socket)");
  }
  return std::unique_ptr<UdevSender>(new UdevSender(fd, addr.nl_pid, std::move(options)));
}

UdevSender::UdevSender(int fd, std::uint32_t port_id, Options options)
    : m_fd(fd), m_port_id(port_id), m_options(std::move(options)), m_worker([this] { run(); }) {}

UdevSender::~UdevSender() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_work_cv.notify_all();
  m_worker.join(); // the worker drains the queue before it honours m_stop
  close(m_fd);
}

void UdevSender::enqueue(const uevent::Event& ev) {
  {
    std::lock_guard lock(m_mutex);
    m_queue.push_back(ev);
    ++m_enqueued;
  }
  m_work_cv.notify_one();
}

void UdevSender::flush() {
  std::unique_lock lock(m_mutex);
  const std::uint64_t target = m_enqueued;
  m_idle_cv.wait(lock, [&] { return m_done >= target; });
}

std::uint64_t UdevSender::sent() const {
  std::lock_guard lock(m_mutex);
  return m_sent;
}

std::uint64_t UdevSender::errors() const {
  std::lock_guard lock(m_mutex);
  return m_errors;
}

int UdevSender::last_error() const {
  std::lock_guard lock(m_mutex);
  return m_last_error;
}

void UdevSender::run() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_work_cv.wait(lock, [&] { return m_stop || !m_queue.empty(); });
    if (m_queue.empty()) return; // m_stop and drained
    uevent::Event ev = std::move(m_queue.front());
    m_queue.pop_front();
    lock.unlock();
    send_one(ev); // `prepare` and sendmsg run without the sender's lock
    lock.lock();
    ++m_done;
    m_idle_cv.notify_all();
  }
}

void UdevSender::send_one(const uevent::Event& ev) {
  UdevExtras extras = m_options.prepare ? m_options.prepare(ev) : UdevExtras{monotonic_usec(), {}};
  // Group 0 means "database only": a message to port 0 without a group would be a kernel
  // uevent injection (rebroadcast on the kernel group), which must never happen.
  if (m_options.group == 0) {
    std::lock_guard lock(m_mutex);
    ++m_sent;
    return;
  }
  const std::string msg = build_udev_message(ev, extras);

  sockaddr_nl dst{};
  dst.nl_family = AF_NETLINK;
  dst.nl_pid = 0; // the kernel; with nl_groups set this is a multicast (udevd does the same)
  dst.nl_groups = m_options.group;
  iovec iov{const_cast<char*>(msg.data()), msg.size()};
  msghdr mh{};
  mh.msg_name = &dst;
  mh.msg_namelen = sizeof dst;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;

  ssize_t n;
  do {
    n = sendmsg(m_fd, &mh, 0);
  } while (n < 0 && errno == EINTR);
  const int err = n < 0 ? errno : 0;

  {
    std::lock_guard lock(m_mutex);
    // No listener or a full one: the kernel (netlink_broadcast) and udevd ignore these.
    if (err == 0 || err == ENOBUFS || err == ECONNREFUSED || err == ESRCH) {
      ++m_sent;
      return;
    }
    ++m_errors;
    m_last_error = err;
  }
  // Logged outside m_mutex: the log's lock is a leaf of its own.
  if (m_options.log)
    m_options.log->warn("udev sender: sendmsg for " + std::string(uevent::action_name(ev.action)) +
                        " " + ev.devpath + " (SEQNUM " + std::to_string(ev.seqnum) +
                        ") failed: " + Errno(err).name());
}

} // namespace apemu::netlink
