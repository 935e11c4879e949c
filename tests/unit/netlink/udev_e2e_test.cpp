// End-to-end checks against the real consumers (umockdev's rule: verify through real
// udev_monitors): libudev 252's monitor, the tests/clients/udev_monitor program and udevadm.
//
// Every test runs in a forked child that unshares its mount and network namespaces, so udev
// messages never reach the host's monitors and the tmpfs mounted on /run (and, where needed, on
// /sys and /dev) is invisible outside the child. The child reports a failure text through a pipe
// and its exit status; exit status 77 means "the facility is missing" (unshare or mount EPERM),
// which skips the test unless CI=true.
#include "apemu/netlink/udev_db.h"
#include "apemu/netlink/udev_message.h"
#include "apemu/netlink/udev_sender.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <libudev.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "matchers.h"

#ifndef UDEV_MONITOR_PATH
#error "UDEV_MONITOR_PATH must name the udev_monitor client (tests/CMakeLists.txt)"
#endif

using namespace apemu;
using namespace apemu::netlink;

namespace {

constexpr const char* kDevpath = "/devices/apemu-test/foo0";
constexpr const char* kUuid = "12345678-1234-4321-8765-123456789abc";

// ---------------------------------------------------------------------------------------------
// The private-namespace harness.

struct NamespaceSetup {
  bool fake_sys = false;  // tmpfs on /sys holding /sys/devices/apemu-test/foo0 (uevent, subsystem)
  bool tmpfs_dev = false; // tmpfs on /dev, so that /dev is not a devtmpfs
};

struct ChildOutcome {
  enum Kind { Passed, Skipped, Failed } kind = Failed;
  std::string message;
};

bool ci() {
  const char* v = std::getenv("CI");
  return v && std::string(v) == "true";
}

void write_fd(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

std::string errno_text(const std::string& what) {
  return what + ": " + Errno(errno).name() + " (" + std::strerror(errno) + ")";
}

[[noreturn]] void child_exit(int fd, int code, const std::string& message) {
  write_fd(fd, message);
  _exit(code);
}

void make_file(const std::string& path, const std::string& content = "") {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_fd(fd, content);
  close(fd);
}

// Runs in the child, inside the new namespaces. Returns "" or a failure text; `skip` is set when
// the failure means the facility is absent.
std::string prepare_namespace(const NamespaceSetup& setup, bool& skip) {
  skip = false;
  if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0) {
    skip = errno == EPERM;
    return errno_text("unshare(CLONE_NEWNS|CLONE_NEWNET)");
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
    skip = errno == EPERM;
    return errno_text("mount(/, MS_REC|MS_PRIVATE)");
  }
  // If /run/udev is missing, create it inside a private tmpfs on /run instead of on the host.
  if (access("/run/udev", F_OK) < 0 && mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0)
    return errno_text("mount tmpfs on /run");
  if (mkdir("/run/udev", 0755) < 0 && errno != EEXIST) return errno_text("mkdir /run/udev");
  if (mount("tmpfs", "/run/udev", "tmpfs", 0, "mode=0755") < 0)
    return errno_text("mount tmpfs on /run/udev");
  if (auto r = UdevDatabase("/run/udev").init(); !r)
    return "UdevDatabase::init: " + r.error().describe();
  if (setup.fake_sys) {
    if (mount("tmpfs", "/sys", "tmpfs", 0, "mode=0755") < 0)
      return errno_text("mount tmpfs on /sys");
    for (const char* d :
         {"/sys/devices", "/sys/devices/apemu-test", "/sys/devices/apemu-test/foo0", "/sys/bus",
          "/sys/bus/foo", "/sys/bus/foo/devices", "/sys/bus/foo/drivers", "/sys/class"})
      if (mkdir(d, 0755) < 0) return errno_text(std::string("mkdir ") + d);
    make_file("/sys/devices/apemu-test/foo0/uevent");
    if (symlink("../../../bus/foo", "/sys/devices/apemu-test/foo0/subsystem") < 0 ||
        symlink("../../../devices/apemu-test/foo0", "/sys/bus/foo/devices/foo0") < 0)
      return errno_text("symlink");
  }
  if (setup.tmpfs_dev && mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755") < 0)
    return errno_text("mount tmpfs on /dev");
  // sd-device (v251+) refuses non-sysfs /sys otherwise (driver-core.md §4.1).
  setenv("SYSTEMD_DEVICE_VERIFY_SYSFS", "0", 1);
  return {};
}

/// Forks; the child enters private mount+network namespaces, prepares /run/udev (and optionally
/// /sys, /dev) and runs `body`, which returns "" on success or what failed.
ChildOutcome run_in_private_namespaces(const NamespaceSetup& setup,
                                       const std::function<std::string()>& body,
                                       int timeout_ms = 30000) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) return {ChildOutcome::Failed, errno_text("pipe2")};
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return {ChildOutcome::Failed, errno_text("fork")};
  if (pid == 0) {
    close(pfd[0]);
    bool skip = false;
    if (std::string err = prepare_namespace(setup, skip); !err.empty())
      child_exit(pfd[1], skip ? 77 : 1, err);
    std::string result;
    try {
      result = body();
    } catch (const std::exception& e) {
      result = std::string("exception: ") + e.what();
    }
    child_exit(pfd[1], result.empty() ? 0 : 1, result);
  }
  close(pfd[1]);
  std::string message;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{pfd[0], POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    const ssize_t got = read(pfd[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    message.append(buf, static_cast<std::size_t>(got));
  }
  close(pfd[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return {ChildOutcome::Failed, "child timed out; partial report: " + message};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {ChildOutcome::Passed, message};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return {ChildOutcome::Skipped, message};
  if (WIFSIGNALED(status))
    return {ChildOutcome::Failed,
            "child killed by signal " + std::to_string(WTERMSIG(status)) + "; report: " + message};
  return {ChildOutcome::Failed, message};
}

#define APEMU_EXPECT_CHILD_PASSES(outcome_expr)                                                    \
  do {                                                                                             \
    const ChildOutcome apemu_outcome_ = (outcome_expr);                                            \
    if (apemu_outcome_.kind == ChildOutcome::Skipped) {                                            \
      if (ci()) FAIL() << "namespaces unavailable under CI=true: " << apemu_outcome_.message;      \
      GTEST_SKIP() << "private namespaces unavailable: " << apemu_outcome_.message;                \
    }                                                                                              \
    EXPECT_EQ(apemu_outcome_.kind, ChildOutcome::Passed) << apemu_outcome_.message;                \
  } while (0)

// In the child there is no gtest: checks return their failure text.
#define CHILD_CHECK(cond, detail)                                                                  \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      return std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond ": " + (detail);    \
  } while (0)

// ---------------------------------------------------------------------------------------------
// libudev helpers (used inside the child).

struct UdevDeleter {
  void operator()(udev* u) const { udev_unref(u); }
  void operator()(udev_monitor* m) const { udev_monitor_unref(m); }
  void operator()(udev_device* d) const { udev_device_unref(d); }
};
using UdevPtr = std::unique_ptr<udev, UdevDeleter>;
using MonitorPtr = std::unique_ptr<udev_monitor, UdevDeleter>;
using DevicePtr = std::unique_ptr<udev_device, UdevDeleter>;

struct Received {
  std::string action, devpath, subsystem;
  unsigned long long seqnum = 0;
  std::optional<std::string> driver, synth_uuid, usec, tags;
  int initialized = -1;
};

std::optional<std::string> opt(const char* s) {
  return s ? std::optional<std::string>(s) : std::nullopt;
}

MonitorPtr new_udev_monitor(udev* u, std::function<void(udev_monitor*)> configure = {}) {
  MonitorPtr m(udev_monitor_new_from_netlink(u, "udev"));
  if (!m) return m;
  if (configure) configure(m.get());
  if (udev_monitor_enable_receiving(m.get()) < 0) m.reset();
  return m;
}

/// Receives devices until `max` arrived or `timeout_ms` passed. Counts ENOBUFS returns.
std::vector<Received> receive(udev_monitor* m, std::size_t max, int timeout_ms,
                              int* enobufs = nullptr) {
  std::vector<Received> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (out.size() < max) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    pollfd p{udev_monitor_get_fd(m), POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n <= 0) continue;
    errno = 0;
    DevicePtr d(udev_monitor_receive_device(m));
    if (!d) {
      if (errno == ENOBUFS && enobufs) ++*enobufs;
      continue; // EAGAIN: filtered or rejected by libudev
    }
    Received r;
    r.action = udev_device_get_action(d.get()) ?: "";
    r.devpath = udev_device_get_devpath(d.get()) ?: "";
    r.subsystem = udev_device_get_subsystem(d.get()) ?: "";
    r.seqnum = udev_device_get_seqnum(d.get());
    r.driver = opt(udev_device_get_property_value(d.get(), "DRIVER"));
    r.synth_uuid = opt(udev_device_get_property_value(d.get(), "SYNTH_UUID"));
    r.usec = opt(udev_device_get_property_value(d.get(), "USEC_INITIALIZED"));
    r.tags = opt(udev_device_get_property_value(d.get(), "TAGS"));
    r.initialized = udev_device_get_is_initialized(d.get());
    out.push_back(std::move(r));
  }
  return out;
}

/// Sends ACTION/DEVPATH/SUBSYSTEM + extras through a real Broadcaster into `sender`.
struct EventSource {
  uevent::Broadcaster broadcaster;
  explicit EventSource(UdevSender& sender) {
    broadcaster.subscribe([&sender](const uevent::Event& ev) { sender.enqueue(ev); });
  }
  std::string send(uevent::Action action, const std::string& devpath, const std::string& subsystem,
                   const std::vector<std::pair<std::string, std::string>>& extra = {}) {
    uevent::Env env;
    if (!env.add("ACTION", uevent::action_name(action)) || !env.add("DEVPATH", devpath) ||
        !env.add("SUBSYSTEM", subsystem))
      return "env.add failed";
    for (const auto& [k, v] : extra)
      if (!env.add(k, v)) return "env.add failed";
    if (auto r = broadcaster.send(action, devpath, env); !r) return r.error().describe();
    return {};
  }
};

std::string describe(const std::vector<Received>& got) {
  std::string s = std::to_string(got.size()) + " received:";
  for (const auto& r : got)
    s += " [" + r.action + " " + r.devpath + " " + r.subsystem + " " + std::to_string(r.seqnum) +
         "]";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Subprocesses (inside the child).

struct ProcessResult {
  int status = -1; // exit status, or 128+signal
  std::string out; // stdout and stderr
};

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_ms = 10000) {
  ProcessResult res;
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) return res;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    dup2(pfd[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pfd[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{pfd[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(pfd[0], buf, sizeof buf);
    if (n <= 0) break;
    res.out.append(buf, static_cast<std::size_t>(n));
  }
  close(pfd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  res.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

/// A running udev_monitor client whose stdout and stderr we read line by line.
class ClientProcess {
public:
  explicit ClientProcess(const std::vector<std::string>& args) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) return;
    m_pid = fork();
    if (m_pid == 0) {
      dup2(pfd[1], 1);
      dup2(pfd[1], 2); // diagnostics become lines the test can assert on
      std::vector<char*> argv{const_cast<char*>(UDEV_MONITOR_PATH)};
      for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(UDEV_MONITOR_PATH, argv.data());
      _exit(127);
    }
    close(pfd[1]);
    m_fd = pfd[0];
  }
  ~ClientProcess() {
    if (m_fd >= 0) close(m_fd);
    if (m_pid > 0 && !m_reaped) {
      kill(m_pid, SIGKILL);
      waitpid(m_pid, nullptr, 0);
    }
  }
  /// The next line without '\n', or nullopt at EOF/timeout.
  std::optional<std::string> line(int timeout_ms = 10000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (auto nl = m_buf.find('\n'); nl != std::string::npos) {
        std::string l = m_buf.substr(0, nl);
        m_buf.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return std::nullopt;
      pollfd p{m_fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[1024];
      const ssize_t n = read(m_fd, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      m_buf.append(buf, static_cast<std::size_t>(n));
    }
  }
  /// Exit status (or 128+signal) after waiting up to `timeout_ms`.
  int wait(int timeout_ms = 10000) {
    int status = 0;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
      if (waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_reaped = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      usleep(10000);
    }
    return -1;
  }

private:
  pid_t m_pid = -1;
  int m_fd = -1;
  bool m_reaped = false;
  std::string m_buf;
};

} // namespace

// ---------------------------------------------------------------------------------------------
// libudev monitor

TEST(UdevMonitorEndToEnd, LibudevMonitorReceivesAddBindChangeRemoveInOrder) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    // The device directory does not exist: monitor events do not need a syspath.
    CHILD_CHECK(access("/sys/devices/apemu-test/foo0", F_OK) < 0 && errno == ENOENT,
                "the host unexpectedly has the test device");
    UdevPtr u(udev_new());
    CHILD_CHECK(u != nullptr, errno_text("udev_new"));
    MonitorPtr mon = new_udev_monitor(u.get());
    CHILD_CHECK(mon != nullptr, errno_text("udev monitor"));

    auto sender = UdevSender::create();
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    EventSource src(**sender);
    std::string err;
    err += src.send(uevent::Action::Add, kDevpath, "foo");
    err += src.send(uevent::Action::Bind, kDevpath, "foo", {{"DRIVER", "x"}});
    err += src.send(uevent::Action::Change, kDevpath, "foo", {{"SYNTH_UUID", kUuid}});
    err += src.send(uevent::Action::Remove, kDevpath, "foo");
    CHILD_CHECK(err.empty(), err);
    (*sender)->flush();
    CHILD_CHECK((*sender)->errors() == 0u, "send errors: " + Errno((*sender)->last_error()).name());
    CHILD_CHECK((*sender)->sent() == 4u, std::to_string((*sender)->sent()));

    const auto got = receive(mon.get(), 5, 1500);
    CHILD_CHECK(got.size() == 4u, describe(got));
    const char* actions[] = {"add", "bind", "change", "remove"};
    for (std::size_t i = 0; i < 4; ++i) {
      CHILD_CHECK(got[i].action == actions[i], describe(got));
      CHILD_CHECK(got[i].devpath == kDevpath, got[i].devpath);
      CHILD_CHECK(got[i].subsystem == "foo", got[i].subsystem);
      CHILD_CHECK(got[i].seqnum == i + 1, describe(got));
      // Messages from udev are marked initialized and carry USEC_INITIALIZED.
      CHILD_CHECK(got[i].initialized == 1, std::to_string(got[i].initialized));
      CHILD_CHECK(got[i].usec.has_value(), "no USEC_INITIALIZED");
    }
    CHILD_CHECK(!got[0].driver, *got[0].driver);
    CHILD_CHECK(got[1].driver == "x", got[1].driver.value_or("(none)"));
    CHILD_CHECK(got[2].synth_uuid == kUuid, got[2].synth_uuid.value_or("(none)"));
    CHILD_CHECK(!got[3].driver, *got[3].driver);
    return {};
  }));
}

TEST(UdevMonitorEndToEnd, BpfSubsystemAndTagFiltersAcceptOurHashesAndBloom) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    UdevPtr u(udev_new());
    // Both filters run as BPF over the header (and again in user space): a wrong subsystem hash
    // or tag bloom would make the kernel drop the matching messages too.
    MonitorPtr by_subsystem = new_udev_monitor(u.get(), [](udev_monitor* m) {
      udev_monitor_filter_add_match_subsystem_devtype(m, "foo", nullptr);
    });
    MonitorPtr by_devtype = new_udev_monitor(u.get(), [](udev_monitor* m) {
      udev_monitor_filter_add_match_subsystem_devtype(m, "foo", "bar");
    });
    MonitorPtr by_tag = new_udev_monitor(
        u.get(), [](udev_monitor* m) { udev_monitor_filter_add_match_tag(m, "systemd"); });
    CHILD_CHECK(by_subsystem && by_devtype && by_tag, errno_text("udev monitor"));

    UdevSenderOptions opts;
    opts.prepare = [](const uevent::Event& ev) {
      UdevExtras x{monotonic_usec(), {}};
      if (ev.seqnum == 2) x.tags = {"seat"};
      if (ev.seqnum == 3) x.tags = {"seat", "systemd"};
      return x;
    };
    auto sender = UdevSender::create(std::move(opts));
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    EventSource src(**sender);
    std::string err;
    err += src.send(uevent::Action::Add, "/devices/apemu-test/bar0", "bar");        // 1
    err += src.send(uevent::Action::Add, kDevpath, "foo");                          // 2
    err += src.send(uevent::Action::Change, kDevpath, "foo", {{"DEVTYPE", "bar"}}); // 3
    err += src.send(uevent::Action::Change, kDevpath, "foo", {{"DEVTYPE", "baz"}}); // 4
    CHILD_CHECK(err.empty(), err);
    (*sender)->flush();

    auto got = receive(by_subsystem.get(), 4, 500);
    CHILD_CHECK(got.size() == 3u && got[0].seqnum == 2 && got[1].seqnum == 3 && got[2].seqnum == 4,
                "subsystem filter: " + describe(got));
    got = receive(by_devtype.get(), 2, 300);
    CHILD_CHECK(got.size() == 1u && got[0].seqnum == 3, "devtype filter: " + describe(got));
    got = receive(by_tag.get(), 2, 300);
    CHILD_CHECK(got.size() == 1u && got[0].seqnum == 3, "tag filter: " + describe(got));
    // libudev re-renders TAGS from its own tag set: the order we sent is not kept.
    CHILD_CHECK(got[0].tags == ":seat:systemd:" || got[0].tags == ":systemd:seat:",
                got[0].tags.value_or("(none)"));
    return {};
  }));
}

