// The apmask/aqmask grammar (ap-bus.md §2.2), twice:
//  1. ap::parse_ap_mask against the reference model of fuzz/kernel_ref.h from four starting
//     masks, with its properties: a failed parse is EINVAL; hex() parses back to the same mask
//     (with "0x", a bare "x", a trailing newline); relative input only changes the ids it names;
//     list() parses back through parse_id_list.
//  2. The real store path: a booted Testbed (AP bus, zcrypt, vfio_ap and one mdev that holds
//     APQN 0x80.0005), then a sequence of writes to /sys/bus/ap/apmask and aqmask through
//     kernfs OpenFile::write under the machine lock. Each write must give the model's outcome:
//     EINVAL for bad syntax, EBUSY when newly set bits reach the mdev's assignment (vfio_ap's
//     in_use), else success. A rejected (or no-op) write changes nothing: not the masks, not a
//     binding, no node, no uevent (the whole tree text for one input in eight). After every write each queue is bound to cex4queue exactly when it is
//     in apmask x aqmask, else to vfio_ap; an accepted change sends one change uevent on
//     /devices/ap with APMASK=/AQMASK=<hex>\n; an unchanged mask sends none.
//
// Input: byte 0 picks the starting mask of part 1 (and whether the whole tree is compared); the
// rest is split at 0xff into at most eight writes, each a selector byte (even: apmask, odd:
// aqmask) and the text written. The machine is booted once per process and restored after each
// input (masks written back, checked against the state after boot), so inputs stay independent.
#include <memory>
#include <string>

#include "apemu/ap/ap_mask.h"
#include "apemu/kernfs/tree.h"
#include "apemu/testbed/testbed.h"
#include "fuzz_util.h"
#include "kernel_ref.h"

using namespace apemu;
namespace ref = apemu::fuzz::ref;
using apemu::fuzz::quote;

namespace {

constexpr const char* kTopology = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4-6"
control_domains = "4-6"
default_domain = 4

[[adapter]]
id = 1
type = "CEX8"
mode = "cca"

[[adapter]]
id = 2
type = "CEX7"
mode = "ep11"

[[adapter]]
id = 0x80
type = "CEX8"
mode = "accel"
)";
constexpr const char* kUuid = "11111111-2222-3333-4444-555555555555";

ref::Bits to_bits(const ap::Mask256& m) {
  ref::Bits b;
  for (unsigned i = 0; i < 256; ++i) b[i] = m.test(i);
  return b;
}
ap::Mask256 to_mask(const ref::Bits& b) {
  ap::Mask256 m;
  for (unsigned i = 0; i < 256; ++i) m.set(i, b[i]);
  return m;
}

ap::Mask256 preset(unsigned which) {
  ap::Mask256 m;
  switch (which % 4) {
  case 0: break;
  case 1: m = ap::Mask256::all(); break;
  case 2:
    for (unsigned i = 0; i < 256; i += 3) m.set(i);
    break;
  case 3:
    for (unsigned i = 0; i < 256; ++i) m.set(i, i < 16 || i == 128 || i == 255);
    break;
  }
  return m;
}

// ---- part 1: the parser alone ----------------------------------------------------------------

void check_parser(std::string_view text, const ap::Mask256& cur) {
  const std::string what = "parse_ap_mask(" + quote(text) + ", " + cur.hex() + ")";
  ref::Bits touched;
  const auto want = ref::ap_parse_mask(text, to_bits(cur), &touched);
  const auto got = ap::parse_ap_mask(text, cur);
  if (!want) {
    FUZZ_CHECK(!got && got.error().code == EINVAL,
               what + ": want EINVAL, got " + (got ? got->hex() : got.error().describe()));
    return;
  }
  FUZZ_CHECK(got, what + ": want " + ref::hex(*want) + ", got " + got.error().describe());
  FUZZ_CHECK(*got == to_mask(*want), what + ": want " + ref::hex(*want) + ", got " + got->hex());
  const bool relative = !text.empty() && (text[0] == '+' || text[0] == '-');
  if (relative) {
    const ref::Bits changed = to_bits(*got) ^ to_bits(cur);
    FUZZ_CHECK((changed & ~touched).none(), what + ": an id no term names changed");
  }
  // Round trips of the formats the kernel prints and users paste back.
  const std::string h = got->hex();
  FUZZ_CHECK(h.size() == 66 && h == ref::hex(*want), what + ": hex() is " + h);
  for (const std::string& again : {h, h + "\n", h.substr(1), h.substr(0, 2) + h.substr(2)}) {
    const auto r = ap::parse_ap_mask(again, preset(1));
    FUZZ_CHECK(r && *r == *got, what + ": " + quote(again) + " does not parse back");
  }
  const auto l = ap::parse_id_list(got->list());
  FUZZ_CHECK(l && *l == *got, what + ": list() " + quote(got->list()) + " does not parse back");
}

