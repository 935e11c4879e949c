// The control socket under hostile clients (issue 9 items 1 and 3): a client that hangs up early
// cannot kill the daemon (SIGPIPE), idle, slow, greedy or never-reading clients cannot stall the
// others, oversized requests are refused, only root and the owner may run commands, a socket
// path held by a live server or by a non-socket is never taken over, and the client times out.
// The server runs in this process: a SIGPIPE would kill the test binary itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "apemu/testbed/control.h"
#include "matchers.h"

using namespace apemu;
using namespace apemu::testing;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

int connect_to(const std::string& path, int rcvbuf = 0) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

class ControlServerTest : public ::testing::Test {
protected:
  void SetUp() override {
    char dir[] = "/tmp/apemu-ctl-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    m_dir = dir;
    path = m_dir + "/ctl.sock";
    auto t = testbed::Testbed::from_file(testbed::default_topology_path());
    ASSERT_THAT(t, IsOk());
    tb = std::move(*t);
  }
  void TearDown() override {
    server.reset();
    ::unlink(path.c_str());
    ::rmdir(m_dir.c_str());
  }
  void start(std::chrono::milliseconds client_timeout = 5000ms) {
    testbed::ControlServerOptions o;
    o.path = path;
    o.client_timeout = client_timeout;
    auto s = testbed::ControlServer::start(*tb, o);
    ASSERT_THAT(s, IsOk());
    server = std::move(*s);
  }
  Result<std::string> ctl(std::vector<std::string> argv, std::chrono::milliseconds t = 2000ms) {
    return testbed::ctl_request(path, argv, t);
  }

  std::string m_dir, path;
  std::unique_ptr<testbed::Testbed> tb;
  std::unique_ptr<testbed::ControlServer> server;
};

TEST_F(ControlServerTest, AnswersTextAndJsonLines) {
  start();
  EXPECT_THAT(ctl({"show"}), IsOkAndHolds(HasSubstr("card")));
  EXPECT_THAT(ctl({"bogus"}), FailsWith(EINVAL));
  auto r = testbed::ctl_call(path, {{"scan"}, true}, 2000ms);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->result, "{}");
  auto bad = testbed::ctl_call(path, {{"card", "remove", "77"}, true}, 2000ms);
  ASSERT_THAT(bad, IsOk());
  EXPECT_FALSE(bad->ok);
  EXPECT_EQ(bad->code, ENODEV);
  EXPECT_THAT(bad->raw, HasSubstr("\"errno\":\"ENODEV\""));
}

// Issue 9 item 1: the reply goes to a client that already hung up. A plain write(2) raises
// SIGPIPE and kills this process; the server must carry on.
TEST_F(ControlServerTest, ClientThatHangsUpBeforeTheReplyCannotKillTheServer) {
  start();
  for (int i = 0; i < 3; ++i) {
    {
      // Hold the machine while the client sends and hangs up, so the reply is certainly
      // written after the peer is gone.
      auto lk = tb->core().lock();
      const int fd = connect_to(path);
      ASSERT_GE(fd, 0);
      const std::string req = testbed::encode_request({{"tree"}, false});
      ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
      ::close(fd);
    }
    std::this_thread::sleep_for(20ms);
  }
  // A connection that sends nothing at all and goes away.
  ::close(connect_to(path));
  EXPECT_THAT(ctl({"show"}), IsOk());
}

// Issue 9 item 3: twelve idle connections made the next `ctl show` wait 5 s each.
TEST_F(ControlServerTest, IdleConnectionsDoNotBlockOthers) {
  start();
  std::vector<int> idle;
  for (int i = 0; i < 12; ++i) idle.push_back(connect_to(path));
  EXPECT_THAT(ctl({"show"}, 2000ms), IsOk());
  for (int fd : idle) ::close(fd);
}

