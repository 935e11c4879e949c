// The AP firmware queues, their engines and the instructions on a real APQN (see
// ap_firmware.h; guest-ap.md §2.3–§2.8, §5, §6, §9).
#include "apemu/ap/ap_firmware.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "apemu/ap/msgtype50.h"

namespace apemu::ap {

namespace {

/// AP_DEFAULT_MAX_MSG_SIZE: what a card without a usable ML field takes.
constexpr std::size_t kDefaultMaxMsgSize = 12288;

/// The coprocessors model no request: they answer every message with the error reply the card
/// gives for it (guest-ap.md §6.3, §6.4) — 0x30 "invalid command" for a CCA/EP11 request
/// (type 6: the function is not one the model executes), 0x20 "message type" for anything
/// else. Never a silent success.
std::vector<std::uint8_t> coprocessor_reply(std::span<const std::uint8_t> msg) {
  if (msg.empty()) return msg50::error_reply(msg50::err::kZeroBufferLength);
  if (msg.size() >= 2 && msg[1] == msg50::kType6)
    return msg50::error_reply(msg50::err::kInvalidCommand);
  return msg50::error_reply(msg50::err::kMessageType);
}

std::uint32_t be32(std::span<const std::uint8_t> b, std::size_t off) {
  return std::uint32_t{b[off]} << 24 | std::uint32_t{b[off + 1]} << 16 |
         std::uint32_t{b[off + 2]} << 8 | b[off + 3];
}

} // namespace

// ---- the queue model --------------------------------------------------------------------------

/// The computation of one request on a worker thread.
struct ApFirmware::Job {
  std::vector<std::uint8_t> msg;
  ApMode mode = ApMode::Accel;
  msg50::AccelLimits limits;
  std::function<void()> on_done; ///< runs on the worker thread after finish()

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::vector<std::uint8_t> reply;

  void run() {
    auto r = mode == ApMode::Accel ? msg50::process_type50(msg, limits) : coprocessor_reply(msg);
    {
      std::lock_guard g(mu);
      reply = std::move(r);
      done = true;
    }
    cv.notify_all();
    if (on_done) on_done();
  }
  bool is_done() {
    std::lock_guard g(mu);
    return done;
  }
  /// Virtual clock only (the machine awaits a result that is due): yields for up to 2 ms
  /// before sleeping, which spares the sleeper's wake-up on short computations.
  void wait() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    while (!is_done() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    std::unique_lock g(mu);
    cv.wait(g, [&] { return done; });
  }
};

struct ApFirmware::Request {
  std::uint64_t id = 0;
  std::uint64_t psmid = 0;
  std::vector<std::uint8_t> msg; ///< until started
  bool running = false;
  bool due = false; ///< the service time has passed
  std::shared_ptr<Job> job;
  Runtime::TimerId timer = 0;
};

struct ApFirmware::Reply {
  std::uint64_t psmid = 0;
  std::vector<std::uint8_t> data;
  std::size_t offset = 0; ///< bytes already dequeued (a partial DQAP)
};

struct ApFirmware::FwQueue {
  Apqn apqn;
  std::list<Request> requests; ///< accepted, not yet replied
  std::deque<Reply> replies;   ///< in completion order
  /// An NQAP interrupted at a segment boundary: its PSMID and the bytes so far.
  std::optional<std::pair<std::uint64_t, std::vector<std::uint8_t>>> partial;
  bool irq = false;
  IrqRoute route;
  bool resetting = false;
  bool stuck = false;
  Duration reset_until{0};
  std::uint64_t total = 0;
  /// A request occupies a slot from NQAP until its reply is dequeued (§5.4).
  std::size_t slots() const { return requests.size() + replies.size(); }
};

/// The crypto workers: threads that compute requests outside the machine lock. Started on the
/// first request.
class ApFirmware::Workers {
public:
  explicit Workers(unsigned n) {
    for (unsigned i = 0; i < n; ++i) m_threads.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard g(m_mu);
      m_stop = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) t.join();
  }
  void submit(std::shared_ptr<Job> j) {
    {
      std::lock_guard g(m_mu);
      m_jobs.push_back(std::move(j));
    }
    m_cv.notify_one();
  }

private:
  void loop() {
    for (;;) {
      std::shared_ptr<Job> j;
      // The next request usually follows the completion of the last one within microseconds:
      // look for it briefly before sleeping.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
      while (std::chrono::steady_clock::now() < until) {
        {
          std::lock_guard g(m_mu);
          if (m_stop || !m_jobs.empty()) break;
        }
        std::this_thread::yield();
      }
      {
        std::unique_lock g(m_mu);
        m_cv.wait(g, [&] { return m_stop || !m_jobs.empty(); });
        if (m_stop) return;
        j = std::move(m_jobs.front());
        m_jobs.pop_front();
      }
      j->run();
    }
  }
  std::mutex m_mu;
  std::condition_variable m_cv;
  std::deque<std::shared_ptr<Job>> m_jobs;
  bool m_stop = false;
  std::vector<std::thread> m_threads;
};

