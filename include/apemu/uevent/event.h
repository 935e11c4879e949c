// Uevents as value messages (lib/kobject_uevent.c): an action, a DEVPATH and an ordered
// environment ending in SEQNUM. The Broadcaster hands out the global SEQNUM (mirrored in
// /sys/kernel/uevent_seqnum) and delivers each event to in-process subscribers in order; the
// netlink sender of the live tree is one such subscriber.
#pragma once

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
class Env {
public:
  /// An empty environment of at most `max_vars` variables (the kernel's UEVENT_NUM_ENVP).
  explicit Env(std::size_t max_vars = kMaxEnvVars) : m_max_vars(max_vars) {}
  /// Appends KEY=VALUE. Returns: ENOMEM when the variable or 2048-byte limit is exceeded
  /// (add_uevent_var); the env is then unchanged.
  Result<void> add(std::string_view key, std::string_view value);
  /// Removes every variable named `key` (the kernel strips MODALIAS from unbind events).
  void remove_all(std::string_view key);
  std::optional<std::string> get(std::string_view key) const;
  const std::vector<std::pair<std::string, std::string>>& vars() const { return m_vars; }
  std::size_t bytes() const { return m_bytes; }

private:
  std::vector<std::pair<std::string, std::string>> m_vars;
  std::size_t m_bytes = 0;
  std::size_t m_max_vars;
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
  /// delivers it. Returns: the event's seqnum; ENOMEM when SEQNUM does not fit the limits (no
  /// number is consumed then).
  Result<std::uint64_t> send(Action action, std::string devpath, Env env);

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
