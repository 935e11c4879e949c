// fuse_bench: what a sysfs client pays for going through the FUSE front end.
//
// Builds a driver-core tree with 10,000 devices on bus "foo" (each with five static attributes
// plus the core's own files), mounts it with fusefs::FuseServer, exports the same tree with
// kernfs::export_tree into a private tmpfs, and times:
//   * a full walk of each tree (readdir, then open+read-to-EOF+close of every regular file),
//     cold (first walk after mount/export) and warm (repeated walks);
//   * the mean latency of one store: pwrite(2) of "1" to bus/foo/drivers_autoprobe on an open
//     descriptor, and an echo-style open+write+close, each against the tmpfs copy.
// Prints "fuse: X s, tmpfs: Y s, ratio: Z" lines. Needs root (mounts) and /dev/fuse.
//
// Usage: fuse_bench [--devices N] [--writes N] [--rounds N] [--threads N] [--no-readdirplus]
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "apemu/core/core.h"
#include "apemu/fusefs/fuse_server.h"
#include "apemu/kernfs/export.h"

using namespace apemu;
using Clock = std::chrono::steady_clock;

namespace {

Result<std::string> show_type(core::Device&) { return std::string("CEX8A\n"); }
Result<std::string> show_depth(core::Device&) { return std::string("8\n"); }
Result<std::string> show_hwtype(core::Device&) { return std::string("14\n"); }
Result<std::string> show_name(core::Device& d) { return d.name() + "\n"; }
Result<std::string> show_online(core::Device& d) {
  return std::string(d.drvdata() ? "1\n" : "0\n");
}
Result<void> store_online(core::Device& d, std::string_view t) {
  d.set_drvdata(!t.empty() && t[0] == '1' ? &d : nullptr);
  return {};
}

const core::DeviceAttribute kAttrs[] = {
    {"type", 0444, show_type, nullptr},     {"depth", 0444, show_depth, nullptr},
    {"hwtype", 0444, show_hwtype, nullptr}, {"name", 0444, show_name, nullptr},
    {"online", 0644, show_online, store_online},
};
const core::DeviceAttributeGroup kGroups[] = {{"", kAttrs, nullptr}};

struct WalkStats {
  long files = 0;
  long denied = 0; ///< open(O_RDONLY) refused (write-only attributes on the FUSE side)
  long dirs = 0;
  long long bytes = 0;
  long errors = 0;
};

void walk(int dirfd, WalkStats& ws) {
  DIR* d = fdopendir(dirfd);
  if (!d) {
    ::close(dirfd);
    ++ws.errors;
    return;
  }
  ++ws.dirs;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' &&
        (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        ++ws.errors;
        continue;
      }
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
    }
    if (type == DT_DIR) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (sub < 0) {
        ++ws.errors;
        continue;
      }
      walk(sub, ws);
    } else if (type == DT_REG) {
      int fd = openat(dirfd, e->d_name, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        if (errno == EACCES)
          ++ws.denied;
        else
          ++ws.errors;
        continue;
      }
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) ws.bytes += n;
      if (n < 0) ++ws.errors;
      ::close(fd);
      ++ws.files;
    }
  }
  closedir(d); // closes dirfd
}

double time_walk(const std::string& root, WalkStats& ws) {
  ws = {};
  const auto t0 = Clock::now();
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "open %s: %s\n", root.c_str(), std::strerror(errno));
    ++ws.errors;
    return 0;
  }
  walk(fd, ws);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Mean seconds per pwrite(2) of "1" on one open descriptor.
double time_writes(const std::string& path, int n, bool reopen) {
  int fd = -1;
  if (!reopen) {
    fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      std::fprintf(stderr, "open %s: %s\n", path.c_str(), std::strerror(errno));
      return 0;
    }
  }
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    if (reopen) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::pwrite(fd, i % 2 ? "1" : "0", 1, 0) != 1) {
      std::fprintf(stderr, "write %s: %s\n", path.c_str(), std::strerror(errno));
      if (fd >= 0) ::close(fd);
      return 0;
    }
    if (reopen) ::close(fd);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!reopen) ::close(fd);
  return s / n;
}

/// Prints the FUSE requests served since `before`, per walked file.
void print_requests(const std::map<std::string, std::uint64_t>& before,
                    const std::map<std::string, std::uint64_t>& after, long files) {
  std::printf("  requests per file:");
  for (const auto& [op, n] : after) {
    auto it = before.find(op);
    const auto d = n - (it == before.end() ? 0 : it->second);
    if (d) std::printf(" %s=%.2f", op.c_str(), static_cast<double>(d) / files);
  }
  std::printf("\n");
}

void report(const char* what, double fuse, double tmpfs, const char* unit, double scale) {
  std::printf("%s: fuse: %.3f %s, tmpfs: %.3f %s, ratio: %.2f\n", what, fuse * scale, unit,
              tmpfs * scale, unit, tmpfs > 0 ? fuse / tmpfs : 0.0);
}

} // namespace

