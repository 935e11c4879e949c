// The verbs of `apemu ctl` (see control.h): each maps to a C++ call on the Testbed.
#include "apemu/testbed/control.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apemu/ap/zcrypt.h"
#include "apemu/base/parse.h"
#include "apemu/guest/zcrypt.h"
#include "apemu/kernfs/tree.h"
#include "apemu/testbed/show.h"

namespace apemu::testbed {

namespace {

Result<unsigned> parse_id(const std::string& s, unsigned max) {
  APEMU_TRY(std::uint64_t v, kstrtoul(s, 0));
  if (v > max) return Error(ERANGE, "id " + s + " out of range");
  return static_cast<unsigned>(v);
}

Result<bool> parse_on_off(const std::string& s) {
  if (s == "on") return true;
  if (s == "off") return false;
  return Error(EINVAL, "expected on or off, got '" + s + "'");
}

using nlohmann::json;

/// A command's outcome: text for people and the structured result (docs/control.md).
struct Out {
  std::string text;
  json result = json::object();
};

template <class Id> json id_array(const IdMask<Id>& m) {
  json a = json::array();
  m.for_each([&](Id i) { a.push_back(id(i)); });
  return a;
}

/// A mask as both forms scripts want: the kernel's hex string and the ids.
template <class Id> json mask_json(const IdMask<Id>& m) {
  return {{"hex", m.hex()}, {"ids", id_array(m)}};
}

bool bound_to_zcrypt(const core::Device& d) {
  return d.driver() && ap::ApBus::ops_of(*d.driver()).default_driver;
}

json driver_json(const core::Device& d) {
  return d.driver() ? json(d.driver()->name()) : json(nullptr);
}

/// Who has an APQN, as the `show` matrix says: "host" (a default driver), "vfio_ap" (bound to
/// vfio_ap), "free" (not default-owned, unbound), "reserved" (default-owned but unbound).
std::string owner_of(ap::ApBus& bus, const ap::ApQueue& q) {
  if (bound_to_zcrypt(q)) return "host";
  if (q.driver()) return q.driver()->name();
  return bus.apqn_owned_by_default(q.apqn()) ? "reserved" : "free";
}

json queue_json(Testbed& tb, const ap::ApQueue& q) {
  const bool zq = bound_to_zcrypt(q);
  json j{{"apqn", q.name()},
         {"domain", id(q.apqi())},
         {"config", q.config()},
         {"chkstop", q.chkstop()},
         {"online", zq ? json(q.online()) : json(nullptr)},
         {"requests", q.dev_state() == ap::DevState::Uninitiated ? json(nullptr)
                                                                  : json(q.request_count())},
         {"driver", driver_json(q)},
         {"owner", owner_of(*tb.ap_bus(), q)},
         {"mdev", nullptr}};
  if (tb.vfio_ap())
    for (vfio_ap::MatrixMdev* m : tb.vfio_ap()->mdevs())
      if (m->matrix().contains(q.apqn())) j["mdev"] = m->name();
  return j;
}

json card_json(Testbed& tb, const ap::ApCard& c) {
  const bool zc = bound_to_zcrypt(c);
  const auto mode = c.mode();
  json queues = json::array();
  for (unsigned d = 0; d < kMaxApIds; ++d)
    if (const ap::ApQueue* q = c.queue(to_apqi(d))) queues.push_back(queue_json(tb, *q));
  return {{"card", c.name().substr(4)},
          {"id", id(c.id())},
          {"hwtype", c.hwtype()},
          {"type", zc ? json(ap::zcrypt_type_name(c)) : json(nullptr)},
          {"mode", mode ? json(std::string(ap::mode_name(*mode))) : json(nullptr)},
          {"config", c.config()},
          {"chkstop", c.chkstop()},
          {"online", zc ? json(c.online()) : json(nullptr)},
          {"requests", c.request_count()},
          {"driver", driver_json(c)},
          {"queues", std::move(queues)}};
}

/// The machine as `apemu show` describes it (docs/control.md "show").
json show_json(Testbed& tb) {
  ap::ApBus& bus = *tb.ap_bus();
  const ap::Qci& qci = bus.hw().qci();
  json cards = json::array();
  for (ap::ApCard* c : bus.cards()) cards.push_back(card_json(tb, *c));
  json mdevs = json::array();
  if (tb.vfio_ap()) {
    auto list = tb.vfio_ap()->mdevs();
    std::reverse(list.begin(), list.end()); // oldest first, as the show matrix letters
    for (vfio_ap::MatrixMdev* m : list) {
      const Qemu::Guest* g = tb.qemu() ? tb.qemu()->guest(m->name()) : nullptr;
      mdevs.push_back({{"uuid", m->name()},
                       {"adapters", id_array(m->matrix().apm)},
                       {"domains", id_array(m->matrix().aqm)},
                       {"control_domains", id_array(m->matrix().adm)},
                       {"guest", g ? json(g->name) : json(nullptr)}});
    }
  }
  json nodes = json::array();
  if (ap::ZcryptNodes* zn = tb.zcrypt() ? tb.zcrypt()->nodes() : nullptr)
    for (ap::ZcdnDevice* n : zn->nodes())
      nodes.push_back({{"name", n->name()},
                       {"minor", n->node_minor()},
                       {"apmask", n->apmask.hex()},
                       {"aqmask", n->aqmask.hex()},
                       {"admask", n->admask.hex()},
                       {"ioctlmask", n->ioctlmask.hex()}});
  return {{"ap_domain", bus.ap_domain() < 0 ? json(nullptr) : json(bus.ap_domain())},
          {"apmask", bus.apmask().hex()},
          {"aqmask", bus.aqmask().hex()},
          {"usage_domains", id_array(qci.aqm.up_to(bus.max_domain_id()))},
          {"control_domains", id_array(qci.adm.up_to(bus.max_domain_id()))},
          {"cards", std::move(cards)},
          {"mdevs", std::move(mdevs)},
          {"zcrypt_nodes", std::move(nodes)}};
}

/// The state of adapter `a` after a card verb: its card object, or {"id", "present": false}.
json card_result(Testbed& tb, Apid a) {
  if (const ap::ApCard* c = tb.ap_bus()->card(a)) {
    json j = card_json(tb, *c);
    j["present"] = true;
    return j;
  }
  return {{"id", id(a)}, {"present", false}};
}

/// `tree`: the D/A/L dump as entries (docs/control.md "tree").
json tree_json(Testbed& tb, const std::string& path) {
  json entries = json::array();
  const auto node = tb.core().tree().resolve(path);
  std::function<void(const kernfs::Node&)> walk = [&](const kernfs::Node& n) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(n.mode()));
    switch (n.type()) {
    case kernfs::NodeType::Dir:
      entries.push_back({{"kind", "dir"}, {"path", n.path()}, {"mode", mode}});
      for (const auto& c : static_cast<const kernfs::Dir&>(n).children()) walk(*c);
      break;
    case kernfs::NodeType::Attr: {
      const auto& a = static_cast<const kernfs::Attr&>(n);
      json e{{"kind", "attr"}, {"path", n.path()}, {"mode", mode}, {"value", nullptr}};
      if (a.readable()) {
        auto v = kernfs::read_attr(a);
        if (v) e["value"] = *v;
        else e["errno"] = v.error().errno_value().name();
      }
      entries.push_back(std::move(e));
      break;
    }
    case kernfs::NodeType::Link: {
      auto t = static_cast<const kernfs::Link&>(n).target_text();
      entries.push_back({{"kind", "link"}, {"path", n.path()}, {"target", t ? json(*t) : json(nullptr)}});
      break;
    }
    }
  };
  if (node) walk(*node);
  return {{"path", path}, {"entries", std::move(entries)}};
}

