// The sysfs files of the AP bus layer: /sys/bus/ap/*, card and queue attributes
// (ap-bus.md §2.1, §4.1, §4.3). Formats and errno follow the tables of the spec row by row.
#include "ap_attrs.h"

#include <cstdio>

#include "apemu/ap/ap_bus.h"
#include "apemu/base/parse.h"

namespace apemu::ap {

using core::Bus;
using core::Device;

namespace {

std::string fmt_u(unsigned long long v) { return std::to_string(v) + "\n"; }
std::string fmt_d(long long v) { return std::to_string(v) + "\n"; }
std::string fmt_X8(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08X\n", v);
  return b;
}
ApBus& ap_of(Bus& b) { return *static_cast<ApBus*>(b.data()); }

} // namespace

// ---- /sys/bus/ap -----------------------------------------------------------------------------

struct ApBusAttrs {
  static Result<std::string> ap_domain_show(Bus& b) { return fmt_d(ap_of(b).m_ap_domain); }
  static Result<void> ap_domain_store(Bus& b, std::string_view t) {
    APEMU_TRY(long long d, sscanf_int(t, 0));
    if (d < -0x7fffffffLL || d > 0x7fffffffLL) return Error(EINVAL);
    return ap_of(b).set_ap_domain(static_cast<int>(d));
  }
  static Result<std::string> qci_mask(Bus& b, const Mask256 Qci::*m) {
    const Qci& q = ap_of(b).hw().qci();
    if (!q.available) return std::string("not supported\n");
    return (q.*m).hex() + "\n";
  }
  static Result<std::string> adm_show(Bus& b) { return qci_mask(b, &Qci::adm); }
  static Result<std::string> aqm_show(Bus& b) { return qci_mask(b, &Qci::aqm); }
  static Result<std::string> apm_show(Bus& b) { return qci_mask(b, &Qci::apm); }
  static Result<std::string> interrupts_show(Bus& b) {
    return fmt_d(ap_of(b).hw().interrupts() ? 1 : 0);
  }
  static Result<std::string> config_time_show(Bus& b) { return fmt_d(ap_of(b).knobs().config_time); }
  static Result<void> config_time_store(Bus& b, std::string_view t) {
    APEMU_TRY(long long v, sscanf_int(t, 10));
    if (v < 5 || v > 120) return Error(EINVAL);
    ap_of(b).set_config_time(static_cast<int>(v));
    return {};
  }
  static Result<std::string> poll_thread_show(Bus& b) {
    return fmt_d(ap_of(b).knobs().poll_thread ? 1 : 0);
  }
  static Result<void> poll_thread_store(Bus& b, std::string_view t) {
    APEMU_TRY(bool on, kstrtobool(t));
    // With adapter interrupts the poll thread is not started; the value stays 0.
    ap_of(b).knobs().poll_thread = on && !ap_of(b).hw().interrupts();
    return {};
  }
  static Result<std::string> poll_timeout_show(Bus& b) { return fmt_u(ap_of(b).knobs().poll_timeout); }
  static Result<void> poll_timeout_store(Bus& b, std::string_view t) {
    APEMU_TRY(std::uint64_t v, kstrtoul(t, 0));
    if (v > 120000000000ull) return Error(EINVAL);
    ap_of(b).knobs().poll_timeout = v;
    return {};
  }
  static Result<std::string> max_domain_show(Bus& b) { return fmt_d(ap_of(b).max_domain_id()); }
  static Result<std::string> max_adapter_show(Bus& b) { return fmt_d(ap_of(b).max_adapter_id()); }
  static Result<std::string> apmask_show(Bus& b) { return ap_of(b).apmask().hex() + "\n"; }
  static Result<void> apmask_store(Bus& b, std::string_view t) { return ap_of(b).store_apmask(t); }
  static Result<std::string> aqmask_show(Bus& b) { return ap_of(b).aqmask().hex() + "\n"; }
  static Result<void> aqmask_store(Bus& b, std::string_view t) { return ap_of(b).store_aqmask(t); }
  static Result<std::string> scans_show(Bus& b) { return fmt_u(ap_of(b).scans()); }
  static Result<void> scans_store(Bus& b, std::string_view) {
    if (ap_of(b).scans() > 0) ap_of(b).scan(); // before the initial scan: no-op
    return {};
  }
  static Result<std::string> bindings_show(Bus& b) {
    ApBus& ap = ap_of(b);
    const auto bound = ap.bound_queue_count(), total = ap.queue_count();
    std::string s = std::to_string(bound) + "/" + std::to_string(total);
    if (ap.scans() > 0 && bound == total) s += " (complete)";
    return s + "\n";
  }
  static Result<std::string> complete_count_show(Bus& b) {
    return fmt_u(ap_of(b).bindings_complete_count());
  }
  static Result<std::string> features_show(Bus& b) {
    const Qci& q = ap_of(b).hw().qci();
    if (!q.available) return std::string("-\n");
    std::string s;
    auto add = [&](bool on, const char* n) {
      if (!on) return;
      if (!s.empty()) s += ' ';
      s += n;
    };
    add(q.apsc, "APSC");
    add(q.apxa, "APXA");
    add(q.qact, "QACT");
    add(q.rc8a, "RC8A");
    add(q.apsb, "APSB");
    // Quirk: QCI present but no flag set reads as an empty file.
    return s.empty() ? s : s + "\n";
  }
};

static const core::BusAttribute kBusAttrs[] = {
    {"ap_domain", 0644, ApBusAttrs::ap_domain_show, ApBusAttrs::ap_domain_store},
    {"ap_control_domain_mask", 0444, ApBusAttrs::adm_show, nullptr},
    {"ap_usage_domain_mask", 0444, ApBusAttrs::aqm_show, nullptr},
    {"ap_adapter_mask", 0444, ApBusAttrs::apm_show, nullptr},
    {"ap_interrupts", 0444, ApBusAttrs::interrupts_show, nullptr},
    {"config_time", 0644, ApBusAttrs::config_time_show, ApBusAttrs::config_time_store},
    {"poll_thread", 0644, ApBusAttrs::poll_thread_show, ApBusAttrs::poll_thread_store},
    {"poll_timeout", 0644, ApBusAttrs::poll_timeout_show, ApBusAttrs::poll_timeout_store},
    {"ap_max_domain_id", 0444, ApBusAttrs::max_domain_show, nullptr},
    {"ap_max_adapter_id", 0444, ApBusAttrs::max_adapter_show, nullptr},
    {"apmask", 0644, ApBusAttrs::apmask_show, ApBusAttrs::apmask_store},
    {"aqmask", 0644, ApBusAttrs::aqmask_show, ApBusAttrs::aqmask_store},
    {"scans", 0644, ApBusAttrs::scans_show, ApBusAttrs::scans_store},
    {"bindings", 0444, ApBusAttrs::bindings_show, nullptr},
    {"bindings_complete_count", 0444, ApBusAttrs::complete_count_show, nullptr},
    {"features", 0444, ApBusAttrs::features_show, nullptr},
};
static const core::BusAttributeGroup kBusGroups[] = {{"", kBusAttrs, nullptr}};

std::span<const core::BusAttributeGroup> bus_attr_groups() { return kBusGroups; }

// ---- cardXX ----------------------------------------------------------------------------------

struct ApCardAttrs {
  static ApCard& c(Device& d) { return static_cast<ApCard&>(d); }
  static Result<std::string> hwtype(Device& d) { return fmt_d(c(d).hwtype()); }
  static Result<std::string> raw_hwtype(Device& d) { return fmt_d(c(d).raw_type()); }
  static Result<std::string> depth(Device& d) { return fmt_d(c(d).depth()); }
  static Result<std::string> functions(Device& d) { return fmt_X8(c(d).functions()); }
  static Result<std::string> request_count(Device& d) { return fmt_u(c(d).m_request_count); }
  static Result<void> request_count_reset(Device& d, std::string_view) {
    // Any write resets the card counter and those of all its queues.
    c(d).m_request_count = 0;
    for (unsigned q = 0; q < kMaxApIds; ++q)
      if (auto* qu = c(d).queue(q)) qu->m_request_count = 0;
    return {};
  }
  static Result<std::string> zero(Device&) { return std::string("0\n"); }
  static Result<std::string> modalias(Device& d) {
    char b[16];
    std::snprintf(b, sizeof b, "ap:t%02X\n", c(d).hwtype());
    return std::string(b);
  }
  static Result<std::string> config(Device& d) { return fmt_d(c(d).config() ? 1 : 0); }
  static Result<void> config_store(Device& d, std::string_view t) {
    APEMU_TRY(long long v, sscanf_int(t, 10));
    if (v != 0 && v != 1) return Error(EINVAL);
    return c(d).ap_bus().sclp_configure(c(d).id(), v == 1);
  }
  static Result<std::string> chkstop(Device& d) { return fmt_d(c(d).chkstop() ? 1 : 0); }
  static Result<std::string> max_msg_size(Device& d) { return fmt_u(c(d).max_msg_size()); }
};

static const core::DeviceAttribute kCardAttrs[] = {
    {"hwtype", 0444, ApCardAttrs::hwtype, nullptr},
    {"raw_hwtype", 0444, ApCardAttrs::raw_hwtype, nullptr},
    {"depth", 0444, ApCardAttrs::depth, nullptr},
    {"ap_functions", 0444, ApCardAttrs::functions, nullptr},
    {"request_count", 0644, ApCardAttrs::request_count, ApCardAttrs::request_count_reset},
    {"requestq_count", 0444, ApCardAttrs::zero, nullptr},
    {"pendingq_count", 0444, ApCardAttrs::zero, nullptr},
    {"modalias", 0444, ApCardAttrs::modalias, nullptr},
    {"config", 0644, ApCardAttrs::config, ApCardAttrs::config_store},
    {"chkstop", 0444, ApCardAttrs::chkstop, nullptr},
    {"max_msg_size", 0444, ApCardAttrs::max_msg_size, nullptr},
};
static const core::DeviceAttributeGroup kCardGroups[] = {{"", kCardAttrs, nullptr}};

std::span<const core::DeviceAttributeGroup> card_attr_groups() { return kCardGroups; }

// ---- XX.YYYY ---------------------------------------------------------------------------------

struct ApQueueAttrs {
  static ApQueue& q(Device& d) { return static_cast<ApQueue&>(d); }
  static Result<std::string> request_count(Device& d) {
    if (q(d).dev_state() == DevState::Uninitiated) return std::string("-\n");
    return fmt_u(q(d).m_request_count);
  }
  static Result<void> request_count_reset(Device& d, std::string_view) {
    q(d).m_request_count = 0;
    return {};
  }
  static Result<std::string> zero(Device&) { return std::string("0\n"); }
  static Result<std::string> reset_show(Device& d) {
    switch (q(d).sm_state()) {
    case SmState::ResetStart:
    case SmState::ResetWait:
      return std::string("Reset in progress.\n");
    case SmState::Working:
    case SmState::QueueFull:
      return std::string("Reset Timer armed.\n");
    default:
      return std::string("No Reset Timer set.\n");
    }
  }
  static Result<void> reset_store(Device& d, std::string_view) {
    // Flush, RESET_START, run the machine; the simulated reset completes at once.
    q(d).m_sm_state = SmState::ResetStart;
    if (q(d).dev_state() != DevState::Uninitiated) q(d).start_state_machine();
    return {};
  }
  static Result<std::string> interrupt(Device& d) {
    const bool on = q(d).card().ap_bus().hw().interrupts() &&
                    q(d).dev_state() == DevState::Operating && q(d).sm_state() == SmState::Idle;
    return std::string(on ? "Interrupts enabled.\n" : "Interrupts disabled.\n");
  }
  static Result<std::string> config(Device& d) { return fmt_d(q(d).config() ? 1 : 0); }
  static Result<std::string> chkstop(Device& d) { return fmt_d(q(d).chkstop() ? 1 : 0); }
  static Result<std::string> functions(Device& d) {
    auto t = q(d).card().ap_bus().hw().tapq(q(d).apid(), q(d).apqi());
    if (t.rc > 5) return Error(EIO);
    return fmt_X8(t.functions);
  }
  static Result<std::string> override_show(Device& d) {
    const auto& o = q(d).m_driver_override;
    return (o ? *o : std::string()) + "\n";
  }
  static Result<void> override_store(Device& d, std::string_view t) {
    ApBus& ap = q(d).card().ap_bus();
    // 6.19: overrides and non-default masks exclude each other.
    if (ap.masks_in_use()) return Error(EINVAL);
    if (t.size() >= 4096 - 1) return Error(EINVAL);
    t = t.substr(0, t.find('\n'));
    auto& o = q(d).m_driver_override;
    const bool had = o != nullptr;
    if (t.empty()) o.reset();
    else o = std::make_unique<std::string>(t);
    ap.m_override_count += (o ? 1 : 0) - (had ? 1 : 0);
    return {};
  }
};

static const core::DeviceAttribute kQueueAttrs[] = {
    {"request_count", 0644, ApQueueAttrs::request_count, ApQueueAttrs::request_count_reset},
    {"requestq_count", 0444, ApQueueAttrs::zero, nullptr},
    {"pendingq_count", 0444, ApQueueAttrs::zero, nullptr},
    {"reset", 0644, ApQueueAttrs::reset_show, ApQueueAttrs::reset_store},
    {"interrupt", 0444, ApQueueAttrs::interrupt, nullptr},
    {"config", 0444, ApQueueAttrs::config, nullptr},
    {"chkstop", 0444, ApQueueAttrs::chkstop, nullptr},
    {"ap_functions", 0444, ApQueueAttrs::functions, nullptr},
    {"driver_override", 0644, ApQueueAttrs::override_show, ApQueueAttrs::override_store},
};
static const core::DeviceAttributeGroup kQueueGroups[] = {{"", kQueueAttrs, nullptr}};

std::span<const core::DeviceAttributeGroup> queue_attr_groups() { return kQueueGroups; }

} // namespace apemu::ap
