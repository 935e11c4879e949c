#include "apemu/uevent/event.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "apemu/base/assert.h"

namespace apemu::uevent {

static constexpr std::array<std::string_view, 8> kActionNames = {
    "add", "remove", "change", "move", "online", "offline", "bind", "unbind"};

std::string_view action_name(Action a) { return kActionNames[static_cast<std::size_t>(a)]; }

Result<Action> parse_action(std::string_view s) {
  for (std::size_t i = 0; i < kActionNames.size(); ++i)
    if (kActionNames[i] == s) return static_cast<Action>(i);
  return Error(EINVAL, "unknown uevent action string");
}

/// What a counting Env remembers of a key: its length and its first and last eight bytes, which
/// identify every key shorter than 17 bytes (the kernel's are) and cost no loop to compute.
static std::uint64_t key_print(std::string_view s) {
  std::uint64_t head = 0, tail = 0;
  std::memcpy(&head, s.data(), std::min<std::size_t>(s.size(), 8));
  if (s.size() > 8) std::memcpy(&tail, s.data() + s.size() - std::min<std::size_t>(s.size() - 8, 8),
                                std::min<std::size_t>(s.size() - 8, 8));
  return head ^ (tail * 0x9e3779b97f4a7c15ull) ^ (static_cast<std::uint64_t>(s.size()) << 58);
}

Result<void> Env::add(std::string_view key, std::string_view value) {
  const std::size_t len = key.size() + 1 + value.size() + 1; // KEY=VALUE\0
  if (m_count >= m_max_vars) return Error(ENOMEM, "too many keys");
  if (m_bytes + len > kMaxEnvBytes) return Error(ENOMEM, "buffer size too small");
  if (m_store) m_vars.emplace_back(std::string(key), std::string(value));
  else m_counted[m_count] = Counted{key_print(key), len};
  ++m_count;
  m_bytes += len;
  return {};
}

Result<void> Env::add_counted(std::string_view key, std::size_t value_size) {
  APEMU_ASSERT(!m_store);
  const std::size_t len = key.size() + 1 + value_size + 1;
  if (m_count >= m_max_vars) return Error(ENOMEM, "too many keys");
  if (m_bytes + len > kMaxEnvBytes) return Error(ENOMEM, "buffer size too small");
  m_counted[m_count++] = Counted{key_print(key), len};
  m_bytes += len;
  return {};
}

void Env::remove_all(std::string_view key) {
  if (!m_store) {
    // Compacts the counted entries as remove_if does the stored ones. Two keys with one 64-bit
    // hash would only make the byte count differ from the stored case.
    const std::uint64_t h = key_print(key);
    std::size_t out = 0;
    for (std::size_t i = 0; i < m_count; ++i) {
      if (m_counted[i].key_hash == h) m_bytes -= m_counted[i].bytes;
      else m_counted[out++] = m_counted[i];
    }
    m_count = out;
    return;
  }
  auto it = std::remove_if(m_vars.begin(), m_vars.end(), [&](const auto& kv) {
    if (kv.first != key) return false;
    m_bytes -= kv.first.size() + kv.second.size() + 2;
    return true;
  });
  m_vars.erase(it, m_vars.end());
  m_count = m_vars.size();
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
  APEMU_ASSERT(env.stores()); // a counting Env is only made while nobody subscribes
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
