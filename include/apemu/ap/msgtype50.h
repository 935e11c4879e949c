// The accelerator message formats (guest-ap.md §6.1–§6.3; drivers/s390/crypto/
// zcrypt_msgtype50.h): type 50 requests (RSA mod-expo MEB1/2/3 and CRT CRB1/2/3), type 80
// replies and the type 82/88 error replies, plus the CCA framing the coprocessor model needs
// (type 6 / CPRBX, §6.4). Everything is big-endian; numbers are right-justified in their fields.
//
// The card side (process_type50) is the emulated accelerator's firmware: it parses a request
// byte for byte, computes with OpenSSL's libcrypto and builds the reply. The guest side builds
// requests as the Linux zcrypt driver does (guest::build_meb / build_crb).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace apemu::ap::msg50 {

inline constexpr std::uint8_t kType50 = 0x50; ///< request
inline constexpr std::uint8_t kType80 = 0x80; ///< reply
inline constexpr std::uint8_t kType82 = 0x82; ///< error reply
inline constexpr std::uint8_t kType88 = 0x88; ///< error reply (CEX2A era)
inline constexpr std::uint8_t kType6 = 0x06;  ///< CCA/EP11 request
inline constexpr std::uint8_t kType86 = 0x86; ///< CCA/EP11 reply

/// Header size of a type 50 request (common header + key-block type + reserved).
inline constexpr std::size_t kHeaderSize = 0x10;
/// Header size of a type 80 reply.
inline constexpr std::size_t kReplyHeaderSize = 0x10;
/// Size of an error reply (type 82/88).
inline constexpr std::size_t kErrorReplySize = 8;
/// MSGTYPE50_CRB3_MAX_MSG_SIZE: the largest type 50 request.
inline constexpr std::size_t kMaxRequestSize = 0x710;

/// Key-block types (guest-ap.md §6.1).
enum class KeyBlock : std::uint16_t {
  Meb1 = 0x0001,
  Meb2 = 0x0002,
  Meb3 = 0x0003,
  Crb1 = 0x0011,
  Crb2 = 0x0012,
  Crb3 = 0x0013,
};

/// One format's geometry. MEB: `field` bytes each for exponent, modulus and message. CRB:
/// `field` bytes (half the modulus field) each for p, q, dp, dq, u, then the message in
/// 2 × field bytes.
struct Layout {
  KeyBlock kb;
  bool crt;
  std::size_t field;
  std::size_t total;  ///< message length
  unsigned max_bits;  ///< largest modulus
  std::string_view name;
  /// The size of the result field of the type 80 reply (the modulus field).
  std::size_t result_size() const { return crt ? 2 * field : field; }
  /// Offset of the n-th field (MEB: 0 exponent, 1 modulus, 2 message; CRB: 0 p, 1 q, 2 dp,
  /// 3 dq, 4 u, 5 message).
  std::size_t offset(unsigned n) const { return kHeaderSize + n * field; }
};

/// The layout of a key-block type, or null.
const Layout* layout(KeyBlock kb);
const Layout* layout(std::uint16_t kb);
/// The format Linux picks for a modulus of `mod_len` bytes (≤128 → 1, ≤256 → 2, ≤512 → 3),
/// or null above 512.
const Layout* meb_for(std::size_t mod_len);
const Layout* crb_for(std::size_t mod_len);

/// Error reply codes of type 82 (guest-ap.md §6.3) that the accelerator model produces.
namespace err {
inline constexpr std::uint8_t kMachineFailure = 0x10;
inline constexpr std::uint8_t kMessageType = 0x20;
inline constexpr std::uint8_t kInvalidMessageLength = 0x23;
inline constexpr std::uint8_t kReservedField = 0x24;
inline constexpr std::uint8_t kFormatField = 0x29;
inline constexpr std::uint8_t kInvalidCommand = 0x30;
inline constexpr std::uint8_t kOperandInvalid = 0x82;
inline constexpr std::uint8_t kOperandSize = 0x84;
inline constexpr std::uint8_t kEvenModulus = 0x85;
inline constexpr std::uint8_t kZeroBufferLength = 0xB0;
/// The name of a type 82 reply code ("operand invalid"), "unknown" otherwise.
std::string_view name(std::uint8_t code);
} // namespace err

/// An 8-byte error reply of `type` (0x82 or 0x88) with `code`.
std::vector<std::uint8_t> error_reply(std::uint8_t code, std::uint8_t type = kType82);

/// What the accelerator can do (TAPQ M and C bits: 4096-bit mod-expo and CRT).
struct AccelLimits {
  bool mex4k = true;
  bool crt4k = true;
};

/// The accelerator firmware: executes one type 50 request and returns its reply (type 80, or
/// type 82 with the code of the first check that fails: 0x20 not type 50, 0x23 length field or
/// size wrong for the key-block type, 0x24 a reserved byte set, 0x29 unknown key-block type,
/// 0x84 a 4096-bit format without M/C, 0x82 zero modulus/prime or message ≥ modulus, 0x85 even
/// modulus or prime, 0xB0 empty message). Thread-safe; computes with libcrypto outside any lock.
std::vector<std::uint8_t> process_type50(std::span<const std::uint8_t> msg,
                                         const AccelLimits& limits = {});

/// CCA framing (guest-ap.md §6.4): the type 6 header size and where the CPRBX's domain field
/// lies relative to the CPRB.
inline constexpr std::size_t kType6HeaderSize = 0x58;
inline constexpr std::size_t kCprbxDomainOffset = 0xAA;
inline constexpr std::uint8_t kCprbxVersion = 0x02;

/// Big-endian helpers.
inline std::uint16_t get16(std::span<const std::uint8_t> b, std::size_t off) {
  return static_cast<std::uint16_t>(b[off] << 8 | b[off + 1]);
}
inline void put16(std::span<std::uint8_t> b, std::size_t off, std::uint16_t v) {
  b[off] = static_cast<std::uint8_t>(v >> 8);
  b[off + 1] = static_cast<std::uint8_t>(v);
}

} // namespace apemu::ap::msg50