TEST(UdevMonitorEndToEnd, EmptyRegularControlFileEnablesTheUdevGroupWithoutDevtmpfs) {
  // sd-device subscribes a "udev" monitor to group 2 only if /run/udev/control exists
  // (access(F_OK): any file type) or /dev is a devtmpfs. Hide the devtmpfs to see the rule.
  NamespaceSetup setup;
  setup.tmpfs_dev = true;
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces(setup, []() -> std::string {
    CHILD_CHECK(unlink("/run/udev/control") == 0, errno_text("unlink control"));
    UdevPtr u(udev_new());
    MonitorPtr without_control = new_udev_monitor(u.get());
    make_file("/run/udev/control"); // empty regular file, as UdevDatabase::init() creates
    MonitorPtr with_control = new_udev_monitor(u.get());
    CHILD_CHECK(without_control && with_control, errno_text("udev monitor"));

    auto sender = UdevSender::create();
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    EventSource src(**sender);
    CHILD_CHECK(src.send(uevent::Action::Add, kDevpath, "foo").empty(), "send");
    (*sender)->flush();
    auto got = receive(with_control.get(), 2, 1000);
    CHILD_CHECK(got.size() == 1u, "with control file: " + describe(got));
    got = receive(without_control.get(), 1, 300);
    CHILD_CHECK(got.empty(), "without control file: " + describe(got));
    return {};
  }));
}

