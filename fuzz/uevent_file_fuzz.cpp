// Writes to `uevent` files (driver-core.md §3.5; the device file is Core::device_uevent_store,
// the bus and driver files Core::object_uevent_store) on a booted machine, through kernfs
// OpenFile::write under the machine lock, against a model of kobject_synth_uevent written here:
//   one trailing '\n' or '\0' ignored; empty → EINVAL; the first space-separated word must be
//   one of the eight actions → EINVAL; no argument → SYNTH_UUID=0; else a canonical UUID →
//   SYNTH_UUID=<uuid>, then " KEY=VALUE" pairs (alphanumeric, non-empty) → SYNTH_ARG_KEY=VALUE;
//   anything else → EINVAL. The synthetic variables are collected in an environment of their own
//   with the uevent limits (64 variables, 2048 bytes), whose overflow is EINVAL as well
//   (kobject_action_args); the event itself then must fit the same limits, else ENOMEM.
//
// Invariants: the errno is the model's; a rejected write sends no event, consumes no SEQNUM and
// changes nothing in the tree; an accepted one sends exactly one event (none for a device whose
// events are filtered) with the model's ACTION, the file's DEVPATH, and the SYNTH_* variables in
// input order; SEQNUM is last and equals /sys/kernel/uevent_seqnum.
//
// Input: split at 0xff into at most eight writes, each a selector byte (which uevent file) and
// the text written; when the first byte has bits 4-6 clear the whole tree is compared around
// rejected writes (slow). One machine per process: these writes only move SEQNUM.
#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apemu/kernfs/tree.h"
#include "apemu/testbed/testbed.h"
#include "fuzz_util.h"
#include "kernel_ref.h"

using namespace apemu;
using apemu::fuzz::quote;
using Vars = std::vector<std::pair<std::string, std::string>>;

namespace {

constexpr const char* kTopology = R"(
usage_domains = "4-5"
[[adapter]]
id = 1
type = "CEX8"
mode = "cca"
)";

/// The uevent files written to: devices, the bus, a driver, the bus-less vfio_ap root.
constexpr std::array<const char*, 7> kFiles = {
    "/devices/ap/card01/uevent",  "/devices/ap/card01/01.0004/uevent",
    "/bus/ap/uevent",             "/bus/ap/drivers/cex4queue/uevent",
    "/devices/ap/uevent",         "/devices/vfio_ap/uevent",
    "/devices/vfio_ap/matrix/uevent"};

constexpr std::size_t kMaxVars = 64, kMaxBytes = 2048;

bool alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

struct Model {
  int err = 0;
  std::string action;
  Vars vars; ///< the SYNTH_* variables
};

Model model(std::string_view t) {
  static const std::array<std::string_view, 8> kActions = {
      "add", "remove", "change", "move", "online", "offline", "bind", "unbind"};
  if (!t.empty() && (t.back() == '\n' || t.back() == '\0')) t.remove_suffix(1);
  if (t.empty()) return {EINVAL};
  const auto sp = t.find(' ');
  const std::string_view word = t.substr(0, sp);
  Model m;
  for (auto a : kActions)
    if (a == word) m.action = std::string(a);
  if (m.action.empty()) return {EINVAL};
  if (sp == std::string_view::npos) {
    m.vars.emplace_back("SYNTH_UUID", "0");
    return m;
  }
  const std::string_view args = t.substr(sp + 1);
  if (args.size() < 36) return {EINVAL};
  for (std::size_t i = 0; i < 36; ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? args[i] != '-' : !apemu::fuzz::ref::is_hex(args[i])) return {EINVAL};
  }
  std::size_t bytes = 0;
  auto add = [&](std::string key, std::string_view value) {
    const std::size_t len = key.size() + 1 + value.size() + 1;
    if (m.vars.size() >= kMaxVars || bytes + len > kMaxBytes) return false;
    bytes += len;
    m.vars.emplace_back(std::move(key), std::string(value));
    return true;
  };
  if (!add("SYNTH_UUID", args.substr(0, 36))) return {EINVAL};
  std::size_t p = 36;
  while (p < args.size()) {
    if (args[p++] != ' ') return {EINVAL};
    const std::size_t k = p;
    while (p < args.size() && alnum(args[p])) ++p;
    if (p == k || p >= args.size() || args[p] != '=') return {EINVAL};
    const std::string_view key = args.substr(k, p - k);
    const std::size_t v = ++p;
    while (p < args.size() && alnum(args[p])) ++p;
    if (p == v || (p < args.size() && args[p] != ' ')) return {EINVAL};
    if (!add("SYNTH_ARG_" + std::string(key), args.substr(v, p - v))) return {EINVAL};
  }
  return m;
}

std::size_t env_bytes(const Vars& v) {
  std::size_t n = 0;
  for (const auto& [k, val] : v) n += k.size() + val.size() + 2;
  return n;
}

struct Machine {
  std::vector<uevent::Event> events; ///< first: outlives the Testbed, whose teardown sends some
  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
  ~Machine() {
    if (guard.owns_lock()) guard.unlock(); // the Testbed's destructor takes the lock itself
    tb.reset();
  }
  /// Per file: does "change" send an event, and the size of its event without SYNTH_UUID=0.
  struct Probe {
    bool sends = false;
    std::size_t vars = 0, bytes = 0;
  };
  std::array<Probe, kFiles.size()> probes;