int main(int argc, char** argv) {
  int ndev = 10000, nwrites = 10000, rounds = 3;
  fusefs::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--devices" && i + 1 < argc)
      ndev = std::atoi(argv[++i]);
    else if (a == "--writes" && i + 1 < argc)
      nwrites = std::atoi(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc)
      rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc)
      opt.max_threads = static_cast<unsigned>(std::max(1, std::atoi(argv[++i])));
    else if (a == "--no-readdirplus")
      opt.readdirplus = false;
    else {
      std::fprintf(stderr,
                   "usage: %s [--devices N] [--writes N] [--rounds N] [--threads N] "
                   "[--no-readdirplus]\n",
                   argv[0]);
      return 2;
    }
  }

  // ---- the model ----
  core::Core core;
  auto t0 = Clock::now();
  auto setup = core.lock(); // the build is one entry point; released before the mount
  auto bus = core.bus_register({.name = "foo"});
  if (!bus) {
    std::fprintf(stderr, "bus_register: %s\n", bus.error().describe().c_str());
    return 1;
  }
  std::vector<core::Ref<core::Device>> devs;
  devs.reserve(static_cast<std::size_t>(ndev));
  for (int i = 0; i < ndev; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "foo%05d", i);
    auto d = core::Device::create(name, [](core::Device&) {});
    d->set_bus(*bus);
    d->set_groups(kGroups);
    if (auto r = core.device_add(*d); !r) {
      std::fprintf(stderr, "device_add %s: %s\n", name, r.error().describe().c_str());
      return 1;
    }
    devs.push_back(std::move(d));
  }
  const std::size_t nodes = core.tree().node_count();
  setup.unlock();
  std::printf("tree: %d devices, %zu nodes, built in %.2f s\n", ndev, nodes,
              std::chrono::duration<double>(Clock::now() - t0).count());

  // ---- the two views ----
  char fuse_tmpl[] = "/tmp/apemu-bench-fuse-XXXXXX";
  char tmpfs_tmpl[] = "/tmp/apemu-bench-tmpfs-XXXXXX";
  if (!mkdtemp(fuse_tmpl) || !mkdtemp(tmpfs_tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string fuse_dir = fuse_tmpl, tmpfs_dir = tmpfs_tmpl;
  bool tmpfs_mounted = ::mount("apemu-bench", tmpfs_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                               "mode=0755") == 0;
  if (!tmpfs_mounted)
    std::printf("note: could not mount a tmpfs (%s); exporting into %s as it is\n",
                std::strerror(errno), tmpfs_dir.c_str());
  t0 = Clock::now();
  {
    auto g = core.lock();
    if (auto r = kernfs::export_tree(core.tree(), tmpfs_dir); !r) {
      std::fprintf(stderr, "export_tree: %s\n", r.error().describe().c_str());
      return 1;
    }
  }
  std::printf("export to tmpfs: %.2f s\n", std::chrono::duration<double>(Clock::now() - t0).count());

  auto srv = fusefs::FuseServer::mount(core.tree(), fuse_dir, opt);
  if (!srv) {
    std::fprintf(stderr, "mount: %s\n", srv.error().describe().c_str());
    if (tmpfs_mounted) ::umount2(tmpfs_dir.c_str(), MNT_DETACH);
    return 1;
  }
  std::printf("fuse options: readdirplus=%d entry_timeout=%.1f attr_timeout=%.1f threads=%u\n",
              opt.readdirplus, opt.entry_timeout, opt.attr_timeout, opt.max_threads);

  // ---- walks ----
  WalkStats fs{}, ts{};
  auto counts0 = (*srv)->request_counts();
  const double fuse_cold = time_walk(fuse_dir, fs);
  auto counts1 = (*srv)->request_counts();
  const double tmpfs_cold = time_walk(tmpfs_dir, ts);
  std::printf("walk files: fuse %ld read + %ld denied (%lld bytes, %ld errors), "
              "tmpfs %ld read (%lld bytes, %ld errors)\n",
              fs.files, fs.denied, fs.bytes, fs.errors, ts.files + ts.denied, ts.bytes,
              ts.errors);
  report("walk cold", fuse_cold, tmpfs_cold, "s", 1);
  print_requests(counts0, counts1, fs.files + fs.denied);
  std::vector<double> fw, tw;
  for (int r = 0; r < rounds; ++r) {
    auto before = (*srv)->request_counts();
    fw.push_back(time_walk(fuse_dir, fs));
    std::printf("walk warm #%d: fuse %.3f s\n", r + 1, fw.back());
    print_requests(before, (*srv)->request_counts(), fs.files + fs.denied);
    tw.push_back(time_walk(tmpfs_dir, ts));
  }
  std::sort(fw.begin(), fw.end());
  std::sort(tw.begin(), tw.end());
  const double fuse_med = fw[fw.size() / 2], tmpfs_med = tw[tw.size() / 2];
  std::printf("walk warm (median of %d): ", rounds);
  std::printf("fuse: %.3f s, tmpfs: %.3f s, ratio: %.2f\n", fuse_med, tmpfs_med,
              tmpfs_med > 0 ? fuse_med / tmpfs_med : 0.0);
  const long total = fs.files + fs.denied;
  std::printf("per file (warm): fuse %.1f us, tmpfs %.1f us\n", fuse_med / total * 1e6,
              tmpfs_med / total * 1e6);

  // ---- stores ----
  const std::string fuse_attr = fuse_dir + "/bus/foo/drivers_autoprobe";
  const std::string tmpfs_attr = tmpfs_dir + "/bus/foo/drivers_autoprobe";
  report("write (pwrite on open fd, mean)", time_writes(fuse_attr, nwrites, false),
         time_writes(tmpfs_attr, nwrites, false), "us", 1e6);
  report("write (open+write+close, mean)", time_writes(fuse_attr, nwrites, true),
         time_writes(tmpfs_attr, nwrites, true), "us", 1e6);

  // ---- teardown ----
  (*srv)->unmount();
  if (tmpfs_mounted && ::umount2(tmpfs_dir.c_str(), 0) != 0) std::perror("umount tmpfs");
  if (!tmpfs_mounted) std::printf("note: %s left behind (not a tmpfs)\n", tmpfs_dir.c_str());
  ::rmdir(fuse_dir.c_str());
  if (tmpfs_mounted) ::rmdir(tmpfs_dir.c_str());
  auto g = core.lock();
  for (auto& d : devs) core.device_unregister(std::move(d));
  return 0;
}
