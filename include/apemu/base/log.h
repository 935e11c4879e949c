// A kernel-log stand-in: subsystems write lines that a real kernel would print (dmesg). The log
// keeps a bounded ring so tests and `apemu ctl dmesg` can read what was "printed", and can echo
// to stderr. One Log belongs to one machine (no globals).
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace apemu {

enum class LogLevel { Debug, Info, Warning, Error };

class Log {
public:
  explicit Log(std::size_t capacity = 4096) : m_capacity(capacity) {}

  void write(LogLevel level, std::string line);
  void debug(std::string line) { write(LogLevel::Debug, std::move(line)); }
  void info(std::string line) { write(LogLevel::Info, std::move(line)); }
  void warn(std::string line) { write(LogLevel::Warning, std::move(line)); }
  void error(std::string line) { write(LogLevel::Error, std::move(line)); }

  /// Lines at `min` or above, oldest first.
  std::vector<std::string> lines(LogLevel min = LogLevel::Info) const;
  /// True when some line at Info or above contains `needle`.
  bool contains(const std::string& needle) const;
  void set_echo(bool on) { m_echo = on; }
  /// Debug lines (the kernel's dev_dbg/pr_debug) are dropped unless enabled, as with dynamic
  /// debug off; callers test debug_enabled() before formatting them.
  void set_debug(bool on) { m_debug = on; }
  bool debug_enabled() const { return m_debug; }

private:
  struct Entry {
    LogLevel level;
    std::string text;
  };
  mutable std::mutex m_mutex; // leaf lock: taken after the model lock, never before
  std::deque<Entry> m_entries;
  std::size_t m_capacity;
  bool m_echo = false;
  bool m_debug = false;
};

} // namespace apemu