/// The firmware settings of a card (`card service-time|reset-time|engines`).
json card_fw_json(Testbed& tb, Apid a) {
  const ap::Adapter* ad = tb.hw()->adapter(a);
  if (!ad) return {{"card", id(a)}};
  return {{"card", id(a)},
          {"service_time_ns", ad->service_time ? json(ad->service_time->count()) : json(nullptr)},
          {"reset_time_ns", ad->reset_time.count()},
          {"engines", ad->engines}};
}

Result<Out> card_command(Testbed& tb, const std::vector<std::string>& a) {
  ap::ApBus* bus = tb.ap_bus();
  if (a.size() < 3) return Error(EINVAL, "usage: card add|remove|config|chkstop ID ...");
  APEMU_TRY(unsigned id, parse_id(a[2], 255));
  if (a[1] == "add") {
    if (a.size() < 5) return Error(EINVAL, "usage: card add ID TYPE MODE [DOMAINS]");
    ap::Adapter ad;
    ad.id = to_apid(id);
    APEMU_TRY(ad.raw_type, ap::parse_type_name(a[3]));
    APEMU_TRY(ad.mode, ap::parse_mode_name(a[4]));
    if (a.size() > 5) {
      APEMU_TRY(ad.domains, ap::parse_id_list<Apqi>(a[5]));
    }
    if (tb.hw()->adapter(ad.id)) return Error(EEXIST, "adapter " + a[2] + " exists");
    APEMU_TRY_VOID(bus->hotplug_adapter(std::move(ad)));
    return Out{"", card_result(tb, to_apid(id))};
  }
  if (a[1] == "remove") {
    APEMU_TRY_VOID(bus->hotunplug_adapter(to_apid(id)));
    return Out{"", card_result(tb, to_apid(id))};
  }
  if (a[1] == "service-time" || a[1] == "reset-time" || a[1] == "engines") {
    if (a.size() != 4) return Error(EINVAL, "usage: card " + a[1] + " ID VALUE");
    ap::ApFirmware& fw = *tb.firmware();
    if (a[1] == "engines") {
      APEMU_TRY(unsigned n, parse_id(a[3], 1024));
      APEMU_TRY_VOID(fw.set_engines(to_apid(id), static_cast<int>(n)));
      return Out{"", card_fw_json(tb, to_apid(id))};
    }
    if (a[1] == "service-time" && a[3] == "crypto") {
      APEMU_TRY_VOID(fw.set_service_time(to_apid(id), std::nullopt));
      return Out{"", card_fw_json(tb, to_apid(id))};
    }
    APEMU_TRY(auto d, parse_duration(a[3]));
    APEMU_TRY_VOID(a[1] == "service-time" ? fw.set_service_time(to_apid(id), d)
                                          : fw.set_reset_time(to_apid(id), d));
    return Out{"", card_fw_json(tb, to_apid(id))};
  }
  if (a.size() < 4) return Error(EINVAL, "usage: card config|chkstop ID on|off");
  APEMU_TRY(bool on, parse_on_off(a[3]));
  if (a[1] == "config") {
    APEMU_TRY_VOID(bus->sclp_configure(to_apid(id), on));
    return Out{"", card_result(tb, to_apid(id))};
  }
  if (a[1] == "chkstop") {
    APEMU_TRY_VOID(bus->set_checkstop(to_apid(id), on));
    json r = card_result(tb, to_apid(id));
    r["hardware_chkstop"] = on; // the card's own flag follows at the next scan
    return Out{"", std::move(r)};
  }
  return Error(EINVAL, "unknown card verb '" + a[1] + "'");
}

