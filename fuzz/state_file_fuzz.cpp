// The state file of `--state DIR` (src/testbed/state.cpp). The first byte chooses what the rest
// of the input is:
//  - even: a whole file for state_decode(). It either yields a payload (the file's bytes after
//    its header line, a JSON object, which state_encode()/state_decode() carry unchanged) or
//    fails with EINVAL whose context is "<source>: offset N: ..." with N inside the file;
//  - odd: a payload, framed with state_encode() (which must decode back to it when it is a JSON
//    object) and restored on a freshly booted machine. A restore never throws or crashes; when
//    it fails its error names the file; when it succeeds the machine's snapshot is a fixed point:
//    restored on another fresh machine it succeeds and gives the same snapshot again (so
//    everything a restore accepted is kept by the next save, and nothing else appears).
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "apemu/ap/ap_mask.h"
#include "apemu/testbed/state.h"
#include "apemu/testbed/testbed.h"
#include "apemu/topology/topology.h"
#include "fuzz_util.h"

using namespace apemu;
using apemu::fuzz::quote;

namespace {

const std::string kSource = "fuzz/state";

// A small machine with vfio_ap (the payload's "hardware" replaces its adapters anyway).
constexpr const char* kTopology = R"(
usage_domains = "4-7"
control_domains = "4-7"
default_domain = 4

[[adapter]]
id = 1
type = "CEX8"
mode = "cca"

[[adapter]]
id = 5
type = "CEX8"
mode = "accel"
)";

/// Parses the decimal N of "<source>: offset N: ...", or -1.
long long error_offset(const std::string& context) {
  const std::string prefix = kSource + ": offset ";
  if (context.rfind(prefix, 0) != 0) return -1;
  long long n = 0;
  std::size_t p = prefix.size(), digits = 0;
  while (p < context.size() && context[p] >= '0' && context[p] <= '9' && digits < 18) {
    n = n * 10 + (context[p++] - '0');
    ++digits;
  }
  if (digits == 0 || context.compare(p, 2, ": ") != 0) return -1;
  return n;
}

void check_decode(std::string_view file) {
  const std::string what = "state_decode(" + quote(file.substr(0, 200)) + ")";
  auto r = testbed::state_decode(file, kSource);
  if (!r) {
    FUZZ_CHECK(r.error().code == EINVAL, what + ": errno " + r.error().describe());
    const long long off = error_offset(r.error().context);
    FUZZ_CHECK(off >= 0 && static_cast<std::size_t>(off) <= file.size(),
               what + ": the error names no offset inside the file: " + quote(r.error().context));
    return;
  }
  const auto nl = file.find('\n');
  FUZZ_CHECK(nl != std::string_view::npos && *r == file.substr(nl + 1),
             what + ": the payload is not the bytes after the header line");
  const nlohmann::json j = nlohmann::json::parse(*r, nullptr, false);
  FUZZ_CHECK(!j.is_discarded() && j.is_object(), what + ": accepted a payload that is no JSON object");
  auto again = testbed::state_decode(testbed::state_encode(*r), kSource);
  FUZZ_CHECK(again && *again == *r, what + ": encode/decode does not carry the payload");
}

struct Machine {
  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
  ~Machine() {
    if (guard.owns_lock()) guard.unlock(); // the Testbed's destructor takes the lock itself
    tb.reset();
  }
};

std::unique_ptr<Machine> boot() {
  auto m = std::make_unique<Machine>();
  auto topo = topology::parse(kTopology);
  FUZZ_CHECK(topo, "setup: topology: " + (topo ? "" : topo.error().describe()));
  testbed::Options opt;
  opt.topology = std::move(*topo);
  auto tb = testbed::Testbed::create(std::move(opt));
  FUZZ_CHECK(tb, "setup: boot: " + (tb ? "" : tb.error().describe()));
  m->tb = std::move(*tb);
  m->guard = m->tb->lock();
  return m;
}

/// Payloads whose hardware would take long to boot are left out (a slow input is a timeout,
/// not a finding): at most 16 adapters and 512 queues.
bool small_enough(const nlohmann::json& j) {
  if (!j.is_object()) return true;
  auto h = j.find("hardware");
  if (h == j.end() || !h->is_object()) return true;
  auto ads = h->find("adapters");
  if (ads == h->end() || !ads->is_array()) return true;
  if (ads->size() > 16) return false;
  // A queue exists for each of an adapter's domains that the configuration (aqm) has.
  std::optional<IdMask<Apqi>> aqm;
  if (auto q = h->find("aqm"); q != h->end() && q->is_string())
    if (auto m = ap::hex2bitmap<Apqi>(q->get<std::string>())) aqm = *m;
  std::size_t queues = 0;
  for (const auto& a : *ads) {
    if (!a.is_object()) continue;
    auto d = a.find("domains");
    if (d == a.end() || !d->is_string()) continue;
    if (auto m = ap::hex2bitmap<Apqi>(d->get<std::string>())) queues += (aqm ? (*m & *aqm) : *m).count();
  }
  return queues <= 512;
}

void check_restore(std::string_view payload) {
  const std::string what = "state_restore(" + quote(payload.substr(0, 300)) + ")";
  const nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  const bool object = !j.is_discarded() && j.is_object();
  auto decoded = testbed::state_decode(testbed::state_encode(payload), kSource);
  FUZZ_CHECK(bool(decoded) == object, what + ": decode of an encoded payload " +
                                          (decoded ? "accepted a non-object" : decoded.error().describe()));
  if (!small_enough(j)) return;

  std::string first;
  {
    auto m = boot();
    auto r = testbed::state_restore(*m->tb, payload, kSource);
    if (!r) {
      FUZZ_CHECK(r.error().code != 0 && r.error().context.rfind(kSource + ": ", 0) == 0,
                 what + ": the error does not name the file: " + r.error().describe());
      return;
    }
    FUZZ_CHECK(object, what + ": a payload that is no JSON object was restored");
    first = testbed::state_snapshot(*m->tb);
  }
  auto m = boot();
  auto r = testbed::state_restore(*m->tb, first, kSource);
  FUZZ_CHECK(r, what + ": its own snapshot does not restore: " + (r ? "" : r.error().describe()) +
                    "\nsnapshot: " + first);
  const std::string second = testbed::state_snapshot(*m->tb);
  FUZZ_CHECK(second == first, what + ": the snapshot is no fixed point:\nfirst:  " + first +
                                  "\nsecond: " + second);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = apemu::fuzz::as_text(data + 1, size - 1);
  if (data[0] % 2 == 0) check_decode(rest);
  else check_restore(rest);
  return 0;
}