ApFirmware::ApFirmware(ApHardware& hw, Runtime& rt)
    : m_hw(&hw), m_rt(&rt),
      // Asked now: hardware_concurrency reads /sys/devices/system/cpu/online, which under
      // `apemu run` is this process's own FUSE mount once it serves.
      m_worker_count(std::max(1u, std::min(4u, std::thread::hardware_concurrency()))) {}

ApFirmware::~ApFirmware() {
  m_alive.reset();   // results that arrive from now on are dropped
  m_workers.reset(); // joins
  for (auto& [q, fq] : m_queues)
    for (auto& r : fq->requests)
      if (r.timer && m_rt->lock().held_by_me()) m_rt->cancel(r.timer);
}

// ---- state ------------------------------------------------------------------------------------

bool ApFirmware::in_config(Apqn q) const {
  const Adapter* a = m_hw->adapter(q.apid);
  const Qci& qci = m_hw->qci();
  return a && qci.configured(q.apid) && qci.usage(q.apqi) && a->domains.test(q.apqi);
}

int ApFirmware::state_rc(Apqn q) const {
  if (!in_config(q)) return rc::kQNotAvail;
  const Adapter* a = m_hw->adapter(q.apid);
  if (a->chkstop) return rc::kCheckstopped;
  if (!a->configured) return rc::kDeconfigured;
  if (const FwQueue* fq = find(q); fq && fq->resetting) {
    if (fq->stuck || m_rt->now() < fq->reset_until) return rc::kResetInProgress;
    const_cast<FwQueue*>(fq)->resetting = false; // the reset completed in the meantime
  }
  return rc::kNormal;
}

ApFirmware::FwQueue& ApFirmware::fwq(Apqn q) {
  auto& p = m_queues[q];
  if (!p) {
    p = std::make_unique<FwQueue>();
    p->apqn = q;
  }
  return *p;
}

const ApFirmware::FwQueue* ApFirmware::find(Apqn q) const {
  auto it = m_queues.find(q);
  return it == m_queues.end() ? nullptr : it->second.get();
}

QueueStatus ApFirmware::status_of(const FwQueue& fq, int code) const {
  // Q_NOT_AVAIL carries no queue state; every other answer shows the queue's flags.
  if (code == rc::kQNotAvail) return QueueStatus::only(code);
  const Adapter* a = m_hw->adapter(fq.apqn.apid);
  const std::size_t depth = a ? static_cast<std::size_t>(std::max(1, a->depth)) : 1;
  QueueStatus s;
  s.queue_empty = fq.slots() == 0;
  s.replies_waiting = !fq.replies.empty();
  s.queue_full = fq.slots() >= depth;
  s.irq_enabled = fq.irq;
  s.response_code = code;
  return s;
}

std::size_t ApFirmware::max_msg_size(const Adapter& a) const {
  return a.ml > 0 ? static_cast<std::size_t>(a.ml) * 4096 : kDefaultMaxMsgSize;
}

ApFirmware::Request* ApFirmware::request(Apqn q, std::uint64_t id) {
  auto it = m_queues.find(q);
  if (it == m_queues.end()) return nullptr;
  for (auto& r : it->second->requests)
    if (r.id == id) return &r;
  return nullptr;
}

// ---- processing -------------------------------------------------------------------------------

void ApFirmware::flush(FwQueue& fq) {
  const Apid a = fq.apqn.apid;
  for (auto& r : fq.requests) {
    if (r.timer) m_rt->cancel(r.timer);
    if (r.running && m_busy[a] > 0) --m_busy[a]; // the engine is free; its result is dropped
  }
  fq.requests.clear();
  fq.replies.clear();
  fq.partial.reset();
  fq.irq = false;
  fq.route = {};
  dispatch(a);
}

