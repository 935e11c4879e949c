// The verbs of `apemu ctl` (see control.h): each maps to a C++ call on the Testbed.
#include "apemu/testbed/control.h"

#include <map>

#include "apemu/base/parse.h"
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

Result<std::string> card_command(Testbed& tb, const std::vector<std::string>& a) {
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
    return std::string();
  }
  if (a[1] == "remove") {
    APEMU_TRY_VOID(bus->hotunplug_adapter(to_apid(id)));
    return std::string();
  }
  if (a.size() < 4) return Error(EINVAL, "usage: card config|chkstop ID on|off");
  APEMU_TRY(bool on, parse_on_off(a[3]));
  if (a[1] == "config") {
    APEMU_TRY_VOID(bus->sclp_configure(to_apid(id), on));
    return std::string();
  }
  if (a[1] == "chkstop") {
    APEMU_TRY_VOID(bus->set_checkstop(to_apid(id), on));
    return std::string();
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

Result<std::string> guest_command(Testbed& tb, const std::vector<std::string>& a) {
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
    return std::string();
  }
  if (a[1] == "stop") {
    APEMU_TRY(auto flags, parse_flags(a, 2, {"--mdev"}));
    APEMU_TRY(auto uuid, uuid_of(flags));
    APEMU_TRY_VOID(qemu->stop(uuid));
    return std::string();
  }
  if (a[1] == "show") {
    APEMU_TRY(auto flags, parse_flags(a, 2, {"--mdev"}));
    if (flags.count("--mdev")) {
      APEMU_TRY(auto uuid, uuid_of(flags));
      const Qemu::Guest* g = qemu->guest(uuid);
      if (!g) return Error(ENODEV, "no guest uses mdev " + uuid);
      return guest_text(*g);
    }
    // In mdev list order (newest first), as before.
    std::string out;
    for (vfio_ap::MatrixMdev* m : v->mdevs())
      if (const Qemu::Guest* g = qemu->guest(m->name())) out += guest_text(*g);
    return out;
  }
  return Error(EINVAL, "unknown guest verb '" + a[1] + "'");
}

/// clock                  machine time and pending timers
/// clock advance DURATION virtual clock only: run what falls due
Result<std::string> clock_command(Testbed& tb, const std::vector<std::string>& a) {
  Runtime& rt = tb.runtime();
  if (a.size() == 3 && a[1] == "advance") {
    APEMU_TRY(auto d, parse_duration(a[2]));
    if (!rt.virtual_clock())
      return Error(EINVAL, "the clock is real time (start with --clock virtual)");
    APEMU_TRY_VOID(rt.advance(d));
  } else if (a.size() != 1) {
    return Error(EINVAL, "usage: clock [advance DURATION]");
  }
  std::string out = "now " + format_duration(rt.now()) + (rt.virtual_clock() ? " (virtual)\n" : " (real)\n");
  for (const auto& [due, what] : rt.timers())
    out += "timer " + (what.empty() ? std::string("-") : what) + " in " +
           format_duration(due - rt.now()) + "\n";
  return out;
}

Result<std::string> execute_text(Testbed& tb, const std::vector<std::string>& a) {
  if (a.empty()) return Error(EINVAL, "empty command");
  tb.core().held(); // the control server (the entry point) holds the machine lock
  const std::string& verb = a[0];
  if (verb == "tree") return tb.dump(a.size() > 1 ? a[1] : "/");
  if (verb == "clock") return clock_command(tb, a);
  if (verb == "dmesg") {
    std::string out;
    for (const auto& l : tb.core().log().lines(LogLevel::Debug)) out += l + "\n";
    return out;
  }
  if (!tb.ap_bus()) return Error(ENODEV, "no AP bus in this machine");
  if (verb == "show") return render_show(tb);
  if (verb == "scan") {
    tb.ap_bus()->scan();
    return std::string();
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
    return std::string();
  }
  return Error(EINVAL, "unknown verb '" + verb + "'");
}

} // namespace

Result<CommandOutput> execute_command(Testbed& tb, const std::vector<std::string>& a) {
  APEMU_TRY(std::string text, execute_text(tb, a));
  return CommandOutput{std::move(text), {}};
}

} // namespace apemu::testbed
