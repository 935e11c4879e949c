// The accelerator's type 50 processing (guest-ap.md §6.1–§6.3): parse, validate in a fixed
// order, compute with libcrypto, answer with type 80 or type 82.
//
// Divergence: the order of the card's checks and the codes for a 4096-bit format on a card
// without M/C (0x84) and for an empty message (0xB0) are chosen from the code list of §6.3; the
// specification does not pin them.
#include "apemu/ap/msgtype50.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

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


struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::shared_ptr<EVP_PKEY>;

/// The CRT key of a CRB request as an OpenSSL private key, so that the computation takes
/// libcrypto's own RSA-CRT path (dual exponentiation where the CPU has it) instead of two
/// separate BN_mod_exp calls: n = p·q, e = 65537 and d = e⁻¹ mod lcm(p−1, q−1). Null when the
/// key does not fit that form (e·dp ≢ 1 mod p−1 or e·dq ≢ 1 mod q−1, or u·q ≢ 1 mod p): the
/// caller then computes with Garner's formula on the given numbers, as the card would.
PkeyPtr crt_pkey(const BIGNUM* p, const BIGNUM* q, const BIGNUM* dp, const BIGNUM* dq,
                 const BIGNUM* u, BN_CTX* ctx) {
  Bn e(BN_new()), p1(BN_new()), q1(BN_new()), t(BN_new()), g(BN_new()), l(BN_new()),
      d(BN_new()), n(BN_new());
  if (!e || !p1 || !q1 || !t || !g || !l || !d || !n) return nullptr;
  if (!BN_set_word(e.get(), 65537) || !BN_sub(p1.get(), p, BN_value_one()) ||
      !BN_sub(q1.get(), q, BN_value_one()))
    return nullptr;
  // e·dp ≡ 1 (mod p−1), e·dq ≡ 1 (mod q−1), u·q ≡ 1 (mod p).
  if (!BN_mod_mul(t.get(), e.get(), dp, p1.get(), ctx) || !BN_is_one(t.get())) return nullptr;
  if (!BN_mod_mul(t.get(), e.get(), dq, q1.get(), ctx) || !BN_is_one(t.get())) return nullptr;
  if (!BN_mod_mul(t.get(), u, q, p, ctx) || !BN_is_one(t.get())) return nullptr;
  if (!BN_gcd(g.get(), p1.get(), q1.get(), ctx) || !BN_mul(l.get(), p1.get(), q1.get(), ctx) ||
      !BN_div(l.get(), nullptr, l.get(), g.get(), ctx) ||
      !BN_mod_inverse(d.get(), e.get(), l.get(), ctx) || !BN_mul(n.get(), p, q, ctx))
    return nullptr;
  OSSL_PARAM_BLD* b = OSSL_PARAM_BLD_new();
  if (!b) return nullptr;
  OSSL_PARAM* params = nullptr;
  if (OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n.get()) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e.get()) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_D, d.get()) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_FACTOR1, p) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_FACTOR2, q) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) &&
      OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, u))
    params = OSSL_PARAM_BLD_to_param(b);
  OSSL_PARAM_BLD_free(b);
  if (!params) return nullptr;
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* kc = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  if (kc && EVP_PKEY_fromdata_init(kc) > 0)
    (void)EVP_PKEY_fromdata(kc, &key, EVP_PKEY_KEYPAIR, params);
  EVP_PKEY_CTX_free(kc);
  OSSL_PARAM_free(params);
  return key ? PkeyPtr(key, PkeyFree{}) : nullptr;
}

/// Keys seen recently, by their CRB fields (a card computes from the request alone; the cache
/// only saves the key setup of repeated keys). A miss that does not fit is cached as null.
PkeyPtr cached_crt_pkey(std::span<const std::uint8_t> fields, const BIGNUM* p, const BIGNUM* q,
                        const BIGNUM* dp, const BIGNUM* dq, const BIGNUM* u, BN_CTX* ctx) {
  static std::mutex mu;
  static std::map<std::string, PkeyPtr> cache;
  const std::string k(fields.begin(), fields.end());
  {
    std::lock_guard g(mu);
    if (auto it = cache.find(k); it != cache.end()) return it->second;
  }
  PkeyPtr key = crt_pkey(p, q, dp, dq, u, ctx);
  std::lock_guard g(mu);
  if (cache.size() >= 32) cache.clear();
  cache.emplace(k, key);
  return key;
}

/// c^d mod n through OpenSSL's RSA private operation (RSA_NO_PADDING). Null on failure.
bool openssl_crt(EVP_PKEY* key, const BIGNUM* c, const BIGNUM* n, BIGNUM* r) {
  const int len = BN_num_bytes(n);
  std::vector<std::uint8_t> in(static_cast<std::size_t>(len)), out(in.size());
  if (BN_bn2binpad(c, in.data(), len) != len) return false;
  // The operation context of the last key, per worker thread (a context is not thread-safe;
  // setting one up fetches the provider's implementation).
  struct Last {
    EVP_PKEY* key = nullptr;
    EVP_PKEY_CTX* ctx = nullptr;
    ~Last() { EVP_PKEY_CTX_free(ctx); }
  };
  thread_local Last last;
  if (last.key != key || !last.ctx) {
    EVP_PKEY_CTX_free(last.ctx);
    last.key = nullptr;
    last.ctx = EVP_PKEY_CTX_new(key, nullptr); // holds a reference to the key
    if (!last.ctx || EVP_PKEY_decrypt_init(last.ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(last.ctx, RSA_NO_PADDING) <= 0) {
      EVP_PKEY_CTX_free(last.ctx);
      last.ctx = nullptr;
      return false;
    }
    last.key = key;
  }
  std::size_t olen = out.size();
  const bool ok = EVP_PKEY_decrypt(last.ctx, out.data(), &olen, in.data(), in.size()) > 0;
  return ok && BN_bin2bn(out.data(), static_cast<int>(olen), r) != nullptr;
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
  if (PkeyPtr key = cached_crt_pkey(msg.subspan(l->offset(0), 5 * l->field), p.get(), q.get(),
                                    dp.get(), dq.get(), u.get(), ctx)) {
    if (openssl_crt(key.get(), c.get(), n.get(), r.get())) return type80(r.get(), l->result_size());
    return error_reply(err::kMachineFailure);
  }
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
