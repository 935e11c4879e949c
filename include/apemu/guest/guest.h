// The operating system in a KVM guest, as far as it drives its passed-through AP queues: the
// Linux guest's AP bus and zcrypt in miniature (guest-ap.md §2, §5, §8). A Guest executes AP
// instructions on its vCPU (kvm::Vcpu) with the architecture's register conventions — one method
// per instruction — and on top of them does what the Linux guest does: whole-message NQAP and
// DQAP loops, PSMIDs of the form (pid << 32) + counter, one notification byte for all queues
// with interruptions on ISC 6 by default, and request/reply round trips (exchange()) that wait
// for the adapter interruption or poll.
//
// Everything runs under the machine lock: the guest's reactions to interruptions and its poll
// timers are posted work and timers on the machine's Runtime, so a guest on a virtual clock is
// deterministic.
//
// @code
//   guest::Guest g(kvm, rt);
//   auto t = g.tapq(Apqn{Apid{7}, Apqi{4}});          // t.cc, t.status(), t.gr2
//   auto x = g.exchange(q, request, {.irq = true});     // completes on the clock
//   guest::run_until(rt, *x->done);                     // virtual clock: advance until done
// @endcode
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "apemu/ap/ap_arch.h"
#include "apemu/base/result.h"
#include "apemu/base/runtime.h"
#include "apemu/kvm/kvm.h"

namespace apemu::guest {

/// One executed instruction: a program interruption, or the condition code and the registers
/// the instruction sets (GR0-GR2; for NQAP/DQAP also the R1/R2 pairs).
struct Instr {
  ap::ApOpcode op = ap::ApOpcode::Pqap;
  std::optional<int> program_interruption;
  int cc = 0;
  std::uint64_t gr0 = 0, gr1 = 0, gr2 = 0;
  std::uint64_t psmid = 0;         ///< DQAP: the R1 pair
  std::uint64_t addr = 0, len = 0; ///< NQAP/DQAP: the R2 pair after execution
  bool exception() const { return program_interruption.has_value(); }
  ap::QueueStatus status() const {
    return ap::QueueStatus::from_word(static_cast<std::uint32_t>(gr1));
  }
  int rc() const { return status().response_code; }
  /// "cc 3, E=1 R=0 F=0 A=0 I=0 RC=0x01 (Q_NOT_AVAIL)" or "program interruption 0x06
  /// (specification)".
  std::string describe() const;
};

struct ExchangeOptions {
  /// Wait for the adapter interruption (AQIC enable on `isc` with the guest's NIB first)
  /// instead of polling.
  bool irq = false;
  unsigned isc = 6; ///< AP_ISC
  /// Polling period without interruptions (the Linux guest's 250 µs hrtimer).
  std::chrono::nanoseconds poll_interval = std::chrono::microseconds(250);
  /// Machine time after which the exchange gives up with ETIMEDOUT.
  std::chrono::nanoseconds timeout = std::chrono::seconds(60);
  std::size_t reply_buffer = 12288; ///< AP_DEFAULT_MAX_MSG_SIZE
};

/// One request/reply round trip in progress (Guest::exchange).
struct Exchange {
  std::shared_ptr<Completion> done; ///< ok, or the errno of the failure (see exchange())
  Apqn apqn;
  std::uint64_t psmid = 0;
  std::vector<std::uint8_t> reply;
  Instr last;                      ///< the last instruction executed (the failing one)
  Runtime::Duration submitted{};   ///< machine time of the NQAP
  Runtime::Duration completed{};   ///< machine time the reply was dequeued
  std::uint32_t interruption = 0;  ///< the interruption code that announced the reply (irq)
  unsigned polls = 0;              ///< DQAPs that found no reply
  unsigned dropped = 0;            ///< replies with another PSMID (dropped, as Linux does)
};

class Guest {
public:
  /// The OS of `kvm` (which must have a machine), taking its interruptions on `rt`.
  Guest(std::shared_ptr<kvm::Kvm> kvm, Runtime& rt);
  ~Guest();
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;

  kvm::Kvm& kvm() const { return *m_kvm; }
  const std::shared_ptr<kvm::Kvm>& kvm_ptr() const { return m_kvm; }