void ApFirmware::dispatch(Apid a) {
  const Adapter* ad = m_hw->adapter(a);
  if (!ad) return;
  auto& waiting = m_waiting[a];
  const unsigned engines = static_cast<unsigned>(std::max(1, ad->engines));
  while (m_busy[a] < engines && !waiting.empty()) {
    const auto [q, id] = waiting.front();
    waiting.erase(waiting.begin());
    Request* r = request(q, id);
    if (!r) continue; // flushed while it waited
    start(fwq(q), *r);
  }
}

void ApFirmware::start(FwQueue& fq, Request& r) {
  const Adapter* ad = m_hw->adapter(fq.apqn.apid);
  ++m_busy[fq.apqn.apid];
  r.running = true;
  auto job = std::make_shared<Job>();
  job->msg = std::move(r.msg);
  job->mode = ad->mode;
  job->limits = {(ad->functions() & fac::kMex4k) != 0, (ad->functions() & fac::kCrt4k) != 0};
  const bool real = !m_rt->virtual_clock();
  const Apqn q = fq.apqn;
  const std::uint64_t id = r.id;
  if (real) {
    // The worker hands the result back to the machine; a dead firmware drops it.
    std::weak_ptr<int> alive = m_alive;
    Runtime* rt = m_rt;
    job->on_done = [this, alive, rt, q, id] {
      rt->post_external([this, alive, q, id] {
        if (alive.lock()) try_complete(q, id);
      });
    };
  }
  r.job = job;
  if (!m_workers) {
    m_workers = std::make_unique<Workers>(m_worker_count);
  }
  m_workers->submit(job);
  const std::optional<Duration> svc = ad->service_time;
  if (svc || !real) {
    // Visible at the service-time deadline (virtual clock without a service time: at the next
    // step of the clock, where the computation is awaited).
    char name[64];
    std::snprintf(name, sizeof name, "ap %s reply psmid 0x%016llx", q.name().c_str(),
                  static_cast<unsigned long long>(r.psmid));
    r.timer = m_rt->call_after(
        svc.value_or(Duration::zero()),
        [this, q, id] {
          Request* req = request(q, id);
          if (!req) return;
          req->timer = 0;
          req->due = true;
          try_complete(q, id);
        },
        name);
  } else {
    r.due = true; // real clock, crypto time: when the worker is done
  }
}

void ApFirmware::try_complete(Apqn q, std::uint64_t id) {
  Request* r = request(q, id);
  if (!r || !r->due || !r->job) return;
  if (!r->job->is_done()) {
    if (!m_rt->virtual_clock()) return; // the worker's post completes it
    r->job->wait(); // virtual time reached the deadline: the result is due now
  }
  complete(fwq(q), *r);
}

void ApFirmware::complete(FwQueue& fq, Request& r) {
  const Apid a = fq.apqn.apid;
  Reply reply;
  reply.psmid = r.psmid;
  {
    std::lock_guard g(r.job->mu);
    reply.data = std::move(r.job->reply);
  }
  fq.requests.remove_if([&](const Request& x) { return &x == &r; });
  fq.replies.push_back(std::move(reply));
  if (m_busy[a] > 0) --m_busy[a];
  // One interruption per batch: only a notification byte going from zero raises one (§2.7).
  if (fq.irq && fq.route.nib && *fq.route.nib == 0) {
    *fq.route.nib = 0xFF;
    if (fq.route.raise) fq.route.raise();
  }
  dispatch(a);
}

// ---- instructions -----------------------------------------------------------------------------

QueueStatus ApFirmware::tapq(Apqn q, bool t, std::uint64_t* gr2) {
  m_rt->lock().assert_held();
  const int code = state_rc(q);
  if (code == rc::kQNotAvail) return QueueStatus::only(code);
  const Adapter* a = m_hw->adapter(q.apid);
  if (gr2) {
    // Without T the facility word is not stored (guest-ap.md §2.4: T asks for it).
    TapqInfo info{t ? a->functions() : 0, static_cast<unsigned>(a->raw_type),
                  (m_hw->qci().nd + 1) & 0xFF, static_cast<unsigned>(a->ml),
                  static_cast<unsigned>(std::max(1, a->depth) - 1)};
    *gr2 = info.gr2();
  }
  return status_of(fwq(q), code);
}

