#include "apemu/testbed/run.h"

#include <dirent.h>
#include <fcntl.h>
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
#include <string_view>

#include "apemu/testbed/control.h"
#include "apemu/testbed/live.h"

namespace apemu::testbed {

namespace {

/// An Error whose context names the failed step ("mount tmpfs on /run"); the CLI adds the errno
/// name and text.
Error sys_error(int code, const std::string& what) { return Error(code, what); }

Result<void> sys_mount(const char* src, const char* target, const char* type, unsigned long flags,
                       const char* data) {
  if (::mount(src, target, type, flags, data) != 0)
    return sys_error(errno, std::string("mount ") + (type ? type : "bind") + " on " + target);
  return {};
}

Result<void> make_dir(const char* path, mode_t mode) {
  if (::mkdir(path, mode) != 0 && errno != EEXIST)
    return sys_error(errno, std::string("mkdir ") + path);
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

bool is_below(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir &&
                         path[dir.size()] == '/');
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

/// tmpfs options giving the root directory the mode (octal) and owner of `st`.
std::string tmpfs_options(const struct stat& st) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "mode=%04o,uid=%u,gid=%u",
                static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(st.st_uid),
                static_cast<unsigned>(st.st_gid));
  return buf;
}

/// How a private place is filled when CMD starts.
enum class Fill {
  Empty,       ///< an empty tmpfs: the host's content is neither visible nor changed
  HostOverlay, ///< overlayfs: the host's content is readable, every change goes to a tmpfs
};

struct PrivatePlace {
  const char* path;
  Fill fill;
};

// The places `apemu run` makes private, in mount order (/run first: the overlay's staging area
// lives there). Why each one is private, and why empty or overlaid:
constexpr PrivatePlace kPrivatePlaces[] = {
    // udevd's database and control file, libvirtd's sockets and pid files (/run/libvirt),
    // mdevctl's and ap-check's lock (/run/lock): all state of this boot, so empty.
    {"/run", Fill::Empty},
    // mdevctl's persistent definitions: the emulated machine starts without any; the host's
    // definitions describe other hardware (clients.md §1.1).
    {"/etc/mdevctl.d", Fill::Empty},
    // chzdev -p writes 41-ap.rules here and ap-check reads it (clients.md §2.1, §2.4). The host's
    // rules describe the host's persistent AP masks (none on x86), not the emulated machine's, so
    // the emulated machine starts with none.
    {"/etc/udev/rules.d", Fill::Empty},
    // libvirtd reads its configuration (libvirt.conf, libvirtd.conf, qemu.conf) here, so the host's
    // files must stay readable; at start its drivers create directories below it (qemu/,
    // storage/, nwfilter/, secrets/), which must not reach the host: an overlay.
    {"/etc/libvirt", Fill::HostOverlay},
    // libvirtd's state, caches and logs: of this boot only, and the host's (if any) describe other
    // devices and domains.
    {"/var/lib/libvirt", Fill::Empty},
    {"/var/cache/libvirt", Fill::Empty},
    {"/var/log/libvirt", Fill::Empty},
};

/// Makes places private in the current (private) mount namespace without ever writing to the
/// host's filesystems.
///
/// A place that does not exist on the host cannot get a mountpoint without creating one there.
/// Instead its nearest existing ancestor is *shadowed*: a tmpfs is mounted on that ancestor and
/// each of the host's entries is put back into it (directories and files as recursive bind mounts
/// of the originals, symlinks as copies), then the missing directories are created on that tmpfs.
/// So /var/lib/libvirt on a host without it gives a /var/lib whose entries are the host's (writes
/// into them still reach the host, as without apemu) plus a private libvirt/. Unlike an overlay
/// on the ancestor, this keeps the mounts below it (a container's /etc/hosts, say) and never
/// copies a host file up. Entries the host adds to a shadowed directory later are not seen.
class Privatizer {
public:
  /// An empty tmpfs at `path` with the host directory's mode and owner (0755 root when absent).
  Result<void> make_empty(const std::string& path) {
    APEMU_TRY(bool existed, ensure_dir(path));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return sys_error(errno, "stat " + path);
    if (!existed) st.st_mode = S_IFDIR | 0755;
    APEMU_TRY_VOID(sys_mount("apemu-private", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                             tmpfs_options(st).c_str()));
    m_private_trees.push_back(path);
    return {};
  }

