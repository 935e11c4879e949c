// fuse_bench: what a sysfs client pays for going through the FUSE front end.
//
// Boots a topology (default topologies/z16-lpar.toml), exports its tree into a private tmpfs
// (the baseline) and mounts it with fusefs::FuseServer, both in a private mount namespace, then
// times in one run:
//   * whole-tree reads (readdir, then open + read to EOF + close of every regular file, as
//     `find -type f | xargs cat` does), cold (first read after mount) and warm; each warm
//     figure is the median over --rounds rounds of --walks walks, the FUSE and tmpfs walks of a
//     round interleaved so that both see the same load;
//   * with client and daemon on one CPU (every thread pinned to the first CPU the process may
//     use, as `taskset -c 0` does: a FUSE round trip is then a context switch) and unpinned
//     (the daemon's threads wake on another CPU), each with its ratio to tmpfs;
//   * the FUSE requests per file of a cold and of a warm walk;
//   * the mean latency of one store: pwrite(2) on an open descriptor and an echo-style
//     open+write+close, against the tmpfs copy.
// Needs root (namespaces, mounts) and /dev/fuse. Timing never decides anything here: the
// figures are printed, with their ratio to the baseline measured in the same run.
//
// Usage: fuse_bench [--topology FILE] [--rounds N] [--walks N] [--writes N] [--threads N]
//                   [--no-page-cache] [--no-readdirplus]
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "apemu/fusefs/fuse_server.h"
#include "apemu/testbed/testbed.h"
#include "walk.h"

using namespace apemu;
using namespace apemu::bench;

namespace {

/// Mean seconds per pwrite(2) of "0"/"1", on one open descriptor or reopening each time.
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

/// The FUSE requests served between two snapshots, per walked file.
void print_requests(const char* what, const std::map<std::string, std::uint64_t>& before,
                    const std::map<std::string, std::uint64_t>& after, long files) {
  std::printf("  requests per file (%s):", what);
  double total = 0;
  for (const auto& [op, n] : after) {
    auto it = before.find(op);
    const auto d = n - (it == before.end() ? 0 : it->second);
    if (!d) continue;
    const double per = static_cast<double>(d) / static_cast<double>(files);
    total += per;
    std::printf(" %s=%.2f", op.c_str(), per);
  }
  std::printf("  (total %.2f)\n", total);
}

/// Applies `set` to every thread of this process (sched_setaffinity is per thread; threads
/// created later inherit the mask of their creator, which is one of these).
void set_affinity_all(const cpu_set_t& set) {
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
      (void)sched_setaffinity(tid, sizeof set, &set);
    }
    ::closedir(d);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Ratio {
  double fuse = 0, tmpfs = 0;
};

/// Warm whole-tree reads: `rounds` rounds of `walks` FUSE walks then `walks` tmpfs walks.
/// Returns the median seconds per walk of each.
Ratio warm_walks(const std::string& fuse_dir, const std::string& tmpfs_dir, int rounds,
                 int walks) {
  std::vector<double> fw, tw;
  WalkStats ws;
  for (int r = 0; r < rounds; ++r) {
    double f = 0, t = 0;
    for (int i = 0; i < walks; ++i) f += time_walk(fuse_dir, ws);
    for (int i = 0; i < walks; ++i) t += time_walk(tmpfs_dir, ws);
    fw.push_back(f / walks);
    tw.push_back(t / walks);
  }
  return {median(fw), median(tw)};
}

double loadavg1() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "re")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

} // namespace

