// Uevents as value messages (lib/kobject_uevent.c): an action, a DEVPATH and an ordered
// environment ending in SEQNUM. The Broadcaster hands out the global SEQNUM (mirrored in
// /sys/kernel/uevent_seqnum) and delivers each event to in-process subscribers in order; the
// netlink sender of the live tree is one such subscriber.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apemu/base/result.h"

namespace apemu::uevent {

/// The kernel's action table, in its index order (driver-core.md §3.1).
enum class Action { Add, Remove, Change, Move, Online, Offline, Bind, Unbind };

std::string_view action_name(Action a);
/// Exact match against the eight names. Returns: EINVAL for anything else.
Result<Action> parse_action(std::string_view s);

inline constexpr std::size_t kMaxEnvVars = 64;    // UEVENT_NUM_ENVP (32 before 5.8)
inline constexpr std::size_t kMaxEnvBytes = 2048; // UEVENT_BUFFER_SIZE

/// An ordered list of KEY=VALUE variables with the kernel's limits.
///
/// A counting Env (Env::counting(), what Broadcaster::new_env() gives when nobody subscribes)
/// keeps no text: it checks the same limits and reports the same errors, but vars() and get()
/// are empty. Booting max.toml builds about 200,000 environments nobody can receive.
class Env {
public:
  /// An Env that keeps its variables, at most `max_vars` of them (the kernel's UEVENT_NUM_ENVP).
  explicit Env(std::size_t max_vars = kMaxEnvVars) : m_max_vars(std::min(max_vars, kMaxEnvVars)) {}
  // Copies only the counted entries in use (the rest of the array is never read).
  Env(const Env& o) : m_vars(o.m_vars) { copy_counts(o); }
  Env(Env&& o) noexcept : m_vars(std::move(o.m_vars)) { copy_counts(o); }
  Env& operator=(const Env& o) {
    if (this != &o) {
      m_vars = o.m_vars;
      copy_counts(o);
    }
    return *this;
  }
  Env& operator=(Env&& o) noexcept {
    m_vars = std::move(o.m_vars);
    copy_counts(o);
    return *this;
  }
  /// An Env that only counts (see the class comment), with the same limits.
  static Env counting(std::size_t max_vars = kMaxEnvVars) {
    Env e(max_vars);
    e.m_store = false;
    return e;
  }

  /// Appends KEY=VALUE. Returns: ENOMEM when the variable or 2048-byte limit is exceeded
  /// (add_uevent_var); the env is then unchanged.
  Result<void> add(std::string_view key, std::string_view value);
  /// For a counting Env: counts KEY=VALUE for a value of `value_size` bytes without needing
  /// the value (a DEVPATH's length is cheaper than its text). Same errors as add(). On a
  /// storing Env it is a bug (asserted).
  Result<void> add_counted(std::string_view key, std::size_t value_size);
  /// Removes every variable named `key` (the kernel strips MODALIAS from unbind events).
  void remove_all(std::string_view key);
  std::optional<std::string> get(std::string_view key) const;
  const std::vector<std::pair<std::string, std::string>>& vars() const { return m_vars; }
  std::size_t bytes() const { return m_bytes; }
  /// Number of variables (also of a counting Env).
  std::size_t size() const { return m_count; }
  /// False for a counting Env.
  bool stores() const { return m_store; }

private:
  void copy_counts(const Env& o) {
    m_bytes = o.m_bytes;
    m_count = o.m_count;
    m_max_vars = o.m_max_vars;
    m_store = o.m_store;
    if (!m_store) std::copy_n(o.m_counted.begin(), m_count, m_counted.begin());
  }
  /// What a counting Env remembers of a variable: enough for remove_all to give the bytes back.
  struct Counted {
    std::uint64_t key_hash; ///< the key's length and first and last bytes (event.cpp)
    std::size_t bytes;      ///< KEY=VALUE\0
  };
  std::vector<std::pair<std::string, std::string>> m_vars;
  std::size_t m_bytes = 0;
  std::size_t m_count = 0;
  std::size_t m_max_vars;
  bool m_store = true;
  std::array<Counted, kMaxEnvVars> m_counted; ///< counting Env only; not initialised on purpose
};

/// One emitted event. `env` holds every variable in order: ACTION, DEVPATH, SUBSYSTEM, extras,
/// kset variables, SEQNUM last.
struct Event {
  Action action{};
  std::string devpath;
  std::uint64_t seqnum = 0;
  std::vector<std::pair<std::string, std::string>> env;

  std::optional<std::string> get(std::string_view key) const;
  std::string subsystem() const { return get("SUBSYSTEM").value_or(""); }
  /// The kernel netlink payload: "ACTION@DEVPATH\0KEY=VALUE\0...SEQNUM=n\0" (§3.3).
  std::string kernel_wire() const;
};

/// Hands out SEQNUM and delivers events. Locking: callers hold the model lock, so delivery order
/// equals SEQNUM order; subscribers must not call back into the model.
class Broadcaster {
public:
  using Subscriber = std::function<void(const Event&)>;

  /// Finalises `env` (which must begin with ACTION, DEVPATH, SUBSYSTEM) with SEQNUM and
  /// delivers it. A counting `env` is only allowed while nobody subscribes (new_env()).
  /// Returns: the event's seqnum; ENOMEM when SEQNUM does not fit the limits (no number is
  /// consumed then).
  Result<std::uint64_t> send(Action action, std::string devpath, Env env);

  /// The Env to build an event in: a counting one when nobody subscribes (the event is only
  /// numbered then), a storing one otherwise. Locking: model lock, held until send().
  /// `max_vars`: the kernel's UEVENT_NUM_ENVP.
  Env new_env(std::size_t max_vars = kMaxEnvVars) const {
    return m_subscribers.empty() ? Env::counting(max_vars) : Env(max_vars);
  }
  /// True when at least one subscriber receives events.
  bool has_subscribers() const { return !m_subscribers.empty(); }

  /// The last SEQNUM handed out (0 before the first event).
  std::uint64_t seqnum() const { return m_seqnum; }

  int subscribe(Subscriber fn);
  void unsubscribe(int id);

private:
  std::uint64_t m_seqnum = 0;
  int m_next_id = 1;
  std::map<int, Subscriber> m_subscribers;
};

} // namespace apemu::uevent