QueueStatus ApFirmware::reset(Apqn q) {
  m_rt->lock().assert_held();
  const int code = state_rc(q);
  if (code != rc::kNormal) {
    if (code == rc::kQNotAvail) return QueueStatus::only(code);
    return status_of(fwq(q), code);
  }
  FwQueue& fq = fwq(q);
  flush(fq);
  fq.resetting = true;
  fq.reset_until = m_rt->now() + m_hw->adapter(q.apid)->reset_time;
  return status_of(fq, rc::kNormal);
}

QueueStatus ApFirmware::rapq(Apqn q, bool) { return reset(q); }
QueueStatus ApFirmware::zapq(Apqn q, bool) { return reset(q); }

QueueStatus ApFirmware::aqic(Apqn q, const IrqControl& ctl, IrqRoute route) {
  m_rt->lock().assert_held();
  const int code = state_rc(q);
  if (code == rc::kQNotAvail) return QueueStatus::only(code);
  FwQueue& fq = fwq(q);
  if (code != rc::kNormal) return status_of(fq, code);
  if (ctl.ir) {
    if (fq.irq) return status_of(fq, rc::kOtherwiseChanged); // already enabled: not changed
    if (!route.nib) return status_of(fq, rc::kInvalidAddress);
    fq.irq = true;
    fq.route = std::move(route);
    return status_of(fq, rc::kNormal);
  }
  fq.irq = false;
  fq.route = {};
  return status_of(fq, rc::kNormal);
}

QueueStatus ApFirmware::qact(Apqn q, QactInfo in, QactInfo* out) {
  m_rt->lock().assert_held();
  const int code = state_rc(q);
  if (code == rc::kQNotAvail) return QueueStatus::only(code);
  FwQueue& fq = fwq(q);
  if (code != rc::kNormal) return status_of(fq, code);
  const Adapter* a = m_hw->adapter(q.apid);
  if (out) {
    out->mode = (a->functions() >> 26) & 7; // D/A/X
    out->cat = std::min(in.cat, static_cast<unsigned>(a->raw_type));
    out->ver = in.ver;
  }
  return status_of(fq, rc::kNormal);
}

NqapResult ApFirmware::nqap(Apqn q, std::uint64_t psmid, std::span<const std::uint8_t> segment,
                            bool final_segment, bool last_part, bool special) {
  m_rt->lock().assert_held();
  const int code = state_rc(q);
  if (code == rc::kQNotAvail) return {3, QueueStatus::only(code)};
  FwQueue& fq = fwq(q);
  if (code != rc::kNormal) return {3, status_of(fq, code)};
  const Adapter& a = *m_hw->adapter(q.apid);
  // The special-command flag needs APSC; multi-part messages are not a facility of this model.
  if ((special && !a.apsc) || !last_part) return {3, status_of(fq, rc::kReqFacNotInst)};
  if (fq.slots() >= static_cast<std::size_t>(std::max(1, a.depth)))
    return {3, status_of(fq, rc::kQFull)};
  std::vector<std::uint8_t> bytes;
  if (fq.partial && fq.partial->first == psmid) bytes = std::move(fq.partial->second);
  fq.partial.reset();
  bytes.insert(bytes.end(), segment.begin(), segment.end());
  if (bytes.size() > max_msg_size(a)) return {3, status_of(fq, rc::kMessageTooBig)};
  if (!final_segment) {
    fq.partial.emplace(psmid, std::move(bytes));
    return {2, status_of(fq, rc::kNormal)};
  }
  // A CCA request names its target domain in the CPRBX (guest-ap.md §6.4): another domain is
  // refused by NQAP (§2.3 INVALID_DOMAIN).
  if (a.mode == ApMode::Cca && bytes.size() >= msg50::kType6HeaderSize &&
      bytes[1] == msg50::kType6) {
    const std::size_t cprb = be32(bytes, 0x10);
    if (cprb + msg50::kCprbxDomainOffset + 2 <= bytes.size() &&
        bytes[cprb + 2] == msg50::kCprbxVersion &&
        msg50::get16(bytes, cprb + msg50::kCprbxDomainOffset) != id(q.apqi))
      return {3, status_of(fq, rc::kInvalidDomain)};
  }
  Request r;
  r.id = m_next_id++;
  r.psmid = psmid;
  r.msg = std::move(bytes);
  const std::uint64_t rid = r.id;
  fq.requests.push_back(std::move(r));
  ++fq.total;
  m_waiting[q.apid].emplace_back(q, rid);
  if (m_observer) m_observer(q);
  dispatch(q.apid);
  return {0, status_of(fq, rc::kNormal)};
}