/// `--key value` options after the verb's words; unknown keys are EINVAL.
Result<std::map<std::string, std::string>> parse_flags(const std::vector<std::string>& a,
                                                       std::size_t from,
                                                       std::initializer_list<const char*> keys) {
  std::map<std::string, std::string> out;
  for (std::size_t i = from; i < a.size(); i += 2) {
    bool known = false;
    for (const char* k : keys) known = known || a[i] == k;
    if (!known || i + 1 >= a.size()) return Error(EINVAL, "unexpected argument '" + a[i] + "'");
    out[a[i]] = a[i + 1];
  }
  return out;
}

json guest_json(const Qemu::Guest& g) {
  json j{{"name", g.name}, {"mdev", g.uuid}, {"crycb", g.kvm->has_crycb()}};
  if (!g.kvm->has_crycb()) return j;
  j["apm"] = mask_json(g.kvm->apm());
  j["aqm"] = mask_json(g.kvm->aqm());
  j["adm"] = mask_json(g.kvm->adm());
  j["apcb_writes"] = g.kvm->apcb_writes();
  j["cfg_chg_signals"] = g.cfg_chg ? g.cfg_chg->count() : 0;
  return j;
}

std::string guest_text(const Qemu::Guest& g) {
  std::string out = "guest " + g.name + " mdev " + g.uuid + "\n";
  if (!g.kvm->has_crycb()) return out + "  (device open without a CRYCB: nothing passed through)\n";
  auto line = [](const char* what, const auto& mask) {
    return std::string("  ") + what + " " + mask.hex() + " (" + mask.list() + ")\n";
  };
  out += line("apm", g.kvm->apm()) + line("aqm", g.kvm->aqm()) + line("adm", g.kvm->adm());
  out += "  apcb_writes " + std::to_string(g.kvm->apcb_writes()) + " cfg_chg_signals " +
         std::to_string(g.cfg_chg ? g.cfg_chg->count() : 0) + "\n";
  return out;
}

