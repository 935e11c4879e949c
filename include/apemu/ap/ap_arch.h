// The AP instructions as the architecture defines them (arch/s390/include/asm/ap.h;
// guest-ap.md §1, §2, §5): function codes, register fields, the AP queue status word, response
// codes with their names, the TAPQ GR2 word, the QCI block, the AQIC control word and the
// program-interruption codes the instructions raise. Pure value code: the firmware that executes
// the instructions is ap_firmware.h, a guest's vCPU is kvm::Vcpu.
//
// Bit numbering in the comments is IBM MSB-0 of the 64-bit register; masks are written as
// values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "apemu/base/ap_ids.h"

namespace apemu::ap {

/// Instruction opcodes (RRE, guest-ap.md §1).
enum class ApOpcode : std::uint16_t { Pqap = 0xB2AF, Nqap = 0xB2AD, Dqap = 0xB2AE };

/// PQAP function codes (GR0 bits 32-39, guest-ap.md table 2.1b).
namespace fc {
inline constexpr unsigned kTapq = 0x00;
inline constexpr unsigned kRapq = 0x01;
inline constexpr unsigned kZapq = 0x02;
inline constexpr unsigned kAqic = 0x03;
inline constexpr unsigned kQci = 0x04;
inline constexpr unsigned kQact = 0x05;
inline constexpr unsigned kBapq = 0x07;
inline constexpr unsigned kAapq = 0x08;
} // namespace fc

/// GR0 fields (guest-ap.md §2.1, §5.1, §5.2).
namespace gr0 {
inline constexpr std::uint64_t kFcShift = 24;                    // bits 32-39
inline constexpr std::uint64_t kTBit = 0x00800000;               // bit 40: TAPQ facilities test
inline constexpr std::uint64_t kFBit = 0x00400000;               // bit 41: RAPQ/ZAPQ F, QACT I
inline constexpr std::uint64_t kReserved = 0x003F0000;           // bits 42-47
inline constexpr std::uint64_t kAqicMustBeZero = 0x007F0000;     // bits 41-47 (KVM's AQIC check)
inline constexpr std::uint64_t kNoApxaRange = 0x0000C0F0;        // APID > 63 or APQI > 15
inline constexpr std::uint64_t kNqapLastPart = 0x40000000;       // bit 33 (NQAP)
inline constexpr std::uint64_t kNqapSpecial = 0x00400000;        // bit 41 (NQAP)
inline constexpr std::uint64_t kDqapBit32 = 0x80000000;          // bit 32 (DQAP)
constexpr unsigned fc_of(std::uint64_t g) { return static_cast<unsigned>((g >> kFcShift) & 0xFF); }
constexpr Apqn apqn_of(std::uint64_t g) {
  return {to_apid(static_cast<unsigned>((g >> 8) & 0xFF)), to_apqi(static_cast<unsigned>(g & 0xFF))};
}
constexpr std::uint64_t pqap(unsigned fcode, Apqn q, std::uint64_t flags = 0) {
  return (std::uint64_t{fcode} << kFcShift) | flags | q.qid();
}
} // namespace gr0

/// Program-interruption codes an AP instruction can raise.
namespace pgm {
inline constexpr int kOperation = 0x01;     ///< no AP facility (or QEMU bounced the intercept)
inline constexpr int kPrivileged = 0x02;    ///< problem state
inline constexpr int kAddressing = 0x05;    ///< an operand outside the guest's memory
inline constexpr int kSpecification = 0x06; ///< reserved bits, facility or range violations
std::string_view name(int code);            ///< "operation", "privileged-operation", ...
} // namespace pgm

/// AP response codes (GR1 bits 40-47; guest-ap.md §2.3, vfio-ap.md §6.5).
namespace rc {
inline constexpr int kNormal = 0x00;
inline constexpr int kQNotAvail = 0x01;
inline constexpr int kResetInProgress = 0x02;
inline constexpr int kDeconfigured = 0x03;
inline constexpr int kCheckstopped = 0x04;
inline constexpr int kBusy = 0x05;
inline constexpr int kInvalidAddress = 0x06;
inline constexpr int kOtherwiseChanged = 0x07;
inline constexpr int kInvalidGisa = 0x08;
inline constexpr int kQBoundToAnother = 0x09;
inline constexpr int kStateChangeInProgress = 0x0A;
inline constexpr int kQNotBound = 0x0B;
inline constexpr int kQFull = 0x10;          ///< NQAP
inline constexpr int kNoPendingReply = 0x10; ///< DQAP
inline constexpr int kIndexTooBig = 0x11;
inline constexpr int kNoFirstPart = 0x13;
inline constexpr int kMessageTooBig = 0x15;
inline constexpr int kReqFacNotInst = 0x16;
inline constexpr int kAssocSecretNotUnique = 0x35;
inline constexpr int kAssocFailed = 0x36;
inline constexpr int kInvalidDomain = 0x42;
/// The Linux name without AP_RESPONSE_ ("Q_NOT_AVAIL"); 0x10 is named after `op` (Q_FULL for
/// NQAP, NO_PENDING_REPLY for DQAP, both otherwise); unknown codes read "UNKNOWN".
std::string_view name(int code, ApOpcode op = ApOpcode::Pqap);
} // namespace rc

/// The AP queue status word (GR1 bits 32-63, guest-ap.md §2.2).
struct QueueStatus {
  bool queue_empty = false;   ///< E
  bool replies_waiting = false; ///< R
  bool queue_full = false;    ///< F
  bool async = false;         ///< A
  bool irq_enabled = false;   ///< I
  int response_code = rc::kNormal;