TEST(UdevSenderEndToEnd, NoListenerIsNotAnError) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    auto sender = UdevSender::create();
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    CHILD_CHECK((*sender)->port_id() != 0u, "no port id");
    EventSource src(**sender);
    for (int i = 0; i < 3; ++i)
      CHILD_CHECK(src.send(uevent::Action::Change, kDevpath, "foo").empty(), "send");
    (*sender)->flush();
    CHILD_CHECK((*sender)->errors() == 0u, Errno((*sender)->last_error()).name());
    CHILD_CHECK((*sender)->sent() == 3u, std::to_string((*sender)->sent()));
    return {};
  }));
}

TEST(UdevSenderEndToEnd, OverflowDropsAtTheReceiverKeepsOrderAndIsNoSenderError) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    UdevPtr u(udev_new());
    MonitorPtr mon = new_udev_monitor(u.get(), [](udev_monitor* m) {
      udev_monitor_set_receive_buffer_size(m, 4096); // the kernel rounds up to its minimum
    });
    CHILD_CHECK(mon != nullptr, errno_text("udev monitor"));
    auto sender = UdevSender::create();
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    EventSource src(**sender);
    constexpr int kEvents = 300;
    for (int i = 0; i < kEvents; ++i)
      CHILD_CHECK(src.send(uevent::Action::Change, kDevpath, "foo").empty(), "send");
    (*sender)->flush();
    CHILD_CHECK((*sender)->errors() == 0u, Errno((*sender)->last_error()).name());
    CHILD_CHECK((*sender)->sent() == static_cast<std::uint64_t>(kEvents), "sent");

    int enobufs = 0;
    const auto got = receive(mon.get(), kEvents, 1000, &enobufs);
    CHILD_CHECK(!got.empty() && got.size() < static_cast<std::size_t>(kEvents), describe(got));
    CHILD_CHECK(enobufs >= 1, "the receiver saw no ENOBUFS");
    for (std::size_t i = 1; i < got.size(); ++i)
      CHILD_CHECK(got[i].seqnum > got[i - 1].seqnum, describe(got));
    return {};
  }));
}

