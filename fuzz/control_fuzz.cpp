// The control protocol (docs/control.md): request and reply lines from anyone who can reach the
// socket, and the commands they carry.
//
// Each input line goes through parse_request and parse_reply: no crash, no exception escapes,
// errors are EINVAL/EMSGSIZE (requests) and EPROTO (replies), a failed reply always carries a
// positive errno. A request that parses round-trips through encode_request, and is executed with
// execute_command on a booted machine (vfio_ap, one mdev) under the machine lock, as the control
// server does; its outcome round-trips through encode_reply/parse_reply (ok and errno).
//
// Harness limit: `clock advance` is executed only up to ten minutes of virtual time (each 30 s
// runs an AP bus scan; 100 days would be 288,000 scans, a slow but legitimate request).
//
// Input: up to eight lines separated by '\n'. The machine is booted lazily and kept between
// inputs while only verbs that cannot change it ran.
#include <chrono>
#include <memory>
#include <string>

#include "apemu/base/parse.h"
#include "apemu/testbed/control.h"
#include "apemu/testbed/control_protocol.h"
#include "apemu/testbed/testbed.h"
#include "fuzz_util.h"

using namespace apemu;
using apemu::fuzz::quote;

namespace {

constexpr const char* kTopology = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4-7"
control_domains = "4-7,0x10"

[[adapter]]
id = 0
type = "CEX8"
mode = "accel"

[[adapter]]
id = 1
type = "CEX8"
mode = "cca"

[[adapter]]
id = 2
type = "CEX7"
mode = "ep11"
)";
constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";

std::unique_ptr<testbed::Testbed> boot() {
  auto topo = topology::parse(kTopology);
  FUZZ_CHECK(topo, "setup: topology: " + (topo ? "" : topo.error().describe()));
  testbed::Options opt;
  opt.topology = std::move(*topo);
  auto tb = testbed::Testbed::create(std::move(opt));
  FUZZ_CHECK(tb, "setup: boot: " + (tb ? "" : tb.error().describe()));
  auto g = (*tb)->lock();
  auto& bus = *(*tb)->ap_bus();
  auto& v = *(*tb)->vfio_ap();
  FUZZ_CHECK(bus.store_apmask("-2"), "setup: apmask");
  auto m = v.create_mdev(kUuid);
  FUZZ_CHECK(m, "setup: create_mdev");
  FUZZ_CHECK(v.assign_adapter(**m, "2") && v.assign_domain(**m, "5"), "setup: assign");
  return std::move(*tb);
}

bool too_long(const std::vector<std::string>& argv) {
  if (argv.size() == 3 && argv[0] == "clock" && argv[1] == "advance") {
    const auto d = parse_duration(argv[2]);
    return d && *d > std::chrono::minutes(10);
  }
  return false;
}

/// Verbs that may change the machine, whether they succeed or not.
bool may_change(const std::vector<std::string>& a) {
  if (a.empty()) return false;
  if (a[0] == "card" || a[0] == "domain" || a[0] == "control-domain" || a[0] == "scan") return true;
  if (a[0] == "clock") return a.size() > 1;
  if (a[0] == "guest") return !(a.size() >= 2 && a[1] == "show");
  return false;
}

void check_line(std::unique_ptr<testbed::Testbed>& tb, std::string_view line, bool& dirty) {
  const std::string what = quote(line.substr(0, 300));
  // A reply line, as ctl_call would read it from a (possibly hostile) server.
  if (auto rep = testbed::parse_reply(line); rep) {
    FUZZ_CHECK(rep->ok || rep->code > 0, "parse_reply(" + what + "): failure without errno");
    FUZZ_CHECK(rep->raw == line, "parse_reply(" + what + "): raw differs");
  } else {
    FUZZ_CHECK(rep.error().code == EPROTO, "parse_reply(" + what + "): " + rep.error().describe());
  }

  auto req = testbed::parse_request(line);
  if (!req) {
    FUZZ_CHECK(req.error().code == EINVAL || req.error().code == EMSGSIZE,
               "parse_request(" + what + "): " + req.error().describe());
    return;
  }
  const std::string enc = testbed::encode_request(*req);
  FUZZ_CHECK(!enc.empty() && enc.back() == '\n' && enc.find('\n') == enc.size() - 1,
             "encode_request(" + what + ") is not one line");
  auto again = testbed::parse_request(std::string_view(enc).substr(0, enc.size() - 1));
  FUZZ_CHECK(again && again->argv == req->argv && again->json == req->json,
             "parse_request(" + what + ") does not round-trip through " + quote(enc));
  if (too_long(req->argv)) return;

  if (!tb) tb = boot();
  Result<testbed::CommandOutput> out = Error(EIO);
  {
    auto guard = tb->lock(); // the control server takes it per command
    out = testbed::execute_command(*tb, req->argv);
    tb->runtime().run_pending();
  }
  if (may_change(req->argv)) dirty = true;
  if (!out) FUZZ_CHECK(out.error().code > 0, "execute_command(" + what + "): errno 0");
  const std::string reply = testbed::encode_reply(out, req->json);
  FUZZ_CHECK(!reply.empty() && reply.back() == '\n' && reply.find('\n') == reply.size() - 1,
             "encode_reply for " + what + " is not one line");
  auto parsed = testbed::parse_reply(std::string_view(reply).substr(0, reply.size() - 1));
  FUZZ_CHECK(parsed, "the reply to " + what + " does not parse: " + quote(reply));
  FUZZ_CHECK(parsed->ok == out.has_value() && (out || parsed->code == out.error().code),
             "the reply to " + what + " lost the outcome: " + quote(reply));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The machine is booted when a request first parses, and booted anew after an input that ran
  // a command that may have changed it, so that inputs stay independent.
  static std::unique_ptr<testbed::Testbed> tb;
  bool dirty = false;
  for (auto line : apemu::fuzz::split(apemu::fuzz::as_text(data, size), '\n', 8))
    check_line(tb, line, dirty);
  if (dirty) tb.reset();
  return 0;
}
