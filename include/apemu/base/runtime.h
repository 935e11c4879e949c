// The runtime of one emulated machine: its lock, its clock, and an executor for timers and for
// the reactions of user space (design/runtime.md; STYLE.md §4 "Concurrency").
//
// * MachineLock: one non-recursive mutex per machine, taken once at each entry point (a FUSE
//   handler, a control-socket command, the executor thread, a C++ caller such as a test).
//   Internal functions state "Locking: machine lock held" and assert it: taking it twice on one
//   thread is a bug and aborts instead of deadlocking.
// * Clock: machine time since boot. Virtual in tests (it moves only when advance() is called,
//   so periodic and delayed behaviour is deterministic), real in the daemon.
// * Timers (call_after): hardware and kernel timers (the AP bus config timer, reset completion,
//   repeated device requests); they run under the machine lock when they fall due.
// * Posted work (post): what user space does in reaction to the kernel (reading an eventfd,
//   a guest acting). It never runs inside the store that caused it; it runs on the executor
//   thread of a daemon, or when a test calls run_pending()/advance().
// * Completion: an operation that finishes later (a blocking store such as an mdev `remove`
//   whose device is in use), with a waiter callback and a cancel hook.
//
// @code
//   Runtime rt;                               // virtual clock, no thread
//   auto g = rt.lock().guard();               // the test is the entry point
//   rt.call_after(std::chrono::seconds(30), [&] { bus.scan(); });
//   rt.advance(std::chrono::seconds(30));     // the scan runs here, with now() == 30 s
// @endcode
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "apemu/base/assert.h"
#include "apemu/base/result.h"

namespace apemu {

/// The kernel's EIOCBQUEUED: a store that will complete later (see kernfs::Blocker). Never seen
/// by user space.
inline constexpr int kEIocbQueued = 529;

/// The one lock of a machine. Satisfies Lockable, so std::unique_lock works with it.
class MachineLock {
public:
  MachineLock() = default;
  MachineLock(const MachineLock&) = delete;
  MachineLock& operator=(const MachineLock&) = delete;

  void lock() {
    APEMU_ASSERT(!held_by_me()); // non-recursive: a second lock on one thread is a bug
    m_mutex.lock();
    m_owner.store(self(), std::memory_order_relaxed);
  }
  bool try_lock() {
    if (held_by_me() || !m_mutex.try_lock()) return false;
    m_owner.store(self(), std::memory_order_relaxed);
    return true;
  }
  void unlock() {
    APEMU_ASSERT(held_by_me());
    m_owner.store(nullptr, std::memory_order_relaxed);
    m_mutex.unlock();
  }
  /// True when the calling thread holds the lock.
  bool held_by_me() const {
    return m_owner.load(std::memory_order_relaxed) == self();
  }
  void assert_held() const { APEMU_ASSERT(held_by_me()); }
  /// Takes the lock for a scope.
  [[nodiscard]] std::unique_lock<MachineLock> guard() { return std::unique_lock<MachineLock>(*this); }

private:
  std::mutex m_mutex;
  /// A per-thread address: cheaper to get than std::this_thread::get_id (a libc call), and
  /// every internal function asserts the lock.
  static const void* self() {
    static thread_local const char marker = 0;
    return &marker;
  }
  std::atomic<const void*> m_owner{nullptr};
};

using MachineGuard = std::unique_lock<MachineLock>;

/// An operation that completes later. The waiter (a FUSE write, a test, a control command) sets
/// on_done; the blocked operation may set on_cancel to undo itself when the waiter gives up
/// (a signal interrupts the writer). Exactly one of complete() and cancel() takes effect.
/// Locking: machine lock held for every call, and the callbacks run with it held.
class Completion {
public:
  using Done = std::function<void(const Result<void>&)>;
  bool done() const { return m_done; }
  /// The outcome; only meaningful once done().
  const Result<void>& result() const { return m_result; }
  /// Sets the waiter's callback; runs it at once if already done.
  void on_done(Done fn);
  /// Sets the blocked operation's undo hook (cleared once done).
  void on_cancel(std::function<void()> fn) { m_cancel = std::move(fn); }
  /// Finishes the operation. No-op when already done.
  void complete(Result<void> r);
  /// The waiter gives up: runs the undo hook, then completes with `code` (EINTR: the
  /// interrupted write(2) returns it). No-op when already done.
  void cancel(int code = EINTR);

private:
  bool m_done = false;
  Result<void> m_result;
  Done m_on_done;
  std::function<void()> m_cancel;
};

class Runtime {
public:
  using Duration = std::chrono::nanoseconds;
  using Task = std::function<void()>;
  using TimerId = std::uint64_t;
  enum class ClockKind { Virtual, Real };

