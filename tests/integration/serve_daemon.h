// Helpers of the tests that drive a real `apemu serve` daemon: a private mount namespace for the
// test process, the daemon's start/SIGKILL/SIGTERM, one write through the tree, one
// control-socket command (docs/control.md).
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace apemu::testing {

/// Moves the calling process into a mount namespace of its own with private propagation, so no
/// mount made by it or its children reaches the host; the mounts go when the process ends.
/// (ctest runs one process per test.) Returns 0 or the errno.
inline int private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) != 0) return errno;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
  return 0;
}

/// errno of one write(2) through the tree (0 on success).
int write_file(const std::string& path, const std::string& value) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) return errno;
  const std::string line = value + "\n";
  const ssize_t n = ::write(fd, line.data(), line.size());
  const int e = n < 0 ? errno : 0;
  const int c = ::close(fd);
  return e ? e : (c < 0 ? errno : 0);
}

/// One control-socket command (docs/control.md); "" when it succeeded, else what went wrong.
std::string ctl(const std::string& sock, const std::vector<std::string>& argv) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    const std::string e = std::strerror(errno);
    ::close(fd);
    return "connect: " + e;
  }
  const std::string req = nlohmann::json{{"argv", argv}}.dump() + "\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return "send failed";
  }
  std::string reply;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (reply.empty() || reply.back() != '\n') return "no reply";
  const auto j = nlohmann::json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.value("ok", false)) return "error reply " + reply;
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}


/// An `apemu serve` child process: `-m MNT --control SOCK [--state DIR]`, output in LOG.
class Daemon {
public:
  /// `state` empty: no --state.
  Daemon(std::string mnt, std::string sock, std::string state, std::string log)
      : m_mnt(std::move(mnt)), m_sock(std::move(sock)), m_state(std::move(state)),
        m_log(std::move(log)) {}

  /// Starts `apemu serve` and waits until it printed READY; false (with the log) on failure.
  bool start(std::string& why) {
    ::unlink(m_log.c_str());
    m_pid = ::fork();
    if (m_pid == 0) {
      const int fd = ::open(m_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<const char*> argv{APEMU_BIN, "serve", "-m", m_mnt.c_str(), "--control",
                                    m_sock.c_str()};
      if (!m_state.empty()) argv.insert(argv.end(), {"--state", m_state.c_str()});
      argv.push_back(nullptr);
      ::execv(APEMU_BIN, const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      if (slurp(m_log).find("READY") != std::string::npos) return true;
      int st;
      if (::waitpid(m_pid, &st, WNOHANG) == m_pid) {
        m_pid = -1;
        why = "serve exited: " + slurp(m_log);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    why = "no READY in 10 s: " + slurp(m_log);
    return false;
  }

  pid_t pid() const { return m_pid; }
  /// True while the process has not exited.
  bool alive() const { return m_pid > 0 && ::waitpid(m_pid, nullptr, WNOHANG) == 0; }

  void kill9() {
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
    m_pid = -1;
  }

  /// SIGTERM and the exit status.
  int stop() {
    ::kill(m_pid, SIGTERM);
    int st = 0;
    ::waitpid(m_pid, &st, 0);
    m_pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  ~Daemon() {
    if (m_pid > 0) kill9();
  }

  std::string log() const { return slurp(m_log); }

private:
  std::string m_mnt, m_sock, m_state, m_log;
  pid_t m_pid = -1;
};

} // namespace apemu::testing
