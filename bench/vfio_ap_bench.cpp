// vfio_ap assignment throughput in process: 256 mdevs on topologies/max.toml (256 adapters ×
// 256 domains = 65,536 queues, all given to vfio_ap), each mdev owning one adapter and four
// domains. Every iteration unassigns and re-assigns one id of one mdev (round robin), i.e. two
// sysfs-equivalent stores with parsing, validation (reservation + sharing), linking, filtering
// and the hot unplug resets; items_per_second counts single assign/unassign operations.
//
// Variants: through the C++ store functions, through kernfs open files as the FUSE adapter
// calls them (model lock per write), with guests attached (every operation writes a guest APCB
// and signals the configuration-change eventfd), and ap_config replacements.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "apemu/kernfs/tree.h"
#include "apemu/testbed/testbed.h"
#include "apemu/topology/topology.h"
#include "apemu/vfio_ap/vfio_ap.h"

#ifndef APEMU_SOURCE_DIR
#define APEMU_SOURCE_DIR "."
#endif

using namespace apemu;

namespace {

constexpr unsigned kMdevs = 256;

std::string uuid_for(unsigned i) {
  char b[40];
  std::snprintf(b, sizeof b, "%08x-0000-4000-8000-%012x", i + 1, i);
  return b;
}

struct Machine {
  Machine() {
    auto topo = topology::load_file(std::string(APEMU_SOURCE_DIR) + "/topologies/max.toml");
    if (!topo) {
      std::fprintf(stderr, "vfio_ap_bench: %s\n", topo.error().describe().c_str());
      std::abort();
    }
    topo->bus.apmask = "0x"; // ap.apmask=0x: every queue belongs to vfio_ap
    testbed::Options opt;
    opt.topology = std::move(*topo);
    tb = std::move(*testbed::Testbed::create(std::move(opt)));
    auto g = tb->lock();
    vfio = tb->vfio_ap();
    for (unsigned i = 0; i < kMdevs; ++i) {
      auto* m = *vfio->create_mdev(uuid_for(i));
      ids.push_back(std::to_string(i));
      (void)vfio->assign_adapter(*m, ids.back());
      for (const char* d : {"0", "1", "2", "3"}) (void)vfio->assign_domain(*m, d);
      mdevs.push_back(m);
    }
  }
  std::unique_ptr<testbed::Testbed> tb;
  vfio_ap::VfioAp* vfio = nullptr;
  std::vector<vfio_ap::MatrixMdev*> mdevs;
  std::vector<std::string> ids;
};

Machine& machine() {
  static Machine m;
  return m;
}

void BM_AssignUnassignAdapter(benchmark::State& state) {
  Machine& m = machine();
  unsigned k = 0;
  for (auto _ : state) {
    auto& md = *m.mdevs[k];
    bool ok;
    { // each C++ call is an entry point, as each sysfs write is
      auto g = m.tb->lock();
      ok = m.vfio->unassign_adapter(md, m.ids[k]).has_value();
    }
    {
      auto g = m.tb->lock();
      ok = m.vfio->assign_adapter(md, m.ids[k]).has_value() && ok;
    }
    if (!ok) state.SkipWithError("store failed");
    k = (k + 1) % kMdevs;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_AssignUnassignAdapter);

void BM_AssignUnassignDomain(benchmark::State& state) {
  // Domain 8 + (k % 8) toggles one APQN (k, d) of mdev k.
  Machine& m = machine();
  static const std::vector<std::string> doms = {"8", "9", "10", "11", "12", "13", "14", "15"};
  unsigned k = 0;
  for (auto _ : state) {
    auto& md = *m.mdevs[k];
    const std::string& d = doms[k % doms.size()];
    bool ok;
    {
      auto g = m.tb->lock();
      ok = m.vfio->assign_domain(md, d).has_value();
    }
    {
      auto g = m.tb->lock();
      ok = m.vfio->unassign_domain(md, d).has_value() && ok;
    }
    if (!ok) state.SkipWithError("store failed");
    k = (k + 1) % kMdevs;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_AssignUnassignDomain);

void BM_AssignUnassignAdapterThroughKernfs(benchmark::State& state) {
  // As the FUSE write handler does it: model lock, then one store() on an open file.
  Machine& m = machine();
  core::Core& core = m.tb->core();
  std::vector<kernfs::OpenFile> assign, unassign;
  {
    auto lk = core.lock();
    for (unsigned i = 0; i < kMdevs; ++i) {
      const std::string dir = "/devices/vfio_ap/matrix/" + uuid_for(i) + "/";
      assign.push_back(
          *kernfs::OpenFile::open(core.tree().resolve(dir + "assign_adapter"), false, true));
      unassign.push_back(
          *kernfs::OpenFile::open(core.tree().resolve(dir + "unassign_adapter"), false, true));
    }
  }
  unsigned k = 0;
  for (auto _ : state) {
    bool ok;
    {
      auto lk = core.lock();
      ok = unassign[k].write(m.ids[k]).has_value();
    }
    {
      auto lk = core.lock();
      ok = assign[k].write(m.ids[k]).has_value() && ok;
    }
    if (!ok) state.SkipWithError("store failed");
    k = (k + 1) % kMdevs;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_AssignUnassignAdapterThroughKernfs);

void BM_AssignUnassignAdapterWithGuests(benchmark::State& state) {
  // Every mdev attached to its own guest: each operation is a hot plug or unplug.
  Machine& m = machine();
  {
    auto g = m.tb->lock();
    for (auto* md : m.mdevs) (void)m.tb->qemu()->start(*md);
  }
  unsigned k = 0;
  for (auto _ : state) {
    auto& md = *m.mdevs[k];
    bool ok;
    { // each C++ call is an entry point, as each sysfs write is
      auto g = m.tb->lock();
      ok = m.vfio->unassign_adapter(md, m.ids[k]).has_value();
    }
    {
      auto g = m.tb->lock();
      ok = m.vfio->assign_adapter(md, m.ids[k]).has_value() && ok;
    }
    if (!ok) state.SkipWithError("store failed");
    k = (k + 1) % kMdevs;
  }
  {
    auto g = m.tb->lock();
    for (auto* md : m.mdevs) (void)m.tb->qemu()->stop(md->name());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_AssignUnassignAdapterWithGuests);

void BM_ApConfigReplace(benchmark::State& state) {
  // One ap_config write = adapter k with domains 0-3 or 0-4, alternating (full validation).
  Machine& m = machine();
  std::vector<std::array<std::string, 2>> cfg(kMdevs);
  for (unsigned i = 0; i < kMdevs; ++i) {
    ApidMask apm;
    ApqiMask four, five;
    apm.set(to_apid(i));
    four = ApqiMask::range(3);
    five = ApqiMask::range(4);
    cfg[i] = {apm.hex() + "," + four.hex() + ",0x0", apm.hex() + "," + five.hex() + ",0x0"};
  }
  unsigned k = 0, flip = 0;
  for (auto _ : state) {
    auto g = m.tb->lock();
    if (!m.vfio->ap_config_store(*m.mdevs[k], cfg[k][flip])) state.SkipWithError("store failed");
    k = (k + 1) % kMdevs;
    if (k == 0) flip ^= 1;
  }
  // Leave every mdev with domains 0-3.
  auto g = m.tb->lock();
  for (unsigned i = 0; i < kMdevs; ++i) (void)m.vfio->ap_config_store(*m.mdevs[i], cfg[i][0]);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ApConfigReplace);

} // namespace

BENCHMARK_MAIN();
