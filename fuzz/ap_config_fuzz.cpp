// Writes to a vfio_ap mdev's `ap_config` (vfio-ap.md §3.8) on a booted machine, through kernfs
// OpenFile::write under the machine lock, against a model of the whole store: kstrndup to 201
// bytes (and the first NUL), three strsep(",\n") tokens each parsed by hex2bitmap
// (fuzz/kernel_ref.h) → EINVAL; then, in this order, a host-reserved APQN in apm x aqm →
// EADDRNOTAVAIL, an APQN shared with the other mdev → EADDRINUSE, a bit above the mdev's
// apm_max/aqm_max/adm_max → ENODEV; else success.
//
// Invariants: a rejected write changes nothing (matrix, guest_matrix, the shadow APCB, the
// guest's CRYCB masks and APCB write count, the other mdev, the sysfs tree, no uevent); an
// accepted one reads back as written; the shadow is always within the matrix and, with a guest
// running, the guest's masks are the shadow; writing back what ap_config shows changes nothing.
//
// Machine: no APXA (maxima 63/15), adapters 1, 2, 3, 5, usage domains 4-7; apmask "0x4" keeps
// only adapter 1 for the host; mdev A (the target) starts with 02.0004 and control domain 4,
// mdev B holds 05.0006. Input: byte 0 bit 0 starts a guest on A for the input, bits 4-6 zero
// compare the whole tree around rejected writes; the rest is split at 0xff into at most six
// writes. The machine is booted once per process and restored after each input (ap_config
// written back, the guest stopped, checked against the state after boot).
#include <memory>
#include <string>

#include "apemu/kernfs/tree.h"
#include "apemu/testbed/testbed.h"
#include "fuzz_util.h"
#include "kernel_ref.h"

using namespace apemu;
namespace ref = apemu::fuzz::ref;
using apemu::fuzz::quote;

namespace {

constexpr const char* kTopology = R"(
usage_domains = "4-7"
control_domains = "4-7"
default_domain = 4

[[adapter]]
id = 1
type = "CEX8"
mode = "cca"

[[adapter]]
id = 2
type = "CEX8"
mode = "cca"

[[adapter]]
id = 3
type = "CEX7"
mode = "ep11"

[[adapter]]
id = 5
type = "CEX8"
mode = "accel"
)";
constexpr const char* kA = "aaaaaaaa-0000-0000-0000-000000000001";
constexpr const char* kB = "bbbbbbbb-0000-0000-0000-000000000002";
const std::string kMatrix = "/devices/vfio_ap/matrix/";

struct Machine {
  std::vector<uevent::Event> events; ///< first: outlives the Testbed, whose teardown sends some
  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
  ~Machine() {
    if (guard.owns_lock()) guard.unlock(); // the Testbed's destructor takes the lock itself
    tb.reset();
  }
  vfio_ap::MatrixMdev* a = nullptr;
  vfio_ap::MatrixMdev* b = nullptr;
  std::shared_ptr<vfio_ap::KvmGuest> guest;

