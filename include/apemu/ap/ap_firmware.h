// The AP firmware of the emulated machine: every AP queue's request ring, its processing engine
// and the AP instructions as the machine executes them on a real APQN (guest-ap.md §2, §5, §6,
// §9; ap-bus.md §6). Whoever owns a queue — the host's zcrypt, or a KVM guest through SIE
// interpretation (kvm::Vcpu) — reaches the same firmware queue.
//
// A queue (FwQueue) holds up to its card's depth requests from NQAP until their replies are
// DQAPed. Accepted requests wait for one of the card's engines; a started request is computed
// by a crypto worker thread (libcrypto, outside the machine lock) and its reply becomes
// visible when the card's service time has passed on the machine's clock:
//  * service_time set: at start + service_time. On a virtual clock the computation is awaited
//    when the clock reaches that time, so replies are deterministic; on a real clock a reply
//    whose computation is late appears when it is done.
//  * service_time unset ("the time the crypto itself takes"): on a real clock when the worker
//    finishes; on a virtual clock at the start time (the next advance), awaited there.
// Replies are dequeued in completion order, which differs from submission order when engines
// run requests of different service times at once (PSMIDs match them up, §5.3).
//
// A reply on a queue whose interruptions are enabled sets the notification byte and raises the
// adapter interruption of the AQIC route, only when the byte was zero: replies that complete
// before the owner cleared it share one interruption (§2.7).
//
// RAPQ/ZAPQ discard requests and replies, disable interruptions and keep the queue "reset in
// progress" for the card's reset_time (forever when the queue is stuck in reset, a fault).
// A card that is deconfigured, checkstopped or leaves the configuration loses the content of its
// queues at once (config_changed()).
//
// Locking: every function requires the machine lock, except that the crypto worker threads run
// without it and hand their results back through Runtime::post_external.
//
// Divergences: multi-part NQAP (GR0 bit 33 clear) is answered with REQ_FAC_NOT_INST;
// instruction segments end at 4 KiB boundaries of guest memory (the vCPU's choice, kvm::Vcpu);
// NO_FIRST_PART, INDEX_TOO_BIG, BUSY and the SE codes are never produced.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "apemu/ap/ap_arch.h"
#include "apemu/ap/ap_hw.h"
#include "apemu/base/runtime.h"

namespace apemu::ap {

/// Where an enabled queue's interruptions go (the AQIC operands): the notification byte and
/// the adapter interruption to raise when it goes from zero to non-zero — the host's ISC, or
/// the guest ISC in a GISA when a hypervisor issued AQIC with the GISA fields.
struct IrqRoute {
  std::uint8_t* nib = nullptr;
  std::function<void()> raise;
};

struct NqapResult {
  int cc = 3;
  QueueStatus status;
};

struct DqapResult {
  int cc = 3;
  QueueStatus status;
  std::uint64_t psmid = 0;
  std::vector<std::uint8_t> data; ///< the bytes stored by this DQAP
  std::size_t residual = 0;       ///< GR2: bytes of the reply not stored yet
};

class ApFirmware {
public:
  using Duration = std::chrono::nanoseconds;

  ApFirmware(ApHardware& hw, Runtime& rt);
  /// Stops the crypto workers (their results are dropped).
  ~ApFirmware();
  ApFirmware(const ApFirmware&) = delete;
  ApFirmware& operator=(const ApFirmware&) = delete;

  ApHardware& hw() const { return *m_hw; }
  Runtime& runtime() const { return *m_rt; }

