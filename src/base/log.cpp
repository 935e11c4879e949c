#include "apemu/base/log.h"

#include <cstdio>

namespace apemu {

void Log::write(LogLevel level, std::string line) {
  if (level == LogLevel::Debug && !m_debug) return;
  std::lock_guard lock(m_mutex);
  if (m_echo && level >= LogLevel::Info) std::fprintf(stderr, "apemu: %s\n", line.c_str());
  m_entries.push_back({level, std::move(line)});
  while (m_entries.size() > m_capacity) m_entries.pop_front();
}

std::vector<std::string> Log::lines(LogLevel min) const {
  std::lock_guard lock(m_mutex);
  std::vector<std::string> out;
  for (const auto& e : m_entries)
    if (e.level >= min) out.push_back(e.text);
  return out;
}

bool Log::contains(const std::string& needle) const {
  std::lock_guard lock(m_mutex);
  for (const auto& e : m_entries)
    if (e.level >= LogLevel::Info && e.text.find(needle) != std::string::npos) return true;
  return false;
}

} // namespace apemu