  /// An overlay of the host directory at `path` whose upper layer is a tmpfs: the host's entries
  /// are readable, changes stay private. A directory the host lacks becomes an empty tmpfs.
  /// Mounts below the host directory are not visible through the overlay.
  Result<void> make_overlay(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) return sys_error(errno, "stat " + path);
      return make_empty(path);
    }
    if (!S_ISDIR(st.st_mode)) return sys_error(ENOTDIR, path);
    // upper/ and work/ live on a tmpfs that is detached once the overlay holds it, so nothing of
    // the overlay's machinery shows in the namespace.
    const std::string stage = "/run/apemu/.overlay-stage";
    APEMU_TRY_VOID(make_dir(stage.c_str(), 0700));
    APEMU_TRY_VOID(sys_mount("apemu-overlay", stage.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                             tmpfs_options(st).c_str()));
    const std::string upper = stage + "/upper", work = stage + "/work";
    APEMU_TRY_VOID(make_dir(upper.c_str(), st.st_mode & 07777));
    APEMU_TRY_VOID(make_dir(work.c_str(), 0700));
    const std::string opts = "lowerdir=" + path + ",upperdir=" + upper + ",workdir=" + work;
    APEMU_TRY_VOID(sys_mount("apemu-overlay", path.c_str(), "overlay", MS_NOSUID | MS_NODEV,
                             opts.c_str()));
    if (::umount2(stage.c_str(), MNT_DETACH) != 0) return sys_error(errno, "umount " + stage);
    if (::rmdir(stage.c_str()) != 0) return sys_error(errno, "rmdir " + stage);
    m_private_trees.push_back(path);
    return {};
  }

private:
  /// True when a new entry created directly in `dir` lands on a private filesystem.
  bool creates_privately(const std::string& dir) const {
    for (const auto& s : m_shadowed)
      if (dir == s) return true;
    for (const auto& t : m_private_trees)
      if (is_below(dir, t)) return true;
    return false;
  }

  /// Makes `path` an existing directory, shadowing ancestors as needed. Returns whether it
  /// existed before.
  Result<bool> ensure_dir(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return sys_error(ENOTDIR, path);
      return true;
    }
    if (errno != ENOENT) return sys_error(errno, "stat " + path);
    const std::string parent = parent_of(path);
    if (parent == path) return sys_error(ENOENT, path);
    APEMU_TRY_VOID(ensure_dir(parent));
    if (!creates_privately(parent)) APEMU_TRY_VOID(shadow(parent));
    APEMU_TRY_VOID(make_dir(path.c_str(), 0755));
    m_private_trees.push_back(path);
    return false;
  }

  /// Mounts a tmpfs on `dir` and puts the host's entries back into it (see the class comment).
  Result<void> shadow(const std::string& dir) {
    // A tmpfs over / would take every other mount with it; no distribution lacks the top-level
    // directories this is needed for.
    if (dir == "/") return sys_error(ENOENT, "no host directory to shadow below /");
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_error(errno, "open " + dir);
    // The descriptor keeps naming the host's directory once the tmpfs covers it, so its entries
    // stay reachable as /proc/self/fd/<fd>/<name>.
    struct FdGuard {
      int fd;
      ~FdGuard() { ::close(fd); }
    } guard{fd};
    std::vector<std::string> names;
    {
      DIR* d = ::fdopendir(::dup(fd));
      if (!d) return sys_error(errno, "opendir " + dir);
      while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        if (n != "." && n != "..") names.emplace_back(n);
      }
      ::closedir(d);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) return sys_error(errno, "stat " + dir);
    APEMU_TRY_VOID(sys_mount("apemu-shadow", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                             tmpfs_options(st).c_str()));
    const std::string via = "/proc/self/fd/" + std::to_string(fd) + "/";
    for (const auto& name : names) {
      struct stat es {};
      if (::fstatat(fd, name.c_str(), &es, AT_SYMLINK_NOFOLLOW) != 0)
        return sys_error(errno, "stat " + dir + "/" + name);
      const std::string target = dir + "/" + name;
      if (S_ISLNK(es.st_mode)) {
        std::string link(PATH_MAX, '\0');
        const ssize_t n = ::readlinkat(fd, name.c_str(), link.data(), link.size());
        if (n < 0) return sys_error(errno, "readlink " + target);
        link.resize(static_cast<std::size_t>(n));
        if (::symlink(link.c_str(), target.c_str()) != 0)
          return sys_error(errno, "symlink " + target);
        // Best effort. Not a (void) cast: that does not silence glibc's warn_unused_result
        // under _FORTIFY_SOURCE, which the Debian package build sets.
        [[maybe_unused]] const int rc = ::lchown(target.c_str(), es.st_uid, es.st_gid);
        continue;
      }
      if (S_ISDIR(es.st_mode)) {
        APEMU_TRY_VOID(make_dir(target.c_str(), es.st_mode & 07777));
      } else {
        const int f = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (f < 0) return sys_error(errno, "create " + target);
        ::close(f);
      }
      APEMU_TRY_VOID(sys_mount((via + name).c_str(), target.c_str(), nullptr, MS_BIND | MS_REC,
                               nullptr));
    }
    m_shadowed.push_back(dir);
    return {};
  }

  std::vector<std::string> m_private_trees; ///< new entries anywhere below these are private
  std::vector<std::string> m_shadowed;      ///< new entries directly in these are private
};

