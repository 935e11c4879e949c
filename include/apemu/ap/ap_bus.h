// The s390 AP bus (drivers/s390/crypto/ap_bus.c, ap_card.c, ap_queue.c; ap-bus.md).
//
// ApBus registers the `ap` bus (a const ops table, ap_bus.cpp) and the root device
// /sys/devices/ap, creates card devices (cardXX, DEVTYPE ap_card) and queue devices (XX.YYYY,
// children of their card, DEVTYPE ap_queue) from what the simulated firmware (ApHardware)
// reports in a bus scan, keeps apmask/aqmask and applies the binding policy in its bus probe:
// one predicate, drv_wants(), decides which driver may take a queue (the override, else the
// masks: default drivers get apmask × aqmask, the others the rest).
//
// Kernel profiles: what the bus shows and does follows the machine's profile::KernelProfile
// (ap-bus.md §11): card `depth`, `max_msg_size`, config/chkstop, the bindings machinery, queue
// `driver_override`, in_use arguments, uevent content, CEX2/CEX3 support.
//
// Scans run at init, every `config_time` seconds of machine time (the config timer, on the
// runtime's clock), on a `scans` write and on a configuration change from `apemu ctl`.
//
// Locking: every public function requires the machine lock.
//
// Divergences: the queue state machine is collapsed (a reset completes at once).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apemu/ap/ap_hw.h"
#include "apemu/ap/ap_mask.h"
#include "apemu/base/ap_ids.h"
#include "apemu/core/core.h"

namespace apemu::ap {

class ApBus;
class ApQueue;

/// Queue device states (enum ap_dev_state) and state-machine states (enum ap_sm_state).
enum class DevState { Uninitiated, Operating, Shutdown, Error };
enum class SmState { ResetStart, ResetWait, SetIrqWait, Idle, Working, QueueFull, AssocWait };

class ApCard final : public core::Device {
public:
  ApCard(core::DeviceKey k, ApBus& bus, Apid id);
  ApBus& ap_bus() const { return *m_bus; }
  Apid id() const { return m_id; }
  int raw_type() const { return m_raw_type; }
  /// The compatible type (device type, modalias): the raw type for CEX2..CEX8.
  int hwtype() const { return m_raw_type; }
  /// Facility word as the card keeps it (low 16 bits cleared).
  std::uint32_t functions() const { return m_functions; }
  std::optional<ApMode> mode() const;
  bool config() const { return m_config; }
  bool chkstop() const { return m_chkstop; }
  /// TAPQ's queue-depth field (slots - 1).
  int qd() const { return m_qd; }
  int ml() const { return m_ml; }
  std::uint64_t request_count() const { return m_request_count; }
  /// The zcrypt soft-online flag; online() adds config and chkstop.
  bool soft_online() const { return m_soft_online; }
  bool online() const { return m_config && !m_chkstop && m_soft_online; }
  /// Queue devices of this card by domain (null where none).
  ApQueue* queue(Apqi d) const { return m_queues[apemu::id(d)].get(); }

private:
  friend class ApBus;
  friend class ApQueue;
  friend struct ApCardAttrs;
  friend class Zcrypt;
  ApBus* m_bus;
  Apid m_id;
  int m_raw_type = 0, m_qd = 0, m_ml = 0;
  std::uint32_t m_functions = 0;
  bool m_config = true, m_chkstop = false, m_soft_online = false;
  std::uint64_t m_request_count = 0;
  std::array<core::Ref<ApQueue>, kMaxApIds> m_queues;
};

class ApQueue final : public core::Device {
public:
  ApQueue(core::DeviceKey k, ApCard& card, Apqi apqi);
  ApCard& card() const { return *m_card; }
  Apqn apqn() const { return {m_card->id(), m_apqi}; }
  Apid apid() const { return m_card->id(); }
  Apqi apqi() const { return m_apqi; }
  bool config() const { return m_config; }
  bool chkstop() const { return m_chkstop; }
  DevState dev_state() const { return m_dev_state; }
  SmState sm_state() const { return m_sm_state; }
  bool soft_online() const { return m_soft_online; }
  bool online() const { return m_config && !m_chkstop && m_soft_online; }
  std::uint64_t request_count() const { return m_request_count; }
  /// Simulated traffic: counts one request (used by the guest/zcrypt paths).
  void count_request();

private:
  friend class ApBus;
  friend struct ApBusOps;
  friend struct ApCardAttrs;
  friend struct ApQueueAttrs;
  friend class Zcrypt;
  void start_state_machine();
  ApCard* m_card;
  Apqi m_apqi;
  bool m_config = true, m_chkstop = false, m_soft_online = false;
  DevState m_dev_state = DevState::Uninitiated;
  SmState m_sm_state = SmState::ResetStart;
  std::uint64_t m_request_count = 0;
};

/// The set of raw AP types a driver's id table holds (bit t for type t).
using ApTypes = std::uint32_t;
constexpr ApTypes ap_types(std::initializer_list<int> types) {
  ApTypes t = 0;
  for (int x : types) t |= ApTypes{1} << x;
  return t;
}
/// CEX4 .. CEX8.
inline constexpr ApTypes kCex4PlusTypes = ap_types({10, 11, 12, 13, 14});

/// struct ap_driver: a core driver plus the AP-specific flags and callbacks.
struct ApDriverOps {
  core::DriverOps base;
  bool card_driver = false;    ///< binds cards (else queues)
  bool default_driver = false; ///< AP_DRIVER_FLAG_DEFAULT (zcrypt)
  ApTypes types = kCex4PlusTypes; ///< the id table
  /// Non-zero vetoes giving these APQNs to the default drivers (vfio_ap's in_use).
  std::function<int(const ApidMask& apm, const ApqiMask& aqm)> in_use;
  std::function<void()> on_config_changed;
  std::function<void()> on_scan_complete;
};

struct ApBusOptions {
  int default_domain = -1;           ///< ap.domain=; -1 = choose at the first scan
  std::optional<std::string> apmask; ///< ap.apmask= kernel parameter
  std::optional<std::string> aqmask;
};

class ApBus {
public:
  /// Registers the bus and the root device, runs the initial scan and arms the config timer.
  static Result<std::unique_ptr<ApBus>> create(core::Core& core, ApHardware& hw,
                                               const ApBusOptions& opt = {});
  ~ApBus();
  ApBus(const ApBus&) = delete;
  ApBus& operator=(const ApBus&) = delete;

