// RSA on an emulated accelerator queue through the guest's NQAP/DQAP (issue 10 acceptance 2):
// type 50 requests built as Linux's zcrypt builds them (guest-ap.md §6.1), type 80 replies
// (§6.2) checked against OpenSSL computing the same thing; type 82 error replies for malformed
// requests (§6.3).
#include "guest_fixture.h"

namespace apemu::testing {
namespace {

using namespace std::chrono_literals;

struct Keys {
  Pkey pkey;
  guest::RsaKey key;
};

/// One key per size for the whole suite (4096-bit generation takes a while).
const Keys& key_of(unsigned bits) {
  static std::map<unsigned, Keys> keys;
  auto it = keys.find(bits);
  if (it == keys.end()) {
    Keys k;
    k.pkey = make_rsa_key(bits);
    EXPECT_NE(k.pkey, nullptr);
    auto parsed = guest::parse_rsa_pem(pem_of(k.pkey.get(), true));
    EXPECT_THAT(parsed, IsOk());
    k.key = *parsed;
    it = keys.emplace(bits, std::move(k)).first;
  }
  return it->second;
}

enum class Form { MePrivate, MePublic, Crt };

struct RsaCase {
  unsigned bits;
  Form form;
};

std::string case_name(const ::testing::TestParamInfo<RsaCase>& i) {
  const char* f = i.param.form == Form::MePrivate ? "MePrivate"
                  : i.param.form == Form::MePublic ? "MePublic"
                                                    : "Crt";
  return std::string(f) + std::to_string(i.param.bits);
}

class GuestRsaTest : public GuestTest, public ::testing::WithParamInterface<RsaCase> {};

TEST_P(GuestRsaTest, TheAcceleratorsResultEqualsOpenSsls) {
  const auto [bits, form] = GetParam();
  const Keys& k = key_of(bits);
  const std::size_t mod_len = k.key.mod_len();
  ASSERT_EQ(mod_len, bits / 8);
  for (unsigned seed = 1; seed <= 3; ++seed) {
    const auto in = rsa_input(mod_len, seed);
    Result<std::vector<std::uint8_t>> req =
        form == Form::Crt        ? guest::build_crb(mod_len, k.key, in)
        : form == Form::MePublic ? guest::build_meb(mod_len, k.key.n, k.key.e, in)
                                 : guest::build_meb(mod_len, k.key.n, k.key.d, in);
    ASSERT_THAT(req, IsOk());
    // The format Linux picks for the modulus (§6.1): MEB1/2/3 or CRB1/2/3 and its length.
    const std::size_t expect_len = form == Form::Crt ? (bits == 1024 ? 0x1D0 : bits == 2048 ? 0x390 : 0x710)
                                                     : (bits == 1024 ? 0x190 : bits == 2048 ? 0x310 : 0x610);
    EXPECT_EQ(req->size(), expect_len);
    EXPECT_EQ((*req)[1], 0x50);
    auto x = g().exchange(kAccel, *req, {.irq = seed == 2});
    ASSERT_THAT(guest::run_until(rt(), *x->done), IsOk());
    ASSERT_THAT(x->done->result(), IsOk()) << x->last.describe();
    EXPECT_EQ(x->reply[1], 0x80);
    EXPECT_EQ(x->reply.size(), 16 + (bits == 1024 ? 128u : bits == 2048 ? 256u : 512u));
    auto out = guest::convert_type80(x->reply, mod_len);
    ASSERT_THAT(out, IsOk());
    const auto ref = openssl_raw_rsa(k.pkey.get(), in, form != Form::MePublic);
    ASSERT_EQ(ref.size(), mod_len);
    EXPECT_EQ(*out, ref) << "seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, GuestRsaTest,
                         ::testing::Values(RsaCase{1024, Form::MePrivate},
                                           RsaCase{1024, Form::MePublic},
                                           RsaCase{1024, Form::Crt},
                                           RsaCase{2048, Form::MePrivate},
                                           RsaCase{2048, Form::MePublic},
                                           RsaCase{2048, Form::Crt},
                                           RsaCase{4096, Form::MePrivate},
                                           RsaCase{4096, Form::MePublic},
                                           RsaCase{4096, Form::Crt}),
                         case_name);

TEST_F(GuestTest, AnApqnOutsideTheGuestsMasksIsRefusedWithQNotAvail) {
  const Keys& k = key_of(1024);
  auto req = guest::build_crb(128, k.key, rsa_input(128));
  ASSERT_THAT(req, IsOk());
  auto x = g().exchange(kForeign, *req);
  ASSERT_TRUE(x->done->done());
  EXPECT_THAT(x->done->result(), FailsWith(ENODEV));
  EXPECT_EQ(x->last.cc, 3);
  EXPECT_EQ(x->last.gr1, 0x00010000u);
  EXPECT_EQ(fw().counts(kForeign).total, 0u);
}

/// The accelerator's answer to one request.
std::vector<std::uint8_t> answer(GuestTest& t, guest::Guest& g, Runtime& rt,
                                 std::span<const std::uint8_t> msg) {
  (void)t;
  auto x = g.exchange(kAccel, msg);
  EXPECT_THAT(guest::run_until(rt, *x->done), IsOk());
  EXPECT_THAT(x->done->result(), IsOk());
  return x->reply;
}

std::vector<std::uint8_t> err82(std::uint8_t code) { return {0, 0x82, 0, 0, code, 0, 0, 0}; }

TEST_F(GuestTest, MalformedType50RequestsGetType82Replies) {
  const Keys& k = key_of(1024);
  const auto good = *guest::build_meb(128, k.key.n, k.key.e, rsa_input(128));
  auto with = [&](auto edit) {
    auto m = good;
    edit(m);
    return answer(*this, g(), rt(), m);
  };
  // Not type 50: message type (0x20).
  EXPECT_EQ(with([](auto& m) { m[1] = 0x51; }), err82(0x20));
  // The length field disagrees with the message: 0x23.
  EXPECT_EQ(with([](auto& m) { m[3] ^= 1; }), err82(0x23));
  // A reserved byte set: 0x24.
  EXPECT_EQ(with([](auto& m) { m[0x0C] = 1; }), err82(0x24));
  // Unknown key-block type: 0x29.
  EXPECT_EQ(with([](auto& m) { m[9] = 0x07; }), err82(0x29));
  // Message ≥ modulus: operand invalid (0x82); even modulus: 0x85.
  EXPECT_EQ(with([](auto& m) { std::fill(m.begin() + 0x110, m.end(), 0xFF); }), err82(0x82));
  EXPECT_EQ(with([](auto& m) { m[0x10F] &= 0xFE; }), err82(0x85));
  EXPECT_EQ(with([](auto& m) { std::fill(m.begin() + 0x90, m.begin() + 0x110, 0); }),
            err82(0x82));
  // Linux turns these into -EINVAL (§6.3).
  auto r = guest::convert_type80(err82(0x82), 128);
  EXPECT_THAT(r, FailsWith(EINVAL));
}

TEST_F(GuestTest, CoprocessorsAnswerType50WithAnErrorReply) {
  // A CCA queue models no type 50 work: an error reply, never a silent success.
  const Keys& k = key_of(1024);
  auto req = *guest::build_meb(128, k.key.n, k.key.e, rsa_input(128));
  ASSERT_EQ(g().send(kCca, 5, req).cc, 0);
  ASSERT_THAT(rt().advance(0ms), IsOk());
  std::vector<std::uint8_t> data;
  ASSERT_EQ(g().receive(kCca, data).cc, 0);
  EXPECT_EQ(data, err82(0x20));
}

} // namespace
} // namespace apemu::testing

namespace apemu::testing {
namespace {

TEST_F(GuestTest, CrtWithAnotherPublicExponentTakesGarnersFormulaAndStillEqualsOpenSsl) {
  // A key with e = 3 does not fit the libcrypto fast path (msgtype50.cpp); the card's Garner
  // computation on the given p, q, dp, dq, u must give the same result.
  EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  ASSERT_NE(c, nullptr);
  BIGNUM* e = BN_new();
  BN_set_word(e, 3);
  EVP_PKEY* raw = nullptr;
  ASSERT_GT(EVP_PKEY_keygen_init(c), 0);
  ASSERT_GT(EVP_PKEY_CTX_set_rsa_keygen_bits(c, 2048), 0);
  ASSERT_GT(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c, e), 0);
  ASSERT_GT(EVP_PKEY_generate(c, &raw), 0);
  BN_free(e);
  EVP_PKEY_CTX_free(c);
  Pkey pkey(raw);
  auto key = guest::parse_rsa_pem(pem_of(pkey.get(), true));
  ASSERT_THAT(key, IsOk());
  ASSERT_EQ(key->e, std::vector<std::uint8_t>{3});
  const auto in = rsa_input(256, 7);
  auto x = g().exchange(kAccel, *guest::build_crb(256, *key, in));
  ASSERT_THAT(guest::run_until(rt(), *x->done), IsOk());
  ASSERT_THAT(x->done->result(), IsOk());
  EXPECT_EQ(*guest::convert_type80(x->reply, 256), openssl_raw_rsa(pkey.get(), in, true));
  // A wrong u (not q⁻¹ mod p) is computed as given, as the card would: not OpenSSL's result.
  auto bad = *key;
  bad.qinv.back() ^= 1;
  auto y = g().exchange(kAccel, *guest::build_crb(256, bad, in));
  ASSERT_THAT(guest::run_until(rt(), *y->done), IsOk());
  EXPECT_NE(*guest::convert_type80(y->reply, 256), openssl_raw_rsa(pkey.get(), in, true));
}

} // namespace
} // namespace apemu::testing