/// Checks a --private PATH on the host, before any namespace exists. Returns its canonical form.
Result<std::string> check_private_path(const std::string& path) {
  const std::string what = "--private " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return sys_error(errno, what);
  if (!S_ISDIR(st.st_mode)) return sys_error(ENOTDIR, what);
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) return sys_error(errno, what);
  std::string canonical(real);
  std::free(real);
  // / would hide everything; /sys is the emulated tree and /run is already private and empty.
  if (canonical == "/" || is_below(canonical, "/sys") || is_below(canonical, "/run"))
    return Error(EINVAL, what + ": not /, nor at or below /sys or /run");
  return canonical;
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
  std::vector<std::string> extra;
  for (const auto& p : opt.private_dirs) {
    APEMU_TRY(auto canonical, check_private_path(p));
    extra.push_back(std::move(canonical));
  }
  // Everything below happens in private namespaces; the host's mounts are untouched.
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0)
    return sys_error(errno, "unshare(CLONE_NEWNS|CLONE_NEWNET)");
  APEMU_TRY_VOID(sys_mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
  Privatizer priv;
  for (const PrivatePlace& place : kPrivatePlaces) {
    if (place.fill == Fill::Empty)
      APEMU_TRY_VOID(priv.make_empty(place.path));
    else
      APEMU_TRY_VOID(priv.make_overlay(place.path));
    if (std::string_view(place.path) == "/run")
      for (const char* d : {"/run/udev", "/run/lock", "/run/apemu"})
        APEMU_TRY_VOID(make_dir(d, 0755));
  }
  // An empty mdevctl configuration, but with the script directories mdevctl 1.2 expects to read.
  for (const char* d : {"/etc/mdevctl.d/scripts.d", "/etc/mdevctl.d/scripts.d/callouts",
                        "/etc/mdevctl.d/scripts.d/notifiers"})
    APEMU_TRY_VOID(make_dir(d, 0755));
  for (const auto& p : extra) APEMU_TRY_VOID(priv.make_empty(p));

  const sigset_t sigs = block_signals();
  APEMU_TRY(auto tb, boot(opt.topology, opt.verbose, opt.kernel_profile, opt.virtual_clock));
  if (!opt.state_dir.empty()) {
    auto g = tb->lock();
    APEMU_TRY_VOID(tb->enable_state(opt.state_dir)); // restored before anything is served
  }
  LiveOptions lo;
  lo.persist = !opt.state_dir.empty();
  lo.mountpoint = "/sys";
  lo.refuse_own_process = true; // glibc's own reads of /sys must not reach the tree
  lo.netlink = true; // safe: this is a private network namespace
  lo.udev_root = "/run/udev";
  lo.control_socket = "/run/apemu/ctl.sock";
  APEMU_TRY(auto live, LiveSession::start(*tb, lo));

  ::setenv("SYSTEMD_DEVICE_VERIFY_SYSFS", "0", 1);
  ::setenv("APEMU_CTL", lo.control_socket.c_str(), 1);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return sys_error(errno, "fork");
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
  if (!opt.state_dir.empty()) {
    auto g = tb->lock();
    APEMU_TRY_VOID(tb->enable_state(opt.state_dir)); // restored before anything is served
  }
  LiveOptions lo;
  lo.persist = !opt.state_dir.empty();
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