  core::Core& core() const { return *m_core; }
  const profile::KernelProfile& profile() const { return m_core->profile(); }
  core::Bus& bus() const { return *m_bus; }
  core::Device& root() const { return *m_root; }
  ApHardware& hw() const { return *m_hw; }

  /// ap_driver_register. Emits: binds (and then BINDINGS=complete when that completes).
  Result<core::Driver*> register_driver(ApDriverOps ops);
  void unregister_driver(core::Driver* drv);
  /// to_ap_drv: the AP driver table of a driver on this bus (O(1)).
  static const ApDriverOps& ops_of(const core::Driver& drv);

  /// ap_bus_scan (ap-bus.md §6.5).
  void scan();
  std::uint64_t scans() const { return m_scans; }

  // ---- masks and ownership ----------------------------------------------------------------
  const ApidMask& apmask() const { return m_apmask; }
  const ApqiMask& aqmask() const { return m_aqmask; }
  /// apmask_store / aqmask_store (ap-bus.md §2.2). Returns: EINVAL (syntax, or [6.19] a queue
  /// has a driver_override), EBUSY (vetoed by a driver's in_use).
  Result<void> store_apmask(std::string_view text);
  Result<void> store_aqmask(std::string_view text);
  /// The binding policy (ap-bus.md §5.1): whether `drv` may take `q`. With a driver_override
  /// only the named driver; else default drivers take apmask × aqmask, the others the rest.
  bool drv_wants(const ApQueue& q, const ApDriverOps& drv) const;
  /// ap_owned_by_def_drv.
  bool apqn_owned_by_default(Apqn q) const;
  /// ap_apqn_in_matrix_owned_by_def_drv: true if any APQN of apm × aqm is default-owned.
  bool matrix_owned_by_default(const ApidMask& apm, const ApqiMask& aqm) const;
  int ap_domain() const { return m_ap_domain; }
  unsigned max_adapter_id() const { return m_hw->qci().max_adapter_id(); }
  unsigned max_domain_id() const { return m_hw->qci().max_domain_id(); }

