// AP bus: registration, matching, the binding policy, scans, masks and configuration changes
// (ap_bus.c; ap-bus.md §2.2, §3, §5, §6.5, §7).
#include "apemu/ap/ap_bus.h"

#include <algorithm>
#include <cstdio>

#include "apemu/ap/abi_names.h"
#include "apemu/base/assert.h"
#include "ap_attrs.h"

namespace apemu::ap {

using core::Device;
using uevent::Action;

static std::string hex2(unsigned v) {
  char b[8];
  std::snprintf(b, sizeof b, "%02x", v);
  return b;
}

// ---- devices ----------------------------------------------------------------------------------

ApCard::ApCard(core::DeviceKey k, ApBus& bus, unsigned id)
    : Device(k, "card" + hex2(id), [](Device&) {}), m_bus(&bus), m_id(id) {}

std::optional<ApMode> ApCard::mode() const {
  // Check order of the kernel: accelerator, then CCA, then EP11 (ap-bus.md §3.2).
  if (m_functions & fac::kAccel) return ApMode::Accel;
  if (m_functions & fac::kCca) return ApMode::Cca;
  if (m_functions & fac::kEp11) return ApMode::Ep11;
  return std::nullopt;
}

unsigned ApCard::max_msg_size() const {
  // Newest rule: ml × 4096 only if ml > 3, else AP_DEFAULT_MAX_MSG_SIZE (ap-bus.md §4.1).
  return m_ml > 3 ? static_cast<unsigned>(m_ml) * 4096u : 12288u;
}

static std::string queue_name(unsigned apid, unsigned apqi) {
  char b[16];
  std::snprintf(b, sizeof b, "%02x.%04x", apid, apqi);
  return b;
}

ApQueue::ApQueue(core::DeviceKey k, ApCard& card, unsigned apqi)
    : Device(k, queue_name(card.id(), apqi), [](Device&) {}), m_card(&card), m_apqi(apqi) {}

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

// ---- bus setup --------------------------------------------------------------------------------

Result<std::unique_ptr<ApBus>> ApBus::create(core::Core& core, ApHardware& hw,
                                             const ApBusOptions& opt) {
  core.held();
  std::unique_ptr<ApBus> ap(new ApBus(core, hw));
  // Kernel parameters: a given mask starts from all-zero; a parse error leaves it all-zero.
  if (opt.apmask) ap->m_apmask = parse_ap_mask(*opt.apmask, Mask256{}).value_or(Mask256{});
  if (opt.aqmask) ap->m_aqmask = parse_ap_mask(*opt.aqmask, Mask256{}).value_or(Mask256{});
  ApBus* self = ap.get();
  core::BusType type;
  type.name = std::string(abi::kAp);
  type.match = [self](Device& d, const core::Driver& drv) { return self->match(d, drv); };
  type.uevent = [self](const Device& d, uevent::Env& env) { return self->uevent(d, env); };
  type.probe = [self](Device& d) { return self->probe(d); };
  type.remove = [self](Device& d) { self->remove(d); };
  type.bus_groups = bus_attr_groups();
  APEMU_TRY(ap->m_bus, core.bus_register(std::move(type)));
  ap->m_bus->set_data(self);
  APEMU_TRY(ap->m_root, core.root_device_register(std::string(abi::kAp)));
  ap->m_root->set_uevent_subsystem(abi::kAp);
  // ap.domain= is validated at init (ap-bus.md §2.2).
  const int d = opt.default_domain;
  if (d < -1 || d > static_cast<int>(ap->max_domain_id()) ||
      (d >= 0 && !ap->m_aqmask.test(static_cast<unsigned>(d)))) {
    core.log().warn(std::to_string(d) + " is not a valid cryptographic domain");
    ap->m_ap_domain = -1;
  } else {
    ap->m_ap_domain = d;
  }
  ap->scan();
  ap->arm_config_timer();
  return ap;
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

ApBus::~ApBus() {
  m_core->held();
  if (m_config_timer) m_core->runtime().cancel(m_config_timer);
  // Highest card first: removal from the tail of the large /sys/bus/ap/devices stays cheap.
  for (unsigned id = kMaxApIds; id-- > 0;) remove_card(id);
  while (!m_drivers.empty()) unregister_driver(m_drivers.back().first);
  m_core->root_device_unregister(std::move(m_root));
  m_core->bus_unregister(*m_bus);
}

unsigned ApBus::max_adapter_id() const {
  const Qci& q = m_hw->qci();
  return q.available && q.apxa && q.na ? q.na : 63;
}

unsigned ApBus::max_domain_id() const {
  const Qci& q = m_hw->qci();
  return q.available && q.apxa && q.nd ? q.nd : 15;
}

ApQueue* ApBus::queue(unsigned apid, unsigned apqi) const {
  if (apid >= kMaxApIds || apqi >= kMaxApIds || !m_cards[apid]) return nullptr;
  return m_cards[apid]->queue(apqi);
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

Result<core::Driver*> ApBus::register_driver(ApDriverOps ops) {
  m_core->held();
  // The AP flags must be known before the core attaches devices in driver_register.
  m_drivers.emplace_back(nullptr, ops);
  const std::size_t slot = m_drivers.size() - 1;
  auto drv = m_core->driver_register(*m_bus, ops.base);
  if (!drv) {
    m_drivers.erase(m_drivers.begin() + static_cast<std::ptrdiff_t>(slot));
    return drv.error();
  }
  m_drivers[slot].first = *drv;
  check_bindings_complete();
  return *drv;
}

void ApBus::unregister_driver(core::Driver* drv) {
  m_core->held();
  auto it = std::find_if(m_drivers.begin(), m_drivers.end(),
                         [&](const auto& e) { return e.first == drv; });
  if (it == m_drivers.end()) return;
  m_core->driver_unregister(*drv);
  m_drivers.erase(it);
}

const ApDriverOps* ApBus::driver_ops(const core::Driver* drv) const {
  for (const auto& [d, ops] : m_drivers)
    if (d == drv || (!d && ops.base.name == drv->name())) return &ops;
  return nullptr;
}

int ApBus::match(Device& dev, const core::Driver& drv) const {
  const ApDriverOps* ops = driver_ops(&drv);
  if (!ops) return 0;
  if (&dev == m_root.get()) return 0;
  const bool is_card = dynamic_cast<ApCard*>(&dev) != nullptr;
  if (is_card != ops->card_driver) return 0;
  const ApCard& card = is_card ? static_cast<ApCard&>(dev) : static_cast<ApQueue&>(dev).card();
  return card.hwtype() >= kApTypeCex4 && card.hwtype() <= kApTypeCex8 ? 1 : 0;
}

Result<void> ApBus::uevent(const Device& dev, uevent::Env& env) const {
  if (auto* card = dynamic_cast<const ApCard*>(&dev)) {
    char b[16];
    std::snprintf(b, sizeof b, "%04X", card->hwtype());
    APEMU_TRY_VOID(env.add("DEV_TYPE", b));
    std::snprintf(b, sizeof b, "ap:t%02X", card->hwtype());
    APEMU_TRY_VOID(env.add("MODALIAS", b));
    if (auto m = card->mode()) APEMU_TRY_VOID(env.add("MODE", mode_name(*m)));
  } else if (auto* q = dynamic_cast<const ApQueue*>(&dev)) {
    if (auto m = q->card().mode()) APEMU_TRY_VOID(env.add("MODE", mode_name(*m)));
  }
  return {};
}

bool ApBus::apqn_owned_by_default(unsigned apid, unsigned apqi) const {
  if (ApQueue* q = queue(apid, apqi); q && q->m_driver_override) {
    // 6.19: with an override, default-owned only if bound to a default driver.
    const ApDriverOps* ops = q->driver() ? driver_ops(q->driver()) : nullptr;
    return ops && ops->default_driver;
  }
  return m_apmask.test(apid) && m_aqmask.test(apqi);
}

bool ApBus::matrix_owned_by_default(const Mask256& apm, const Mask256& aqm) const {
  bool owned = false;
  apm.for_each([&](unsigned a) {
    if (owned) return;
    aqm.for_each([&](unsigned d) { owned = owned || apqn_owned_by_default(a, d); });
  });
  return owned;
}

Result<void> ApBus::probe(Device& dev) {
  core::Driver* drv = dev.driver(); // set by the core for the duration of the probe
  const ApDriverOps* ops = drv ? driver_ops(drv) : nullptr;
  if (!ops) return Error(ENODEV);
  if (auto* q = dynamic_cast<ApQueue*>(&dev)) {
    if (q->m_driver_override) {
      if (*q->m_driver_override != drv->name()) return Error(ENODEV);
    } else {
      const bool devres = m_apmask.test(q->apid()) && m_aqmask.test(q->apqi());
      if (devres != ops->default_driver) return Error(ENODEV);
    }
  }
  m_bindings_done = false; // the completion is re-armed by every probe
  if (ops->base.probe) return ops->base.probe(dev);
  return {};
}

void ApBus::remove(Device& dev) {
  core::Driver* drv = dev.driver();
  const ApDriverOps* ops = drv ? driver_ops(drv) : nullptr;
  if (ops && ops->base.remove) ops->base.remove(dev);
  if (auto* q = dynamic_cast<ApQueue*>(&dev)) {
    // Flush, SHUTDOWN, ZAPQ, then UNINITIATED (ap-bus.md §5.2).
    q->m_dev_state = DevState::Uninitiated;
    q->m_sm_state = SmState::ResetStart;
  }
}

// ---- scans ------------------------------------------------------------------------------------

void ApBus::root_change(const std::vector<std::pair<std::string, std::string>>& env) {
  (void)m_core->device_uevent(*m_root, Action::Change, env);
}

void ApBus::remove_queue(ApCard& card, unsigned apqi) {
  auto q = std::move(card.m_queues[apqi]);
  if (q) m_core->device_unregister(std::move(q));
}

void ApBus::remove_card(unsigned apid) {
  if (!m_cards[apid]) return;
  // Queues in bus order (as __ap_queue_devices_with_id_unregister walks the bus), then the card.
  for (unsigned d = 0; d < kMaxApIds; ++d) remove_queue(*m_cards[apid], d);
  m_core->device_unregister(std::move(m_cards[apid]));
}

void ApBus::scan_adapter(unsigned apid) {
  const Qci& qci = m_hw->qci();
  const bool configured = qci.available ? qci.apm.test(apid) : apid <= 63;
  if (!configured) {
    remove_card(apid);
    return;
  }
  // The first usage domain whose TAPQ gives info describes the card.
  std::optional<TapqResult> info;
  for (unsigned d = 0; d <= max_domain_id() && !info; ++d) {
    const bool usage = qci.available ? qci.aqm.test(d) : d <= 15;
    if (!usage) continue;
    auto t = m_hw->tapq(apid, d);
    if (t.has_info()) info = t;
  }
  if (!info || info->at == 0 || info->at < kApTypeCex4 || info->at > kApTypeCex8) {
    remove_card(apid);
    return;
  }
  const std::uint32_t functions = info->functions & 0xFFFF0000u;
  ApCard* card = m_cards[apid].get();
  if (card && (card->m_raw_type != info->at || card->m_functions != functions)) {
    remove_card(apid); // a type or mode change re-creates the devices
    card = nullptr;
  }
  if (card) {
    card->m_chkstop = info->rc == rc::kCheckstopped;
    const bool cfg = info->rc != rc::kDeconfigured;
    if (cfg != card->m_config) {
      card->m_config = cfg;
      (void)m_core->device_uevent(*card, Action::Change, {{"CONFIG", cfg ? "1" : "0"}});
    }
  } else {
    auto c = Device::create<ApCard>(*this, apid);
    c->m_raw_type = info->at;
    c->m_hwtype = info->at;
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
    m_cards[apid] = c;
    card = c.get();
  }
  for (unsigned d = 0; d < kMaxApIds; ++d) {
    ApQueue* q = card->m_queues[d].get();
    const bool usage = d <= max_domain_id() && (qci.available ? qci.aqm.test(d) : d <= 15);
    auto t = usage ? m_hw->tapq(apid, d) : TapqResult{};
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
      card->m_queues[d] = nq;
      if (!m_core->device_add(*nq)) card->m_queues[d].reset();
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
      (void)m_core->device_uevent(*q, Action::Change, {{"CONFIG", cfg ? "1" : "0"}});
    }
  }
}

void ApBus::scan() {
  m_core->held();
  const Qci& now = m_hw->qci();
  const bool changed = !(now.apm == m_qci.apm && now.aqm == m_qci.aqm && now.adm == m_qci.adm);
  if (changed) {
    // New adapters or domains re-arm the bindings-complete completion.
    if (!(now.apm & ~m_qci.apm).none() || !(now.aqm & ~m_qci.aqm).none()) m_bindings_done = false;
    m_qci = now;
    for (auto& [drv, ops] : m_drivers)
      if (ops.on_config_changed) ops.on_config_changed();
  }
  if (m_ap_domain < 0) {
    // The lowest usable domain with a responding card (ap_select_domain).
    for (unsigned d = 0; d <= max_domain_id() && m_ap_domain < 0; ++d) {
      if (!(now.available ? now.aqm.test(d) : d <= 15) || !m_aqmask.test(d)) continue;
      for (unsigned a = 0; a <= max_adapter_id(); ++a) {
        if (!m_apmask.test(a) || !(now.available ? now.apm.test(a) : a <= 63)) continue;
        if (m_hw->tapq(a, d).rc == rc::kNormal) {
          m_ap_domain = static_cast<int>(d);
          break;
        }
      }
    }
  }
  for (unsigned apid = 0; apid < kMaxApIds; ++apid) {
    if (apid > max_adapter_id()) remove_card(apid);
    else scan_adapter(apid);
  }
  if (changed)
    for (auto& [drv, ops] : m_drivers)
      if (ops.on_scan_complete) ops.on_scan_complete();
  ++m_scans;
  if (m_scans == 1) root_change({{"INITSCAN", "done"}});
  check_bindings_complete();
}

void ApBus::check_bindings_complete() {
  if (m_scans == 0 || m_bindings_done) return;
  if (bound_queue_count() != queue_count()) return;
  m_bindings_done = true;
  ++m_bindings_complete_count;
  root_change({{"BINDINGS", "complete"}, {"COMPLETECOUNT", std::to_string(m_bindings_complete_count)}});
}

// ---- masks ------------------------------------------------------------------------------------

Result<void> ApBus::store_apmask(std::string_view text) {
  m_core->held();
  if (m_override_count > 0) return Error(EINVAL, "a queue has a driver_override");
  APEMU_TRY(Mask256 next, parse_ap_mask(text, m_apmask));
  return commit_mask(true, next);
}

Result<void> ApBus::store_aqmask(std::string_view text) {
  m_core->held();
  if (m_override_count > 0) return Error(EINVAL, "a queue has a driver_override");
  APEMU_TRY(Mask256 next, parse_ap_mask(text, m_aqmask));
  return commit_mask(false, next);
}

Result<void> ApBus::commit_mask(bool adapters, const Mask256& next) {
  Mask256& cur = adapters ? m_apmask : m_aqmask;
  if (next == cur) return {};
  const Mask256 newly = next & ~cur;
  if (!newly.none()) {
    // 6.19: the other mask is passed as all ones.
    const Mask256 apm = adapters ? newly : Mask256::all();
    const Mask256 aqm = adapters ? Mask256::all() : newly;
    for (auto& [drv, ops] : m_drivers)
      if (ops.in_use && ops.in_use(apm, aqm)) return Error(EBUSY, "APQNs in use by " + ops.base.name);
  }
  cur = next;
  revise_bindings();
  root_change({{adapters ? "APMASK" : "AQMASK", cur.hex() + "\n"}});
  return {};
}

void ApBus::revise_bindings() {
  for (const auto& card : m_cards) {
    if (!card) continue;
    for (const auto& qref : card->m_queues) {
      if (!qref) continue;
      ApQueue& q = *qref;
      bool reprobe;
      if (q.m_driver_override) {
        reprobe = !q.driver() || q.driver()->name() != *q.m_driver_override;
      } else if (!q.driver()) {
        reprobe = true; // the kernel's NULL-driver quirk: always try (ap-bus.md §5.3)
      } else {
        const bool devres = m_apmask.test(q.apid()) && m_aqmask.test(q.apqi());
        const ApDriverOps* ops = driver_ops(q.driver());
        reprobe = devres != (ops && ops->default_driver);
      }
      if (!reprobe) continue;
      m_core->device_release_driver(q);
      (void)m_core->device_attach(q);
    }
  }
}

Result<void> ApBus::set_ap_domain(int domain) {
  m_core->held();
  if (domain < 0 || domain > static_cast<int>(max_domain_id()) ||
      !m_aqmask.test(static_cast<unsigned>(domain)))
    return Error(EINVAL);
  m_ap_domain = domain;
  return {};
}

// ---- configuration changes --------------------------------------------------------------------

Result<void> ApBus::sclp_configure(unsigned apid, bool on) {
  m_core->held();
  ApCard* card = apid < kMaxApIds ? m_cards[apid].get() : nullptr;
  Adapter* a = m_hw->adapter(apid);
  if (!card || !a) return Error(ENODEV);
  if (on != card->m_config) a->configured = on;
  card->m_config = on;
  (void)m_core->device_uevent(*card, Action::Change, {{"CONFIG", on ? "1" : "0"}});
  return {};
}

Result<void> ApBus::set_checkstop(unsigned apid, bool on) {
  m_core->held();
  Adapter* a = m_hw->adapter(apid);
  if (!a) return Error(ENODEV);
  a->chkstop = on;
  return {};
}

Result<void> ApBus::hotplug_adapter(Adapter a) {
  m_core->held();
  APEMU_TRY_VOID(m_hw->add_adapter(std::move(a)));
  scan();
  return {};
}

Result<void> ApBus::hotunplug_adapter(unsigned apid) {
  m_core->held();
  APEMU_TRY_VOID(m_hw->remove_adapter(apid));
  scan();
  return {};
}

Result<void> ApBus::set_qci_domain(Mask256 Qci::*mask, unsigned apqi, bool on) {
  m_core->held();
  if (apqi > m_hw->qci().nd) return Error(ERANGE);
  (m_hw->qci().*mask).set(apqi, on);
  scan();
  return {};
}

Result<void> ApBus::set_usage_domain(unsigned apqi, bool on) {
  return set_qci_domain(&Qci::aqm, apqi, on);
}

Result<void> ApBus::set_control_domain(unsigned apqi, bool on) {
  return set_qci_domain(&Qci::adm, apqi, on);
}

} // namespace apemu::ap
