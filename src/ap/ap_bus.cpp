// AP bus: registration, the bus ops table, the binding policy, scans, masks and configuration
// changes (ap_bus.c; ap-bus.md §2.2, §3, §5, §6.5, §7, §11).
#include "apemu/ap/ap_bus.h"

#include <algorithm>
#include <cstdio>

#include "apemu/ap/abi_names.h"
#include "apemu/base/assert.h"
#include "ap_attrs.h"

namespace apemu::ap {

using core::Device;
using profile::InUseArgs;
using uevent::Action;

// ---- devices ----------------------------------------------------------------------------------

static std::string card_name(Apid a) {
  char b[8];
  std::snprintf(b, sizeof b, "card%02x", id(a));
  return b;
}

ApCard::ApCard(core::DeviceKey k, ApBus& bus, Apid a)
    : Device(k, card_name(a), [](Device&) {}), m_bus(&bus), m_id(a) {}

std::optional<ApMode> ApCard::mode() const {
  // Check order of the kernel: accelerator, then CCA, then EP11 (ap-bus.md §3.2).
  if (m_functions & fac::kAccel) return ApMode::Accel;
  if (m_functions & fac::kCca) return ApMode::Cca;
  if (m_functions & fac::kEp11) return ApMode::Ep11;
  return std::nullopt;
}

ApQueue::ApQueue(core::DeviceKey k, ApCard& card, Apqi d)
    : Device(k, Apqn{card.id(), d}.name(), [](Device&) {}), m_card(&card), m_apqi(d) {}

void ApQueue::start_state_machine() {
  // The reset (RAPQ, TAPQ until done, AQIC) completes at once here.
  if (!m_config || m_chkstop) return;
  m_dev_state = DevState::Operating;
  m_sm_state = SmState::Idle;
}

void ApQueue::count_request() {
  ++m_request_count;
  ++m_card->m_request_count;
}

// ---- the bus ops table (struct bus_type ap_bus_type) -----------------------------------------

struct ApBusOps {
  static bool is_card(const Device& d) { return d.devtype() == abi::kApCardType; }
  static const ApCard& card_of(const Device& d) {
    return is_card(d) ? static_cast<const ApCard&>(d) : static_cast<const ApQueue&>(d).card();
  }
  static ApBus& bus_of(const Device& d) { return card_of(d).ap_bus(); }

  /// ap_bus_match: the driver's id table holds the device type, card vs. queue from the flags.
  static int match(Device& dev, const core::Driver& drv) {
    const ApDriverOps& ops = ApBus::ops_of(drv);
    if (is_card(dev) != ops.card_driver) return 0;
    return (ops.types >> card_of(dev).hwtype()) & 1 ? 1 : 0;
  }

  /// ap_uevent (ap-bus.md §3.4): the profile decides between the older content (DEV_TYPE and
  /// MODALIAS on cards and queues) and the newer one (those on cards, MODE on both).
  static Result<void> uevent(const Device& dev, uevent::Env& env) {
    const ApCard& card = card_of(dev);
    const bool newer = card.ap_bus().profile().ap_uevent_mode;
    if (is_card(dev) || !newer) {
      char b[16];
      std::snprintf(b, sizeof b, "%04X", card.hwtype());
      APEMU_TRY_VOID(env.add("DEV_TYPE", b));
      std::snprintf(b, sizeof b, "ap:t%02X", card.hwtype());
      APEMU_TRY_VOID(env.add("MODALIAS", b));
    }
    if (newer)
      if (auto m = card.mode()) APEMU_TRY_VOID(env.add("MODE", mode_name(*m)));
    return {};
  }

  /// ap_device_probe: the binding policy for queues, then the driver's probe.
  static Result<void> probe(Device& dev) {
    core::Driver* drv = dev.driver(); // set by the core for the duration of the probe
    if (!drv) return Error(ENODEV);
    const ApDriverOps& ops = ApBus::ops_of(*drv);
    ApBus& bus = bus_of(dev);
    if (!is_card(dev) && !bus.drv_wants(static_cast<ApQueue&>(dev), ops)) return Error(ENODEV);
    bus.m_bindings_done = false; // every probe re-arms the bindings-complete completion
    if (ops.base.probe) return ops.base.probe(dev);
    return {};
  }

