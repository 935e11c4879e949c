// The verbs of `apemu ctl` (see control.h): each maps to a C++ call on the Testbed.
#include "apemu/testbed/control.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "apemu/ap/zcrypt.h"
#include "apemu/base/parse.h"
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
