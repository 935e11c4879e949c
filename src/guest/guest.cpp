// The guest OS's AP side (see guest.h): instructions with their register conventions, memory
// for messages, the notification byte, interruptions and request/reply round trips.
#include "apemu/guest/guest.h"

#include <algorithm>
#include <cstdio>

namespace apemu::guest {

namespace {

constexpr std::uint64_t kLow32 = 0xFFFFFFFFull;
/// Guest memory below this stays unused (lowcore and the like).
constexpr std::uint64_t kHeapStart = 0x10000;
/// Registers the guest uses for NQAP/DQAP: R1 = 4/5 (PSMID), R2 = 6/7 (address, length).
constexpr unsigned kR1 = 4, kR2 = 6;

} // namespace

std::string Instr::describe() const {
  char b[64];
  if (program_interruption) {
    std::snprintf(b, sizeof b, "program interruption 0x%02X (%s)", *program_interruption,
                  std::string(ap::pgm::name(*program_interruption)).c_str());
    return b;
  }
  std::snprintf(b, sizeof b, "cc %d, ", cc);
  return b + status().describe(op);
}

int errno_for_rc(int rc, ap::ApOpcode op) {
  switch (rc) {
  case ap::rc::kQNotAvail:
  case ap::rc::kDeconfigured:
  case ap::rc::kCheckstopped: return ENODEV;
  case ap::rc::kResetInProgress:
  case ap::rc::kBusy: return EAGAIN;
  case 0x10: return op == ap::ApOpcode::Nqap ? EBUSY : EAGAIN;
  case ap::rc::kMessageTooBig: return EMSGSIZE;
  case ap::rc::kInvalidAddress:
  case ap::rc::kInvalidGisa:
  case ap::rc::kReqFacNotInst:
  case ap::rc::kInvalidDomain: return EINVAL;
  default: return EIO;
  }
}

// ---- construction, memory ---------------------------------------------------------------------

Guest::Guest(std::shared_ptr<kvm::Kvm> kvm, Runtime& rt) : m_kvm(std::move(kvm)), m_rt(&rt) {
  // One heap over the first memory slot above the low pages.
  kvm::GuestMemory& mem = m_kvm->memory();
  std::uint64_t end = kHeapStart;
  while (mem.contains(end, kvm::GuestMemory::kPageSize)) end += kvm::GuestMemory::kPageSize;
  if (end > kHeapStart) m_free[kHeapStart] = end - kHeapStart;
  m_nib = alloc(8);
  m_kvm->set_io_interruption_handler(rt, [this](std::uint32_t code) { on_interruption(code); });
}

Guest::~Guest() {
  m_alive.reset();
  m_kvm->set_io_interruption_handler(*m_rt, nullptr);
}

std::uint64_t Guest::alloc(std::size_t n) {
  n = std::max<std::size_t>(8, (n + 7) & ~std::size_t{7});
  for (auto it = m_free.begin(); it != m_free.end(); ++it) {
    if (it->second < n) continue;
    const std::uint64_t addr = it->first;
    const std::size_t rest = it->second - n;
    m_free.erase(it);
    if (rest) m_free[addr + n] = rest;
    m_used[addr] = n;
    return addr;
  }
  return 0;
}

void Guest::free(std::uint64_t addr) {
  auto it = m_used.find(addr);
  if (it == m_used.end()) return;
  std::uint64_t start = addr;
  std::size_t size = it->second;
  m_used.erase(it);
  // Coalesce with the neighbours.
  auto next = m_free.lower_bound(start);
  if (next != m_free.end() && next->first == start + size) {
    size += next->second;
    next = m_free.erase(next);
  }
  if (next != m_free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      m_free.erase(prev);
    }
  }
  m_free[start] = size;
}

std::uint8_t Guest::nib_value() const {
  const std::uint8_t* p = m_kvm->memory().host(m_nib);
  return p ? *p : 0;
}

// ---- instructions -----------------------------------------------------------------------------

Instr Guest::run(ap::ApOpcode op, unsigned r1, unsigned r2) {
  kvm::Vcpu& v = m_kvm->vcpu();
  const kvm::ExecResult res = v.execute(op, r1, r2);
  Instr out;
  out.op = op;
  out.program_interruption = res.program_interruption;
  out.cc = v.cc;
  out.gr0 = v.gr[0];
  out.gr1 = v.gr[1];
  out.gr2 = v.gr[2];
  if (op != ap::ApOpcode::Pqap) {
    out.addr = v.gr[r2];
    out.len = v.gr[r2 + 1];
  }
  if (op == ap::ApOpcode::Dqap) out.psmid = (v.gr[r1] & kLow32) << 32 | (v.gr[r1 + 1] & kLow32);
  return out;
}

Instr Guest::pqap(std::uint64_t gr0, std::uint64_t gr1, std::uint64_t gr2) {
  kvm::Vcpu& v = m_kvm->vcpu();
  v.gr[0] = gr0;
  v.gr[1] = gr1;
  v.gr[2] = gr2;
  return run(ap::ApOpcode::Pqap, 0, 0);
}