  explicit Runtime(ClockKind kind = ClockKind::Virtual);
  /// Stops the executor thread; pending work is dropped.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  MachineLock& lock() { return m_lock; }
  bool virtual_clock() const { return m_kind == ClockKind::Virtual; }
  /// Machine time since the runtime was created. Locking: none.
  Duration now() const;

  /// Runs `task` under the machine lock once now() reaches now() + delay (timers due at the
  /// same time run in the order they were set). Returns: an id for cancel(). `what` names the
  /// timer for `apemu ctl clock`. Locking: machine lock held.
  TimerId call_after(Duration delay, Task task, std::string what = {});
  /// Cancels a timer that has not run. Returns: true when it was pending. Locking: held.
  bool cancel(TimerId id);
  /// Queues work of user space, to run after the current entry point released the machine.
  /// Locking: machine lock held.
  void post(Task task);

  /// Runs posted work, including work posted by it, until none is left. Locking: held.
  void run_pending();
  /// Virtual clock only: runs posted work, then moves time forward by `d`, running each timer
  /// that falls due at its due time (now() reads that time), each followed by the posted work
  /// it caused. Returns: EINVAL on a real clock. Locking: held.
  Result<void> advance(Duration d);
  /// Virtual clock: advance() to the next timer, if any. Returns: the time moved, or nullopt.
  /// Locking: held.
  std::optional<Duration> advance_to_next();

  /// Pending timers as (due time, name), earliest first. Locking: held.
  std::vector<std::pair<Duration, std::string>> timers() const;

  /// Starts the executor thread (daemons): it runs posted work as soon as it is posted and,
  /// with a real clock, every timer when it falls due, each time taking the machine lock.
  /// Idempotent.
  void start();
  /// Stops and joins the executor thread. Must not be called with the machine lock held.
  void stop();
  /// Runs after every batch of work of the executor thread, still under the machine lock (the
  /// commit point of that entry point, e.g. saving the machine's state).
  void set_after_work(std::function<void()> fn) { m_after_work = std::move(fn); }

private:
  struct Timer {
    Duration due;
    std::uint64_t seq;
    Task task;
    std::string what;
  };
  void wake();
  /// Runs the earliest timer if it is due at `limit` or earlier. Returns: false if none was.
  bool run_one_due(Duration limit);
  void thread_main();

  const ClockKind m_kind;
  const std::chrono::steady_clock::time_point m_start;
  MachineLock m_lock;
  std::atomic<std::int64_t> m_virtual_now{0}; ///< nanoseconds (virtual clock)
  std::map<std::pair<Duration, std::uint64_t>, Timer> m_timers; ///< (due, seq) → timer
  std::map<TimerId, std::pair<Duration, std::uint64_t>> m_timer_keys;
  std::uint64_t m_next_seq = 1;
  std::deque<Task> m_posted;
  bool m_running_pending = false;
  std::function<void()> m_after_work;

  std::mutex m_wake_mutex; ///< leaf: taken after the machine lock, never before
  std::condition_variable m_wake_cv;
  std::uint64_t m_generation = 0; ///< bumped by every post/call_after (m_wake_mutex)
  bool m_stop = false;
  std::thread m_thread;
};

} // namespace apemu