// ---- part 2: the attribute on a booted machine ----------------------------------------------

struct Machine {
  std::vector<uevent::Event> events; ///< first: outlives the Testbed, whose teardown sends some
  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
  ~Machine() {
    if (guard.owns_lock()) guard.unlock(); // the Testbed's destructor takes the lock itself
    tb.reset();
  }

  core::Core& core() { return tb->core(); }
  ap::ApBus& bus() { return *tb->ap_bus(); }

  Result<std::size_t> write(std::string_view path, std::string_view text) {
    auto node = core().tree().resolve(path);
    FUZZ_CHECK(node != nullptr, std::string(path) + " is missing");
    APEMU_TRY(auto f, kernfs::OpenFile::open(node, false, true));
    return f.write(text);
  }
  void must_write(std::string_view path, std::string_view text) {
    auto r = write(path, text);
    FUZZ_CHECK(r, "setup: " + std::string(path) + " <- " + quote(text) + ": " +
                      (r ? "" : r.error().describe()));
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
  m->must_write("/bus/ap/apmask", "-0x80");
  const std::string type = "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";
  m->must_write(type + "/create", kUuid);
  const std::string mdev = std::string("/devices/vfio_ap/matrix/") + kUuid;
  m->must_write(mdev + "/assign_adapter", "0x80");
  m->must_write(mdev + "/assign_domain", "5");
  apemu::fuzz::fill_log(m->core().log());
  m->core().uevents().subscribe([mp = m.get()](const uevent::Event& e) { mp->events.push_back(e); });
  return m;
}

/// "apid.apqi driver" for every queue: the bindings.
std::string bindings(Machine& m) {
  std::string out;
  for (ap::ApCard* c : m.bus().cards())
    for (unsigned d = 0; d < 256; ++d)
      if (ap::ApQueue* q = c->queue(d))
        out += q->name() + " " + (q->driver() ? q->driver()->name() : std::string("-")) + "\n";
  return out;
}

void check_bindings(Machine& m, const std::string& what) {
  for (ap::ApCard* c : m.bus().cards())
    for (unsigned d = 0; d < 256; ++d)
      if (ap::ApQueue* q = c->queue(d)) {
        const bool host = m.bus().apmask().test(c->id()) && m.bus().aqmask().test(d);
        const std::string want = host ? "cex4queue" : "vfio_ap";
        const std::string got = q->driver() ? q->driver()->name() : "-";
        FUZZ_CHECK(got == want, what + ": queue " + q->name() + " is bound to " + got +
                                    ", want " + want);
      }
}

/// Would vfio_ap's in_use veto giving `newly` (apids or apqis) to the default drivers?
bool in_use(Machine& m, bool adapters, const ref::Bits& newly) {
  for (vfio_ap::MatrixMdev* md : m.tb->vfio_ap()->mdevs()) {
    const auto& mx = md->matrix();
    const auto& mine = adapters ? mx.apm : mx.aqm;
    const auto& other = adapters ? mx.aqm : mx.apm;
    bool hit = false;
    for (unsigned i = 0; i < 256; ++i) hit = hit || (newly[i] && mine.test(i));
    if (hit && other.any()) return true;
  }
  return false;
}

void check_store(Machine& m, bool adapters, std::string_view text, bool full) {
  const char* file = adapters ? "/bus/ap/apmask" : "/bus/ap/aqmask";
  const std::string what = std::string(file) + " <- " + quote(text);
  const ap::Mask256 before = adapters ? m.bus().apmask() : m.bus().aqmask();
  const ap::Mask256 other = adapters ? m.bus().aqmask() : m.bus().apmask();
  const std::string tree_before = full ? m.tb->dump("/") : std::string();
  const std::size_t nodes_before = m.core().tree().node_count();
  const std::string bind_before = bindings(m);
  const std::size_t events_before = m.events.size();

  // kernfs hands store() at most a page, as a C string (it ends at a NUL); an empty write never
  // reaches store(), and the count is that of the bytes written.
  const std::string_view written = text.substr(0, 4096);
  const std::string_view stored = written.substr(0, written.find('\0'));
  std::optional<ref::Bits> want;
  if (!written.empty()) want = ref::ap_parse_mask(stored, to_bits(before));
  int want_err = 0;
  if (!written.empty() && !want) want_err = EINVAL;
  else if (want && in_use(m, adapters, *want & ~to_bits(before))) want_err = EBUSY;

  const auto r = m.write(file, text);
  if (want_err) {
    FUZZ_CHECK(!r && r.error().code == want_err,
               what + ": want errno " + std::to_string(want_err) + ", got " +
                   (r ? "success" : r.error().describe()));
  } else {
    FUZZ_CHECK(r && *r == written.size(), what + ": want success, got " +
                                             (r ? std::to_string(*r) : r.error().describe()));
  }
  const ap::Mask256 after = adapters ? m.bus().apmask() : m.bus().aqmask();
  FUZZ_CHECK((adapters ? m.bus().aqmask() : m.bus().apmask()) == other, what + ": the other mask changed");
  if (want_err || written.empty() || to_mask(*want) == before) {
    // Rejected or unchanged: nothing at all happens.
    FUZZ_CHECK(after == before, what + ": the mask changed to " + after.hex());
    FUZZ_CHECK(m.events.size() == events_before,
               what + ": sent " + std::to_string(m.events.size() - events_before) + " uevents");
    FUZZ_CHECK(bindings(m) == bind_before, what + ": bindings changed");
    FUZZ_CHECK(m.core().tree().node_count() == nodes_before, what + ": nodes came or went");
    if (full) FUZZ_CHECK(m.tb->dump("/") == tree_before, what + ": the sysfs tree changed");
  } else {
    FUZZ_CHECK(after == to_mask(*want), what + ": mask is " + after.hex() + ", want " + ref::hex(*want));
    // Binding revision may bind and unbind queues first; the mask change uevent comes last.
    FUZZ_CHECK(m.events.size() > events_before, what + ": no uevent");
    const uevent::Event& e = m.events.back();
    FUZZ_CHECK(e.action == uevent::Action::Change && e.devpath == "/devices/ap",
               what + ": last uevent is " + std::string(uevent::action_name(e.action)) + " " + e.devpath);
    FUZZ_CHECK(e.get(adapters ? "APMASK" : "AQMASK") == after.hex() + "\n",
               what + ": the change uevent lacks the new mask");
    for (std::size_t i = events_before; i < m.events.size(); ++i)
      FUZZ_CHECK(m.events[i].devpath != "/devices/ap" || i + 1 == m.events.size(),
                 what + ": more than one uevent on /devices/ap");
  }
  auto f = kernfs::OpenFile::open(m.core().tree().resolve(file), true, false);
  FUZZ_CHECK(f && f->read(0, 4096) && *f->read(0, 4096) == after.hex() + "\n",
             what + ": the file does not show the mask");
  check_bindings(m, what);
}

/// The state every input starts from, and must be restorable to.
std::string fingerprint(Machine& m) {
  return m.bus().apmask().hex() + " " + m.bus().aqmask().hex() + " nodes " +
         std::to_string(m.core().tree().node_count()) + "\n" + bindings(m);
}

/// Puts the masks back as boot() left them. Domain 5 can only come back to the host while the
/// mdev does not hold it (vfio_ap's in_use), so the mdev lets go of it for a moment.
void restore(Machine& m, const std::string& initial) {
  const std::string mdev = std::string("/devices/vfio_ap/matrix/") + kUuid;
  if (!m.bus().aqmask().all_set()) {
    m.must_write(mdev + "/unassign_domain", "5");
    m.must_write("/bus/ap/aqmask", "+0-255");
    m.must_write(mdev + "/assign_domain", "5");
  }
  m.must_write("/bus/ap/apmask", "+0-255,-0x80");
  m.events.clear();
  FUZZ_CHECK(fingerprint(m) == initial, "restoring the masks did not restore the machine:\n" +
                                            fingerprint(m) + "\nwant\n" + initial);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One machine per process, restored after every input: booting costs more than many writes.
  static std::unique_ptr<Machine> m = [] {
    auto b = boot();
    check_bindings(*b, "after boot");
    return b;
  }();
  static const std::string initial = fingerprint(*m);
  if (size == 0) return 0;
  const auto records = apemu::fuzz::split(apemu::fuzz::as_text(data + 1, size - 1), '\xff', 8);
  for (auto rec : records) {
    const std::string_view text = rec.empty() ? rec : rec.substr(1);
    check_parser(text, preset(data[0]));
    check_parser(text, preset(data[0] + 1u));
  }
  // The whole tree is compared around rejected writes for one input in eight (it is slow).
  const bool full = (data[0] & 0x70) == 0;
  for (auto rec : records) {
    if (rec.empty()) continue;
    check_store(*m, (static_cast<unsigned char>(rec[0]) & 1) == 0, rec.substr(1), full);
  }
  // Whatever the writes did, the mdev still holds its assignment.
  const auto* md = m->tb->vfio_ap()->find_mdev(kUuid);
  FUZZ_CHECK(md && md->matrix().apm.test(0x80) && md->matrix().aqm.test(5), "the mdev lost its matrix");
  restore(*m, initial);
  return 0;
}
