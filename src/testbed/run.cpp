#include "apemu/testbed/run.h"

#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "apemu/testbed/control.h"
#include "apemu/testbed/live.h"

namespace apemu::testbed {

namespace {

Result<void> sys_mount(const char* src, const char* target, const char* type, unsigned long flags,
                       const char* data) {
  if (::mount(src, target, type, flags, data) != 0)
    return Error(errno, std::string("mount ") + (type ? type : "") + " on " + target);
  return {};
}

Result<void> make_dir(const char* path, mode_t mode) {
  if (::mkdir(path, mode) != 0 && errno != EEXIST) return Error(errno, std::string("mkdir ") + path);
  return {};
}

Result<std::unique_ptr<Testbed>> boot(const std::string& topology, bool verbose,
                                      const std::string& kernel_profile) {
  return Testbed::from_file(topology.empty() ? default_topology_path() : topology, verbose,
                            kernel_profile);
}

/// Blocks SIGINT/SIGTERM/SIGCHLD in this thread (and so in every thread created later).
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

} // namespace

Result<int> run_isolated(const RunOptions& opt) {
  std::vector<std::string> argv = opt.argv;
  if (argv.empty()) {
    if (!::isatty(STDIN_FILENO)) return Error(EINVAL, "no command given and stdin is not a terminal");
    const char* sh = std::getenv("SHELL");
    argv = {sh && *sh ? sh : "/bin/sh", "-i"};
  }
  // Everything below happens in private namespaces; the host's mounts are untouched.
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) return Error(errno, "unshare(CLONE_NEWNS|CLONE_NEWNET)");
  APEMU_TRY_VOID(sys_mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
  APEMU_TRY_VOID(sys_mount("apemu-run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"));
  for (const char* d : {"/run/udev", "/run/lock", "/run/apemu"}) APEMU_TRY_VOID(make_dir(d, 0755));
  struct stat st {};
  if (::stat("/etc/mdevctl.d", &st) == 0 && S_ISDIR(st.st_mode)) {
    APEMU_TRY_VOID(sys_mount("apemu-mdevctl", "/etc/mdevctl.d", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"));
    // An empty configuration, but with the script directories mdevctl 1.2 expects to read.
    for (const char* d : {"/etc/mdevctl.d/scripts.d", "/etc/mdevctl.d/scripts.d/callouts",
                          "/etc/mdevctl.d/scripts.d/notifiers"})
      APEMU_TRY_VOID(make_dir(d, 0755));
  }

  const sigset_t sigs = block_signals();
  APEMU_TRY(auto tb, boot(opt.topology, opt.verbose, opt.kernel_profile));
  LiveOptions lo;
  lo.mountpoint = "/sys";
  lo.netlink = true; // safe: this is a private network namespace
  lo.udev_root = "/run/udev";
  lo.control_socket = "/run/apemu/ctl.sock";
  APEMU_TRY(auto live, LiveSession::start(*tb, lo));

  ::setenv("SYSTEMD_DEVICE_VERIFY_SYSFS", "0", 1);
  ::setenv("APEMU_CTL", lo.control_socket.c_str(), 1);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return Error(errno, "fork");
  if (child == 0) {
    pthread_sigmask(SIG_UNBLOCK, &sigs, nullptr);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "apemu run: %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGCHLD) {
      const pid_t r = ::waitpid(child, &status, WNOHANG);
      if (r == child) break;
      continue;
    }
    ::kill(child, sig); // forward INT/TERM to CMD
  }
  live->stop();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

Result<int> serve(const ServeOptions& opt) {
  const sigset_t sigs = block_signals();
  APEMU_TRY(auto tb, boot(opt.topology, opt.verbose, opt.kernel_profile));
  LiveOptions lo;
  lo.mountpoint = opt.mountpoint;
  lo.netlink = false; // the host's udev must not see emulated events
  lo.udev_root = opt.udev_root;
  lo.control_socket = opt.control_socket.empty() ? default_control_socket() : opt.control_socket;
  APEMU_TRY(auto live, LiveSession::start(*tb, lo));
  std::printf("READY %s\n", opt.mountpoint.c_str());
  std::fflush(stdout);
  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  live->stop();
  return 0;
}

} // namespace apemu::testbed
