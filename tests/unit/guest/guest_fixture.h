// A running guest for the guest-side tests (issue 10): the vfio_ap machine of
// unit/vfio_ap/vfio_ap_fixture.h (adapters 05 CCA, 06 EP11, 07 accelerator, 08 CCA; domains
// 4-7), adapters 5 and 7 given to vfio_ap, mdev kU1 with adapters 5, 7 × domains 4, 5 and
// control domain 4, and a guest started on it by the QEMU role. APQN 06.0004 is in the host's
// configuration but outside the guest's masks.
#pragma once

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "apemu/ap/ap_firmware.h"
#include "apemu/guest/guest.h"
#include "apemu/guest/zcrypt.h"
#include "apemu/testbed/qemu.h"
#include "unit/vfio_ap/vfio_ap_fixture.h"

namespace apemu::testing {

template <class Id> IdMask<Id> mask_of(std::initializer_list<unsigned> ids) {
  IdMask<Id> m;
  for (unsigned i : ids) m.set(Id{static_cast<std::uint8_t>(i)});
  return m;
}

inline constexpr Apqn kAccel{to_apid(7), to_apqi(4)};  ///< 07.0004, CEX8A
inline constexpr Apqn kAccel5{to_apid(7), to_apqi(5)}; ///< 07.0005
inline constexpr Apqn kCca{to_apid(5), to_apqi(4)};    ///< 05.0004, CEX8C
inline constexpr Apqn kForeign{to_apid(6), to_apqi(4)}; ///< host's, not the guest's

class GuestTest : public VfioApTest {
protected:
  void SetUp() override {
    VfioApTest::SetUp();
    release_adapters("-5,-7");
    m = create(kU1);
    ASSERT_NE(m, nullptr);
    assign(kU1, {"5", "7"}, {"4", "5"}, {"4"});
    start();
  }
  void start(testbed::GuestOptions opt = {}) {
    auto k = tb->qemu()->start(*m, std::move(opt));
    ASSERT_THAT(k, IsOk());
    kvm = *k;
    os = tb->qemu()->guest(kU1)->os;
    ASSERT_NE(os, nullptr);
  }
  void restart(testbed::GuestOptions opt) {
    os.reset();
    kvm.reset();
    ASSERT_THAT(tb->qemu()->stop(kU1), IsOk());
    (void)tb->runtime().advance(std::chrono::milliseconds(20)); // reset verification
    start(std::move(opt));
  }
  ap::ApFirmware& fw() { return *tb->firmware(); }
  Runtime& rt() { return tb->runtime(); }
  guest::Guest& g() { return *os; }
  /// Copies `bytes` into fresh guest memory; returns the address.
  std::uint64_t put(std::span<const std::uint8_t> bytes) {
    const std::uint64_t a = g().alloc(bytes.size());
    EXPECT_NE(a, 0u);
    EXPECT_THAT(kvm->memory().write(a, bytes), IsOk());
    return a;
  }

  vfio_ap::MatrixMdev* m = nullptr;
  std::shared_ptr<kvm::Kvm> kvm;
  std::shared_ptr<guest::Guest> os;
};

// ---- OpenSSL as the reference ----------------------------------------------------------------

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

inline Pkey make_rsa_key(unsigned bits) { return Pkey(EVP_RSA_gen(bits)); }

inline std::string pem_of(EVP_PKEY* k, bool priv) {
  BIO* b = BIO_new(BIO_s_mem());
  if (priv) PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  else PEM_write_bio_PUBKEY(b, k);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

/// OpenSSL's raw RSA (RSA_NO_PADDING): the private operation (pkeyutl -decrypt) or the public
/// one (pkeyutl -encrypt) on a modulus-sized input.
inline std::vector<std::uint8_t> openssl_raw_rsa(EVP_PKEY* k, std::span<const std::uint8_t> in,
                                                 bool priv) {
  EVP_PKEY_CTX* c = EVP_PKEY_CTX_new(k, nullptr);
  std::vector<std::uint8_t> out;
  if (!c) return out;
  const bool ok = (priv ? EVP_PKEY_decrypt_init(c) : EVP_PKEY_encrypt_init(c)) > 0 &&
                  EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) > 0;
  std::size_t len = 0;
  if (ok && (priv ? EVP_PKEY_decrypt(c, nullptr, &len, in.data(), in.size())
                  : EVP_PKEY_encrypt(c, nullptr, &len, in.data(), in.size())) > 0) {
    out.resize(len);
    if ((priv ? EVP_PKEY_decrypt(c, out.data(), &len, in.data(), in.size())
              : EVP_PKEY_encrypt(c, out.data(), &len, in.data(), in.size())) > 0)
      out.resize(len);
    else
      out.clear();
  }
  EVP_PKEY_CTX_free(c);
  return out;
}

/// A message below the modulus: `mod_len` bytes, first byte 0x00 then a pattern seeded by
/// `seed`.
inline std::vector<std::uint8_t> rsa_input(std::size_t mod_len, unsigned seed = 1) {
  std::vector<std::uint8_t> m(mod_len);
  std::uint32_t x = 2463534242u + seed;
  for (auto& b : m) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::uint8_t>(x);
  }
  m[0] = 0;
  return m;
}

} // namespace apemu::testing
