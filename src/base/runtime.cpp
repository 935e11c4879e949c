// Machine lock, clock, timers, posted work and completions (see runtime.h).
#include "apemu/base/runtime.h"

namespace apemu {

// ---- Completion ---------------------------------------------------------------------------------

void Completion::on_done(Done fn) {
  m_on_done = std::move(fn);
  if (m_done && m_on_done) m_on_done(m_result);
}

void Completion::complete(Result<void> r) {
  if (m_done) return;
  m_done = true;
  m_result = std::move(r);
  m_cancel = nullptr;
  if (m_on_done) m_on_done(m_result);
}

void Completion::cancel(int code) {
  if (m_done) return;
  if (auto undo = std::move(m_cancel)) undo();
  complete(Error(code, "interrupted"));
}

// ---- Runtime ------------------------------------------------------------------------------------

Runtime::Runtime(ClockKind kind) : m_kind(kind), m_start(std::chrono::steady_clock::now()) {}

Runtime::~Runtime() { stop(); }

Runtime::Duration Runtime::now() const {
  if (m_kind == ClockKind::Virtual)
    return Duration(m_virtual_now.load(std::memory_order_relaxed));
  return std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - m_start);
}

void Runtime::wake() {
  {
    std::lock_guard g(m_wake_mutex);
    ++m_generation;
  }
  m_wake_cv.notify_all();
}

Runtime::TimerId Runtime::call_after(Duration delay, Task task, std::string what) {
  m_lock.assert_held();
  if (delay < Duration::zero()) delay = Duration::zero();
  const std::uint64_t seq = m_next_seq++;
  const auto key = std::make_pair(now() + delay, seq);
  m_timers.emplace(key, Timer{key.first, seq, std::move(task), std::move(what)});
  m_timer_keys.emplace(seq, key);
  if (m_thread.joinable() && m_kind == ClockKind::Real) wake();
  return seq;
}

bool Runtime::cancel(TimerId id) {
  m_lock.assert_held();
  auto it = m_timer_keys.find(id);
  if (it == m_timer_keys.end()) return false;
  m_timers.erase(it->second);
  m_timer_keys.erase(it);
  return true;
}

void Runtime::post(Task task) {
  m_lock.assert_held();
  m_posted.push_back(std::move(task));
  if (m_thread.joinable()) wake();
}

void Runtime::run_pending() {
  m_lock.assert_held();
  if (m_running_pending) return; // posted from posted work: the outer loop picks it up
  m_running_pending = true;
  while (!m_posted.empty()) {
    Task t = std::move(m_posted.front());
    m_posted.pop_front();
    t();
  }
  m_running_pending = false;
}

bool Runtime::run_one_due(Duration limit) {
  if (m_timers.empty() || m_timers.begin()->first.first > limit) return false;
  auto node = m_timers.extract(m_timers.begin());
  m_timer_keys.erase(node.mapped().seq);
  if (m_kind == ClockKind::Virtual) {
    // Time never goes back: a timer set for "now" while time already moved on runs at now().
    const auto due = std::max(node.mapped().due.count(), m_virtual_now.load());
    m_virtual_now.store(due, std::memory_order_relaxed);
  }
  node.mapped().task();
  run_pending();
  return true;
}

Result<void> Runtime::advance(Duration d) {
  m_lock.assert_held();
  if (m_kind != ClockKind::Virtual) return Error(EINVAL, "the clock is real time");
  if (d < Duration::zero()) return Error(EINVAL, "time cannot go back");
  run_pending();
  const Duration target = now() + d;
  while (run_one_due(target)) {
  }
  m_virtual_now.store(target.count(), std::memory_order_relaxed);
  return {};
}

std::optional<Runtime::Duration> Runtime::advance_to_next() {
  m_lock.assert_held();
  if (m_kind != ClockKind::Virtual || m_timers.empty()) return std::nullopt;
  const Duration step = std::max(Duration::zero(), m_timers.begin()->first.first - now());
  (void)advance(step);
  return step;
}

std::vector<std::pair<Runtime::Duration, std::string>> Runtime::timers() const {
  m_lock.assert_held();
  std::vector<std::pair<Duration, std::string>> out;
  for (const auto& [key, t] : m_timers) out.emplace_back(t.due, t.what);
  return out;
}

void Runtime::start() {
  if (m_thread.joinable()) return;
  {
    std::lock_guard g(m_wake_mutex);
    m_stop = false;
  }
  m_thread = std::thread([this] { thread_main(); });
}

void Runtime::stop() {
  APEMU_ASSERT(!m_lock.held_by_me()); // the thread may be waiting for it
  {
    std::lock_guard g(m_wake_mutex);
    m_stop = true;
  }
  m_wake_cv.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void Runtime::thread_main() {
  for (;;) {
    std::uint64_t gen;
    std::optional<Duration> next;
    {
      auto g = m_lock.guard();
      run_pending();
      if (m_kind == ClockKind::Real)
        while (run_one_due(now())) {
        }
      if (m_after_work) m_after_work();
      if (m_kind == ClockKind::Real && !m_timers.empty()) next = m_timers.begin()->first.first;
      std::lock_guard w(m_wake_mutex);
      gen = m_generation;
    }
    std::unique_lock w(m_wake_mutex);
    auto woken = [&] { return m_stop || m_generation != gen; };
    if (next)
      m_wake_cv.wait_until(w, m_start + *next, woken);
    else
      m_wake_cv.wait(w, woken);
    if (m_stop) return;
  }
}

} // namespace apemu