/// "AA.DDDD" (hex, as the queue devices are named).
Result<Apqn> parse_apqn(const std::string& s) {
  const auto dot = s.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 >= s.size())
    return Error(EINVAL, "APQN '" + s + "' is not AA.DDDD");
  APEMU_TRY(std::uint64_t a, kstrtoul(s.substr(0, dot), 16));
  APEMU_TRY(std::uint64_t d, kstrtoul(s.substr(dot + 1), 16));
  if (a > 255 || d > 255) return Error(ERANGE, "APQN '" + s + "' out of range");
  return Apqn{to_apid(static_cast<unsigned>(a)), to_apqi(static_cast<unsigned>(d))};
}

Result<std::vector<std::uint8_t>> parse_hex_bytes(const std::string& s) {
  if (s.size() % 2) return Error(EINVAL, "odd number of hex digits");
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < s.size(); i += 2) {
    APEMU_TRY(std::uint64_t b, kstrtoul(s.substr(i, 2), 16));
    out.push_back(static_cast<std::uint8_t>(b));
  }
  return out;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(errno ? errno : ENOENT, "open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hex64(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%016llx", static_cast<unsigned long long>(v));
  return b;
}

/// Takes the value-less `switches` out of `a` (from index `from`); returns which were there.
std::map<std::string, bool> take_switches(std::vector<std::string>& a, std::size_t from,
                                          std::initializer_list<const char*> switches) {
  std::map<std::string, bool> out;
  for (std::size_t i = from; i < a.size();) {
    bool hit = false;
    for (const char* s : switches)
      if (a[i] == s) hit = true;
    if (hit) {
      out[a[i]] = true;
      a.erase(a.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  return out;
}

/// Waits for an exchange: on a virtual clock by advancing it, on a real clock by letting the
/// executor run (the machine lock is released meanwhile). Locking: machine lock held.
Result<void> wait_exchange(Testbed& tb, const guest::Exchange& x) {
  Runtime& rt = tb.runtime();
  if (rt.virtual_clock()) return guest::run_until(rt, *x.done);
  struct Sync {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto sync = std::make_shared<Sync>();
  x.done->on_done([sync](const Result<void>&) {
    std::lock_guard g(sync->mu);
    sync->done = true;
    sync->cv.notify_all();
  });
  rt.lock().unlock();
  {
    std::unique_lock g(sync->mu);
    sync->cv.wait(g, [&] { return sync->done; });
  }
  rt.lock().lock();
  return {};
}

/// An executed instruction as JSON: the condition code, GR1's status word and response code
/// (with its name), GR2, or the program interruption.
json instr_json(const guest::Instr& i) {
  if (i.exception()) return {{"program_interruption", *i.program_interruption}};
  return {{"cc", i.cc},
          {"status", i.status().word()},
          {"rc", i.rc()},
          {"rc_name", std::string(ap::rc::name(i.rc(), i.op))},
          {"gr2", i.gr2}};
}

/// The AP verbs of `guest`: one instruction each, or a whole RSA round trip.
Result<Out> guest_ap_command(Testbed& tb, Qemu& qemu, const std::string& uuid,
                                     std::vector<std::string> a) {
  const Qemu::Guest* qg = qemu.guest(uuid);
  if (!qg) return Error(ENODEV, "no guest uses mdev " + uuid);
  if (!qg->os) return Error(ENODEV, "the guest on " + uuid + " executes no instructions");
  guest::Guest& g = *qg->os;
  const std::string verb = a[1];
  auto sw = take_switches(a, 2, {"--crt", "--public", "--no-t", "--off"});
  APEMU_TRY(auto f, parse_flags(a, 2, {"--mdev", "--apqn", "--isc", "--key", "--in", "--out",
                                       "--psmid", "--hex", "--irq", "--max"}));
  if (verb == "qci") {
    guest::Instr i;
    auto q = g.query_config(&i);
    if (!q) return Error(EINVAL, "QCI: " + i.describe());
    auto line = [](const char* what, const auto& mask) {
      return std::string(what) + " " + mask.hex() + " (" + mask.list() + ")\n";
    };
    Out out{"QCI: cc " + std::to_string(i.cc) + "\n" + line("apm", q->apm) + line("aqm", q->aqm) +
                line("adm", q->adm) + "apxa " + (q->apxa ? "1" : "0") + " na " +
                std::to_string(q->na) + " nd " + std::to_string(q->nd) + "\n",
            instr_json(i)};
    out.result["apm"] = mask_json(q->apm);
    out.result["aqm"] = mask_json(q->aqm);
    out.result["adm"] = mask_json(q->adm);
    out.result["apxa"] = q->apxa;
    out.result["na"] = q->na;
    out.result["nd"] = q->nd;
    return out;
  }
  if (!f.count("--apqn")) return Error(EINVAL, "--apqn AA.DDDD is required");
  APEMU_TRY(Apqn q, parse_apqn(f["--apqn"]));
  if (verb == "tapq") {
    auto i = g.tapq(q, !sw.count("--no-t"));
    std::string out = "TAPQ " + q.name() + ": " + i.describe() + "\n";
    const int rc = i.rc();
    if (!i.exception() && (rc == ap::rc::kNormal || rc == ap::rc::kResetInProgress ||
                           rc == ap::rc::kDeconfigured || rc == ap::rc::kCheckstopped ||
                           rc == ap::rc::kBusy)) {
      const auto t = ap::TapqInfo::from_gr2(i.gr2);
      char b[96];
      std::snprintf(b, sizeof b, "GR2 0x%016llx: facilities 0x%08x type %u domains %u ml %u depth %u\n",
                    static_cast<unsigned long long>(i.gr2), t.facilities, t.at, t.nd, t.ml, t.qd + 1);
      out += b;
    }
    return Out{out, instr_json(i)};
  }
  if (verb == "zapq" || verb == "rapq") {
    auto i = verb == "zapq" ? g.zapq(q) : g.rapq(q);
    return Out{std::string(verb == "zapq" ? "ZAPQ " : "RAPQ ") + q.name() + ": " + i.describe() +
                   "\n",
               instr_json(i)};
  }
  if (verb == "aqic") {
    const bool enable = !sw.count("--off");
    unsigned isc = 6;
    if (f.count("--isc")) {
      APEMU_TRY(isc, parse_id(f["--isc"], 7));
    }
    if (enable) g.enable_isc(isc);
    auto i = g.aqic(q, enable, isc, enable ? g.nib() : 0);
    return Out{"AQIC " + q.name() + (enable ? " enable isc " + std::to_string(isc) : " disable") +
                   ": " + i.describe() + "\n",
               instr_json(i)};
  }
  if (verb == "nqap") {
    if (!f.count("--hex")) return Error(EINVAL, "--hex BYTES is required");
    APEMU_TRY(auto bytes, parse_hex_bytes(f["--hex"]));
    std::uint64_t psmid = g.next_psmid();
    if (f.count("--psmid")) {
      APEMU_TRY(psmid, kstrtoul(f["--psmid"], 0));
    }
    auto i = g.send(q, psmid, bytes);
    json r = instr_json(i);
    r["psmid"] = psmid;
    return Out{"NQAP " + q.name() + " psmid " + hex64(psmid) + ": " + i.describe() + "\n",
               std::move(r)};
  }
  if (verb == "dqap") {
    std::size_t max = 12288;
    if (f.count("--max")) {
      APEMU_TRY(auto m, kstrtoul(f["--max"], 0));
      max = static_cast<std::size_t>(m);
    }
    std::vector<std::uint8_t> data;
    auto i = g.receive(q, data, max);
    std::string out = "DQAP " + q.name() + ": " + i.describe() + "\n";
    if (!i.exception() && i.cc != 3) {
      out += "psmid " + hex64(i.psmid) + " " + std::to_string(data.size()) + " bytes:";
      char b[4];
      for (std::uint8_t c : data) {
        std::snprintf(b, sizeof b, "%02x", c);
        out += b;
      }
      out += "\n";
    }
    json r = instr_json(i);
    if (!i.exception() && i.cc != 3) {
      r["psmid"] = i.psmid;
      r["bytes"] = data.size();
    }
    return Out{out, std::move(r)};
  }
  if (verb == "rsa") {
    for (const char* k : {"--key", "--in", "--out"})
      if (!f.count(k)) return Error(EINVAL, std::string(k) + " is required");
    APEMU_TRY(auto pem, read_file(f["--key"]));
    APEMU_TRY(guest::RsaKey key, guest::parse_rsa_pem(pem));
    APEMU_TRY(auto in, read_file(f["--in"]));
    const std::size_t mod_len = key.mod_len();
    if (in.size() != mod_len)
      return Error(EINVAL, "input is " + std::to_string(in.size()) + " bytes, the modulus " +
                               std::to_string(mod_len));
    const bool crt = sw.count("--crt"), pub = sw.count("--public");
    if (crt && pub) return Error(EINVAL, "--crt and --public exclude each other");
    if (!pub && !key.has_private()) return Error(EINVAL, "the key has no private part");
    const std::vector<std::uint8_t> msg(in.begin(), in.end());
    Result<std::vector<std::uint8_t>> req = crt   ? guest::build_crb(mod_len, key, msg)
                                            : pub ? guest::build_meb(mod_len, key.n, key.e, msg)
                                                  : guest::build_meb(mod_len, key.n, key.d, msg);
    if (!req) return req.error();
    guest::ExchangeOptions xo;
    if (f.count("--irq")) {
      APEMU_TRY(xo.isc, parse_id(f["--irq"], 7));
      xo.irq = true;
    }
    auto x = g.exchange(q, *req, xo);
    APEMU_TRY_VOID(wait_exchange(tb, *x));
    if (!x->done->result()) {
      Error e = x->done->result().error();
      return Error(e.code, "RSA on " + q.name() + ": " + e.context);
    }
    auto out = guest::convert_type80(x->reply, mod_len);
    if (!out) return Error(out.error().code, "RSA on " + q.name() + ": reply " + out.error().context);
    std::ofstream o(f["--out"], std::ios::binary | std::ios::trunc);
    if (!o) return Error(errno ? errno : EIO, "open " + f["--out"]);
    o.write(reinterpret_cast<const char*>(out->data()), static_cast<std::streamsize>(out->size()));
    o.close();
    if (!o) return Error(EIO, "write " + f["--out"]);
    char b[160];
    std::snprintf(b, sizeof b, "%s %zu-bit %s on %s: psmid 0x%016llx, reply %zu bytes",
                  crt ? "CRT" : "ME", mod_len * 8, pub ? "public" : "private", q.name().c_str(),
                  static_cast<unsigned long long>(x->psmid), x->reply.size());
    std::string text = b;
    if (xo.irq) {
      std::snprintf(b, sizeof b, ", interruption 0x%08x", x->interruption);
      text += b;
    } else {
      text += ", " + std::to_string(x->polls) + " polls";
    }
    return Out{text + "\n", {{"apqn", q.name()},
                              {"psmid", x->psmid},
                              {"reply_bytes", x->reply.size()},
                              {"result_bytes", out->size()},
                              {"interruption", x->interruption},
                              {"polls", x->polls},
                              {"last", instr_json(x->last)}}};
  }
  return Error(EINVAL, "unknown guest verb '" + verb + "'");
}

Result<Out> guest_command(Testbed& tb, const std::vector<std::string>& a) {
  vfio_ap::VfioAp* v = tb.vfio_ap();
  Qemu* qemu = tb.qemu();
  if (!v || !qemu) return Error(ENODEV, "vfio_ap is not loaded");
  if (a.size() < 2)
    return Error(EINVAL, "usage: guest start|stop|show [--mdev UUID] [--name N] [--ignore-requests]");
  auto uuid_of = [&](const std::map<std::string, std::string>& f) -> Result<std::string> {
    auto it = f.find("--mdev");
    if (it == f.end()) return Error(EINVAL, "--mdev UUID is required");
    vfio_ap::MatrixMdev* m = v->find_mdev(it->second);
    if (!m) return Error(ENODEV, "no mdev " + it->second);
    return m->name();
  };
  if (a[1] == "start") {
    std::vector<std::string> rest(a.begin() + 2, a.end());
    GuestOptions go;
    // --ignore-requests takes no value.
    for (auto it = rest.begin(); it != rest.end();) {
      if (*it == "--ignore-requests") {
        go.honour_requests = false;
        it = rest.erase(it);
      } else {
        ++it;
      }
    }
    rest.insert(rest.begin(), {a[0], a[1]});
    APEMU_TRY(auto flags, parse_flags(rest, 2, {"--mdev", "--name"}));
    APEMU_TRY(auto uuid, uuid_of(flags));
    if (auto it = flags.find("--name"); it != flags.end()) go.name = it->second;
    APEMU_TRY_VOID(qemu->start(*v->find_mdev(uuid), go));
    return Out{"", guest_json(*qemu->guest(uuid))};
  }
  if (a[1] == "stop") {
    APEMU_TRY(auto flags, parse_flags(a, 2, {"--mdev"}));
    APEMU_TRY(auto uuid, uuid_of(flags));
    APEMU_TRY_VOID(qemu->stop(uuid));
    return Out{"", {{"mdev", uuid}, {"running", false}}};
  }
  if (a[1] == "show") {
    APEMU_TRY(auto flags, parse_flags(a, 2, {"--mdev"}));
    if (flags.count("--mdev")) {
      APEMU_TRY(auto uuid, uuid_of(flags));
      const Qemu::Guest* g = qemu->guest(uuid);
      if (!g) return Error(ENODEV, "no guest uses mdev " + uuid);
      return Out{guest_text(*g), {{"guests", json::array({guest_json(*g)})}}};
    }
    // In mdev list order (newest first), as before.
    Out out{"", {{"guests", json::array()}}};
    for (vfio_ap::MatrixMdev* m : v->mdevs())
      if (const Qemu::Guest* g = qemu->guest(m->name())) {
        out.text += guest_text(*g);
        out.result["guests"].push_back(guest_json(*g));
      }
    return out;
  }
  static const char* const kApVerbs[] = {"tapq", "rapq", "zapq", "aqic", "qci", "nqap", "dqap", "rsa"};
  for (const char* ap_verb : kApVerbs) {
    if (a[1] != ap_verb) continue;
    std::string mdev;
    for (std::size_t i = 2; i + 1 < a.size(); ++i)
      if (a[i] == "--mdev") mdev = a[i + 1];
    if (mdev.empty()) return Error(EINVAL, "--mdev UUID is required");
    vfio_ap::MatrixMdev* m = v->find_mdev(mdev);
    if (!m) return Error(ENODEV, "no mdev " + mdev);
    return guest_ap_command(tb, *qemu, m->name(), a);
  }
  return Error(EINVAL, "unknown guest verb '" + a[1] + "'");
}

/// clock                  machine time and pending timers
/// clock advance DURATION virtual clock only: run what falls due
Result<Out> clock_command(Testbed& tb, const std::vector<std::string>& a) {
  Runtime& rt = tb.runtime();
  if (a.size() == 3 && a[1] == "advance") {
    APEMU_TRY(auto d, parse_duration(a[2]));
    if (!rt.virtual_clock())
      return Error(EINVAL, "the clock is real time (start with --clock virtual)");
    APEMU_TRY_VOID(rt.advance(d));
  } else if (a.size() != 1) {
    return Error(EINVAL, "usage: clock [advance DURATION]");
  }
  Out out{"now " + format_duration(rt.now()) + (rt.virtual_clock() ? " (virtual)\n" : " (real)\n"),
          {{"now_ns", rt.now().count()},
           {"clock", rt.virtual_clock() ? "virtual" : "real"},
           {"timers", json::array()}}};
  for (const auto& [due, what] : rt.timers()) {
    out.text += "timer " + (what.empty() ? std::string("-") : what) + " in " +
                format_duration(due - rt.now()) + "\n";
    out.result["timers"].push_back(
        {{"name", what.empty() ? json(nullptr) : json(what)}, {"in_ns", (due - rt.now()).count()}});
  }
  return out;
}

Result<Out> execute_verb(Testbed& tb, const std::vector<std::string>& a) {
  if (a.empty()) return Error(EINVAL, "empty command");
  tb.core().held(); // the control server (the entry point) holds the machine lock
  const std::string& verb = a[0];
  if (verb == "tree") {
    const std::string path = a.size() > 1 ? a[1] : "/";
    return Out{tb.dump(path), tree_json(tb, path)};
  }
  if (verb == "clock") return clock_command(tb, a);
  if (verb == "dmesg") {
    Out out{"", {{"lines", json::array()}}};
    for (const auto& l : tb.core().log().lines(LogLevel::Debug)) {
      out.text += l + "\n";
      out.result["lines"].push_back(l);
    }
    return out;
  }
  if (!tb.ap_bus()) return Error(ENODEV, "no AP bus in this machine");
  if (verb == "show") return Out{render_show(tb), show_json(tb)};
  if (verb == "scan") {
    tb.ap_bus()->scan();
    return Out{"", {{"scans", tb.ap_bus()->scans()}}};
  }
  if (verb == "card") return card_command(tb, a);
  if (verb == "guest") return guest_command(tb, a);
  if (verb == "queue") {
    // queue stuck-reset AA.DDDD on|off: RAPQ/ZAPQ of the queue never complete while on.
    if (a.size() != 4 || a[1] != "stuck-reset")
      return Error(EINVAL, "usage: queue stuck-reset AA.DDDD on|off");
    APEMU_TRY(Apqn q, parse_apqn(a[2]));
    APEMU_TRY(bool on, parse_on_off(a[3]));
    APEMU_TRY_VOID(tb.firmware()->set_stuck_in_reset(q, on));
    return Out{"", {{"apqn", q.name()}, {"stuck_in_reset", on}}};
  }
  if (verb == "guest") return guest_command(tb, a);
  if (verb == "domain" || verb == "control-domain") {
    if (a.size() != 3 || (a[1] != "add" && a[1] != "remove"))
      return Error(EINVAL, "usage: " + verb + " add|remove N");
    APEMU_TRY(unsigned d, parse_id(a[2], 255));
    const bool on = a[1] == "add";
    APEMU_TRY_VOID(verb == "domain" ? tb.ap_bus()->set_usage_domain(to_apqi(d), on)
                                    : tb.ap_bus()->set_control_domain(to_apqi(d), on));
    const ap::Qci& qci = tb.ap_bus()->hw().qci();
    return Out{"", {{"domain", d},
                    {"usage_domains", id_array(qci.aqm)},
                    {"control_domains", id_array(qci.adm)}}};
  }
  return Error(EINVAL, "unknown verb '" + verb + "'");
}

} // namespace

Result<CommandOutput> execute_command(Testbed& tb, const std::vector<std::string>& a) {
  APEMU_TRY(Out out, execute_verb(tb, a));
  return CommandOutput{std::move(out.text), out.result.dump()};
}

} // namespace apemu::testbed