  // ---- the instructions on a real APQN (the LPAR's view) ---------------------------------------
  /// PQAP(TAPQ). `gr2` receives the information word for RC 0/2/3/4 (facilities only with T).
  QueueStatus tapq(Apqn q, bool t, std::uint64_t* gr2 = nullptr);
  /// PQAP(RAPQ) / PQAP(ZAPQ): RC 02 while a reset is already in progress (nothing restarts).
  QueueStatus rapq(Apqn q, bool f = false);
  QueueStatus zapq(Apqn q, bool f = false);
  /// PQAP(AQIC). Enable (ir): RC 06 without a notification byte, RC 07 when already enabled
  /// (the state was not changed as asked); disable: always RC 00 on a usable queue.
  QueueStatus aqic(Apqn q, const IrqControl& ctl, IrqRoute route = {});
  /// PQAP(QACT): the compatibility type for `in` (cat capped at the card's type, mode the
  /// card's). Returns the status; `out` receives the answer for RC 0.
  QueueStatus qact(Apqn q, QactInfo in, QactInfo* out);
  /// NQAP of one segment of a request. `final_segment` false keeps the bytes and answers cc 2
  /// (re-execute); the request is enqueued with its last segment. cc 3: not enqueued, see RC
  /// (01, 02, 03, 04, 10 Q_FULL, 15 MESSAGE_TOO_BIG, 16 REQ_FAC_NOT_INST, 42 INVALID_DOMAIN).
  NqapResult nqap(Apqn q, std::uint64_t psmid, std::span<const std::uint8_t> segment,
                  bool final_segment, bool last_part, bool special);
  /// DQAP of up to `max` bytes of the first reply. cc 0: the reply is complete; cc 1: `max`
  /// was reached with `residual` bytes left (they stay for the next DQAP); cc 3: RC 10 when no
  /// reply is ready (E tells whether requests are in flight), or 01/02/03/04.
  DqapResult dqap(Apqn q, std::size_t max);
  /// The LPAR's QCI information (ApHardware's, with the adapters' types and state).
  QciFields qci() const;

  // ---- what sysfs shows ------------------------------------------------------------------------
  struct Counts {
    unsigned requestq = 0;  ///< accepted, waiting for an engine
    unsigned pendingq = 0;  ///< in an engine, or replied and not yet dequeued
    std::uint64_t total = 0; ///< requests accepted since boot
  };
  Counts counts(Apqn q) const;
  /// Called for every accepted request (the AP bus counts request_count with it).
  void set_request_observer(std::function<void(Apqn)> fn) { m_observer = std::move(fn); }

  // ---- settings and faults (topology, `apemu ctl card/queue ...`) -------------------------------
  /// The card's service time (nullopt: the crypto time). Applies to requests started later.
  /// Returns: ENODEV for an unknown adapter.
  Result<void> set_service_time(Apid a, std::optional<Duration> t);
  Result<void> set_reset_time(Apid a, Duration t);
  /// Returns: ENODEV for an unknown adapter, EINVAL for fewer than one engine.
  Result<void> set_engines(Apid a, int n);
  /// A queue stuck in reset: RAPQ/ZAPQ never complete while set; clearing it completes a reset
  /// in progress now. Returns: ENODEV when the APQN is not in the configuration.
  Result<void> set_stuck_in_reset(Apqn q, bool on);
  bool stuck_in_reset(Apqn q) const;
  /// The hardware changed (adapter added/removed, (de)configured, checkstopped, domains): queues
  /// that are no longer usable lose their requests, replies and interruption state.
  void config_changed();

private:
  struct Request;
  struct Reply;
  struct FwQueue;
  struct Job;
  class Workers;

  /// The response code TAPQ gives for the queue's state (01, 02, 03, 04 or 00).
  int state_rc(Apqn q) const;
  bool in_config(Apqn q) const;
  FwQueue& fwq(Apqn q);
  const FwQueue* find(Apqn q) const;
  QueueStatus status_of(const FwQueue& fq, int code) const;
  QueueStatus reset(Apqn q);
  void flush(FwQueue& fq);
  void dispatch(Apid a);
  void start(FwQueue& fq, Request& r);
  void try_complete(Apqn q, std::uint64_t id);
  void complete(FwQueue& fq, Request& r);
  std::size_t max_msg_size(const Adapter& a) const;
  Request* request(Apqn q, std::uint64_t id);

  ApHardware* m_hw;
  Runtime* m_rt;
  std::map<Apqn, std::unique_ptr<FwQueue>> m_queues;
  std::map<Apid, unsigned> m_busy;            ///< engines in use per card
  std::map<Apid, std::vector<std::pair<Apqn, std::uint64_t>>> m_waiting; ///< FIFO per card
  std::uint64_t m_next_id = 1;
  std::function<void(Apqn)> m_observer;
  unsigned m_worker_count;
  std::unique_ptr<Workers> m_workers;
  std::shared_ptr<int> m_alive = std::make_shared<int>(0); ///< guards worker callbacks
};

} // namespace apemu::ap