TEST_F(ControlServerTest, ADribblingClientIsDroppedAtItsDeadlineWithoutStallingOthers) {
  start(400ms);
  const int fd = connect_to(path);
  ASSERT_GE(fd, 0);
  // One byte of a request, then nothing: the server drops it after the deadline.
  ASSERT_EQ(::send(fd, "{", 1, MSG_NOSIGNAL), 1);
  EXPECT_THAT(ctl({"show"}, 2000ms), IsOk());
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "the server should have closed the connection";
  ::close(fd);
}

TEST_F(ControlServerTest, AClientThatNeverReadsItsReplyDoesNotStallOthers) {
  start(400ms);
  // A tiny receive buffer and a large reply: the server cannot write it all at once.
  const int fd = connect_to(path, 1024);
  ASSERT_GE(fd, 0);
  const std::string req = testbed::encode_request({{"tree"}, false});
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(50ms);
  EXPECT_THAT(ctl({"show"}, 2000ms), IsOk());
  std::this_thread::sleep_for(600ms); // past the deadline: dropped, not kept forever
  EXPECT_THAT(ctl({"dmesg"}, 2000ms), IsOk());
  ::close(fd);
}

TEST_F(ControlServerTest, OversizedRequestIsRefusedWithEmsgsize) {
  start();
  const int fd = connect_to(path);
  ASSERT_GE(fd, 0);
  const std::string big(1 << 20, 'x'); // 1 MiB without a newline
  std::thread sender([&] {
    std::size_t off = 0;
    while (off < big.size()) {
      const ssize_t n = ::send(fd, big.data() + off, big.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break; // the server stopped reading
      off += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
  });
  const std::string reply = read_all(fd);
  sender.join();
  ::close(fd);
  EXPECT_THAT(reply, HasSubstr("\"errno\":\"EMSGSIZE\""));
  EXPECT_THAT(ctl({"show"}), IsOk());
}

TEST_F(ControlServerTest, MalformedRequestsGetEinval) {
  start();
  for (std::string line : {"not json\n", "[1,2]\n", "{\"argv\":[1]}\n", "{\"argv\":[],\"x\":1}\n",
                           "{\"argv\":[\"show\"],\"json\":\"yes\"}\n"}) {
    const int fd = connect_to(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    ::shutdown(fd, SHUT_WR);
    EXPECT_THAT(read_all(fd), HasSubstr("\"errno\":\"EINVAL\"")) << line;
    ::close(fd);
  }
}

TEST_F(ControlServerTest, OnlyRootAndTheOwnerMayRunCommands) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to another user";
  start();
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0); // an administrator's mistake
  ASSERT_EQ(::chmod(m_dir.c_str(), 0755), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    auto r = testbed::ctl_request(path, {"card", "config", "1", "off"}, 2000ms);
    ::_exit(r ? 11 : r.error().code == EACCES ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // Nothing changed.
  EXPECT_TRUE(tb->ap_bus()->card(Apid{1})->config());
}

TEST_F(ControlServerTest, ClientTimesOutOnAServerThatNeverAnswers) {
  // A socket that accepts (backlog) but never reads.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THAT(ctl({"show"}, 300ms), FailsWith(ETIMEDOUT));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ::close(fd);
}

TEST_F(ControlServerTest, SocketPathOfALiveServerIsNotTakenOver) {
  start();
  testbed::ControlServerOptions o;
  o.path = path;
  EXPECT_THAT(testbed::ControlServer::start(*tb, o), FailsWith(EADDRINUSE));
  EXPECT_THAT(ctl({"show"}), IsOk()); // the first one still serves
}

TEST_F(ControlServerTest, NonSocketPathIsNeverDeletedAndAStaleSocketIsReplaced) {
  { std::ofstream(path) << "precious\n"; }
  testbed::ControlServerOptions o;
  o.path = path;
  EXPECT_THAT(testbed::ControlServer::start(*tb, o), FailsWith(EEXIST));
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "precious");
  ::unlink(path.c_str());
  // A socket file nobody listens on (a killed daemon's).
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  start();
  EXPECT_THAT(ctl({"show"}), IsOk());
}

} // namespace