Instr Guest::tapq(Apqn q, bool t) {
  // Linux zeroes GR1 and GR2 (guest-ap.md §2.4).
  return pqap(ap::gr0::pqap(ap::fc::kTapq, q, t ? ap::gr0::kTBit : 0));
}

Instr Guest::rapq(Apqn q, bool f) {
  return pqap(ap::gr0::pqap(ap::fc::kRapq, q, f ? ap::gr0::kFBit : 0));
}

Instr Guest::zapq(Apqn q, bool f) {
  return pqap(ap::gr0::pqap(ap::fc::kZapq, q, f ? ap::gr0::kFBit : 0));
}

Instr Guest::aqic(Apqn q, bool enable, unsigned isc, std::uint64_t nib) {
  ap::IrqControl ctl;
  ctl.ir = enable;
  ctl.isc = isc;
  return pqap(ap::gr0::pqap(ap::fc::kAqic, q), ctl.gr1(), nib);
}

Instr Guest::qci(std::uint64_t addr) {
  return pqap(std::uint64_t{ap::fc::kQci} << ap::gr0::kFcShift, 0, addr);
}

Instr Guest::qact(Apqn q, ap::QactInfo in) {
  return pqap(ap::gr0::pqap(ap::fc::kQact, q), in.word());
}

Instr Guest::nqap(Apqn q, std::uint64_t psmid, std::uint64_t addr, std::uint64_t len,
                  bool special, bool last_part) {
  kvm::Vcpu& v = m_kvm->vcpu();
  v.gr[0] = std::uint64_t{q.qid()} | (last_part ? ap::gr0::kNqapLastPart : 0) |
            (special ? ap::gr0::kNqapSpecial : 0);
  v.gr[kR1] = psmid >> 32;
  v.gr[kR1 + 1] = psmid & kLow32;
  v.gr[kR2] = addr;
  v.gr[kR2 + 1] = len;
  return run(ap::ApOpcode::Nqap, kR1, kR2);
}

Instr Guest::dqap(Apqn q, std::uint64_t addr, std::uint64_t len) {
  kvm::Vcpu& v = m_kvm->vcpu();
  v.gr[0] = std::uint64_t{q.qid()} | ap::gr0::kDqapBit32;
  v.gr[2] = 0;
  v.gr[kR1] = v.gr[kR1 + 1] = 0;
  v.gr[kR2] = addr;
  v.gr[kR2 + 1] = len;
  return run(ap::ApOpcode::Dqap, kR1, kR2);
}

// ---- the guest AP bus's loops -----------------------------------------------------------------

Result<ap::QciFields> Guest::query_config(Instr* out) {
  const std::uint64_t buf = alloc(ap::kQciBlockSize);
  if (!buf) return Error(ENOMEM, "guest memory exhausted");
  Instr i = qci(buf);
  if (out) *out = i;
  ap::QciBlock block{};
  const bool ok = !i.exception() && m_kvm->memory().read(buf, block);
  free(buf);
  if (!ok) return Error(EINVAL, "QCI: " + i.describe());
  return ap::decode_qci(block);
}

Instr Guest::send(Apqn q, std::uint64_t psmid, std::span<const std::uint8_t> msg, bool special) {
  const std::uint64_t buf = alloc(msg.size());
  (void)m_kvm->memory().write(buf, msg);
  Instr i = nqap(q, psmid, buf, msg.size(), special);
  while (!i.exception() && i.cc == 2) i = nqap(q, psmid, i.addr, i.len, special);
  free(buf);
  return i;
}

Instr Guest::receive(Apqn q, std::vector<std::uint8_t>& data, std::size_t max) {
  data.clear();
  const std::uint64_t buf = alloc(max);
  std::uint64_t addr = buf, len = max;
  Instr i;
  for (;;) {
    i = dqap(q, addr, len);
    if (i.exception() || i.cc == 3) break;
    const std::size_t stored = static_cast<std::size_t>(i.addr - addr);
    const std::size_t at = data.size();
    data.resize(at + stored);
    (void)m_kvm->memory().read(addr, std::span(data).subspan(at, stored));
    addr = i.addr;
    len = i.len;
    // Re-execute while the machine stopped early and the buffer has room (cc 1/2).
    if (i.cc == 0 || len == 0) break;
  }
  free(buf);
  return i;
}

// ---- interruptions ----------------------------------------------------------------------------

void Guest::enable_isc(unsigned isc) {
  kvm::Vcpu& v = m_kvm->vcpu();
  v.set_cr6(static_cast<std::uint8_t>(v.cr6() | (0x80u >> (isc & 7))));
}

void Guest::on_interruption(std::uint32_t code) {
  m_interruptions.push_back(code);
  // The AP interruption handler runs only for a non-zero indicator; it clears it first, then
  // polls the queues (guest-ap.md §2.7).
  std::uint8_t* nib = m_kvm->memory().host(m_nib);
  if (!nib || *nib == 0) return;
  *nib = 0;
  std::vector<std::function<void()>> waiters;
  for (auto& [id, fn] : m_irq_waiters) waiters.push_back(fn);
  for (auto& fn : waiters) fn();
}

