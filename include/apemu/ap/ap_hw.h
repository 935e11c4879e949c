// The simulated AP hardware and firmware of one LPAR: the QCI configuration (adapters, usage
// and control domains, facility flags) and each adapter's type, mode and state, answering TAPQ
// as the machine would (ap-bus.md §6). The AP bus only learns about the hardware through
// qci() and tapq(), as the kernel does.
//
// Divergence: no real AP instructions run here; TAPQ is a function call.
#pragma once

#include <cstdint>
#include <array>
#include <map>
#include <optional>
#include <string>

#include "apemu/ap/ap_mask.h"
#include "apemu/base/ap_ids.h"
#include "apemu/base/result.h"

namespace apemu::ap {

/// AP device types (AP_DEVICE_TYPE_*, ap-bus.md §3.2). 6..9 are the CEX2/CEX3 adapters that
/// kernels up to 6.4 still drive; 10..14 are CEX4..CEX8.
inline constexpr int kApTypeCex2a = 6;
inline constexpr int kApTypeCex2c = 7;
inline constexpr int kApTypeCex3a = 8;
inline constexpr int kApTypeCex3c = 9;
inline constexpr int kApTypeCex4 = 10;
inline constexpr int kApTypeCex8 = 14;

enum class ApMode { Accel, Cca, Ep11 };
std::string_view mode_name(ApMode m); ///< "accel", "cca", "ep11" (the MODE= uevent values)
/// The hardware name of a type: "CEX2A", "CEX3C", "CEX4" .. "CEX8".
std::string_view type_name(int raw_type);
/// Parses "CEX2A" .. "CEX3C", "CEX4" .. "CEX8" (as topologies and `apemu ctl card add` spell
/// them). Returns: EINVAL for anything else.
Result<int> parse_type_name(std::string_view name);
/// Parses "accel", "cca", "ep11". Returns: EINVAL for anything else.
Result<ApMode> parse_mode_name(std::string_view name);
/// CEX2A and CEX3A are accelerators, CEX2C and CEX3C CCA coprocessors; CEX4+ can be any mode.
bool type_allows_mode(int raw_type, ApMode mode);

/// TAPQ GR2 facility bits in the 32-bit `ap_functions` word (ap-bus.md §6.3).
namespace fac {
inline constexpr std::uint32_t kApsc = 0x80000000;  // S
inline constexpr std::uint32_t kMex4k = 0x40000000; // M
inline constexpr std::uint32_t kCrt4k = 0x20000000; // C
inline constexpr std::uint32_t kCca = 0x10000000;   // D
inline constexpr std::uint32_t kAccel = 0x08000000; // A
inline constexpr std::uint32_t kEp11 = 0x04000000;  // X
inline constexpr std::uint32_t kApxa = 0x02000000;  // N
inline constexpr std::uint32_t kHw = 0x01000000;    // H
inline constexpr std::uint32_t kFull = 0x00800000;  // F
inline constexpr std::uint32_t kRestricted = 0x00400000; // R
inline constexpr std::uint32_t kBsMask = 0x0000C000;     // SE bind state
} // namespace fac

/// AP response codes (ap-bus.md §6.2) used here.
namespace rc {
inline constexpr int kNormal = 0x00;
inline constexpr int kQNotAvail = 0x01;
inline constexpr int kResetInProgress = 0x02;
inline constexpr int kDeconfigured = 0x03;
inline constexpr int kCheckstopped = 0x04;
inline constexpr int kBusy = 0x05;
} // namespace rc

struct Adapter {
  Apid id{};
  int raw_type = kApTypeCex8;
  ApMode mode = ApMode::Cca;
  /// Domains for which the adapter has queues; combined with the QCI usage domains.
  ApqiMask domains = ApqiMask::all();
  int depth = 8;        ///< queue slots (TAPQ qd + 1)
  int ml = 0;           ///< max message length in 4 KiB units (0 = unknown)
  std::string serialnr; ///< CCA/EP11 serial number
  bool configured = true;
  bool chkstop = false;
  /// Facility word as TAPQ reports it (derived from mode unless overridden).
  std::uint32_t functions() const;
  bool apxa = true; ///< set from the machine
};

struct TapqResult {
  int rc = rc::kQNotAvail;
  std::uint32_t functions = 0; ///< facility word (bits 0-31 of GR2)
  int at = 0;                  ///< AP type
  int qd = 0;                  ///< queue depth field (slots - 1)
  int ml = 0;
  bool has_info() const { return rc == 0 || rc == 2 || rc == 3 || rc == 4 || rc == 5; }
};

/// QCI: the configuration the firmware reports (ap-bus.md §6.4). Without QCI (available ==
/// false) the kernel assumes adapters 0..63 and domains 0..15.
struct Qci {
  bool available = true;
  bool apsc = true, apxa = true, qact = true, rc8a = true, apsb = false;
  unsigned na = 63, nd = 15; ///< max adapter / domain id
  ApidMask apm;
  ApqiMask aqm, adm;
  /// The adapter is in the configuration.
  bool configured(Apid a) const { return available ? apm.test(a) : id(a) <= 63; }
  /// The domain is a usage domain.
  bool usage(Apqi d) const { return available ? aqm.test(d) : id(d) <= 15; }
  /// The largest adapter and domain ids the bus scans (ap_max_adapter_id, ap_max_domain_id).
  unsigned max_adapter_id() const { return available && apxa && na ? na : 63; }
  unsigned max_domain_id() const { return available && apxa && nd ? nd : 15; }
};

class ApHardware {
public:
  Qci& qci() { return m_qci; }
  const Qci& qci() const { return m_qci; }
  bool interrupts() const { return m_interrupts; }
  void set_interrupts(bool v) { m_interrupts = v; }

  /// Adds (or replaces) an adapter and puts it into the configuration (QCI apm).
  /// Returns: ERANGE for an id above Na, EINVAL for an unknown type or a mode the type cannot
  /// have.
  Result<void> add_adapter(Adapter a);
  /// Removes an adapter from the machine and the configuration. Returns: ENODEV if absent.
  Result<void> remove_adapter(Apid a);
  Adapter* adapter(Apid a);
  const Adapter* adapter(Apid a) const;
  const std::map<Apid, Adapter>& adapters() const { return m_adapters; }

  /// TAPQ for an APQN as seen from this LPAR.
  TapqResult tapq(Apqn q) const;

private:
  /// m_adapters by id, for the hot paths (tapq runs for every queue a reset touches). A copy
  /// starts empty and adapter() then falls back to the map, so no copy can point into another
  /// machine's nodes; a move keeps the map's nodes and so the pointers.
  struct Index {
    std::array<Adapter*, 256> at{};
    Index() = default;
    Index(const Index&) {}
    Index& operator=(const Index&) {
      at.fill(nullptr);
      return *this;
    }
    Index(Index&&) = default;
    Index& operator=(Index&&) = default;
  };
  Qci m_qci;
  bool m_interrupts = true;
  std::map<Apid, Adapter> m_adapters;
  Index m_index;
};

} // namespace apemu::ap