  /// ap_device_remove: the driver's remove, then (queues) flush, ZAPQ, UNINITIATED (§5.2).
  static void remove(Device& dev) {
    if (core::Driver* drv = dev.driver(); drv && ApBus::ops_of(*drv).base.remove)
      ApBus::ops_of(*drv).base.remove(dev);
    if (!is_card(dev)) {
      auto& q = static_cast<ApQueue&>(dev);
      q.m_dev_state = DevState::Uninitiated;
      q.m_sm_state = SmState::ResetStart;
    }
  }

  static const core::BusType& type() {
    static const core::BusType t = [] {
      core::BusType b;
      b.name = std::string(abi::kAp);
      b.match = match;
      b.uevent = uevent;
      b.probe = probe;
      b.remove = remove;
      b.bus_groups = bus_attr_groups();
      return b;
    }();
    return t;
  }
};

// ---- bus setup --------------------------------------------------------------------------------

Result<std::unique_ptr<ApBus>> ApBus::create(core::Core& core, ApHardware& hw,
                                             const ApBusOptions& opt) {
  core.held();
  std::unique_ptr<ApBus> ap(new ApBus(core, hw));
  // Kernel parameters: a given mask starts from all-zero; a parse error leaves it all-zero.
  if (opt.apmask) ap->m_apmask = parse_ap_mask(*opt.apmask, ApidMask{}).value_or(ApidMask{});
  if (opt.aqmask) ap->m_aqmask = parse_ap_mask(*opt.aqmask, ApqiMask{}).value_or(ApqiMask{});
  APEMU_TRY(ap->m_bus, core.bus_register(ApBusOps::type()));
  ap->m_bus->set_data(ap.get());
  APEMU_TRY(ap->m_root, core.root_device_register(std::string(abi::kAp)));
  ap->m_root->set_uevent_subsystem(abi::kAp);
  // ap.domain= is validated at init (ap-bus.md §2.2).
  const int d = opt.default_domain;
  if (d < -1 || d > static_cast<int>(ap->max_domain_id()) ||
      (d >= 0 && !ap->m_aqmask.test(to_apqi(d)))) {
    core.log().warn(std::to_string(d) + " is not a valid cryptographic domain");
    ap->m_ap_domain = -1;
  } else {
    ap->m_ap_domain = d;
  }
  ap->scan();
  ap->arm_config_timer();
  return ap;
}

ApBus::~ApBus() {
  m_core->held();
  if (m_config_timer) m_core->runtime().cancel(m_config_timer);
  // Highest card first: removal from the tail of the large /sys/bus/ap/devices stays cheap.
  for (unsigned a = kMaxApIds; a-- > 0;) remove_card(to_apid(a));
  while (!m_driver_ops.empty()) {
    core::Driver* drv = m_bus->find_driver(m_driver_ops.back().base.name);
    if (drv) unregister_driver(drv);
    else m_driver_ops.pop_back();
  }
  m_core->root_device_unregister(std::move(m_root));
  m_core->bus_unregister(*m_bus);
}

void ApBus::arm_config_timer() {
  Runtime& rt = m_core->runtime();
  if (m_config_timer) rt.cancel(m_config_timer);
  m_config_timer = rt.call_after(
      std::chrono::seconds(m_knobs.config_time),
      [this] {
        m_config_timer = 0;
        scan();
        arm_config_timer();
      },
      "ap_config_timer");
}

void ApBus::set_config_time(int seconds) {
  m_core->held();
  m_knobs.config_time = seconds;
  arm_config_timer();
}

ApQueue* ApBus::queue(Apqn q) const {
  const ApCard* c = card(q.apid);
  return c ? c->queue(q.apqi) : nullptr;
}

std::vector<ApCard*> ApBus::cards() const {
  std::vector<ApCard*> out;
  for (const auto& c : m_cards)
    if (c) out.push_back(c.get());
  return out;
}

std::size_t ApBus::queue_count() const {
  std::size_t n = 0;
  for (const auto& c : m_cards)
    if (c)
      for (const auto& q : c->m_queues) n += q ? 1 : 0;
  return n;
}

std::size_t ApBus::bound_queue_count() const {
  std::size_t n = 0;
  for (const auto& c : m_cards)
    if (c)
      for (const auto& q : c->m_queues) n += (q && q->driver()) ? 1 : 0;
  return n;
}

// ---- drivers and the binding policy -----------------------------------------------------------

const ApDriverOps& ApBus::ops_of(const core::Driver& drv) {
  APEMU_ASSERT(drv.bus_ext()); // every driver on the AP bus registers through register_driver
  return *static_cast<const ApDriverOps*>(drv.bus_ext());
}

Result<core::Driver*> ApBus::register_driver(ApDriverOps ops) {
  m_core->held();
  m_driver_ops.push_back(std::move(ops));
  ApDriverOps& stored = m_driver_ops.back();
  stored.base.bus_ext = &stored; // the core attaches devices inside driver_register
  auto drv = m_core->driver_register(*m_bus, stored.base);
  if (!drv) {
    m_driver_ops.pop_back();
    return drv.error();
  }
  check_bindings_complete();
  return *drv;
}

void ApBus::unregister_driver(core::Driver* drv) {
  m_core->held();
  const ApDriverOps* ops = &ops_of(*drv);
  m_core->driver_unregister(*drv);
  m_driver_ops.remove_if([&](const ApDriverOps& o) { return &o == ops; });
}

bool ApBus::drv_wants(const ApQueue& q, const ApDriverOps& drv) const {
  if (const std::string* o = q.driver_override()) return *o == drv.base.name;
  const bool devres = m_apmask.test(q.apid()) && m_aqmask.test(q.apqi());
  return devres == drv.default_driver;
}

bool ApBus::apqn_owned_by_default(Apqn apqn) const {
  if (const ApQueue* q = queue(apqn); q && q->driver_override()) {
    // 6.19: with an override, default-owned only if bound to a default driver.
    return q->driver() && ops_of(*q->driver()).default_driver;
  }
  return m_apmask.test(apqn.apid) && m_aqmask.test(apqn.apqi);
}

bool ApBus::matrix_owned_by_default(const ApidMask& apm, const ApqiMask& aqm) const {
  if (m_override_count == 0) {
    // Without overrides ownership is apmask × aqmask: two intersections decide.
    return apm.intersects(m_apmask) && aqm.intersects(m_aqmask);
  }
  bool owned = false;
  apm.for_each([&](Apid a) {
    aqm.for_each([&](Apqi d) { owned = owned || apqn_owned_by_default({a, d}); });
  });
  return owned;
}

Result<void> ApBus::set_queue_override(ApQueue& q, std::string_view text) {
  m_core->held();
  // 6.19: overrides and non-default masks exclude each other.
  if (masks_in_use()) return Error(EINVAL, "apmask/aqmask are in use");
  const bool had = q.driver_override() != nullptr;
  APEMU_TRY_VOID(m_core->driver_set_override(q, text));
  m_override_count += (q.driver_override() ? 1 : 0) - (had ? 1 : 0);
  return {};
}

// ---- scans ------------------------------------------------------------------------------------

void ApBus::root_change(const std::vector<std::pair<std::string, std::string>>& env) {
  (void)m_core->device_uevent(*m_root, Action::Change, env);
}

void ApBus::config_uevent(Device& dev, bool configured) {
  if (profile().ap_config_attrs)
    (void)m_core->device_uevent(dev, Action::Change, {{"CONFIG", configured ? "1" : "0"}});
}

void ApBus::remove_queue(ApCard& card, Apqi d) {
  auto q = std::move(card.m_queues[id(d)]);
  if (!q) return;
  if (q->driver_override()) --m_override_count;
  m_core->device_unregister(std::move(q));
}

void ApBus::remove_card(Apid a) {
  if (!m_cards[id(a)]) return;
  // Queues in bus order (as __ap_queue_devices_with_id_unregister walks the bus), then the card.
  for (unsigned d = 0; d < kMaxApIds; ++d)
    remove_queue(*m_cards[id(a)], to_apqi(d));
  m_core->device_unregister(std::move(m_cards[id(a)]));
}

void ApBus::scan_adapter(Apid apid) {
  const Qci& qci = m_hw->qci();
  if (!qci.configured(apid)) {
    remove_card(apid);
    return;
  }
  // The first usage domain whose TAPQ gives info describes the card.
  std::optional<TapqResult> info;
  for (unsigned d = 0; d <= max_domain_id() && !info; ++d) {
    const Apqi q = to_apqi(d);
    if (!qci.usage(q)) continue;
    auto t = m_hw->tapq({apid, q});
    if (t.has_info()) info = t;
  }
  // Types below the profile's oldest supported one get no card (CEX2/CEX3 after 6.4).
  if (!info || info->at < profile().ap_min_card_type || info->at > kApTypeCex8) {
    remove_card(apid);
    return;
  }
  const std::uint32_t functions = info->functions & 0xFFFF0000u;
  ApCard* card = m_cards[id(apid)].get();
  if (card && (card->m_raw_type != info->at || card->m_functions != functions)) {
    remove_card(apid); // a type or mode change re-creates the devices
    card = nullptr;
  }
  if (card) {
    card->m_chkstop = info->rc == rc::kCheckstopped;
    const bool cfg = info->rc != rc::kDeconfigured;
    if (cfg != card->m_config) {
      card->m_config = cfg;
      config_uevent(*card, cfg);
    }
  } else {
    auto c = Device::create<ApCard>(*this, apid);
    c->m_raw_type = info->at;
    c->m_functions = functions;
    c->m_qd = info->qd;
    c->m_ml = info->ml;
    c->m_config = info->rc != rc::kDeconfigured;
    c->m_chkstop = info->rc == rc::kCheckstopped;
    c->set_bus(m_bus);
    c->set_parent(m_root.get());
    c->set_devtype(abi::kApCardType);
    c->set_groups(card_attr_groups());
    if (!m_core->device_add(*c)) return;
    m_cards[id(apid)] = c;
    card = c.get();
  }
  for (unsigned dn = 0; dn < kMaxApIds; ++dn) {
    const Apqi d = to_apqi(dn);
    ApQueue* q = card->queue(d);
    const bool usage = dn <= max_domain_id() && qci.usage(d);
    auto t = usage ? m_hw->tapq({apid, d}) : TapqResult{};
    if (!usage || !t.has_info()) {
      if (q) remove_queue(*card, d);
      continue;
    }
    const bool cfg = t.rc != rc::kDeconfigured, cs = t.rc == rc::kCheckstopped;
    if (!q) {
      auto nq = Device::create<ApQueue>(*card, d);
      nq->m_config = cfg;
      nq->m_chkstop = cs;
      nq->set_bus(m_bus);
      nq->set_parent(card);
      nq->set_devtype(abi::kApQueueType);
      nq->set_groups(queue_attr_groups());
      nq->start_state_machine(); // before a driver binds (ap-bus.md §6.5)
      card->m_queues[dn] = nq;
      if (!m_core->device_add(*nq)) card->m_queues[dn].reset();
      continue;
    }
    if (cs != q->m_chkstop) {
      q->m_chkstop = cs;
      if (cs) q->m_dev_state = DevState::Error;
      else q->start_state_machine();
    }
    if (cfg != q->m_config) {
      q->m_config = cfg;
      if (!cfg) q->m_dev_state = DevState::Error;
      else q->start_state_machine();
      config_uevent(*q, cfg);
    }
  }
}

void ApBus::scan() {
  m_core->held();
  const Qci& now = m_hw->qci();
  const bool changed = !(now.apm == m_qci.apm && now.aqm == m_qci.aqm && now.adm == m_qci.adm);
  if (changed) {
    // New adapters or domains re-arm the bindings-complete completion.
    if (now.apm.minus(m_qci.apm).any() || now.aqm.minus(m_qci.aqm).any()) m_bindings_done = false;
    m_qci = now;
    for (auto& ops : m_driver_ops)
      if (ops.on_config_changed) ops.on_config_changed();
  }
  if (m_ap_domain < 0) {
    // The lowest usable domain with a responding card (ap_select_domain).
    for (unsigned dn = 0; dn <= max_domain_id() && m_ap_domain < 0; ++dn) {
      const Apqi d = to_apqi(dn);
      if (!now.usage(d) || !m_aqmask.test(d)) continue;
      for (unsigned an = 0; an <= max_adapter_id(); ++an) {
        const Apid a = to_apid(an);
        if (!m_apmask.test(a) || !now.configured(a)) continue;
        if (m_hw->tapq({a, d}).rc == rc::kNormal) {
          m_ap_domain = static_cast<int>(dn);
          break;
        }
      }
    }
  }
  for (unsigned an = 0; an < kMaxApIds; ++an) {
    const Apid a = to_apid(an);
    if (an > max_adapter_id()) remove_card(a);
    else scan_adapter(a);
  }
  if (changed)
    for (auto& ops : m_driver_ops)
      if (ops.on_scan_complete) ops.on_scan_complete();
  ++m_scans;
  if (m_scans == 1 && profile().ap_bindings) root_change({{"INITSCAN", "done"}});
  check_bindings_complete();
}

void ApBus::check_bindings_complete() {
  if (!profile().ap_bindings || m_scans == 0) return;
  if (bound_queue_count() != queue_count()) return;
  // 6.19 sends the event when the completion newly completes; before, every passing check did.
  if (profile().ap_bindings_once) {
    if (m_bindings_done) return;
    m_bindings_done = true;
  }
  ++m_bindings_complete_count;
  root_change({{"BINDINGS", "complete"},
               {"COMPLETECOUNT", std::to_string(m_bindings_complete_count)}});
}

// ---- masks ------------------------------------------------------------------------------------

Result<void> ApBus::store_apmask(std::string_view text) {
  m_core->held();
  if (m_override_count > 0) return Error(EINVAL, "a queue has a driver_override");
  APEMU_TRY(ApidMask next, parse_ap_mask(text, m_apmask));
  return commit_mask(&next, nullptr);
}

Result<void> ApBus::store_aqmask(std::string_view text) {
  m_core->held();
  if (m_override_count > 0) return Error(EINVAL, "a queue has a driver_override");
  APEMU_TRY(ApqiMask next, parse_ap_mask(text, m_aqmask));
  return commit_mask(nullptr, &next);
}

Result<void> ApBus::commit_mask(const ApidMask* apm, const ApqiMask* aqm) {
  if (apm ? *apm == m_apmask : *aqm == m_aqmask) return {};
  const InUseArgs args = profile().ap_in_use;
  // Newly set bits move APQNs to the default drivers: drivers with in_use may veto that.
  const bool newly = apm ? apm->minus(m_apmask).any() : aqm->minus(m_aqmask).any();
  if (newly && args != InUseArgs::None) {
    const ApidMask in_apm = apm ? apm->minus(m_apmask)
                                : args == InUseArgs::AllOnes ? ApidMask::all() : m_apmask;
    const ApqiMask in_aqm = aqm ? aqm->minus(m_aqmask)
                                : args == InUseArgs::AllOnes ? ApqiMask::all() : m_aqmask;
    for (auto& ops : m_driver_ops)
      if (ops.in_use && ops.in_use(in_apm, in_aqm))
        return Error(EBUSY, "APQNs in use by " + ops.base.name);
  }
  if (apm) m_apmask = *apm;
  else m_aqmask = *aqm;
  revise_bindings();
  if (profile().ap_mask_uevents)
    root_change({{apm ? "APMASK" : "AQMASK", (apm ? m_apmask.hex() : m_aqmask.hex()) + "\n"}});
  return {};
}

void ApBus::revise_bindings() {
  for (const auto& card : m_cards) {
    if (!card) continue;
    for (const auto& qref : card->m_queues) {
      if (!qref) continue;
      ApQueue& q = *qref;
      // The kernel's NULL-driver quirk: an unbound queue always gets a probe (ap-bus.md §5.3).
      if (q.driver() && drv_wants(q, ops_of(*q.driver()))) continue;
      m_core->device_release_driver(q);
      (void)m_core->device_attach(q);
    }
  }
}

Result<void> ApBus::set_ap_domain(int domain) {
  m_core->held();
  if (domain < 0 || domain > static_cast<int>(max_domain_id()) ||
      !m_aqmask.test(to_apqi(domain)))
    return Error(EINVAL);
  m_ap_domain = domain;
  return {};
}

// ---- configuration changes --------------------------------------------------------------------

Result<void> ApBus::sclp_configure(Apid a, bool on) {
  m_core->held();
  ApCard* c = card(a);
  Adapter* ad = m_hw->adapter(a);
  if (!c || !ad) return Error(ENODEV);
  if (on != c->m_config) ad->configured = on;
  c->m_config = on;
  config_uevent(*c, on); // always sent, even when unchanged
  return {};
}

Result<void> ApBus::set_checkstop(Apid a, bool on) {
  m_core->held();
  Adapter* ad = m_hw->adapter(a);
  if (!ad) return Error(ENODEV);
  ad->chkstop = on;
  return {};
}

Result<void> ApBus::hotplug_adapter(Adapter a) {
  m_core->held();
  APEMU_TRY_VOID(m_hw->add_adapter(std::move(a)));
  scan();
  return {};
}

Result<void> ApBus::hotunplug_adapter(Apid a) {
  m_core->held();
  APEMU_TRY_VOID(m_hw->remove_adapter(a));
  scan();
  return {};
}

Result<void> ApBus::set_qci_domain(ApqiMask Qci::*mask, Apqi d, bool on) {
  m_core->held();
  if (id(d) > m_hw->qci().nd) return Error(ERANGE);
  (m_hw->qci().*mask).set(d, on);
  scan();
  return {};
}

Result<void> ApBus::set_usage_domain(Apqi d, bool on) { return set_qci_domain(&Qci::aqm, d, on); }

Result<void> ApBus::set_control_domain(Apqi d, bool on) {
  return set_qci_domain(&Qci::adm, d, on);
}

} // namespace apemu::ap
