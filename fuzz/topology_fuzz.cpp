// TOML topologies (topology::parse, toml++ underneath): whatever the text, parse() returns
// (no exception escapes, no crash, no sanitizer report); every error is EINVAL or ERANGE and its
// context starts with "<source>:<line>:" where the line exists in the text. A topology that
// parses describes a machine: when it is small (at most 16 adapters and 512 queues) it is booted
// with vfio_ap, which must succeed, end with the AP bus masks the topology's apmask/aqmask give
// from all-zero, and tear down cleanly (LeakSanitizer checks the rest).
#include <algorithm>
#include <memory>
#include <string>

#include "apemu/ap/ap_mask.h"
#include "apemu/testbed/testbed.h"
#include "apemu/topology/topology.h"
#include "fuzz_util.h"

using namespace apemu;
using apemu::fuzz::quote;

namespace {

constexpr const char* kSource = "fuzz.toml";

void check_error(std::string_view text, const Error& e) {
  const std::string what = "topology::parse(" + quote(text.substr(0, 200)) + ")";
  FUZZ_CHECK(e.code == EINVAL || e.code == ERANGE, what + ": errno " + e.describe());
  const std::string prefix = std::string(kSource) + ":";
  FUZZ_CHECK(e.context.rfind(prefix, 0) == 0, what + ": context without the source: " + quote(e.context));
  std::size_t p = prefix.size(), line = 0, digits = 0;
  while (p < e.context.size() && e.context[p] >= '0' && e.context[p] <= '9' && digits < 12) {
    line = line * 10 + static_cast<std::size_t>(e.context[p++] - '0');
    ++digits;
  }
  FUZZ_CHECK(digits > 0 && p < e.context.size() && e.context[p] == ':',
             what + ": context without a line: " + quote(e.context));
  const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  FUZZ_CHECK(line >= 1 && line <= lines,
             what + ": line " + std::to_string(line) + " of " + std::to_string(lines) + ": " + quote(e.context));
}

void check_boot(std::string_view text, topology::Topology topo) {
  const std::string what = "boot(" + quote(text.substr(0, 200)) + ")";
  std::size_t queues = 0;
  for (const auto& [id, a] : topo.hw.adapters()) queues += (a.domains & topo.hw.qci().aqm).count();
  if (topo.hw.adapters().size() > 16 || queues > 512) return;
  ap::Mask256 apmask = ap::Mask256::all(), aqmask = ap::Mask256::all();
  if (topo.bus.apmask) apmask = *ap::parse_ap_mask(*topo.bus.apmask, ap::Mask256{});
  if (topo.bus.aqmask) aqmask = *ap::parse_ap_mask(*topo.bus.aqmask, ap::Mask256{});
  testbed::Options opt;
  opt.topology = std::move(topo);
  auto tb = testbed::Testbed::create(std::move(opt));
  FUZZ_CHECK(tb, what + ": " + (tb ? "" : tb.error().describe()));
  {
    auto guard = (*tb)->lock();
    ap::ApBus* bus = (*tb)->ap_bus();
    FUZZ_CHECK(bus && bus->apmask() == apmask && bus->aqmask() == aqmask,
               what + ": the bus masks are not the topology's");
    FUZZ_CHECK(!(*tb)->dump("/").empty(), what + ": empty tree");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = apemu::fuzz::as_text(data, size);
  auto topo = topology::parse(text, kSource);
  if (!topo) {
    check_error(text, topo.error());
    return 0;
  }
  FUZZ_CHECK(topo->source == kSource, "the source name was lost");
  check_boot(text, std::move(*topo));
  return 0;
}