  vfio_ap::VfioAp& v() { return *tb->vfio_ap(); }
  Result<std::size_t> write(const std::string& path, std::string_view text) {
    auto node = tb->core().tree().resolve(path);
    FUZZ_CHECK(node != nullptr, path + " is missing");
    APEMU_TRY(auto f, kernfs::OpenFile::open(node, false, true));
    return f.write(text);
  }
  void must_write(const std::string& path, std::string_view text) {
    auto r = write(path, text);
    FUZZ_CHECK(r, "setup: " + path + " <- " + quote(text) + ": " + (r ? "" : r.error().describe()));
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
  m->must_write("/bus/ap/apmask", "0x4");
  const std::string create = kMatrix + "mdev_supported_types/vfio_ap-passthrough/create";
  m->must_write(create, kA);
  m->must_write(create, kB);
  m->must_write(kMatrix + kB + "/assign_adapter", "5");
  m->must_write(kMatrix + kB + "/assign_domain", "6");
  m->must_write(kMatrix + kA + "/assign_adapter", "2");
  m->must_write(kMatrix + kA + "/assign_domain", "4");
  m->must_write(kMatrix + kA + "/assign_control_domain", "4");
  m->a = m->v().find_mdev(kA);
  m->b = m->v().find_mdev(kB);
  FUZZ_CHECK(m->a && m->b, "setup: mdevs missing");
  m->tb->runtime().run_pending();
  apemu::fuzz::fill_log(m->tb->core().log());
  m->tb->core().uevents().subscribe([mp = m.get()](const uevent::Event& e) { mp->events.push_back(e); });
  return m;
}

std::string masks(const vfio_ap::ApMatrix& mx) {
  return mx.apm.hex() + "," + mx.aqm.hex() + "," + mx.adm.hex();
}

/// Everything a rejected write must leave alone.
struct Snapshot {
  std::string a_matrix, a_shadow, b_matrix, guest, tree;
  std::size_t events = 0, nodes = 0;
  bool operator==(const Snapshot&) const = default;
};
/// `full`: the whole sysfs tree as text too (slow: one input in eight).
Snapshot snapshot(Machine& m, bool full) {
  Snapshot s;
  s.a_matrix = masks(m.a->matrix());
  s.a_shadow = masks(m.a->shadow_apcb());
  s.b_matrix = masks(m.b->matrix());
  if (m.a->kvm())
    s.guest = m.a->kvm()->apm().hex() + m.a->kvm()->aqm().hex() + m.a->kvm()->adm().hex() + " " +
              std::to_string(m.a->kvm()->apcb_writes());
  if (full) s.tree = m.tb->dump("/");
  s.events = m.events.size();
  s.nodes = m.tb->core().tree().node_count();
  return s;
}

bool intersects(const ref::Bits& x, const vfio_ap::IdSet& y) {
  for (unsigned i = 0; i < 256; ++i)
    if (x[i] && y.test(i)) return true;
  return false;
}
bool intersects(const ref::Bits& x, const ap::Mask256& y) {
  for (unsigned i = 0; i < 256; ++i)
    if (x[i] && y.test(i)) return true;
  return false;
}
bool above(const ref::Bits& x, unsigned max) {
  for (unsigned i = max + 1; i < 256; ++i)
    if (x[i]) return true;
  return false;
}

/// The model of §3.8: the errno, or 0 with the three masks.
int model(Machine& m, std::string_view text, ref::Bits out[3]) {
  text = text.substr(0, 4096);                 // kernfs: one page
  text = text.substr(0, 201);                  // kstrndup(buf, AP_CONFIG_STRLEN)
  text = text.substr(0, text.find('\0'));      //   ... which stops at a NUL
  std::optional<std::string_view> rest = text; // strsep
  for (int k = 0; k < 3; ++k) {
    if (!rest) return EINVAL;
    const auto sep = rest->find_first_of(",\n");
    const std::string_view tok = rest->substr(0, sep);
    rest = sep == std::string_view::npos ? std::nullopt : std::optional(rest->substr(sep + 1));
    const auto bits = ref::hex2bitmap(tok);
    if (!bits) return EINVAL;
    out[k] = *bits;
  }
  const ap::ApBus& bus = *m.tb->ap_bus();
  if (intersects(out[0], bus.apmask()) && intersects(out[1], bus.aqmask())) return EADDRNOTAVAIL;
  const auto& bm = m.b->matrix();
  if (intersects(out[0], bm.apm) && intersects(out[1], bm.aqm)) return EADDRINUSE;
  const auto& am = m.a->matrix();
  if (above(out[0], am.apm_max) || above(out[1], am.aqm_max) || above(out[2], am.adm_max)) return ENODEV;
  return 0;
}

void check_consistent(Machine& m, const std::string& what) {
  const auto& mx = m.a->matrix();
  const auto& sh = m.a->shadow_apcb();
  FUZZ_CHECK(sh.apm.minus(mx.apm).none() && sh.aqm.minus(mx.aqm).none() && sh.adm.minus(mx.adm).none(),
             what + ": the shadow " + masks(sh) + " is not within the matrix " + masks(mx));
  if (const vfio_ap::KvmGuest* g = m.a->kvm()) {
    FUZZ_CHECK(g->apm().hex() == sh.apm.hex() && g->aqm().hex() == sh.aqm.hex() &&
                   g->adm().hex() == sh.adm.hex(),
               what + ": the guest's CRYCB differs from the shadow " + masks(sh));
  }
  FUZZ_CHECK(m.v().ap_config_show(*m.a) == masks(mx) + "\n", what + ": ap_config shows something else");
}

void check_write(Machine& m, std::string_view text, bool full) {
  const std::string what = "ap_config <- " + quote(text);
  ref::Bits want[3];
  const int want_err = text.empty() ? 0 : model(m, text, want);
  const Snapshot before = snapshot(m, full);
  const auto r = m.write(kMatrix + kA + "/ap_config", text);
  if (want_err) {
    FUZZ_CHECK(!r && r.error().code == want_err,
               what + ": want errno " + std::to_string(want_err) + ", got " +
                   (r ? "success" : r.error().describe()));
  } else {
    FUZZ_CHECK(r && *r == std::min<std::size_t>(text.size(), 4096),
               what + ": want success, got " + (r ? std::to_string(*r) : r.error().describe()));
  }
  if (want_err || text.empty()) {
    const Snapshot after = snapshot(m, full);
    FUZZ_CHECK(after.a_matrix == before.a_matrix, what + ": the matrix changed");
    FUZZ_CHECK(after.a_shadow == before.a_shadow, what + ": the shadow changed");
    FUZZ_CHECK(after.b_matrix == before.b_matrix, what + ": the other mdev changed");
    FUZZ_CHECK(after.guest == before.guest, what + ": the guest's CRYCB changed");
    FUZZ_CHECK(after.events == before.events, what + ": uevents were sent");
    FUZZ_CHECK(after.nodes == before.nodes, what + ": nodes came or went");
    FUZZ_CHECK(after.tree == before.tree, what + ": the sysfs tree changed");
  } else {
    FUZZ_CHECK(masks(m.a->matrix()) == ref::hex(want[0]) + "," + ref::hex(want[1]) + "," + ref::hex(want[2]),
               what + ": the matrix is " + masks(m.a->matrix()));
    FUZZ_CHECK(masks(m.b->matrix()) == before.b_matrix, what + ": the other mdev changed");
  }
  check_consistent(m, what);
  m.tb->runtime().run_pending(); // what user space does in reaction (the guest's eventfds)
  check_consistent(m, what + " (after user space ran)");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One machine per process, restored after every input: booting costs more than many writes.
  static std::unique_ptr<Machine> m = boot();
  static const std::string initial_config = m->v().ap_config_show(*m->a);
  static const Snapshot initial = snapshot(*m, false);
  if (size == 0) return 0;
  const bool full = (data[0] & 0x70) == 0;
  if (data[0] & 1) {
    auto g = m->v().guest_start(*m->a);
    FUZZ_CHECK(g, "guest_start: " + (g ? "" : g.error().describe()));
    m->tb->runtime().run_pending();
  }
  check_consistent(*m, "at the start");
  for (auto text : apemu::fuzz::split(apemu::fuzz::as_text(data + 1, size - 1), '\xff', 6))
    check_write(*m, text, full);
  // What ap_config shows is a valid write that changes nothing (and writes no APCB).
  const std::string shown = m->v().ap_config_show(*m->a);
  const Snapshot before = snapshot(*m, full);
  const auto r = m->write(kMatrix + kA + "/ap_config", shown);
  FUZZ_CHECK(r, "writing back " + quote(shown) + ": " + (r ? "" : r.error().describe()));
  FUZZ_CHECK(snapshot(*m, full) == before, "writing back " + quote(shown) + " changed something");
  // Back to the state after boot, through the same file.
  if (m->a->opened()) {
    FUZZ_CHECK(m->v().guest_stop(*m->a), "guest_stop");
    m->tb->runtime().run_pending();
  }
  const auto back = m->write(kMatrix + kA + "/ap_config", initial_config);
  FUZZ_CHECK(back, "restoring " + quote(initial_config) + ": " + (back ? "" : back.error().describe()));
  m->tb->runtime().run_pending();
  m->events.clear();
  FUZZ_CHECK(snapshot(*m, false) == initial, "restoring ap_config did not restore the machine");
  return 0;
}