TEST(UdevSenderEndToEnd, SendWithoutCapNetAdminCountsEperm) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    // Drop CAP_NET_ADMIN from this thread's effective set; the worker inherits it.
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    CHILD_CHECK(syscall(SYS_capget, &hdr, data) == 0, errno_text("capget"));
    data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective &= ~CAP_TO_MASK(CAP_NET_ADMIN);
    CHILD_CHECK(syscall(SYS_capset, &hdr, data) == 0, errno_text("capset"));

    apemu::Log log;
    UdevSenderOptions opts;
    opts.log = &log;
    auto sender = UdevSender::create(std::move(opts));
    CHILD_CHECK(sender.has_value(), sender.error().describe()); // creation needs no privilege
    EventSource src(**sender);
    CHILD_CHECK(src.send(uevent::Action::Add, kDevpath, "foo").empty(), "send");
    (*sender)->flush();
    CHILD_CHECK((*sender)->errors() == 1u, std::to_string((*sender)->errors()));
    CHILD_CHECK((*sender)->last_error() == EPERM, Errno((*sender)->last_error()).name());
    CHILD_CHECK((*sender)->sent() == 0u, std::to_string((*sender)->sent()));
    CHILD_CHECK(log.contains("EPERM"), "nothing logged");
    return {};
  }));
}

