#include "apemu/uevent/event.h"

#include <algorithm>
#include <array>

namespace apemu::uevent {

static constexpr std::array<std::string_view, 8> kActionNames = {
    "add", "remove", "change", "move", "online", "offline", "bind", "unbind"};

std::string_view action_name(Action a) { return kActionNames[static_cast<std::size_t>(a)]; }

Result<Action> parse_action(std::string_view s) {
  for (std::size_t i = 0; i < kActionNames.size(); ++i)
    if (kActionNames[i] == s) return static_cast<Action>(i);
  return Error(EINVAL, "unknown uevent action string");
}

Result<void> Env::add(std::string_view key, std::string_view value) {
  const std::size_t len = key.size() + 1 + value.size() + 1; // KEY=VALUE\0
  if (m_vars.size() >= m_max_vars) return Error(ENOMEM, "too many keys");
  if (m_bytes + len > kMaxEnvBytes) return Error(ENOMEM, "buffer size too small");
  m_vars.emplace_back(std::string(key), std::string(value));
  m_bytes += len;
  return {};
}

void Env::remove_all(std::string_view key) {
  auto it = std::remove_if(m_vars.begin(), m_vars.end(), [&](const auto& kv) {
    if (kv.first != key) return false;
    m_bytes -= kv.first.size() + kv.second.size() + 2;
    return true;
  });
  m_vars.erase(it, m_vars.end());
}

std::optional<std::string> Env::get(std::string_view key) const {
  for (const auto& [k, v] : m_vars)
    if (k == key) return v;
  return std::nullopt;
}

std::optional<std::string> Event::get(std::string_view key) const {
  for (const auto& [k, v] : env)
    if (k == key) return v;
  return std::nullopt;
}

std::string Event::kernel_wire() const {
  std::string out(action_name(action));
  out += '@';
  out += devpath;
  out += '\0';
  for (const auto& [k, v] : env) {
    out += k;
    out += '=';
    out += v;
    out += '\0';
  }
  return out;
}

Result<std::uint64_t> Broadcaster::send(Action action, std::string devpath, Env env) {
  const std::uint64_t seq = m_seqnum + 1;
  APEMU_TRY_VOID(env.add("SEQNUM", std::to_string(seq)));
  m_seqnum = seq;
  if (m_subscribers.empty()) return seq; // nobody listens: the number is still consumed
  Event ev{action, std::move(devpath), seq, env.vars()};
  // Copy the ids first: a subscriber may unsubscribe itself.
  std::vector<int> ids;
  ids.reserve(m_subscribers.size());
  for (const auto& [id, fn] : m_subscribers) ids.push_back(id);
  for (int id : ids) {
    auto it = m_subscribers.find(id);
    if (it != m_subscribers.end()) it->second(ev);
  }
  return seq;
}

int Broadcaster::subscribe(Subscriber fn) {
  const int id = m_next_id++;
  m_subscribers.emplace(id, std::move(fn));
  return id;
}

void Broadcaster::unsubscribe(int id) { m_subscribers.erase(id); }

} // namespace apemu::uevent