  static constexpr std::uint32_t kE = 0x80000000, kR = 0x40000000, kF = 0x20000000,
                                 kA = 0x02000000, kI = 0x01000000;
  constexpr std::uint32_t word() const {
    return (queue_empty ? kE : 0) | (replies_waiting ? kR : 0) | (queue_full ? kF : 0) |
           (async ? kA : 0) | (irq_enabled ? kI : 0) |
           (static_cast<std::uint32_t>(response_code & 0xFF) << 16);
  }
  static constexpr QueueStatus from_word(std::uint32_t w) {
    QueueStatus s;
    s.queue_empty = w & kE;
    s.replies_waiting = w & kR;
    s.queue_full = w & kF;
    s.async = w & kA;
    s.irq_enabled = w & kI;
    s.response_code = static_cast<int>((w >> 16) & 0xFF);
    return s;
  }
  /// A status carrying only a response code (the driver-synthesised answers).
  static constexpr QueueStatus only(int code) {
    QueueStatus s;
    s.response_code = code;
    return s;
  }
  /// "E=1 R=0 F=0 A=0 I=0 RC=0x00 (NORMAL)".
  std::string describe(ApOpcode op = ApOpcode::Pqap) const;
  friend constexpr bool operator==(const QueueStatus&, const QueueStatus&) = default;
};

/// The information word TAPQ returns in GR2 (guest-ap.md §2.4): facilities in the high word;
/// type, number of domains, message-length units and queue depth in the low word.
struct TapqInfo {
  std::uint32_t facilities = 0;
  unsigned at = 0, nd = 0, ml = 0, qd = 0;
  constexpr std::uint64_t gr2() const {
    return (std::uint64_t{facilities} << 32) | ((at & 0xFF) << 24) | ((nd & 0xFF) << 16) |
           ((ml & 0xF) << 8) | (qd & 0xF);
  }
  static constexpr TapqInfo from_gr2(std::uint64_t g) {
    return {static_cast<std::uint32_t>(g >> 32), static_cast<unsigned>((g >> 24) & 0xFF),
            static_cast<unsigned>((g >> 16) & 0xFF), static_cast<unsigned>((g >> 8) & 0xF),
            static_cast<unsigned>(g & 0xF)};
  }
};

/// The AQIC interruption control word in GR1 (guest-ap.md §2.7; Linux's ap_qirq_ctrl).
struct IrqControl {
  bool ir = false;          ///< bit 16: enable
  unsigned zone = 0;        ///< bits 8-15 (hypervisor)
  unsigned gisc = 0;        ///< bits 21-23 (hypervisor: the guest ISC)
  unsigned gf = 0;          ///< bits 30-31 (hypervisor: GISA format)
  std::uint32_t gisa = 0;   ///< bits 33-59 (hypervisor: GISA origin >> 4)
  unsigned isc = 0;         ///< bits 61-63
  static constexpr std::uint64_t kIr = std::uint64_t{1} << 47;
  constexpr std::uint64_t gr1() const {
    return (ir ? kIr : 0) | (std::uint64_t{zone & 0xFF} << 48) |
           (std::uint64_t{gisc & 7} << 40) | (std::uint64_t{gf & 3} << 32) |
           (std::uint64_t{gisa & 0x7FFFFFF} << 4) | (isc & 7);
  }
  static constexpr IrqControl from_gr1(std::uint64_t g) {
    IrqControl c;
    c.ir = g & kIr;
    c.zone = static_cast<unsigned>((g >> 48) & 0xFF);
    c.gisc = static_cast<unsigned>((g >> 40) & 7);
    c.gf = static_cast<unsigned>((g >> 32) & 3);
    c.gisa = static_cast<std::uint32_t>((g >> 4) & 0x7FFFFFF);
    c.isc = static_cast<unsigned>(g & 7);
    return c;
  }
};

/// The QACT AP-info word (guest-ap.md §2.8): mode bits 3-5, compatibility type bits 32-39,
/// version bits 48-63.
struct QactInfo {
  unsigned mode = 0; ///< 4 = CCA (D), 2 = accelerator (A), 1 = EP11 (X)
  unsigned cat = 0;
  unsigned ver = 0;
  constexpr std::uint64_t word() const {
    return (std::uint64_t{mode & 7} << 58) | (std::uint64_t{cat & 0xFF} << 24) | (ver & 0xFFFF);
  }
  static constexpr QactInfo from_word(std::uint64_t w) {
    return {static_cast<unsigned>((w >> 58) & 7), static_cast<unsigned>((w >> 24) & 0xFF),
            static_cast<unsigned>(w & 0xFFFF)};
  }
};

/// The 128-byte QCI block (guest-ap.md §2.6).
inline constexpr std::size_t kQciBlockSize = 128;
using QciBlock = std::array<std::uint8_t, kQciBlockSize>;
struct QciFields {
  bool apsc = false, apxa = false, qact = false, rc8a = false, apsb = false;
  unsigned na = 0, nd = 0;
  ApidMask apm;
  ApqiMask aqm, adm;
};
QciBlock encode_qci(const QciFields& f);
QciFields decode_qci(const QciBlock& b);
/// A 256-bit mask as 32 bytes, id n = byte n/8 bit 7-n%8 (the APCB and QCI order).
template <class Id> std::array<std::uint8_t, 32> mask_bytes(const IdMask<Id>& m);
template <class Id> IdMask<Id> mask_from_bytes(const std::uint8_t* bytes);

/// The adapter interruption code a guest receives for an ISC (guest-ap.md §2.7: bit 0 set,
/// ISC in bits 2-4; 0xB0000000 for ISC 6).
constexpr std::uint32_t adapter_interruption_code(unsigned isc) {
  return 0x80000000u | ((isc & 7u) << 27);
}

} // namespace apemu::ap
