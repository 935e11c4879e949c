// Driver-core micro benchmarks: device add/del (with probe and uevents) and attribute
// show/store through kernfs open files, as a FUSE handler does them.
#include <benchmark/benchmark.h>

#include "apemu/core/core.h"
#include "apemu/kernfs/tree.h"

using namespace apemu;
using core::Device;

namespace {

const core::DeviceAttribute kAttrs[] = {
    {"hwtype", 0444, [](Device&) -> Result<std::string> { return std::string("14\n"); }, nullptr},
    {"online", 0644, [](Device& d) -> Result<std::string> {
       return std::string(d.drvdata() ? "1\n" : "0\n");
     },
     [](Device& d, std::string_view t) -> Result<void> {
       d.set_drvdata(t.size() && t[0] == '1' ? &d : nullptr);
       return {};
     }},
    {"depth", 0444, [](Device&) -> Result<std::string> { return std::string("8\n"); }, nullptr},
    {"type", 0444, [](Device&) -> Result<std::string> { return std::string("CEX8A\n"); }, nullptr},
};
const core::DeviceAttributeGroup kGroups[] = {{"", kAttrs, nullptr}};

struct Machine {
  Machine() {
    auto g = core.lock();
    bus = *core.bus_register({.name = "ap"});
    core::DriverOps ops;
    ops.name = "drv";
    ops.probe = [](Device&) -> Result<void> { return {}; };
    (void)core.driver_register(*bus, ops);
    core.uevents().subscribe([this](const uevent::Event&) { ++events; });
  }
  core::Ref<Device> make(const std::string& name) {
    auto d = Device::create(name, [](Device&) {});
    d->set_bus(bus);
    d->set_groups(kGroups);
    return d;
  }
  core::Core core;
  core::Bus* bus;
  std::size_t events = 0;
};

void BM_DeviceAddDel(benchmark::State& state) {
  Machine m;
  std::size_t i = 0;
  for (auto _ : state) {
    // Two entry points, as two sysfs writes or control commands would be.
    auto d = m.make("dev" + std::to_string(i++));
    {
      auto g = m.core.lock();
      if (!m.core.device_add(*d)) state.SkipWithError("add failed");
    }
    auto g = m.core.lock();
    m.core.device_unregister(std::move(d));
  }
  state.counters["events/iter"] =
      benchmark::Counter(static_cast<double>(m.events) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_DeviceAddDel);

void BM_DeviceAddMany(benchmark::State& state) {
  // Adds N devices to a bus that already holds N (list and directory sizes matter).
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    Machine m;
    std::vector<core::Ref<Device>> devs;
    devs.reserve(n);
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) {
      devs.push_back(m.make("d" + std::to_string(i)));
      auto g = m.core.lock();
      (void)m.core.device_add(*devs.back());
    }
    state.PauseTiming();
    {
      auto g = m.core.lock();
      for (auto it = devs.rbegin(); it != devs.rend(); ++it) m.core.device_unregister(std::move(*it));
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_DeviceAddMany)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_AttrShow(benchmark::State& state) {
  Machine m;
  auto lk = m.core.lock();
  auto d = m.make("dev0");
  (void)m.core.device_add(*d);
  auto node = m.core.tree().resolve("/devices/dev0/type");
  for (auto _ : state) {
    auto f = kernfs::OpenFile::open(node, true, false);
    auto text = f->read(0, 4096);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_AttrShow);

void BM_AttrStore(benchmark::State& state) {
  Machine m;
  auto lk = m.core.lock();
  auto d = m.make("dev0");
  (void)m.core.device_add(*d);
  auto node = m.core.tree().resolve("/devices/dev0/online");
  auto f = kernfs::OpenFile::open(node, false, true);
  for (auto _ : state) {
    auto r = f->write("1\n");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_AttrStore);

void BM_UeventFileShow(benchmark::State& state) {
  Machine m;
  auto lk = m.core.lock();
  auto d = m.make("dev0");
  (void)m.core.device_add(*d);
  auto node = m.core.tree().resolve("/devices/dev0/uevent");
  for (auto _ : state) {
    auto f = kernfs::OpenFile::open(node, true, false);
    auto text = f->read(0, 4096);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_UeventFileShow);

} // namespace

BENCHMARK_MAIN();
