// The sysfs files of the AP bus layer: /sys/bus/ap/*, card and queue attributes
// (ap-bus.md §2.1, §4.1, §4.3). Formats and errno follow the tables of the spec row by row; the
// rows a kernel profile lacks are hidden by is_visible, and formats that changed between
// kernels ask the profile (ap-bus.md §11).
#include "ap_attrs.h"

#include <cstdio>

#include "apemu/ap/ap_bus.h"
#include "apemu/base/parse.h"

namespace apemu::ap {

using core::Bus;
using core::Device;
using profile::MaxMsgSize;

namespace {

std::string fmt_u(unsigned long long v) { return std::to_string(v) + "\n"; }
std::string fmt_d(long long v) { return std::to_string(v) + "\n"; }
std::string fmt_X8(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08X\n", v);
  return b;
}
ApBus& ap_of(Bus& b) { return *static_cast<ApBus*>(b.data()); }

/// AP_DEFAULT_MAX_MSG_SIZE.
constexpr unsigned kDefaultMaxMsgSize = 12288;

} // namespace

// ---- /sys/bus/ap -----------------------------------------------------------------------------

struct ApBusAttrs {
  static Result<std::string> ap_domain_show(Bus& b) { return fmt_d(ap_of(b).ap_domain()); }
  static Result<void> ap_domain_store(Bus& b, std::string_view t) {
    APEMU_TRY(long long d, sscanf_int(t, 0));
    if (d < -0x7fffffffLL || d > 0x7fffffffLL) return Error(EINVAL);
    return ap_of(b).set_ap_domain(static_cast<int>(d));
  }
  template <class Id> static Result<std::string> qci_mask(Bus& b, const IdMask<Id> Qci::*m) {
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
    bool on;
    if (ap_of(b).profile().ap_poll_thread_kstrtobool) {
      APEMU_TRY(on, kstrtobool(t));
    } else {
      APEMU_TRY(long long v, sscanf_int(t, 10)); // older kernels: sscanf("%d"), non-zero = on
      on = v != 0;
    }
    // With adapter interrupts the poll thread is not started; the value stays 0.
    ap_of(b).knobs().poll_thread = on && !ap_of(b).hw().interrupts();
    return {};
  }
  static Result<std::string> poll_timeout_show(Bus& b) { return fmt_u(ap_of(b).knobs().poll_timeout); }
  static Result<void> poll_timeout_store(Bus& b, std::string_view t) {
    std::uint64_t v;
    if (ap_of(b).profile().ap_poll_timeout_kstrtoul) {
      APEMU_TRY(v, kstrtoul(t, 0)); // ≈6.5+: 0..120e9
    } else {
      // Older kernels: sscanf("%llu"), 1..120e9. An unsigned conversion takes no sign.
      if (t.find_first_not_of(" \t\n") != std::string_view::npos &&
          t[t.find_first_not_of(" \t\n")] == '-')
        return Error(EINVAL);
      APEMU_TRY(long long s, sscanf_int(t, 10));
      if (s < 1) return Error(EINVAL);
      v = static_cast<std::uint64_t>(s);
    }
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
  static mode_t visible(Bus& b, const core::BusAttribute& a) {
    const auto& p = b.core().profile(); // called inside bus_register, before set_data
    if (a.name == "scans" || a.name == "bindings") return p.ap_bindings ? a.mode : 0;
    if (a.name == "bindings_complete_count") return p.ap_bindings_once ? a.mode : 0;
    if (a.name == "features") return p.ap_bus_features ? a.mode : 0;
    return a.mode;
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
static const core::BusAttributeGroup kBusGroups[] = {{"", kBusAttrs, ApBusAttrs::visible}};

std::span<const core::BusAttributeGroup> bus_attr_groups() { return kBusGroups; }

// ---- cardXX ----------------------------------------------------------------------------------

struct ApCardAttrs {
  static ApCard& c(Device& d) { return static_cast<ApCard&>(d); }
  static const profile::KernelProfile& p(Device& d) { return c(d).ap_bus().profile(); }
  static Result<std::string> hwtype(Device& d) { return fmt_d(c(d).hwtype()); }
  static Result<std::string> raw_hwtype(Device& d) { return fmt_d(c(d).raw_type()); }
  static Result<std::string> depth(Device& d) {
    // Newer kernels print the number of slots (qd + 1), older ones TAPQ's qd (§4.1).
    return fmt_d(c(d).qd() + (p(d).ap_card_depth_qd_plus_one ? 1 : 0));
  }
  static Result<std::string> functions(Device& d) { return fmt_X8(c(d).functions()); }
  static Result<std::string> request_count(Device& d) { return fmt_u(c(d).m_request_count); }
  static Result<void> request_count_reset(Device& d, std::string_view) {
    // Any write resets the card counter and those of all its queues.
    c(d).m_request_count = 0;
    for (auto& q : c(d).m_queues)
      if (q) q->m_request_count = 0;
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
  static Result<std::string> max_msg_size(Device& d) {
    const int ml = c(d).ml();
    const int floor = p(d).ap_max_msg_size == MaxMsgSize::MlOver3 ? 3 : 0;
    return fmt_u(ml > floor ? static_cast<unsigned>(ml) * 4096u : kDefaultMaxMsgSize);
  }
  static mode_t visible(Device& d, const core::DeviceAttribute& a) {
    if (a.name == "config" || a.name == "chkstop") return p(d).ap_config_attrs ? a.mode : 0;
    if (a.name == "max_msg_size") return p(d).ap_max_msg_size != MaxMsgSize::Absent ? a.mode : 0;
    return a.mode;
  }
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
static const core::DeviceAttributeGroup kCardGroups[] = {{"", kCardAttrs, ApCardAttrs::visible}};

std::span<const core::DeviceAttributeGroup> card_attr_groups() { return kCardGroups; }

// ---- XX.YYYY ---------------------------------------------------------------------------------

struct ApQueueAttrs {
  static ApQueue& q(Device& d) { return static_cast<ApQueue&>(d); }
  static const profile::KernelProfile& p(Device& d) { return q(d).card().ap_bus().profile(); }
  static Result<std::string> request_count(Device& d) {
    if (p(d).ap_request_count_dash && q(d).dev_state() == DevState::Uninitiated)
      return std::string("-\n");
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
    auto t = q(d).card().ap_bus().hw().tapq(q(d).apqn());
    if (t.rc > 5) return Error(EIO);
    return fmt_X8(t.functions);
  }
  static Result<std::string> override_show(Device& d) {
    // "%s\n" of the override, or an empty line (6.19's AP show, unlike the generic "(null)").
    return (q(d).driver_override() ? *q(d).driver_override() : std::string()) + "\n";
  }
  static Result<void> override_store(Device& d, std::string_view t) {
    return q(d).card().ap_bus().set_queue_override(q(d), t);
  }
  static mode_t visible(Device& d, const core::DeviceAttribute& a) {
    if (a.name == "config" || a.name == "chkstop") return p(d).ap_config_attrs ? a.mode : 0;
    if (a.name == "ap_functions") return p(d).ap_queue_functions_attr ? a.mode : 0;
    if (a.name == "driver_override") return p(d).ap_queue_driver_override ? a.mode : 0;
    return a.mode;
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
static const core::DeviceAttributeGroup kQueueGroups[] = {{"", kQueueAttrs, ApQueueAttrs::visible}};

std::span<const core::DeviceAttributeGroup> queue_attr_groups() { return kQueueGroups; }

} // namespace apemu::ap
