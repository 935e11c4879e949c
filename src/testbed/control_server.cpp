// The control socket's server and client (see control.h). One thread runs a poll loop over the
// listening socket and every connected client; sockets are non-blocking, so no client can stall
// another: a client that sends slowly, never finishes its request or never reads its reply is
// dropped at its deadline. Nothing here can raise SIGPIPE (MSG_NOSIGNAL on every send).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <list>
#include <thread>

#include "apemu/testbed/control.h"

namespace apemu::testbed {

namespace {

using Clock = std::chrono::steady_clock;

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return Error(ENAMETOOLONG, "socket path '" + path + "'");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

/// Decides whether `path` may be (re)bound: a live server there is EADDRINUSE, something that
/// is not a socket is EEXIST; a socket nobody listens on is stale and removed.
Result<void> claim_socket_path(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return Error(errno, "control socket " + path);
  }
  if (!S_ISSOCK(st.st_mode)) return Error(EEXIST, "control socket " + path + " exists and is not a socket");
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return Error(errno, "socket");
  const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(probe);
  if (rc == 0) return Error(EADDRINUSE, "another apemu serves the control socket " + path);
  if (err != ECONNREFUSED) return Error(err, "control socket " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Error(errno, "removing the stale control socket " + path);
  return {};
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

struct Client {
  int fd = -1;
  Clock::time_point deadline;
  std::string in;         ///< request bytes so far
  std::string out;        ///< reply bytes not yet sent
  std::size_t sent = 0;
  bool replying = false;  ///< request complete, reply queued
  bool allowed = false;   ///< root or the owner (SO_PEERCRED)
};

} // namespace

struct ControlServer::Impl {
  Testbed* tb = nullptr;
  ControlServerOptions opt;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  uid_t owner = 0; ///< the daemon's (and the socket file's) owner
  std::list<Client> clients;
  std::thread thread;

  ~Impl() {
    if (wake[1] >= 0) (void)!::write(wake[1], "x", 1);
    if (thread.joinable()) thread.join();
    for (auto& c : clients) ::close(c.fd);
    for (int fd : {listen_fd, wake[0], wake[1]})
      if (fd >= 0) ::close(fd);
    if (listen_fd >= 0) ::unlink(opt.path.c_str());
  }

  /// Accepts what is pending, up to max_clients. Returns false on a fatal error.
  void accept_clients() {
    while (clients.size() < opt.max_clients) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return; // EAGAIN, or a client that went away before accept
      Client c;
      c.fd = fd;
      c.deadline = Clock::now() + opt.client_timeout;
      ucred cred{};
      socklen_t len = sizeof cred;
      // Only root and the owner may change the machine, whatever the socket's mode says. The
      // request is still read, so that the refusal arrives as a reply and not as a reset.
      c.allowed = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                  (cred.uid == 0 || cred.uid == owner);
      clients.push_back(std::move(c));
    }
  }

  /// Closes after discarding unread input: closing a Unix socket with unread data resets the
  /// peer, which could then lose the reply it has not read yet.
  static void close_client(Client& c) {
    char buf[4096];
    for (int i = 0; i < 64 && ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT) > 0; ++i) {
    }
    ::close(c.fd);
  }

  static void queue_reply(Client& c, std::string reply) {
    c.out = std::move(reply);
    c.sent = 0;
    c.replying = true;
  }