  // ---- the AP instructions (guest-ap.md §2.4–§2.8, §5.1, §5.2) ---------------------------------
  Instr tapq(Apqn q, bool t = true);
  Instr rapq(Apqn q, bool f = false);
  Instr zapq(Apqn q, bool f = false);
  /// AQIC with IR = `enable`, the ISC and the notification byte's guest address in GR2.
  Instr aqic(Apqn q, bool enable, unsigned isc, std::uint64_t nib);
  /// QCI storing the 128-byte block at guest address `addr`.
  Instr qci(std::uint64_t addr);
  Instr qact(Apqn q, ap::QactInfo in);
  /// One NQAP execution (R1 = 4/5 with the PSMID, R2 = 6/7 with address and length).
  Instr nqap(Apqn q, std::uint64_t psmid, std::uint64_t addr, std::uint64_t len,
             bool special = false, bool last_part = true);
  /// One DQAP execution into [addr, addr + len).
  Instr dqap(Apqn q, std::uint64_t addr, std::uint64_t len);
  /// A raw PQAP with the caller's GR0-GR2 (for reserved-bit and function-code tests).
  Instr pqap(std::uint64_t gr0, std::uint64_t gr1 = 0, std::uint64_t gr2 = 0);

  // ---- what the guest's AP bus builds on them ----------------------------------------------------
  /// Guest memory for a buffer (first fit; never 0). Returns 0 when memory is exhausted.
  std::uint64_t alloc(std::size_t n);
  void free(std::uint64_t addr);
  /// The notification byte every queue of this guest uses (Linux's lsi_ptr).
  std::uint64_t nib() const { return m_nib; }
  std::uint8_t nib_value() const;
  /// QCI into guest memory and decoded; the Instr on a program interruption.
  Result<ap::QciFields> query_config(Instr* out = nullptr);
  /// NQAP of a whole message, re-executed on cc 2 (Linux's __ap_send).
  Instr send(Apqn q, std::uint64_t psmid, std::span<const std::uint8_t> msg,
             bool special = false);
  /// DQAP of one reply, re-executed on cc 1/2 while the buffer has room (Linux's
  /// __ap_recv); `data` gets the bytes stored.
  Instr receive(Apqn q, std::vector<std::uint8_t>& data, std::size_t max = 12288);
  /// The next PSMID: (pid << 32) + counter.
  std::uint64_t next_psmid() { return (std::uint64_t{m_pid} << 32) + ++m_psmid_counter; }

  // ---- interruptions -----------------------------------------------------------------------------
  /// Enables `isc` in CR6 (what the guest's airq registration does).
  void enable_isc(unsigned isc);
  /// The adapter interruptions the guest took, in order (their codes).
  const std::vector<std::uint32_t>& interruptions() const { return m_interruptions; }

  /// One request/reply round trip on `q`, driven by the machine's clock: (AQIC enable,) NQAP,
  /// then the interruption or polling, then DQAP until the reply with this PSMID (replies with
  /// other PSMIDs are dropped). `done` completes ok, or with ENODEV (RC 01/03/04: the queue is
  /// not available), EBUSY (RC 10 on NQAP: queue full), EAGAIN (RC 02: reset in progress),
  /// EMSGSIZE (RC 15 or a reply larger than the buffer), EINVAL (a program interruption, RC
  /// 16/42, or AQIC refused), EIO (other RCs), ETIMEDOUT. Locking: machine lock held.
  std::shared_ptr<Exchange> exchange(Apqn q, std::span<const std::uint8_t> msg,
                                     ExchangeOptions opt = {});

private:
  struct Waiter;
  void on_interruption(std::uint32_t code);
  Instr run(ap::ApOpcode op, unsigned r1, unsigned r2);

  std::shared_ptr<kvm::Kvm> m_kvm;
  Runtime* m_rt;
  std::map<std::uint64_t, std::size_t> m_free; ///< free guest memory: address → size
  std::map<std::uint64_t, std::size_t> m_used;
  std::uint64_t m_nib = 0;
  std::uint32_t m_pid = 4242;
  std::uint32_t m_psmid_counter = 0;
  std::vector<std::uint32_t> m_interruptions;
  std::map<std::uint64_t, std::function<void()>> m_irq_waiters;
  std::uint64_t m_next_waiter = 1;
  std::shared_ptr<int> m_alive = std::make_shared<int>(0);
};

/// The errno the Guest's round trips use for a response code (see Guest::exchange).
int errno_for_rc(int rc, ap::ApOpcode op);

/// Virtual clock: advances the machine to its next timers until `c` is done or `limit` of
/// machine time passed. Returns: ETIMEDOUT when it did not complete (no timer left, or the
/// limit), EINVAL on a real clock. Locking: machine lock held.
Result<void> run_until(Runtime& rt, const Completion& c,
                       std::chrono::nanoseconds limit = std::chrono::hours(1));

} // namespace apemu::guest
