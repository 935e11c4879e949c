// Times the phases of booting a topology in-process (parse, boot + scan + zcrypt binding,
// teardown) and prints the peak RSS. Used to find where the boot of max.toml spends its time;
// bench/boot_bench.sh measures the full path to a mounted tree.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "apemu/testbed/testbed.h"

using namespace apemu;
using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : std::string(APEMU_SOURCE_DIR) + "/topologies/max.toml";
  const auto t0 = Clock::now();
  auto topo = topology::load_file(path);
  if (!topo) return 1;
  const auto t1 = Clock::now();
  testbed::Options opt;
  opt.topology = std::move(*topo);
  // APEMU_NO_VFIO_AP=1: boot without the vfio_ap module (to see what it adds).
  if (const char* v = std::getenv("APEMU_NO_VFIO_AP"); v && *v == '1') opt.vfio_ap = false;
  auto tb = testbed::Testbed::create(std::move(opt));
  if (!tb) return 1;
  const auto t2 = Clock::now();
  std::size_t nodes, queues;
  {
    auto g = (*tb)->lock();
    nodes = (*tb)->core().tree().node_count();
    queues = (*tb)->ap_bus()->queue_count();
  }
  tb->reset();
  const auto t3 = Clock::now();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("topology %s: %zu queues, %zu kernfs nodes\n", path.c_str(), queues, nodes);
  std::printf("parse %.3f s, boot %.3f s, teardown %.3f s, peak RSS %.1f MiB\n", secs(t0, t1),
              secs(t1, t2), secs(t2, t3), ru.ru_maxrss / 1024.0);
  return 0;
}
