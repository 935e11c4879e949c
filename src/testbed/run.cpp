#include "apemu/testbed/run.h"

#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

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

/// Undoes the octal escapes of /proc/self/mountinfo ("\040" for a space).
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct(s.substr(i + 1, 3));
      if (oct.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(oct, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

/// The type of the filesystem mounted exactly on `path` (the last such mount), or "".
std::string mount_type_at(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, type;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
    std::istringstream fields(line);
    std::string id, parent, dev, root, mp;
    fields >> id >> parent >> dev >> root >> mp;
    if (unescape_mountinfo(mp) != path) continue;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    rest >> type;
  }
  return type;
}

/// Makes `dir` ready for a new mount: a FUSE mount left dead by a killed daemon (ENOTCONN) is
/// detached; a live mount is refused. Returns: EBUSY for a live mount point, ENOTDIR, or the
/// errno of stat/umount2.
Result<void> prepare_mountpoint(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOTCONN) return Error(errno, "mountpoint " + dir);
    // The daemon that served it is gone; the kernel keeps the dead connection until detached.
    if (::umount2(dir.c_str(), MNT_DETACH) != 0)
      return Error(errno, "detaching the dead FUSE mount on " + dir);
    std::fprintf(stderr, "apemu: serve: detached the dead FUSE mount on %s\n", dir.c_str());
    if (::stat(dir.c_str(), &st) != 0) return Error(errno, "mountpoint " + dir);
  }
  if (!S_ISDIR(st.st_mode)) return Error(ENOTDIR, "mountpoint " + dir);
  char real[PATH_MAX];
  if (!::realpath(dir.c_str(), real)) return Error(errno, "mountpoint " + dir);
  if (const std::string type = mount_type_at(real); !type.empty())
    return Error(EBUSY, "mountpoint " + dir + " already has a mounted " + type + " filesystem");
  return {};
}

Result<std::unique_ptr<Testbed>> boot(const std::string& topology, bool verbose,
                                      const std::string& kernel_profile, bool virtual_clock) {
  Options o;
  o.echo_log = verbose;
  o.kernel_profile = kernel_profile;
  o.clock = virtual_clock ? Runtime::ClockKind::Virtual : Runtime::ClockKind::Real;
  return Testbed::from_file(topology.empty() ? default_topology_path() : topology, std::move(o));
}

/// Blocks SIGINT/SIGTERM/SIGCHLD/SIGUSR1 in this thread (and so in every thread created later);
/// the main thread takes them with sigwait. SIGUSR1 reports that the mount was taken away.
/// SIGPIPE is ignored: a client that hangs up must never kill the daemon.
sigset_t block_signals() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGUSR1);
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
  APEMU_TRY(auto tb, boot(opt.topology, opt.verbose, opt.kernel_profile, opt.virtual_clock));
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
    ::signal(SIGPIPE, SIG_DFL); // an ignored SIGPIPE would be inherited across exec
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
    if (sig == SIGUSR1) continue; // not used by run
    ::kill(child, sig); // forward INT/TERM to CMD
  }
  live->stop();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

Result<int> serve(const ServeOptions& opt) {
  const sigset_t sigs = block_signals();
  APEMU_TRY_VOID(prepare_mountpoint(opt.mountpoint));
  APEMU_TRY(auto tb, boot(opt.topology, opt.verbose, opt.kernel_profile, opt.virtual_clock));
  LiveOptions lo;
  lo.mountpoint = opt.mountpoint;
  lo.netlink = false; // the host's udev must not see emulated events
  lo.udev_root = opt.udev_root;
  lo.control_socket = opt.control_socket.empty() ? default_control_socket() : opt.control_socket;
  const pid_t self = ::getpid();
  lo.on_mount_lost = [self] { ::kill(self, SIGUSR1); };
  APEMU_TRY(auto live, LiveSession::start(*tb, lo));
  std::printf("READY %s\n", opt.mountpoint.c_str());
  std::fflush(stdout);
  int sig = 0;
  while (sig != SIGINT && sig != SIGTERM && sig != SIGUSR1) sigwait(&sigs, &sig);
  live->stop();
  if (sig == SIGUSR1)
    return Error(ENOTCONN, "the mount on " + opt.mountpoint + " was taken away; exiting");
  return 0;
}

} // namespace apemu::testbed
