// zcrypt cex4card / cex4queue drivers and their attributes (ap-bus.md §4.2, §4.4, §7).
#include "apemu/ap/zcrypt.h"

#include <cstdio>
#include <vector>

#include "apemu/ap/abi_names.h"
#include "apemu/base/parse.h"

namespace apemu::ap {

using core::Device;
using uevent::Action;

std::string zcrypt_type_name(const ApCard& card) {
  // CEX2/CEX3 carry their mode in the type name (CEX2A, CEX3C); CEX4+ append it.
  if (card.raw_type() < kApTypeCex4) return std::string(type_name(card.raw_type()));
  const auto m = card.mode();
  const char suffix = !m ? '?' : *m == ApMode::Accel ? 'A' : *m == ApMode::Cca ? 'C' : 'P';
  return "CEX" + std::to_string(card.hwtype() - 6) + suffix; // type 10 is CEX4
}

namespace {

// Deterministic stand-ins for values a real card reports (serial numbers, master-key
// verification patterns), derived from the APQN so that they are stable across runs.
std::uint64_t pattern(unsigned apid, unsigned apqi, unsigned salt) {
  std::uint64_t x = (std::uint64_t{apid} << 40) ^ (std::uint64_t{apqi} << 16) ^ salt;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

std::string hex16(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::string card_serial(const ApCard& card) {
  if (const Adapter* a = card.ap_bus().hw().adapter(card.id()); a && !a->serialnr.empty())
    return a->serialnr;
  char b[16];
  std::snprintf(b, sizeof b, "93%06X", static_cast<unsigned>(pattern(id(card.id()), 0, 1) & 0xFFFFFF));
  return b;
}

bool is_mode(const Device& d, ApMode m) {
  const ApCard* c = dynamic_cast<const ApCard*>(&d);
  if (!c) c = &static_cast<const ApQueue&>(d).card();
  return c->mode() == m;
}

} // namespace


// ---- card attributes -------------------------------------------------------------------------

static Result<std::string> card_type(Device& d) {
  return zcrypt_type_name(static_cast<ApCard&>(d)) + "\n";
}
static Result<std::string> card_online(Device& d) {
  return std::string(static_cast<ApCard&>(d).online() ? "1\n" : "0\n");
}
static Result<void> card_online_store(Device& d, std::string_view t) {
  APEMU_TRY(long long v, sscanf_int(t, 10));
  if (v != 0 && v != 1) return Error(EINVAL);
  return Zcrypt::set_card_online(static_cast<ApCard&>(d), v == 1);
}
static Result<std::string> zero(Device&) { return std::string("0\n"); }
static Result<std::string> card_serialnr(Device& d) {
  auto& card = static_cast<ApCard&>(d);
  if (card.mode() == ApMode::Ep11) {
    char b[32];
    std::snprintf(b, sizeof b, "%16.16s\n", card_serial(card).c_str());
    return std::string(b);
  }
  // CCA: queried through the default domain; an empty line without one.
  if (card.ap_bus().ap_domain() < 0) return std::string("\n");
  return card_serial(card) + "\n";
}
static Result<std::string> ep11_api_ordinal(Device&) { return std::string("4\n"); }
static Result<std::string> ep11_fw_version(Device&) { return std::string("7.15\n"); }
static Result<std::string> ep11_op_modes(Device&) { return std::string("\n"); }

static const core::DeviceAttribute kCardAttrs[] = {
    {"type", 0444, card_type, nullptr},
    {"online", 0644, card_online, card_online_store},
    {"load", 0444, zero, nullptr},
    {"serialnr", 0444, card_serialnr, nullptr},
    {"API_ordinalnr", 0444, ep11_api_ordinal, nullptr},
    {"FW_version", 0444, ep11_fw_version, nullptr},
    {"op_modes", 0444, ep11_op_modes, nullptr},
};

static mode_t card_visible(Device& d, const core::DeviceAttribute& a) {
  // Accelerators: type, online, load. CCA: + serialnr. EP11: + serialnr and the EP11 info.
  if (a.name == "type" || a.name == "online" || a.name == "load") return a.mode;
  if (a.name == "serialnr") return is_mode(d, ApMode::Accel) ? 0 : a.mode;
  return is_mode(d, ApMode::Ep11) ? a.mode : 0;
}

static const core::DeviceAttributeGroup kCardGroups[] = {{"", kCardAttrs, card_visible}};

/// zcrypt_card_attrs alone: what the cex2a/cex2c drivers (≤6.4) give their cards.
static mode_t common_card_visible(Device&, const core::DeviceAttribute& a) {
  return a.name == "type" || a.name == "online" || a.name == "load" ? a.mode : 0;
}
static const core::DeviceAttributeGroup kCommonCardGroups[] = {
    {"", kCardAttrs, common_card_visible}};

// ---- queue attributes ------------------------------------------------------------------------

static Result<std::string> queue_online(Device& d) {
  return std::string(static_cast<ApQueue&>(d).online() ? "1\n" : "0\n");
}
static Result<void> queue_online_store(Device& d, std::string_view t) {
  APEMU_TRY(long long v, sscanf_int(t, 10));
  if (v != 0 && v != 1) return Error(EINVAL);
  return Zcrypt::set_queue_online(static_cast<ApQueue&>(d), v == 1);
}
static Result<std::string> queue_mkvps(Device& d) {
  auto& q = static_cast<ApQueue&>(d);
  const unsigned a = id(q.apid()), dom = id(q.apqi());
  if (q.card().mode() == ApMode::Ep11) {
    return "WK CUR: valid 0x" + hex16(pattern(a, dom, 10)) + hex16(pattern(a, dom, 11)) +
           hex16(pattern(a, dom, 12)) + hex16(pattern(a, dom, 13)) + "\nWK NEW: empty -\n";
  }
  std::string out;
  for (const char* key : {"AES", "APKA", "ASYM"}) {
    const bool wide = std::string_view(key) == "ASYM";
    unsigned salt = static_cast<unsigned>(key[1]);
    auto val = [&](unsigned s) {
      return "0x" + hex16(pattern(a, dom, s)) + (wide ? hex16(pattern(a, dom, s + 100)) : "");
    };
    const std::string zeros = wide ? "0x" + std::string(32, '0') : "0x" + std::string(16, '0');
    out += std::string(key) + " NEW: empty " + zeros + "\n";
    out += std::string(key) + " CUR: valid " + val(salt) + "\n";
    out += std::string(key) + " OLD: invalid " + zeros + "\n";
  }
  return out;
}

static const core::DeviceAttribute kQueueAttrs[] = {
    {"online", 0644, queue_online, queue_online_store},
    {"load", 0444, zero, nullptr},
    {"mkvps", 0444, queue_mkvps, nullptr},
    {"op_modes", 0444, ep11_op_modes, nullptr},
};

static mode_t queue_visible(Device& d, const core::DeviceAttribute& a) {
  if (a.name == "online" || a.name == "load") return a.mode;
  if (a.name == "mkvps") return is_mode(d, ApMode::Accel) ? 0 : a.mode;
  return is_mode(d, ApMode::Ep11) ? a.mode : 0;
}

static const core::DeviceAttributeGroup kQueueGroups[] = {{"", kQueueAttrs, queue_visible}};

/// zcrypt_queue_attrs alone (cex2a/cex2c queues).
static mode_t common_queue_visible(Device&, const core::DeviceAttribute& a) {
  return a.name == "online" || a.name == "load" ? a.mode : 0;
}
static const core::DeviceAttributeGroup kCommonQueueGroups[] = {
    {"", kQueueAttrs, common_queue_visible}};

// ---- online semantics ------------------------------------------------------------------------

static bool bound_to_zcrypt(const ApQueue& q) {
  return q.driver() && ApBus::ops_of(*q.driver()).default_driver;
}

Result<void> Zcrypt::set_card_online(ApCard& card, bool on) {
  core::Core& core = card.ap_bus().core();
  core.held();
  if (on && (!card.config() || card.chkstop())) return Error(ENODEV);
  card.m_soft_online = on;
  (void)core.device_uevent(card, Action::Change, {{"ONLINE", on ? "1" : "0"}});
  // Every zcrypt queue of the card follows; each one that changed gets its own event.
  for (unsigned d = 0; d < kMaxApIds; ++d) {
    ApQueue* q = card.queue(to_apqi(d));
    if (!q || !bound_to_zcrypt(*q) || q->m_soft_online == on) continue;
    q->m_soft_online = on;
    (void)core.device_uevent(*q, Action::Change, {{"ONLINE", on ? "1" : "0"}});
  }
  return {};
}

Result<void> Zcrypt::set_queue_online(ApQueue& q, bool on) {
  core::Core& core = q.card().ap_bus().core();
  core.held();
  if (on && (!q.config() || q.chkstop() || !q.card().config() || q.card().chkstop()))
    return Error(ENODEV);
  if (on && !q.card().soft_online()) return Error(EINVAL);
  q.m_soft_online = on;
  (void)core.device_uevent(q, Action::Change, {{"ONLINE", on ? "1" : "0"}}); // always sent
  return {};
}

// ---- registration ----------------------------------------------------------------------------

Result<std::unique_ptr<Zcrypt>> Zcrypt::create(ApBus& bus) {
  bus.core().held();
  std::unique_ptr<Zcrypt> z(new Zcrypt(bus));
  // zcrypt_cex4 for CEX4..CEX8; up to 6.4 also zcrypt_cex2a and zcrypt_cex2c for CEX2/CEX3
  // (ap-bus.md §3.3). Cards first, then queues, per module, as the modules register them.
  struct Spec {
    std::string_view card, queue, module;
    ApTypes types;
    std::span<const core::DeviceAttributeGroup> card_groups, queue_groups;
  };
  std::vector<Spec> specs = {{abi::kCex4Card, abi::kCex4Queue, abi::kZcryptCex4Module,
                              kCex4PlusTypes, kCardGroups, kQueueGroups}};
  if (bus.profile().ap_min_card_type <= kApTypeCex2a) {
    specs.push_back({abi::kCex2aCard, abi::kCex2aQueue, abi::kZcryptCex2aModule,
                     ap_types({kApTypeCex2a, kApTypeCex3a}), kCommonCardGroups,
                     kCommonQueueGroups});
    specs.push_back({abi::kCex2cCard, abi::kCex2cQueue, abi::kZcryptCex2cModule,
                     ap_types({kApTypeCex2c, kApTypeCex3c}), kCommonCardGroups,
                     kCommonQueueGroups});
  }
  for (const Spec& sp : specs) {
    ApDriverOps card;
    card.base.name = std::string(sp.card);
    card.base.mod_name = std::string(sp.module);
    card.base.dev_groups = sp.card_groups;
    card.base.probe = [](Device& d) -> Result<void> {
      auto& c = static_cast<ApCard&>(d);
      if (!c.mode()) return Error(ENODEV); // no mode bit: not a usable crypto card
      c.m_soft_online = true;               // a newly bound card starts online
      return {};
    };
    card.card_driver = true;
    card.default_driver = true;
    card.types = sp.types;
    APEMU_TRY(auto* cd, bus.register_driver(std::move(card)));
    z->m_drivers.push_back(cd);
    ApDriverOps queue;
    queue.base.name = std::string(sp.queue);
    queue.base.mod_name = std::string(sp.module);
    queue.base.dev_groups = sp.queue_groups;
    queue.base.probe = [](Device& d) -> Result<void> {
      auto& q = static_cast<ApQueue&>(d);
      q.start_state_machine();
      q.m_soft_online = true;
      return {};
    };
    queue.base.remove = [](Device& d) { static_cast<ApQueue&>(d).m_soft_online = false; };
    queue.default_driver = true;
    queue.types = sp.types;
    APEMU_TRY(auto* qd, bus.register_driver(std::move(queue)));
    z->m_drivers.push_back(qd);
  }
  return z;
}

Zcrypt::~Zcrypt() {
  // Module exit in reverse order of registration.
  for (auto it = m_drivers.rbegin(); it != m_drivers.rend(); ++it) m_bus->unregister_driver(*it);
}

} // namespace apemu::ap
