// TOML topology files (toml++), validated key by key.
#include "apemu/topology/topology.h"

#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

namespace apemu::topology {

namespace {

struct Ctx {
  const std::string& source;
  Error err(const toml::node* n, const std::string& key, const std::string& why,
            int code = EINVAL) const {
    const auto line = n ? n->source().begin.line : 0;
    return Error(code, source + ":" + std::to_string(line) + ": key '" + key + "': " + why);
  }
};

template <class Id>
Result<IdMask<Id>> id_list(const Ctx& c, const toml::node& n, const std::string& key,
                           unsigned max_id) {
  if (auto s = n.value<std::string>()) {
    auto m = ap::parse_id_list<Id>(*s, max_id);
    if (!m) return c.err(&n, key, m.error().context, m.error().code);
    return *m;
  }
  if (auto arr = n.as_array()) {
    IdMask<Id> m;
    for (const auto& e : *arr) {
      auto v = e.value<std::int64_t>();
      if (!v || *v < 0) return c.err(&e, key, "expected non-negative integers");
      if (*v > max_id)
        return c.err(&e, key, "id " + std::to_string(*v) + " above " + std::to_string(max_id), ERANGE);
      m.set(Id{static_cast<std::uint8_t>(*v)});
    }
    return m;
  }
  if (auto v = n.value<std::int64_t>()) {
    if (*v < 0 || *v > max_id) return c.err(&n, key, "id out of range", ERANGE);
    IdMask<Id> m;
    m.set(Id{static_cast<std::uint8_t>(*v)});
    return m;
  }
  return c.err(&n, key, "expected an id list such as \"4-7,0x10\" or an array");
}

Result<bool> get_bool(const Ctx& c, const toml::node& n, const std::string& key) {
  // Strict: toml++'s value<bool>() would also accept integers.
  if (const auto* b = n.as_boolean()) return b->get();
  return c.err(&n, key, "expected true or false");
}

Result<std::int64_t> get_int(const Ctx& c, const toml::node& n, const std::string& key,
                             std::int64_t lo, std::int64_t hi) {
  const auto* i = n.as_integer();
  if (!i) return c.err(&n, key, "expected an integer");
  const std::int64_t* v = &i->get();
  if (*v < lo || *v > hi)
    return c.err(&n, key, "must be " + std::to_string(lo) + ".." + std::to_string(hi), ERANGE);
  return *v;
}

Result<void> parse_adapter(const Ctx& c, const toml::table& t, Topology& topo,
                           std::set<unsigned>& seen) {
  static const std::set<std::string> known = {"id",       "type",     "mode",   "domains",
                                              "depth",    "serialnr", "config", "online",
                                              "chkstop",  "max_msg_units"};
  for (const auto& [k, v] : t)
    if (!known.count(std::string(k.str())))
      return c.err(&v, "adapter." + std::string(k.str()), "unknown key");
  ap::Adapter a;
  const auto* id = t.get("id");
  if (!id) return c.err(&t, "adapter.id", "missing");
  APEMU_TRY(auto idv, get_int(c, *id, "adapter.id", 0, topo.hw.qci().na));
  a.id = to_apid(static_cast<unsigned>(idv));
  if (!seen.insert(apemu::id(a.id)).second) return c.err(id, "adapter.id", "duplicate adapter id");
  const auto* type = t.get("type");
  if (!type) return c.err(&t, "adapter.type", "missing");
  auto ts = type->value<std::string>();
  auto raw = ts ? ap::parse_type_name(*ts) : Result<int>(Error(EINVAL));
  if (!raw)
    return c.err(type, "adapter.type",
                 "expected one of CEX2A, CEX2C, CEX3A, CEX3C, CEX4, CEX5, CEX6, CEX7, CEX8");
  a.raw_type = *raw;
  // CEX2/CEX3 have their mode in the type; CEX4+ default to CCA.
  if (a.raw_type < ap::kApTypeCex4)
    a.mode = a.raw_type == ap::kApTypeCex2a || a.raw_type == ap::kApTypeCex3a ? ap::ApMode::Accel
                                                                              : ap::ApMode::Cca;
  if (const auto* m = t.get("mode")) {
    auto ms = m->value<std::string>();
    auto mode = ms ? ap::parse_mode_name(*ms) : Result<ap::ApMode>(Error(EINVAL));
    if (!mode) return c.err(m, "adapter.mode", "expected accel, cca or ep11");
    if (!ap::type_allows_mode(a.raw_type, *mode))
      return c.err(m, "adapter.mode", *ts + " cannot run in " + *ms + " mode");
    a.mode = *mode;
  }
  if (const auto* d = t.get("domains")) {
    APEMU_TRY(a.domains, id_list<Apqi>(c, *d, "adapter.domains", topo.hw.qci().nd));
  }
  if (const auto* d = t.get("depth")) {
    APEMU_TRY(auto v, get_int(c, *d, "adapter.depth", 1, 16));
    a.depth = static_cast<int>(v);
  }
  if (const auto* d = t.get("max_msg_units")) {
    APEMU_TRY(auto v, get_int(c, *d, "adapter.max_msg_units", 0, 15));
    a.ml = static_cast<int>(v);
  }
  if (const auto* d = t.get("serialnr")) {
    auto s = d->value<std::string>();
    if (!s || s->size() > 16) return c.err(d, "adapter.serialnr", "expected a string of at most 16 characters");
    a.serialnr = *s;
  }
  if (const auto* d = t.get("config")) {
    APEMU_TRY(a.configured, get_bool(c, *d, "adapter.config"));
  }
  if (const auto* d = t.get("chkstop")) {
    APEMU_TRY(a.chkstop, get_bool(c, *d, "adapter.chkstop"));
  }
  if (const auto* d = t.get("online")) {
    APEMU_TRY(bool on, get_bool(c, *d, "adapter.online"));
    if (!on) topo.offline_cards.push_back(a.id);
  }
  if (auto r = topo.hw.add_adapter(std::move(a)); !r) return c.err(id, "adapter", r.error().context);
  return {};
}

} // namespace

Result<Topology> parse(std::string_view text, const std::string& source) {
  Ctx c{source};
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Error(EINVAL, source + ":" + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()));
  }
  static const std::set<std::string> known = {
      "apxa",          "max_adapter_id", "max_domain_id", "usage_domains", "control_domains",
      "default_domain", "interrupts",    "qci",           "apmask",        "aqmask",
      "adapter"};
  for (const auto& [k, v] : root)
    if (!known.count(std::string(k.str()))) return c.err(&v, std::string(k.str()), "unknown key");

  Topology topo;
  topo.source = source;
  ap::Qci& qci = topo.hw.qci();
  if (const auto* n = root.get("qci")) {
    APEMU_TRY(qci.available, get_bool(c, *n, "qci"));
  }
  if (const auto* n = root.get("apxa")) {
    APEMU_TRY(qci.apxa, get_bool(c, *n, "apxa"));
  }
  qci.na = 63;
  qci.nd = 15;
  for (auto [key, field] : {std::pair{"max_adapter_id", &qci.na}, {"max_domain_id", &qci.nd}}) {
    const auto* n = root.get(key);
    if (!n) continue;
    if (!qci.apxa) return c.err(n, key, "needs apxa = true (without APXA the limits are 63/15)");
    APEMU_TRY(auto v, get_int(c, *n, key, 0, 255));
    *field = static_cast<unsigned>(v);
  }
  if (const auto* n = root.get("usage_domains")) {
    APEMU_TRY(qci.aqm, id_list<Apqi>(c, *n, "usage_domains", qci.nd));
  } else {
    qci.aqm = ApqiMask::range(qci.nd);
  }
  if (const auto* n = root.get("control_domains")) {
    APEMU_TRY(qci.adm, id_list<Apqi>(c, *n, "control_domains", qci.nd));
  } else {
    qci.adm = qci.aqm; // usage domains are control domains too on a typical LPAR
  }
  if (const auto* n = root.get("interrupts")) {
    APEMU_TRY(bool irq, get_bool(c, *n, "interrupts"));
    topo.hw.set_interrupts(irq);
  }
  if (const auto* n = root.get("default_domain")) {
    APEMU_TRY(auto v, get_int(c, *n, "default_domain", 0, qci.nd));
    if (!qci.aqm.test(to_apqi(static_cast<unsigned>(v))))
      return c.err(n, "default_domain", "not a usage domain");
    topo.bus.default_domain = static_cast<int>(v);
  } else {
    // Omitted: the first usage domain.
    if (qci.aqm.up_to(qci.nd).any()) {
      int first = -1;
      qci.aqm.up_to(qci.nd).for_each([&](Apqi d) {
        if (first < 0) first = static_cast<int>(apemu::id(d));
      });
      topo.bus.default_domain = first;
    }
  }
  for (auto [key, field] : {std::pair{"apmask", &topo.bus.apmask}, {"aqmask", &topo.bus.aqmask}}) {
    if (const auto* n = root.get(key)) {
      auto s = n->value<std::string>();
      if (!s) return c.err(n, key, "expected a mask string such as \"0xff\" or \"+0-15\"");
      if (!ap::parse_ap_mask(*s, ApidMask{})) return c.err(n, key, "invalid mask syntax");
      *field = *s;
    }
  }
  if (const auto* n = root.get("adapter")) {
    const auto* arr = n->as_array();
    if (!arr) return c.err(n, "adapter", "expected [[adapter]] tables");
    std::set<unsigned> seen;
    for (const auto& e : *arr) {
      const auto* t = e.as_table();
      if (!t) return c.err(&e, "adapter", "expected a table");
      APEMU_TRY_VOID(parse_adapter(c, *t, topo, seen));
    }
  }
  return topo;
}

Result<Topology> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(errno ? errno : ENOENT, path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

} // namespace apemu::topology