  /// The queue `driver_override` store [6.19]: EINVAL while a bus mask is not all ones, else
  /// the generic rules (Core::driver_set_override). Keeps the bus-wide override count.
  Result<void> set_queue_override(ApQueue& q, std::string_view text);
  int override_count() const { return m_override_count; }

  // ---- devices --------------------------------------------------------------------------------
  ApCard* card(Apid a) const { return m_cards[id(a)].get(); }
  ApQueue* queue(Apqn q) const;
  std::vector<ApCard*> cards() const;
  std::size_t queue_count() const;
  std::size_t bound_queue_count() const;

  // ---- configuration changes (SCLP and hypervisor paths; ap-bus.md §4.1 `config`, §7) -------
  /// The card `config` write: asks "SCLP" to (de)configure the adapter, stores the state and
  /// always sends CONFIG=<v> on the card. Queues follow at the next scan.
  Result<void> sclp_configure(Apid a, bool on);
  /// A checkstop as the machine would report it (seen at the next scan).
  Result<void> set_checkstop(Apid a, bool on);
  /// Hot plug from the hypervisor: the change is applied to the firmware view and a scan runs
  /// (the CHSC configuration-change notification). Returns: the ApHardware errors.
  Result<void> hotplug_adapter(Adapter a);
  Result<void> hotunplug_adapter(Apid a);
  Result<void> set_usage_domain(Apqi d, bool on);
  Result<void> set_control_domain(Apqi d, bool on);

  // Internal bookkeeping used by the attribute tables.
  bool masks_in_use() const { return !(m_apmask.all_set() && m_aqmask.all_set()); }
  std::uint64_t bindings_complete_count() const { return m_bindings_complete_count; }
  /// poll_thread / poll_timeout / config_time knobs (bus attributes).
  struct Knobs {
    int config_time = 30;
    bool poll_thread = false;
    std::uint64_t poll_timeout = 250000;
  };
  Knobs& knobs() { return m_knobs; }
  /// The config_time store: sets the period and re-arms the config timer (mod_timer), so the
  /// next periodic scan is `seconds` from now.
  void set_config_time(int seconds);
  Result<void> set_ap_domain(int domain);

private:
  ApBus(core::Core& core, ApHardware& hw) : m_core(&core), m_hw(&hw) {}
  friend struct ApBusOps;
  // scan helpers
  void scan_adapter(Apid a);
  void remove_card(Apid a);
  void remove_queue(ApCard& card, Apqi d);
  Result<void> commit_mask(const ApidMask* apm, const ApqiMask* aqm);
  void revise_bindings();
  void check_bindings_complete();
  void root_change(const std::vector<std::pair<std::string, std::string>>& env);
  void config_uevent(core::Device& dev, bool configured);
  Result<void> set_qci_domain(ApqiMask Qci::*mask, Apqi d, bool on);
  /// ap_config_timer: a bus scan every config_time seconds of machine time.
  void arm_config_timer();

  core::Core* m_core;
  ApHardware* m_hw;
  core::Bus* m_bus = nullptr;
  core::Ref<core::Device> m_root;
  std::array<core::Ref<ApCard>, kMaxApIds> m_cards;
  std::list<ApDriverOps> m_driver_ops; ///< stable addresses: core::Driver::data() points here
  Qci m_qci;                           ///< the QCI seen at the last scan
  ApidMask m_apmask = ApidMask::all();
  ApqiMask m_aqmask = ApqiMask::all();
  int m_ap_domain = -1;
  std::uint64_t m_scans = 0;
  bool m_bindings_done = false;
  std::uint64_t m_bindings_complete_count = 0;
  int m_override_count = 0;
  Knobs m_knobs;
  Runtime::TimerId m_config_timer = 0;
};

} // namespace apemu::ap
