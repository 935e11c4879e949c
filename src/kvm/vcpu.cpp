// AP instructions of a guest under SIE (guest-ap.md §2, §5, §9): with ECA_APIE the machine
// interprets PQAP (except AQIC, which KVM intercepts: priv.cpp), NQAP and DQAP against the
// guest's APCB and executes them on the real APQN (ap::ApFirmware).
//
// Chosen where the specification leaves it open: an NQAP/DQAP operand is processed up to the
// next 4 KiB boundary of guest memory per execution (cc 2, re-execute); BAPQ/AAPQ and the
// function codes 6 and above 8 are specification exceptions (Secure Execution is not modelled);
// QCI needs an operand inside guest memory (addressing exception otherwise).
#include <algorithm>

#include "apemu/ap/ap_firmware.h"
#include "apemu/kvm/kvm.h"

namespace apemu::kvm {

using ap::pgm::kAddressing;
using ap::pgm::kOperation;
using ap::pgm::kPrivileged;
using ap::pgm::kSpecification;

namespace {

constexpr std::uint64_t kLow32 = 0xFFFFFFFFull;

/// Bytes from `addr` to the next 4 KiB boundary, at most `len` (an operand segment).
std::uint64_t segment(std::uint64_t addr, std::uint64_t len) {
  return std::min(len, GuestMemory::kPageSize - addr % GuestMemory::kPageSize);
}

bool has_info(int code) {
  return code == ap::rc::kNormal || code == ap::rc::kResetInProgress ||
         code == ap::rc::kDeconfigured || code == ap::rc::kCheckstopped ||
         code == ap::rc::kBusy;
}

} // namespace

ExecResult Vcpu::execute(ap::ApOpcode op, unsigned r1, unsigned r2) {
  Kvm& k = *m_kvm;
  // Without AP interpretation every AP instruction is intercepted and handed to user space;
  // QEMU implements none of them and injects an operation exception (guest-ap.md §1, §7.2).
  if (!k.m_cfg.apie || !k.m_machine) return {kOperation};
  if (op == ap::ApOpcode::Pqap && ap::gr0::fc_of(gr[0]) == ap::fc::kAqic) return k.handle_pqap(*this);
  if (problem_state) return {kPrivileged};
  switch (op) {
  case ap::ApOpcode::Pqap: return interpret_pqap();
  case ap::ApOpcode::Nqap: return interpret_nqap(r1, r2);
  case ap::ApOpcode::Dqap: return interpret_dqap(r1, r2);
  }
  return {kOperation};
}

void Vcpu::set_status(const ap::QueueStatus& s) {
  gr[1] = s.word(); // the status word in bits 32-63, bits 0-31 zero
  cc = s.response_code == ap::rc::kNormal ? 0 : 3;
}

std::optional<ExecResult> Vcpu::check_apqn(Apqn q) {
  Kvm& k = *m_kvm;
  if (k.m_cfg.format != CrycbFormat::Format2) {
    // Without APXA only APIDs 0-63 and APQIs 0-15 exist.
    if (id(q.apid) > 63 || id(q.apqi) > 15) return ExecResult{kSpecification};
  } else {
    const ap::QciFields host = k.m_machine->qci();
    const unsigned na = host.apxa ? host.na : 63, nd = host.apxa ? host.nd : 15;
    if (id(q.apid) > na || id(q.apqi) > nd) return ExecResult{kSpecification};
  }
  if (!k.m_apm.test(q.apid) || !k.m_aqm.test(q.apqi)) {
    set_status(ap::QueueStatus::only(ap::rc::kQNotAvail)); // not in this configuration
    return ExecResult{};
  }
  return std::nullopt;
}

ExecResult Vcpu::interpret_pqap() {
  Kvm& k = *m_kvm;
  const std::uint64_t g0 = gr[0];
  const unsigned f = ap::gr0::fc_of(g0);
  std::uint64_t allowed = 0;
  switch (f) {
  case ap::fc::kTapq: allowed = ap::gr0::kTBit; break;
  case ap::fc::kRapq:
  case ap::fc::kZapq:
  case ap::fc::kQact: allowed = ap::gr0::kFBit; break;
  case ap::fc::kQci: break;
  default: return {kSpecification};
  }
  if ((g0 & 0x00FF0000) & ~allowed) return {kSpecification};
  if ((g0 & ap::gr0::kTBit) && !k.m_cfg.apft) return {kSpecification};
  ap::ApFirmware& m = *k.m_machine;
  if (f == ap::fc::kQci) {
    if (!k.m_cfg.apqci) return {kSpecification};
    // The machine answers from the guest's APCB (guest-ap.md §2.6), with the host's facilities;
    // APXA and Na/Nd only for a format-2 CRYCB.
    const ap::QciFields host = m.qci();
    ap::QciFields g = host;
    g.apxa = host.apxa && k.m_cfg.format == CrycbFormat::Format2;
    g.na = g.apxa ? host.na : 0;
    g.nd = g.apxa ? host.nd : 0;
    g.apm = k.m_apm;
    g.aqm = k.m_aqm;
    g.adm = k.m_adm;
    const ap::QciBlock block = ap::encode_qci(g);
    if (!k.m_memory.write(gr[2], block)) return {kAddressing};
    cc = 0;
    return {};
  }
  if (f == ap::fc::kQact && !m.qci().qact) return {kSpecification};
  const Apqn q = ap::gr0::apqn_of(g0);
  if (auto r = check_apqn(q)) return *r;
  switch (f) {
  case ap::fc::kTapq: {
    std::uint64_t info = 0;
    const ap::QueueStatus s = m.tapq(q, g0 & ap::gr0::kTBit, &info);
    set_status(s);
    if (has_info(s.response_code)) gr[2] = info;
    return {};
  }
  case ap::fc::kRapq: set_status(m.rapq(q, g0 & ap::gr0::kFBit)); return {};
  case ap::fc::kZapq: set_status(m.zapq(q, g0 & ap::gr0::kFBit)); return {};
  case ap::fc::kQact: {
    ap::QactInfo out;
    const ap::QueueStatus s = m.qact(q, ap::QactInfo::from_word(gr[1]), &out);
    set_status(s);
    if (s.response_code == ap::rc::kNormal) gr[2] = out.word();
    return {};
  }
  default: return {kSpecification};
  }
}

ExecResult Vcpu::interpret_nqap(unsigned r1, unsigned r2) {
  Kvm& k = *m_kvm;
  if ((r1 & 1) || (r2 & 1) || r1 > 14 || r2 > 14) return {kSpecification}; // even-odd pairs
  const std::uint64_t g0 = gr[0];
  const Apqn q = ap::gr0::apqn_of(g0);
  if (auto r = check_apqn(q)) return *r;
  const std::uint64_t psmid = (gr[r1] & kLow32) << 32 | (gr[r1 + 1] & kLow32);
  const std::uint64_t addr = gr[r2], len = gr[r2 + 1];
  const std::uint64_t seg = segment(addr, len);
  std::vector<std::uint8_t> bytes(seg);
  if (seg && !k.m_memory.read(addr, bytes)) return {kAddressing};
  const ap::NqapResult res = k.m_machine->nqap(q, psmid, bytes, seg == len,
                                               g0 & ap::gr0::kNqapLastPart,
                                               g0 & ap::gr0::kNqapSpecial);
  gr[1] = res.status.word();
  cc = res.cc;
  if (res.cc == 0 || res.cc == 2) {
    gr[r2] = addr + seg;
    gr[r2 + 1] = len - seg;
  }
  return {};
}

ExecResult Vcpu::interpret_dqap(unsigned r1, unsigned r2) {
  Kvm& k = *m_kvm;
  if ((r1 & 1) || (r2 & 1) || r1 > 14 || r2 > 14) return {kSpecification};
  const Apqn q = ap::gr0::apqn_of(gr[0]);
  if (auto r = check_apqn(q)) return *r;
  const std::uint64_t addr = gr[r2], len = gr[r2 + 1];
  const std::uint64_t max = segment(addr, len);
  if (max && !k.m_memory.contains(addr, max)) return {kAddressing};
  ap::DqapResult res = k.m_machine->dqap(q, max);
  gr[1] = res.status.word();
  if (res.cc == 3) {
    cc = 3;
    return {};
  }
  (void)k.m_memory.write(addr, res.data);
  gr[r2] = addr + res.data.size();
  gr[r2 + 1] = len - res.data.size();
  gr[r1] = (gr[r1] & ~kLow32) | (res.psmid >> 32);
  gr[r1 + 1] = (gr[r1 + 1] & ~kLow32) | (res.psmid & kLow32);
  gr[2] = res.residual;
  // Stopped at a segment boundary with room left: cc 2; the buffer is full: cc 1.
  cc = res.cc == 0 ? 0 : (gr[r2 + 1] > 0 ? 2 : 1);
  return {};
}

} // namespace apemu::kvm