TEST(UdevMonitorEndToEnd, MessagesFromANonRootSenderAreIgnoredEvenWithCapNetAdmin) {
  // sd-device checks the SCM_CREDENTIALS uid (the sender's real uid) and drops anything but 0.
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    UdevPtr u(udev_new());
    MonitorPtr mon = new_udev_monitor(u.get());
    CHILD_CHECK(mon != nullptr, errno_text("udev monitor"));
    {
      auto root_sender = UdevSender::create();
      CHILD_CHECK(root_sender.has_value(), root_sender.error().describe());
      EventSource src(**root_sender);
      CHILD_CHECK(src.send(uevent::Action::Add, kDevpath, "foo").empty(), "send");
      (*root_sender)->flush();
    }
    auto got = receive(mon.get(), 1, 1000);
    CHILD_CHECK(got.size() == 1u, "from uid 0: " + describe(got));

    // The sender runs in its own process: the receiver must stay uid 0, because newer
    // sd-device versions also trust the receiver's own uid.
    const pid_t pid = fork();
    if (pid == 0) {
      __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
      if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setresuid(65534, 65534, 65534) < 0 ||
          syscall(SYS_capget, &hdr, data) < 0)
        _exit(2);
      data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective |= CAP_TO_MASK(CAP_NET_ADMIN);
      if (syscall(SYS_capset, &hdr, data) < 0) _exit(3);
      auto sender = UdevSender::create();
      if (!sender) _exit(4);
      EventSource src(**sender);
      if (!src.send(uevent::Action::Change, kDevpath, "foo").empty()) _exit(5);
      (*sender)->flush();
      _exit((*sender)->errors() == 0 && (*sender)->sent() == 1 ? 0 : 6); // the kernel took it
    }
    int status = 0;
    CHILD_CHECK(waitpid(pid, &status, 0) == pid, errno_text("waitpid"));
    CHILD_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "non-root sender failed, status " + std::to_string(status));
    got = receive(mon.get(), 1, 300);
    CHILD_CHECK(got.empty(), "from uid 65534: " + describe(got));
    return {};
  }));
}