int main(int argc, char** argv) {
  std::string topology = std::string(APEMU_SOURCE_DIR) + "/topologies/z16-lpar.toml";
  int nwrites = 10000, rounds = 5, walks = 20;
  fusefs::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--topology" && i + 1 < argc) topology = argv[++i];
    else if (a == "--writes" && i + 1 < argc) nwrites = std::max(1, std::atoi(argv[++i]));
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--walks" && i + 1 < argc) walks = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc)
      opt.max_threads = static_cast<unsigned>(std::max(1, std::atoi(argv[++i])));
    else if (a == "--no-page-cache") opt.page_cache = false;
    else if (a == "--no-readdirplus") opt.readdirplus = false;
    else {
      std::fprintf(stderr,
                   "usage: %s [--topology FILE] [--rounds N] [--walks N] [--writes N] "
                   "[--threads N] [--no-page-cache] [--no-readdirplus]\n",
                   argv[0]);
      return 2;
    }
  }
  // Mounts stay in a namespace of our own: nothing is left behind if the bench dies.
  if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::perror("private mount namespace (needs root)");
    return 1;
  }

  // ---- the model ----
  auto t0 = Clock::now();
  auto tb = testbed::Testbed::from_file(topology);
  if (!tb) {
    std::fprintf(stderr, "%s: %s\n", topology.c_str(), tb.error().describe().c_str());
    return 1;
  }
  std::size_t nodes;
  {
    auto g = (*tb)->lock();
    nodes = (*tb)->core().tree().node_count();
  }
  std::printf("topology %s: %zu kernfs nodes, booted in %.3f s\n", topology.c_str(), nodes,
              std::chrono::duration<double>(Clock::now() - t0).count());

  // ---- the two views ----
  char fuse_tmpl[] = "/tmp/apemu-bench-fuse-XXXXXX";
  char tmpfs_tmpl[] = "/tmp/apemu-bench-tmpfs-XXXXXX";
  if (!mkdtemp(fuse_tmpl) || !mkdtemp(tmpfs_tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string fuse_dir = fuse_tmpl, tmpfs_dir = tmpfs_tmpl;
  if (::mount("apemu-bench", tmpfs_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
    std::perror("mount tmpfs");
    return 1;
  }
  {
    auto g = (*tb)->lock();
    if (auto r = (*tb)->export_to(tmpfs_dir); !r) {
      std::fprintf(stderr, "export: %s\n", r.error().describe().c_str());
      return 1;
    }
  }
  auto srv = fusefs::FuseServer::mount((*tb)->core().tree(), fuse_dir, opt);
  if (!srv) {
    std::fprintf(stderr, "mount: %s\n", srv.error().describe().c_str());
    return 1;
  }
  std::printf("fuse options: page_cache=%d max_read=%u readdirplus=%d entry/attr timeout=%.0f s "
              "threads=%u\n",
              opt.page_cache, opt.max_read, opt.readdirplus, opt.entry_timeout,
              opt.max_threads);
  std::printf("load average at start: %.2f\n", loadavg1());

  cpu_set_t all{}, one{};
  if (sched_getaffinity(0, sizeof all, &all) != 0) {
    std::perror("sched_getaffinity");
    return 1;
  }
  int first = 0;
  while (first < CPU_SETSIZE && !CPU_ISSET(first, &all)) ++first;
  CPU_ZERO(&one);
  CPU_SET(first, &one);

  // ---- cold walk (pinned, so that it is comparable) ----
  set_affinity_all(one);
  WalkStats fs{}, ts{};
  auto c0 = (*srv)->request_counts();
  const double fuse_cold = time_walk(fuse_dir, fs);
  auto c1 = (*srv)->request_counts();
  const double tmpfs_cold = time_walk(tmpfs_dir, ts);
  std::printf("files: fuse %ld read + %ld denied (%lld bytes, %ld errors), tmpfs %ld read "
              "(%lld bytes, %ld errors), %ld directories\n",
              fs.files, fs.denied, fs.bytes, fs.errors, ts.files, ts.bytes, ts.errors, fs.dirs);
  std::printf("cold whole-tree read (one CPU): fuse %.2f ms, tmpfs %.2f ms, ratio %.2f\n",
              fuse_cold * 1e3, tmpfs_cold * 1e3, fuse_cold / tmpfs_cold);
  const long per = fs.files + fs.denied;
  print_requests("cold", c0, c1, per);
  c0 = (*srv)->request_counts();
  (void)time_walk(fuse_dir, fs);
  c1 = (*srv)->request_counts();
  print_requests("warm", c0, c1, per);

  // ---- warm walks, one CPU and unpinned ----
  c0 = (*srv)->request_counts();
  const Ratio pinned = warm_walks(fuse_dir, tmpfs_dir, rounds, walks);
  set_affinity_all(all);
  const Ratio free = warm_walks(fuse_dir, tmpfs_dir, rounds, walks);
  c1 = (*srv)->request_counts();
  print_requests("all timed warm walks", c0, c1, per * 2L * rounds * walks);
  std::printf("warm whole-tree read, median of %d rounds of %d walks:\n", rounds, walks);
  std::printf("  one CPU (taskset -c %d): fuse %.3f ms, tmpfs %.3f ms, ratio %.2f  "
              "(%.1f us vs %.1f us per file)\n",
              first, pinned.fuse * 1e3, pinned.tmpfs * 1e3, pinned.fuse / pinned.tmpfs,
              pinned.fuse / per * 1e6, pinned.tmpfs / per * 1e6);
  std::printf("  unpinned (%d CPUs):    fuse %.3f ms, tmpfs %.3f ms, ratio %.2f  "
              "(%.1f us vs %.1f us per file)\n",
              CPU_COUNT(&all), free.fuse * 1e3, free.tmpfs * 1e3, free.fuse / free.tmpfs,
              free.fuse / per * 1e6, free.tmpfs / per * 1e6);

  // ---- stores ----
  // drivers_autoprobe toggles between 0 and 1: one store() and one round trip per write.
  for (bool reopen : {false, true}) {
    const double f = time_writes(fuse_dir + "/bus/ap/drivers_autoprobe", nwrites, reopen);
    const double t = time_writes(tmpfs_dir + "/bus/ap/drivers_autoprobe", nwrites, reopen);
    std::printf("write %s (unpinned, mean of %d): fuse %.1f us, tmpfs %.1f us, ratio %.1f\n",
                reopen ? "open+write+close" : "pwrite on an open fd", nwrites, f * 1e6,
                t * 1e6, f / t);
  }
  std::printf("load average at end: %.2f\n", loadavg1());

  // ---- teardown ----
  (*srv)->unmount();
  if (::umount2(tmpfs_dir.c_str(), 0) != 0) std::perror("umount tmpfs");
  ::rmdir(fuse_dir.c_str());
  ::rmdir(tmpfs_dir.c_str());
  return 0;
}