  Result<std::size_t> write(const std::string& path, std::string_view text) {
    auto node = tb->core().tree().resolve(path);
    FUZZ_CHECK(node != nullptr, path + " is missing");
    APEMU_TRY(auto f, kernfs::OpenFile::open(node, false, true));
    return f.write(text);
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
  apemu::fuzz::fill_log(m->tb->core().log());
  m->tb->core().uevents().subscribe([mp = m.get()](const uevent::Event& e) { mp->events.push_back(e); });
  for (std::size_t i = 0; i < kFiles.size(); ++i) {
    const std::size_t n = m->events.size();
    auto r = m->write(kFiles[i], "change");
    FUZZ_CHECK(r, std::string("setup: ") + kFiles[i] + ": " + (r ? "" : r.error().describe()));
    FUZZ_CHECK(m->events.size() <= n + 1, std::string("setup: ") + kFiles[i] + " sent several events");
    auto& p = m->probes[i];
    p.sends = m->events.size() == n + 1;
    if (p.sends) {
      p.vars = m->events.back().env.size() - 1;
      p.bytes = env_bytes(m->events.back().env) - std::string_view("SYNTH_UUID=0").size() - 1;
    }
  }
  return m;
}

void check_write(Machine& m, std::size_t file, std::string_view text, bool full) {
  const std::string path = kFiles[file];
  const std::string what = path + " <- " + quote(text);
  // kernfs hands store() at most a page, up to the first NUL (src/kernfs/tree.cpp). The kernel's
  // kobject_synth_uevent reads the count instead, so "change <uuid>\0x" is EINVAL there but
  // accepted here (a divergence noted in fuzz/README.md); the model follows apemu's kernfs rule.
  const std::string_view written = text.substr(0, 4096);
  const std::string_view stored = written.substr(0, written.find('\0'));
  Model want = written.empty() ? Model{} : model(stored);
  const auto& probe = m.probes[file];
  // The event with these variables: the probe's, whose SEQNUM may have grown by some digits.
  bool maybe_nomem = false;
  if (!want.err && probe.sends) {
    const std::size_t vars = probe.vars + want.vars.size(), bytes = probe.bytes + env_bytes(want.vars);
    if (vars > kMaxVars || bytes > kMaxBytes + 8) want.err = ENOMEM;
    else maybe_nomem = bytes + 8 > kMaxBytes;
  }
  const std::uint64_t seq_before = m.tb->core().uevents().seqnum();
  const std::size_t events_before = m.events.size();
  const std::string tree_before = full ? m.tb->dump("/") : std::string();
  const std::size_t nodes_before = m.tb->core().tree().node_count();

  const auto r = m.write(path, text);
  if (maybe_nomem && !r && r.error().code == ENOMEM) want.err = ENOMEM;
  if (want.err) {
    FUZZ_CHECK(!r && r.error().code == want.err,
               what + ": want errno " + std::to_string(want.err) + ", got " +
                   (r ? "success" : r.error().describe()));
  } else {
    FUZZ_CHECK(r && *r == written.size(),
               what + ": want success, got " + (r ? std::to_string(*r) : r.error().describe()));
  }
  const std::uint64_t seq = m.tb->core().uevents().seqnum();
  if (want.err || written.empty() || !probe.sends) {
    FUZZ_CHECK(m.events.size() == events_before, what + ": sent an event");
    FUZZ_CHECK(seq == seq_before, what + ": SEQNUM moved");
    FUZZ_CHECK(m.tb->core().tree().node_count() == nodes_before, what + ": nodes came or went");
    if (full) FUZZ_CHECK(m.tb->dump("/") == tree_before, what + ": the tree changed");
    return;
  }
  FUZZ_CHECK(m.events.size() == events_before + 1, what + ": want exactly one event");
  FUZZ_CHECK(seq == seq_before + 1, what + ": SEQNUM did not move by one");
  const uevent::Event& e = m.events.back();
  FUZZ_CHECK(uevent::action_name(e.action) == want.action, what + ": wrong action");
  std::string devpath = path.substr(0, path.rfind('/'));
  FUZZ_CHECK(e.devpath == devpath, what + ": DEVPATH is " + e.devpath);
  const bool ordered = e.env.size() >= 4 && e.env[0].first == "ACTION" &&
                       e.env[1].first == "DEVPATH" && e.env[2].first == "SUBSYSTEM" &&
                       e.env.back().first == "SEQNUM" && e.env.back().second == std::to_string(seq);
  FUZZ_CHECK(ordered, what + ": the environment is out of order");
  Vars synth;
  for (const auto& kv : e.env)
    if (kv.first.rfind("SYNTH_", 0) == 0) synth.push_back(kv);
  FUZZ_CHECK(synth == want.vars, what + ": the SYNTH_* variables differ from the model's");
  auto f = kernfs::OpenFile::open(m.tb->core().tree().resolve("/kernel/uevent_seqnum"), true, false);
  FUZZ_CHECK(f && f->read(0, 64) && *f->read(0, 64) == std::to_string(seq) + "\n",
             what + ": uevent_seqnum is stale");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One machine per process: writes to uevent files change nothing but SEQNUM.
  static std::unique_ptr<Machine> m = boot();
  const bool full = size > 0 && (data[0] & 0x70) == 0;
  for (auto rec : apemu::fuzz::split(apemu::fuzz::as_text(data, size), '\xff', 8)) {
    if (rec.empty()) continue;
    check_write(*m, static_cast<unsigned char>(rec[0]) % kFiles.size(), rec.substr(1), full);
  }
  m->events.clear();
  return 0;
}