// ---------------------------------------------------------------------------------------------
// The C client

TEST(UdevMonitorClient, PrintsOneLinePerEventAndExitsAfterCount) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    ClientProcess client({"--count", "2", "--timeout-ms", "10000", "--properties"});
    auto ready = client.line();
    CHILD_CHECK(ready == "READY", ready.value_or("(eof)"));

    UdevSenderOptions opts;
    opts.prepare = [](const uevent::Event&) { return UdevExtras{4242, {}}; };
    auto sender = UdevSender::create(std::move(opts));
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    EventSource src(**sender);
    CHILD_CHECK(src.send(uevent::Action::Add, kDevpath, "foo").empty(), "send");
    CHILD_CHECK(src.send(uevent::Action::Bind, kDevpath, "foo", {{"DRIVER", "x"}}).empty(), "send");
    (*sender)->flush();

    std::vector<std::string> lines;
    while (auto l = client.line())
      lines.push_back(*l);
    const int status = client.wait();
    std::string all;
    for (const auto& l : lines)
      all += l + "\n";
    CHILD_CHECK(status == 0, "exit status " + std::to_string(status) + "; output:\n" + all);
    std::vector<std::string> events;
    std::vector<std::string> props;
    for (const auto& l : lines)
      (l.rfind("  ", 0) == 0 ? props : events).push_back(l);
    CHILD_CHECK(events.size() == 2u, all);
    CHILD_CHECK(events[0] == "add /devices/apemu-test/foo0 foo 1 -", all);
    CHILD_CHECK(events[1] == "bind /devices/apemu-test/foo0 foo 2 x", all);
    for (const char* want : {"  ACTION=add", "  SEQNUM=1", "  USEC_INITIALIZED=4242", "  DRIVER=x",
                             "  SUBSYSTEM=foo"}) {
      bool found = false;
      for (const auto& p : props)
        found = found || p == want;
      CHILD_CHECK(found, std::string(want) + " missing in\n" + all);
    }
    // sd-device consumes UDEV_DATABASE_VERSION (device->database_version) instead of listing it.
    for (const auto& p : props)
      CHILD_CHECK(p.rfind("  UDEV_DATABASE_VERSION=", 0) != 0, "listed: " + p);
    return {};
  }));
}

