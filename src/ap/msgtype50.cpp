// The accelerator's type 50 processing (guest-ap.md §6.1–§6.3): parse, validate in a fixed
// order, compute with libcrypto, answer with type 80 or type 82.
//
// Divergence: the order of the card's checks and the codes for a 4096-bit format on a card
// without M/C (0x84) and for an empty message (0xB0) are chosen from the code list of §6.3; the
// specification does not pin them.
#include "apemu/ap/msgtype50.h"

#include <openssl/bn.h>

#include <array>
#include <memory>

namespace apemu::ap::msg50 {

namespace {

constexpr std::array<Layout, 6> kLayouts = {{
    {KeyBlock::Meb1, false, 128, 0x190, 1024, "MEB1"},
    {KeyBlock::Meb2, false, 256, 0x310, 2048, "MEB2"},
    {KeyBlock::Meb3, false, 512, 0x610, 4096, "MEB3"},
    {KeyBlock::Crb1, true, 64, 0x1D0, 1024, "CRB1"},
    {KeyBlock::Crb2, true, 128, 0x390, 2048, "CRB2"},
    {KeyBlock::Crb3, true, 256, 0x710, 4096, "CRB3"},
}};

struct BnFree {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;
struct CtxFree {
  void operator()(BN_CTX* c) const { BN_CTX_free(c); }
};

/// One BN_CTX per thread: the card's engines run on worker threads.
BN_CTX* thread_ctx() {
  thread_local std::unique_ptr<BN_CTX, CtxFree> ctx(BN_CTX_new());
  return ctx.get();
}

Bn field(std::span<const std::uint8_t> msg, std::size_t off, std::size_t len) {
  return Bn(BN_bin2bn(msg.data() + off, static_cast<int>(len), nullptr));
}

std::vector<std::uint8_t> type80(const BIGNUM* r, std::size_t result_size) {
  std::vector<std::uint8_t> out(kReplyHeaderSize + result_size, 0);
  out[1] = kType80;
  put16(out, 2, static_cast<std::uint16_t>(out.size()));
  BN_bn2binpad(r, out.data() + kReplyHeaderSize, static_cast<int>(result_size));
  return out;
}

} // namespace

const Layout* layout(KeyBlock kb) { return layout(static_cast<std::uint16_t>(kb)); }

const Layout* layout(std::uint16_t kb) {
  for (const Layout& l : kLayouts)
    if (static_cast<std::uint16_t>(l.kb) == kb) return &l;
  return nullptr;
}

const Layout* meb_for(std::size_t mod_len) {
  if (mod_len == 0 || mod_len > 512) return nullptr;
  return &kLayouts[mod_len <= 128 ? 0 : mod_len <= 256 ? 1 : 2];
}

const Layout* crb_for(std::size_t mod_len) {
  if (mod_len == 0 || mod_len > 512) return nullptr;
  return &kLayouts[mod_len <= 128 ? 3 : mod_len <= 256 ? 4 : 5];
}

std::string_view err::name(std::uint8_t code) {
  switch (code) {
  case 0x10: return "machine failure";
  case 0x12: return "pre-empt failure";
  case 0x14: return "checkpoint failure";
  case 0x20: return "message type";
  case 0x21: return "invalid command code";
  case 0x23: return "invalid message length";
  case 0x24: return "reserved field";
  case 0x29: return "format field";
  case 0x30: return "invalid command";
  case 0x40: return "malformed message";
  case 0x41: return "invalid special command";
  case 0x50: return "reserved field (old)";
  case 0x60: return "word alignment";
  case 0x80: return "message length";
  case 0x82: return "operand invalid";
  case 0x84: return "operand size";
  case 0x85: return "even modulus in operand";
  case 0x88: return "reserved field";
  case 0x8A: return "invalid domain pending";
  case 0x8B: return "filtered by hypervisor";
  case 0x90: return "transport failure";
  case 0xA0: return "packet truncated";
  case 0xB0: return "zero buffer length";
  default: return "unknown";
  }
}

std::vector<std::uint8_t> error_reply(std::uint8_t code, std::uint8_t type) {
  std::vector<std::uint8_t> r(kErrorReplySize, 0);
  r[1] = type;
  r[4] = code;
  return r;
}

std::vector<std::uint8_t> process_type50(std::span<const std::uint8_t> msg,
                                         const AccelLimits& limits) {
  if (msg.empty()) return error_reply(err::kZeroBufferLength);
  if (msg.size() < 2 || msg[1] != kType50) return error_reply(err::kMessageType);
  if (msg.size() < kHeaderSize || get16(msg, 2) != msg.size())
    return error_reply(err::kInvalidMessageLength);
  // Reserved bytes: 0, 4, 6-7 and 0x0A-0x0F (byte 5 is ignored, §6.1).
  for (std::size_t i : {0u, 4u, 6u, 7u, 10u, 11u, 12u, 13u, 14u, 15u})
    if (msg[i] != 0) return error_reply(err::kReservedField);
  const Layout* l = layout(get16(msg, 8));
  if (!l) return error_reply(err::kFormatField);
  if (msg.size() != l->total) return error_reply(err::kInvalidMessageLength);
  if ((l->kb == KeyBlock::Meb3 && !limits.mex4k) || (l->kb == KeyBlock::Crb3 && !limits.crt4k))
    return error_reply(err::kOperandSize);

  BN_CTX* ctx = thread_ctx();
  Bn r(BN_new());
  if (!ctx || !r) return error_reply(err::kMachineFailure);
  if (!l->crt) {
    Bn e = field(msg, l->offset(0), l->field);
    Bn n = field(msg, l->offset(1), l->field);
    Bn m = field(msg, l->offset(2), l->field);
    if (!e || !n || !m) return error_reply(err::kMachineFailure);
    if (BN_is_zero(n.get())) return error_reply(err::kOperandInvalid);
    if (!BN_is_odd(n.get())) return error_reply(err::kEvenModulus);
    if (BN_cmp(m.get(), n.get()) >= 0) return error_reply(err::kOperandInvalid);
    if (!BN_mod_exp_mont_consttime(r.get(), m.get(), e.get(), n.get(), ctx, nullptr))
      return error_reply(err::kMachineFailure);
    return type80(r.get(), l->result_size());
  }
  Bn p = field(msg, l->offset(0), l->field);
  Bn q = field(msg, l->offset(1), l->field);
  Bn dp = field(msg, l->offset(2), l->field);
  Bn dq = field(msg, l->offset(3), l->field);
  Bn u = field(msg, l->offset(4), l->field);
  Bn c = field(msg, l->offset(5), 2 * l->field);
  Bn n(BN_new()), cp(BN_new()), cq(BN_new()), m1(BN_new()), m2(BN_new()), h(BN_new());
  if (!p || !q || !dp || !dq || !u || !c || !n || !cp || !cq || !m1 || !m2 || !h)
    return error_reply(err::kMachineFailure);
  if (BN_is_zero(p.get()) || BN_is_zero(q.get())) return error_reply(err::kOperandInvalid);
  if (!BN_is_odd(p.get()) || !BN_is_odd(q.get())) return error_reply(err::kEvenModulus);
  if (!BN_mul(n.get(), p.get(), q.get(), ctx)) return error_reply(err::kMachineFailure);
  if (BN_cmp(c.get(), n.get()) >= 0) return error_reply(err::kOperandInvalid);
  // Garner: m1 = c^dp mod p, m2 = c^dq mod q, h = (m1 - m2)·u mod p, result = m2 + q·h.
  const bool ok = BN_nnmod(cp.get(), c.get(), p.get(), ctx) &&
                  BN_nnmod(cq.get(), c.get(), q.get(), ctx) &&
                  BN_mod_exp_mont_consttime(m1.get(), cp.get(), dp.get(), p.get(), ctx, nullptr) &&
                  BN_mod_exp_mont_consttime(m2.get(), cq.get(), dq.get(), q.get(), ctx, nullptr) &&
                  BN_mod_sub(h.get(), m1.get(), m2.get(), p.get(), ctx) &&
                  BN_mod_mul(h.get(), h.get(), u.get(), p.get(), ctx) &&
                  BN_mul(r.get(), h.get(), q.get(), ctx) && BN_add(r.get(), r.get(), m2.get());
  if (!ok) return error_reply(err::kMachineFailure);
  return type80(r.get(), l->result_size());
}

} // namespace apemu::ap::msg50
