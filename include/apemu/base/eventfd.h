// An eventfd as user space registers one with the kernel (VFIO_DEVICE_SET_IRQS, KVM irqfd): the
// kernel side signals it (eventfd_signal adds one to the counter) and the user space reading it
// reacts later, on its own thread. Here the reader's reaction is posted to the machine's
// Runtime, so it never runs inside the kernel path that signalled (design/runtime.md).
#pragma once

#include <cstdint>
#include <functional>

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

} // namespace apemu