DqapResult ApFirmware::dqap(Apqn q, std::size_t max) {
  m_rt->lock().assert_held();
  DqapResult out;
  const int code = state_rc(q);
  if (code == rc::kQNotAvail) {
    out.status = QueueStatus::only(code);
    return out;
  }
  FwQueue& fq = fwq(q);
  if (code != rc::kNormal) {
    out.status = status_of(fq, code);
    return out;
  }
  if (fq.replies.empty()) {
    out.status = status_of(fq, rc::kNoPendingReply);
    return out;
  }
  Reply& r = fq.replies.front();
  const std::size_t n = std::min(max, r.data.size() - r.offset);
  out.psmid = r.psmid;
  out.data.assign(r.data.begin() + static_cast<std::ptrdiff_t>(r.offset),
                  r.data.begin() + static_cast<std::ptrdiff_t>(r.offset + n));
  r.offset += n;
  out.residual = r.data.size() - r.offset;
  if (out.residual == 0) {
    fq.replies.pop_front();
    out.cc = 0;
  } else {
    out.cc = 1;
  }
  out.status = status_of(fq, rc::kNormal);
  return out;
}

QciFields ApFirmware::qci() const {
  const Qci& q = m_hw->qci();
  QciFields f;
  f.apsc = q.apsc;
  f.apxa = q.apxa;
  f.qact = q.qact;
  f.rc8a = q.rc8a;
  f.apsb = q.apsb;
  f.na = q.apxa ? q.na : 0;
  f.nd = q.apxa ? q.nd : 0;
  f.apm = q.apm;
  f.aqm = q.aqm;
  f.adm = q.adm;
  return f;
}

// ---- counters, settings, faults ---------------------------------------------------------------

ApFirmware::Counts ApFirmware::counts(Apqn q) const {
  Counts c;
  const FwQueue* fq = find(q);
  if (!fq) return c;
  for (const auto& r : fq->requests) (r.running ? c.pendingq : c.requestq) += 1;
  c.pendingq += static_cast<unsigned>(fq->replies.size());
  c.total = fq->total;
  return c;
}

Result<void> ApFirmware::set_service_time(Apid a, std::optional<Duration> t) {
  m_rt->lock().assert_held();
  Adapter* ad = m_hw->adapter(a);
  if (!ad) return Error(ENODEV, "no adapter " + std::to_string(id(a)));
  if (t && *t < Duration::zero()) return Error(EINVAL, "negative service time");
  ad->service_time = t;
  return {};
}

Result<void> ApFirmware::set_reset_time(Apid a, Duration t) {
  m_rt->lock().assert_held();
  Adapter* ad = m_hw->adapter(a);
  if (!ad) return Error(ENODEV, "no adapter " + std::to_string(id(a)));
  if (t < Duration::zero()) return Error(EINVAL, "negative reset time");
  ad->reset_time = t;
  return {};
}

Result<void> ApFirmware::set_engines(Apid a, int n) {
  m_rt->lock().assert_held();
  Adapter* ad = m_hw->adapter(a);
  if (!ad) return Error(ENODEV, "no adapter " + std::to_string(id(a)));
  if (n < 1) return Error(EINVAL, "a card has at least one engine");
  ad->engines = n;
  dispatch(a);
  return {};
}

Result<void> ApFirmware::set_stuck_in_reset(Apqn q, bool on) {
  m_rt->lock().assert_held();
  if (!in_config(q)) return Error(ENODEV, "APQN " + q.name() + " is not in the configuration");
  FwQueue& fq = fwq(q);
  fq.stuck = on;
  if (!on && fq.resetting) fq.reset_until = std::min(fq.reset_until, m_rt->now());
  return {};
}

bool ApFirmware::stuck_in_reset(Apqn q) const {
  const FwQueue* fq = find(q);
  return fq && fq->stuck;
}

void ApFirmware::config_changed() {
  m_rt->lock().assert_held();
  for (auto& [q, fq] : m_queues) {
    const int code = state_rc(q);
    if (code == rc::kQNotAvail || code == rc::kDeconfigured || code == rc::kCheckstopped)
      if (fq->slots() || fq->irq || fq->partial) flush(*fq);
  }
}

} // namespace apemu::ap