TEST(UdevMonitorClient, FiltersBySubsystemAndTimesOutWithStatusOne) {
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces({}, []() -> std::string {
    ClientProcess client({"--count", "2", "--timeout-ms", "700", "--subsystem", "foo"});
    auto ready = client.line();
    CHILD_CHECK(ready == "READY", ready.value_or("(eof)"));
    auto sender = UdevSender::create();
    CHILD_CHECK(sender.has_value(), sender.error().describe());
    EventSource src(**sender);
    CHILD_CHECK(src.send(uevent::Action::Add, "/devices/apemu-test/bar0", "bar").empty(), "send");
    CHILD_CHECK(src.send(uevent::Action::Add, kDevpath, "foo").empty(), "send");
    (*sender)->flush();
    auto first = client.line();
    CHILD_CHECK(first == "add /devices/apemu-test/foo0 foo 2 -", first.value_or("(eof)"));
    auto second = client.line();
    CHILD_CHECK(second == "timeout after 1 of 2 devices", second.value_or("(eof)"));
    const int status = client.wait();
    CHILD_CHECK(status == 1, "exit status " + std::to_string(status));
    return {};
  }));
}

// ---------------------------------------------------------------------------------------------
// udevadm and libudev reading the database

TEST(UdevDatabaseEndToEnd, UdevadmInfoReportsTheDeviceInitialized) {
  NamespaceSetup setup;
  setup.fake_sys = true;
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces(setup, []() -> std::string {
    UdevDatabase db("/run/udev");
    CHILD_CHECK(db.add("foo", "foo0", {{"ID_APEMU", "1"}}, 12345).has_value(), "db.add");
    const std::vector<std::string> info = {"udevadm", "info", "--query=all",
                                           std::string("--path=") + kDevpath};
    auto r = run_process(info);
    CHILD_CHECK(r.status == 0, "udevadm info exit " + std::to_string(r.status) + ":\n" + r.out);
    for (const char* want :
         {"P: /devices/apemu-test/foo0\n", "U: foo\n", "E: USEC_INITIALIZED=12345\n",
          "E: ID_APEMU=1\n", "E: SUBSYSTEM=foo\n"})
      CHILD_CHECK(r.out.find(want) != std::string::npos,
                  std::string(want) + "missing in:\n" + r.out);

    // libudev reads the same entry: initialized, with the I: time.
    UdevPtr u(udev_new());
    DevicePtr d(udev_device_new_from_syspath(u.get(), "/sys/devices/apemu-test/foo0"));
    CHILD_CHECK(d != nullptr, errno_text("udev_device_new_from_syspath"));
    CHILD_CHECK(udev_device_get_is_initialized(d.get()) == 1, "libudev: not initialized");
    const char* usec = udev_device_get_property_value(d.get(), "USEC_INITIALIZED");
    CHILD_CHECK(usec && std::string(usec) == "12345", usec ? usec : "(none)");

    // Without the entry the device is uninitialized and has no USEC_INITIALIZED.
    CHILD_CHECK(db.remove("foo", "foo0").has_value(), "db.remove");
    r = run_process(info);
    CHILD_CHECK(r.status == 0, "udevadm info exit " + std::to_string(r.status) + ":\n" + r.out);
    CHILD_CHECK(r.out.find("USEC_INITIALIZED") == std::string::npos, r.out);
    CHILD_CHECK(r.out.find("ID_APEMU") == std::string::npos, r.out);
    DevicePtr d2(udev_device_new_from_syspath(u.get(), "/sys/devices/apemu-test/foo0"));
    CHILD_CHECK(d2 != nullptr, errno_text("udev_device_new_from_syspath"));
    CHILD_CHECK(udev_device_get_is_initialized(d2.get()) == 0, "libudev: initialized");
    return {};
  }));
}

TEST(UdevDatabaseEndToEnd, UdevadmRefusesTmpfsSysUnlessVerifySysfsIsOff) {
  NamespaceSetup setup;
  setup.fake_sys = true;
  APEMU_EXPECT_CHILD_PASSES(run_in_private_namespaces(setup, []() -> std::string {
    unsetenv("SYSTEMD_DEVICE_VERIFY_SYSFS");
    auto r = run_process({"udevadm", "info", "--query=all", std::string("--path=") + kDevpath});
    CHILD_CHECK(r.status != 0, "udevadm accepted a tmpfs /sys:\n" + r.out);
    return {};
  }));
}