  /// Reads what the client sent; runs the command once its line is complete (or the client
  /// shut down its side after a request without newline). Returns false to drop the connection.
  bool on_readable(Client& c) {
    bool eof = false;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      if (c.in.size() > kMaxRequestBytes) {
        queue_reply(c, encode_reply(Error(EMSGSIZE, "request longer than 64 KiB"), false));
        c.in.clear();
        c.in.shrink_to_fit();
        ::shutdown(c.fd, SHUT_RD); // the sender's further writes fail (EPIPE) instead of queueing
        return true;
      }
      if (c.in.find('\n') != std::string::npos) break;
    }
    if (const auto nl = c.in.find('\n'); nl != std::string::npos) {
      run(c, std::string_view(c.in).substr(0, nl));
      return true;
    }
    if (!eof) return true; // more is coming (until the deadline)
    if (c.in.empty()) return false;
    run(c, c.in);
    return true;
  }

  void run(Client& c, std::string_view line) {
    if (!c.allowed) {
      queue_reply(c, encode_reply(Error(EACCES, "only root and the owner of the instance may use "
                                                "its control socket"),
                                  false));
      return;
    }
    auto req = parse_request(line);
    if (!req) {
      queue_reply(c, encode_reply(req.error(), false));
      return;
    }
    Result<CommandOutput> outcome = Error(EIO);
    {
      auto g = tb->lock(); // an entry point: the whole command runs under the machine lock
      outcome = execute_command(*tb, req->argv);
      if (outcome && opt.commit)
        if (auto r = opt.commit(); !r) outcome = r.error();
    }
    if (opt.after_command) opt.after_command();
    // The command is done: its reply gets a fresh deadline to be taken.
    c.deadline = Clock::now() + opt.client_timeout;
    queue_reply(c, encode_reply(outcome, req->json));
  }

  /// Sends what fits. Returns false when the reply is complete or the peer is gone.
  static bool on_writable(Client& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.sent += static_cast<std::size_t>(n);
    }
    return false;
  }

  void loop() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({wake[0], POLLIN, 0});
      fds.push_back({listen_fd, static_cast<short>(clients.size() < opt.max_clients ? POLLIN : 0), 0});
      auto now = Clock::now();
      auto next = now + std::chrono::hours(1);
      for (auto& c : clients) {
        fds.push_back({c.fd, static_cast<short>(c.replying ? POLLOUT : POLLIN), 0});
        next = std::min(next, c.deadline);
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
      const int rc = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait, 0) + 1));
      if (rc < 0 && errno != EINTR) return;
      if (fds[0].revents) return;
      now = Clock::now();
      std::size_t i = 2;
      for (auto it = clients.begin(); it != clients.end(); ++i) {
        Client& c = *it;
        bool keep = true;
        const short ev = fds[i].revents;
        if (ev & (POLLERR | POLLNVAL)) keep = false;
        else if (c.replying && (ev & (POLLOUT | POLLHUP))) keep = on_writable(c);
        else if (!c.replying && (ev & (POLLIN | POLLHUP))) keep = on_readable(c);
        // A request that became complete is answered in the same round when the socket takes it.
        if (keep && c.replying && c.sent == 0) keep = on_writable(c);
        if (keep && now >= c.deadline) keep = false; // too slow to send or to read
        if (!keep) {
          close_client(c);
          it = clients.erase(it);
        } else {
          ++it;
        }
      }
      if (fds[1].revents & POLLIN) accept_clients();
    }
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
ControlServer::~ControlServer() = default;

Result<std::unique_ptr<ControlServer>> ControlServer::start(Testbed& tb, ControlServerOptions opt) {
  auto impl = std::make_unique<Impl>();
  impl->tb = &tb;
  impl->owner = ::geteuid();
  APEMU_TRY(sockaddr_un addr, socket_address(opt.path));
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(opt.path).parent_path(), ec);
  APEMU_TRY_VOID(claim_socket_path(opt.path, addr));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(errno, "socket");
  const mode_t old = ::umask(0177); // the socket is created 0600
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int bind_err = errno;
  ::umask(old);
  if (rc != 0) {
    ::close(fd);
    return Error(bind_err, "bind " + opt.path);
  }
  impl->opt = std::move(opt);
  impl->listen_fd = fd; // from here on the destructor unlinks the path
  ::chmod(impl->opt.path.c_str(), 0600);
  set_nonblocking(fd);
  if (::listen(fd, 64) != 0) return Error(errno, "listen " + impl->opt.path);
  if (::pipe2(impl->wake, O_CLOEXEC) != 0) return Error(errno, "pipe");
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

// ---- client --------------------------------------------------------------------------------------

Result<ControlReply> ctl_call(const std::string& path, const ControlRequest& req,
                              std::chrono::milliseconds timeout) {
  APEMU_TRY(sockaddr_un addr, socket_address(path));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(errno, "socket");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error(errno, "connect " + path);
  const std::string line = encode_request(req);
  for (std::size_t off = 0; off < line.size();) {
    const ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error(errno == EAGAIN ? ETIMEDOUT : errno, "sending to " + path);
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string resp;
  const auto deadline = Clock::now() + timeout;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error(errno == EAGAIN ? ETIMEDOUT : errno, "waiting for " + path);
    if (n == 0) break;
    resp.append(buf, static_cast<std::size_t>(n));
    if (Clock::now() > deadline) return Error(ETIMEDOUT, "waiting for " + path);
  }
  if (resp.empty()) return Error(ECONNRESET, "no reply from " + path);
  if (resp.back() == '\n') resp.pop_back();
  return parse_reply(resp);
}

Result<std::string> ctl_request(const std::string& path, const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout) {
  APEMU_TRY(ControlReply r, ctl_call(path, ControlRequest{argv, false}, timeout));
  if (!r.ok) return Error(r.code, r.message);
  return std::move(r.output);
}

std::string default_control_socket() {
  if (const char* p = std::getenv("APEMU_CTL")) return p;
  return "/run/apemu/ctl.sock";
}

} // namespace apemu::testbed
