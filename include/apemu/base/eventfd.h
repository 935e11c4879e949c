// An eventfd as user space registers one with the kernel (VFIO_DEVICE_SET_IRQS, KVM irqfd): the
// kernel side signals it (eventfd_signal adds one to the counter) and the user space reading it
// reacts later, on its own thread. Here the reader's reaction is posted to the machine's
// Runtime, so it never runs inside the kernel path that signalled (design/runtime.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "apemu/base/runtime.h"

namespace apemu {

class EventFd {
public:
  /// An eventfd whose reader (may be empty: nobody polls it) runs as posted work on `rt`.
  explicit EventFd(Runtime& rt, std::function<void()> reader = {})
      : m_rt(&rt), m_reader(std::move(reader)) {}
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  /// eventfd_signal. Locking: machine lock held.
  void signal() {
    ++m_count;
    if (m_reader) m_rt->post(m_reader);
  }
  /// Signals so far.
  std::uint64_t count() const { return m_count; }

private:
  Runtime* m_rt;
  std::function<void()> m_reader;
  std::uint64_t m_count = 0;
};

/// The file descriptors of a user-space process as the kernel resolves them in an ioctl that
/// takes an eventfd (VFIO_DEVICE_SET_IRQS: eventfd_ctx_fdget).
class FdTable {
public:
  /// Installs an eventfd, or a file that is not one when `e` is null. Returns: the descriptor
  /// (the lowest unused number from 3 on).
  int install(std::shared_ptr<EventFd> e) {
    int fd = 3;
    while (m_fds.count(fd)) ++fd;
    m_fds[fd] = std::move(e);
    return fd;
  }
  void close(int fd) { m_fds.erase(fd); }
  /// Returns: EBADF for a descriptor that is not open, EINVAL for one that is not an eventfd.
  Result<std::shared_ptr<EventFd>> eventfd(int fd) const {
    auto it = m_fds.find(fd);
    if (it == m_fds.end()) return Error(EBADF, "descriptor " + std::to_string(fd) + " is not open");
    if (!it->second) return Error(EINVAL, "descriptor " + std::to_string(fd) + " is not an eventfd");
    return it->second;
  }

private:
  std::map<int, std::shared_ptr<EventFd>> m_fds;
};

} // namespace apemu
