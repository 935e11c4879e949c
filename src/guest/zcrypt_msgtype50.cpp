// Type 50 requests and type 80 replies as the guest's zcrypt builds and reads them
// (guest-ap.md §6.1–§6.3; see zcrypt.h), and RSA keys from PEM.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <memory>

#include "apemu/ap/msgtype50.h"
#include "apemu/guest/zcrypt.h"

namespace apemu::guest {

namespace msg50 = ap::msg50;

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::vector<std::uint8_t> bn_param(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  if (!EVP_PKEY_get_bn_param(k, name, &bn)) return {};
  std::vector<std::uint8_t> out(static_cast<std::size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  BN_clear_free(bn);
  return out;
}

/// Drops leading zero bytes.
std::span<const std::uint8_t> trimmed(std::span<const std::uint8_t> v) {
  std::size_t i = 0;
  while (i < v.size() && v[i] == 0) ++i;
  return v.subspan(i);
}

/// Copies `value` right-aligned into `width` bytes ending at `field_end`. Returns false when it
/// does not fit.
bool place(std::vector<std::uint8_t>& msg, std::size_t field_end, std::size_t width,
           std::span<const std::uint8_t> value) {
  const auto v = trimmed(value);
  if (v.size() > width) return false;
  std::copy(v.begin(), v.end(), msg.begin() + static_cast<std::ptrdiff_t>(field_end - v.size()));
  return true;
}

std::vector<std::uint8_t> header(const msg50::Layout& l) {
  std::vector<std::uint8_t> msg(l.total, 0);
  msg[1] = msg50::kType50;
  msg50::put16(msg, 2, static_cast<std::uint16_t>(l.total));
  msg50::put16(msg, 8, static_cast<std::uint16_t>(l.kb));
  return msg;
}

} // namespace

Result<RsaKey> parse_rsa_pem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error(ENOMEM);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  bool priv = true;
  if (!key) {
    BIO_reset(bio.get());
    key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    priv = false;
  }
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA)
    return Error(EINVAL, "not a PEM RSA key");
  RsaKey k;
  k.n = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N);
  k.e = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E);
  if (priv) {
    k.d = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_D);
    k.p = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_FACTOR1);
    k.q = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_FACTOR2);
    k.dp = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_EXPONENT1);
    k.dq = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_EXPONENT2);
    k.qinv = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
  }
  if (k.n.empty() || k.e.empty()) return Error(EINVAL, "RSA key without modulus or exponent");
  return k;
}

Result<std::vector<std::uint8_t>> build_meb(std::size_t mod_len,
                                            std::span<const std::uint8_t> modulus,
                                            std::span<const std::uint8_t> exponent,
                                            std::span<const std::uint8_t> message) {
  const msg50::Layout* l = msg50::meb_for(mod_len);
  if (!l) return Error(EINVAL, "modulus length " + std::to_string(mod_len) + " not in 1..512");
  if (message.size() != mod_len) return Error(EINVAL, "the input must have the modulus length");
  auto msg = header(*l);
  // Exponent, modulus and message each as mod_len bytes at the end of their field.
  if (!place(msg, l->offset(1), mod_len, exponent) || !place(msg, l->offset(2), mod_len, modulus) ||
      !place(msg, l->offset(3), mod_len, message))
    return Error(EINVAL, "a number is longer than the modulus");
  return msg;
}

Result<std::vector<std::uint8_t>> build_crb(std::size_t mod_len, const RsaKey& key,
                                            std::span<const std::uint8_t> message) {
  const msg50::Layout* l = msg50::crb_for(mod_len);
  if (!l) return Error(EINVAL, "modulus length " + std::to_string(mod_len) + " not in 1..512");
  if (!key.has_private()) return Error(EINVAL, "CRT needs a private key");
  if (message.size() != mod_len) return Error(EINVAL, "the input must have the modulus length");
  auto msg = header(*l);
  const std::size_t short_len = (mod_len + 1) / 2;
  const std::span<const std::uint8_t> parts[] = {key.p, key.q, key.dp, key.dq, key.qinv};
  for (unsigned i = 0; i < 5; ++i)
    if (!place(msg, l->offset(i + 1), short_len, parts[i]))
      return Error(EINVAL, "a CRT key part is longer than half the modulus");
  // The message fills the last field (2 × half-field bytes), right-aligned in mod_len bytes.
  if (!place(msg, l->total, mod_len, message)) return Error(EINVAL, "message too long");
  return msg;
}

Result<std::vector<std::uint8_t>> convert_type80(std::span<const std::uint8_t> reply,
                                                 std::size_t outputdatalength) {
  if (reply.size() < 2) return Error(EAGAIN, "reply without a type");
  const std::uint8_t type = reply[1];
  if (type == msg50::kType82 || type == msg50::kType88) {
    const std::uint8_t code = reply.size() > 4 ? reply[4] : 0;
    // Linux's mapping (§6.3): these codes fail the request, the others are retried.
    static constexpr std::uint8_t kInvalid82[] = {0x23, 0x24, 0x29, 0x40, 0x41, 0x80, 0x82,
                                                  0x84, 0x85, 0x8A, 0x8B, 0xA0};
    static constexpr std::uint8_t kInvalid88[] = {0x22, 0x34, 0x82, 0x84, 0x85};
    const auto* begin = type == msg50::kType82 ? std::begin(kInvalid82) : std::begin(kInvalid88);
    const auto* end = type == msg50::kType82 ? std::end(kInvalid82) : std::end(kInvalid88);
    char b[96];
    std::snprintf(b, sizeof b, "type %02X error reply, code 0x%02X (%s)", type, code,
                  std::string(msg50::err::name(code)).c_str());
    return Error(std::find(begin, end, code) != end ? EINVAL : EAGAIN, b);
  }
  if (type != msg50::kType80) return Error(EAGAIN, "unknown reply type");
  if (reply.size() < msg50::kReplyHeaderSize) return Error(EAGAIN, "short type 80 reply");
  const std::size_t len = msg50::get16(reply, 2);
  if (len < msg50::kReplyHeaderSize + outputdatalength || len > reply.size())
    return Error(EAGAIN, "type 80 reply shorter than the result");
  return std::vector<std::uint8_t>(reply.begin() + static_cast<std::ptrdiff_t>(len - outputdatalength),
                                   reply.begin() + static_cast<std::ptrdiff_t>(len));
}

} // namespace apemu::guest