// ---- round trips ------------------------------------------------------------------------------

struct Guest::Waiter : std::enable_shared_from_this<Guest::Waiter> {
  Guest* g = nullptr;
  std::weak_ptr<int> alive;
  std::shared_ptr<Exchange> x;
  ExchangeOptions opt;
  Runtime::TimerId poll_timer = 0, timeout_timer = 0;
  std::uint64_t irq_waiter = 0;
  bool finished = false;

  void finish(Result<void> r) {
    if (finished) return;
    finished = true;
    Runtime& rt = *g->m_rt;
    if (poll_timer) rt.cancel(poll_timer);
    if (timeout_timer) rt.cancel(timeout_timer);
    poll_timer = timeout_timer = 0;
    if (irq_waiter) g->m_irq_waiters.erase(irq_waiter);
    irq_waiter = 0;
    x->completed = rt.now();
    x->done->complete(std::move(r));
  }
  Result<void> fail_rc(const Instr& i) {
    if (i.exception()) return Error(EINVAL, i.describe());
    return Error(errno_for_rc(i.rc(), i.op), i.describe());
  }
  void arm_poll() {
    auto self = shared_from_this();
    poll_timer = g->m_rt->call_after(
        opt.poll_interval,
        [self] {
          self->poll_timer = 0;
          if (self->alive.lock()) self->check();
        },
        "guest poll " + x->apqn.name());
  }
  /// DQAP until the reply of this exchange is there, or nothing is ready.
  void check() {
    if (finished) return;
    for (;;) {
      std::vector<std::uint8_t> data;
      Instr r = g->receive(x->apqn, data, opt.reply_buffer);
      x->last = r;
      if (r.exception()) return finish(fail_rc(r));
      if (r.cc == 3) {
        if (r.rc() != 0x10) return finish(fail_rc(r));
        ++x->polls; // nothing ready yet
        if (!opt.irq) arm_poll();
        return;
      }
      if (r.cc != 0) {
        // Buffer too small: drain the rest of the reply, then fail (Linux: -EMSGSIZE).
        Instr d = r;
        while (!d.exception() && d.cc != 0 && d.cc != 3) d = g->receive(x->apqn, data, opt.reply_buffer);
        return finish(Error(EMSGSIZE, "reply larger than " + std::to_string(opt.reply_buffer) + " bytes"));
      }
      if (r.psmid != x->psmid) {
        ++x->dropped; // not ours: Linux drops replies with an unknown PSMID
        continue;
      }
      x->reply = std::move(data);
      return finish({});
    }
  }
};

std::shared_ptr<Exchange> Guest::exchange(Apqn q, std::span<const std::uint8_t> msg,
                                          ExchangeOptions opt) {
  auto x = std::make_shared<Exchange>();
  x->done = std::make_shared<Completion>();
  x->apqn = q;
  auto w = std::make_shared<Waiter>();
  w->g = this;
  w->alive = m_alive;
  w->x = x;
  w->opt = opt;
  if (opt.irq) {
    enable_isc(opt.isc);
    Instr a = aqic(q, true, opt.isc, m_nib);
    x->last = a;
    // RC 07: interruptions were already enabled, which is what we want.
    if (a.exception() || (a.rc() != ap::rc::kNormal && a.rc() != ap::rc::kOtherwiseChanged)) {
      w->finish(w->fail_rc(a));
      return x;
    }
  }
  if (std::uint8_t* nib = m_kvm->memory().host(m_nib)) *nib = 0;
  x->psmid = next_psmid();
  Instr n = send(q, x->psmid, msg);
  x->last = n;
  if (n.exception() || n.cc != 0) {
    w->finish(w->fail_rc(n));
    return x;
  }
  x->submitted = m_rt->now();
  w->timeout_timer = m_rt->call_after(
      opt.timeout,
      [w] {
        w->timeout_timer = 0;
        if (w->alive.lock()) w->finish(Error(ETIMEDOUT, "no reply for PSMID in time"));
      },
      "guest timeout " + q.name());
  if (opt.irq) {
    w->irq_waiter = m_next_waiter++;
    m_irq_waiters[w->irq_waiter] = [w] {
      if (!w->x->interruption && !w->g->m_interruptions.empty())
        w->x->interruption = w->g->m_interruptions.back();
      w->check();
    };
  } else {
    w->arm_poll();
  }
  return x;
}

Result<void> run_until(Runtime& rt, const Completion& c, std::chrono::nanoseconds limit) {
  if (!rt.virtual_clock()) return Error(EINVAL, "the clock is real time");
  const auto end = rt.now() + limit;
  rt.run_pending();
  while (!c.done()) {
    const auto timers = rt.timers();
    if (timers.empty()) return Error(ETIMEDOUT, "nothing left to happen on the clock");
    if (timers.front().first > end) {
      (void)rt.advance(end - rt.now());
      return Error(ETIMEDOUT, "not done within the time limit");
    }
    (void)rt.advance_to_next();
  }
  return {};
}

} // namespace apemu::guest
