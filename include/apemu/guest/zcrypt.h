// The guest's zcrypt for accelerator queues (drivers/s390/crypto/zcrypt_msgtype50.c;
// guest-ap.md §6.1–§6.3): RSA keys, type 50 requests built byte for byte as Linux builds them
// from an ICA mod-expo or CRT request, and the type 80/82/88 replies turned into a result or
// the errno Linux gives. Keys come from PEM files through OpenSSL.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "apemu/base/result.h"

namespace apemu::guest {

/// An RSA key as big-endian numbers without leading zeros (the private parts empty for a
/// public key).
struct RsaKey {
  std::vector<std::uint8_t> n, e, d, p, q, dp, dq, qinv;
  /// The modulus length in bytes (ICA's inputdatalength).
  std::size_t mod_len() const { return n.size(); }
  bool has_private() const { return !d.empty() && !p.empty(); }
};

/// Reads a PEM RSA key (private: "BEGIN PRIVATE KEY"/"BEGIN RSA PRIVATE KEY"; public: "BEGIN
/// PUBLIC KEY"). Returns: EINVAL for anything else.
Result<RsaKey> parse_rsa_pem(std::string_view pem);

/// zcrypt_msgtype50's ICAMEX_msg_to_type50MEX_msg: the MEB1/2/3 request for `message` ^
/// `exponent` mod `modulus`, every number right-aligned in `mod_len` bytes of its field.
/// Returns: EINVAL when mod_len is 0 or above 512, or a number or the message does not fit.
Result<std::vector<std::uint8_t>> build_meb(std::size_t mod_len, std::span<const std::uint8_t> modulus,
                                            std::span<const std::uint8_t> exponent,
                                            std::span<const std::uint8_t> message);
/// ICACRT_msg_to_type50CRT_msg: the CRB1/2/3 request, the key parts right-aligned in
/// (mod_len + 1) / 2 bytes, the message in mod_len bytes. Returns: EINVAL as build_meb.
Result<std::vector<std::uint8_t>> build_crb(std::size_t mod_len, const RsaKey& key,
                                            std::span<const std::uint8_t> message);
/// convert_response: the last `outputdatalength` bytes of a type 80 reply. Returns: EINVAL or
/// EAGAIN for a type 82/88 error reply as Linux maps its code (§6.3), EAGAIN for a type 80
/// reply shorter than 16 + outputdatalength or an unknown reply type (Linux sets the card
/// offline and retries).
Result<std::vector<std::uint8_t>> convert_type80(std::span<const std::uint8_t> reply,
                                                 std::size_t outputdatalength);

} // namespace apemu::guest
