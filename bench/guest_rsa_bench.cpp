// bench/guest_rsa_bench (issue 10): RSA-2048 CRT throughput through a guest's NQAP/DQAP on one
// emulated accelerator queue (one engine, depth 8, kept full) against the same private-key
// operations called on OpenSSL directly (EVP_PKEY_decrypt, RSA_NO_PADDING), in the same run;
// and the delivery latency of the adapter interruption that announces a reply, in machine
// (virtual) time and in real time. The last line is `RATIO x` = emulated / direct throughput.
//
//   guest_rsa_bench [OPS]      (default 2000)
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "apemu/ap/ap_firmware.h"
#include "apemu/guest/guest.h"
#include "apemu/guest/zcrypt.h"
#include "apemu/testbed/qemu.h"
#include "apemu/testbed/testbed.h"
#include "apemu/topology/topology.h"
#include "sysfs_helpers.h"

using namespace apemu;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kTopology = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4"
control_domains = "4"
default_domain = 4

[[adapter]]
id = 0
type = "CEX8"
mode = "accel"
)";
constexpr const char* kUuid = "62177883-f1bb-47f0-914d-32a22e3a8804";
constexpr Apqn kQ{to_apid(0), to_apqi(4)};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "guest_rsa_bench: %s\n", what.c_str());
  std::exit(1);
}

template <class T> T check(Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().describe());
  return std::move(*r);
}
void check(Result<void> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().describe());
}

/// A machine with one accelerator, adapter 0 given to vfio_ap, an mdev with 00.0004 and a
/// running guest.
struct Machine {
  std::unique_ptr<testbed::Testbed> tb;
  std::shared_ptr<guest::Guest> os;

  explicit Machine(Runtime::ClockKind clock) {
    testbed::Options opt;
    opt.topology = check(topology::parse(kTopology), "topology");
    opt.kernel_profile = "6.19";
    opt.vfio_ap = true;
    opt.clock = clock;
    tb = check(testbed::Testbed::create(std::move(opt)), "testbed");
    auto g = tb->lock();
    core::Core& c = tb->core();
    const std::string m = std::string("/devices/vfio_ap/matrix/") + kUuid;
    check(testing::sysfs_write(c, "/bus/ap/apmask", "-0"), "apmask");
    check(testing::sysfs_write(
              c, "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create", kUuid),
          "create");
    check(testing::sysfs_write(c, m + "/assign_adapter", "0"), "assign_adapter");
    check(testing::sysfs_write(c, m + "/assign_domain", "4"), "assign_domain");
    check(tb->qemu()->start(*tb->vfio_ap()->find_mdev(kUuid)), "guest start");
    os = tb->qemu()->guest(kUuid)->os;
  }
};

struct Key {
  EVP_PKEY* pkey = nullptr;
  guest::RsaKey rsa;
};

Key make_key(unsigned bits) {
  Key k;
  k.pkey = EVP_RSA_gen(bits);
  if (!k.pkey) die("EVP_RSA_gen");
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k.pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  k.rsa = check(guest::parse_rsa_pem(std::string(data, static_cast<std::size_t>(n))), "pem");
  BIO_free(b);
  return k;
}

std::vector<std::uint8_t> input(std::size_t len, unsigned seed) {
  std::vector<std::uint8_t> m(len);
  std::uint32_t x = 88172645u + seed;
  for (auto& c : m) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<std::uint8_t>(x);
  }
  m[0] = 0;
  return m;
}

/// OPS private-key operations on OpenSSL: seconds.
double direct(const Key& k, const std::vector<std::vector<std::uint8_t>>& ins, unsigned ops,
              std::vector<std::vector<std::uint8_t>>* results) {
  EVP_PKEY_CTX* c = EVP_PKEY_CTX_new(k.pkey, nullptr);
  if (!c || EVP_PKEY_decrypt_init(c) <= 0 || EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) <= 0)
    die("EVP_PKEY_decrypt_init");
  std::vector<std::uint8_t> out(k.rsa.mod_len());
  const auto t0 = Clock::now();
  for (unsigned i = 0; i < ops; ++i) {
    const auto& in = ins[i % ins.size()];
    std::size_t len = out.size();
    if (EVP_PKEY_decrypt(c, out.data(), &len, in.data(), in.size()) <= 0) die("EVP_PKEY_decrypt");
    if (results && i < ins.size()) results->push_back(out);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  EVP_PKEY_CTX_free(c);
  return s;
}

/// OPS CRT requests through NQAP/DQAP on one queue, kept full (virtual clock: each advance()
/// completes what the engine processed). Returns seconds; checks every reply.
double emulated(Machine& mc, const Key& k, const std::vector<std::vector<std::uint8_t>>& reqs,
                const std::vector<std::vector<std::uint8_t>>& want, unsigned ops) {
  auto g = mc.tb->lock();
  guest::Guest& os = *mc.os;
  Runtime& rt = mc.tb->runtime();
  unsigned sent = 0, received = 0;
  std::vector<std::uint8_t> data;
  const auto t0 = Clock::now();
  while (received < ops) {
    while (sent < ops) {
      const auto i = os.send(kQ, sent, reqs[sent % reqs.size()]);
      if (i.cc == 3 && i.rc() == ap::rc::kQFull) break;
      if (i.cc != 0) die("NQAP: " + i.describe());
      ++sent;
    }
    check(rt.advance(std::chrono::nanoseconds(0)), "advance");
    for (;;) {
      const auto d = os.receive(kQ, data, 4096);
      if (d.cc == 3 && d.rc() == ap::rc::kNoPendingReply) break;
      if (d.cc != 0) die("DQAP: " + d.describe());
      const auto out = check(guest::convert_type80(data, k.rsa.mod_len()), "type 80");
      if (out != want[d.psmid % want.size()]) die("wrong result");
      ++received;
    }
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Interruption latency on the virtual clock: a reply due at 1 ms; returns the machine time
/// from the reply to the guest's DQAP after its interruption handler ran.
std::chrono::nanoseconds virtual_latency(Machine& mc) {
  auto g = mc.tb->lock();
  check(mc.tb->firmware()->set_service_time(to_apid(0), std::chrono::milliseconds(1)), "svc");
  const std::vector<std::uint8_t> n{0x0B}, e{0x03}, m{2};
  auto x = mc.os->exchange(kQ, check(guest::build_meb(1, n, e, m), "meb"), {.irq = true});
  check(guest::run_until(mc.tb->runtime(), *x->done), "run_until");
  check(x->done->result(), "exchange");
  check(mc.tb->firmware()->set_service_time(to_apid(0), std::nullopt), "svc");
  return x->completed - x->submitted - std::chrono::milliseconds(1);
}

/// Interruption latency in real time (real clock, the executor thread running): tiny requests
/// (2^3 mod 11) so that the round trip is the delivery path: NQAP, worker, post to the machine,
/// NIB + GISA + the guest's handler, DQAP. Returns the median round trip with interruptions and
/// with polling (250 µs timer) in microseconds.
std::pair<double, double> real_latency(unsigned rounds) {
  Machine mc(Runtime::ClockKind::Real);
  mc.tb->runtime().start();
  const std::vector<std::uint8_t> n{0x0B}, e{0x03}, m{2};
  const auto req = check(guest::build_meb(1, n, e, m), "meb");
  auto measure = [&](bool irq) {
    std::vector<double> us;
    for (unsigned i = 0; i < rounds; ++i) {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      Clock::time_point t0, t1;
      {
        auto g = mc.tb->lock();
        t0 = Clock::now();
        auto x = mc.os->exchange(kQ, req, {.irq = irq});
        x->done->on_done([&](const Result<void>& r) {
          if (!r) die("exchange: " + r.error().describe());
          std::lock_guard l(mu);
          t1 = Clock::now();
          done = true;
          cv.notify_all();
        });
      }
      std::unique_lock l(mu);
      cv.wait(l, [&] { return done; });
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  const double with_irq = measure(true);
  const double polled = measure(false);
  auto g = mc.tb->lock();
  mc.os.reset();
  return {with_irq, polled};
}

} // namespace

int main(int argc, char** argv) {
  const unsigned ops = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 2000;
  if (ops < 16) die("at least 16 operations");
  const Key k = make_key(2048);
  const std::size_t len = k.rsa.mod_len();
  std::vector<std::vector<std::uint8_t>> ins, reqs, want;
  for (unsigned i = 0; i < 64; ++i) {
    ins.push_back(input(len, i));
    reqs.push_back(check(guest::build_crb(len, k.rsa, ins.back()), "CRB2"));
  }
  // Expected results for the first 64 PSMIDs (0..63 map to inputs 0..63).
  (void)direct(k, ins, 64, &want);

  Machine mc(Runtime::ClockKind::Virtual);
  // Warm both paths, then measure alternately, twice, keeping the best of each.
  (void)direct(k, ins, 64, nullptr);
  (void)emulated(mc, k, reqs, want, 64);
  double best_direct = 1e9, best_emu = 1e9;
  for (int round = 0; round < 2; ++round) {
    best_direct = std::min(best_direct, direct(k, ins, ops, nullptr));
    best_emu = std::min(best_emu, emulated(mc, k, reqs, want, ops));
  }
  const double direct_rate = ops / best_direct, emu_rate = ops / best_emu;
  std::printf("RSA-2048 CRT, %u operations, one accelerator queue (1 engine, depth 8)\n", ops);
  std::printf("openssl direct      %10.1f ops/s\n", direct_rate);
  std::printf("guest NQAP/DQAP     %10.1f ops/s\n", emu_rate);
  const auto vlat = virtual_latency(mc);
  std::printf("interruption latency (virtual): %lld ns after the reply\n",
              static_cast<long long>(vlat.count()));
  const auto [irq_us, poll_us] = real_latency(200);
  std::printf("round trip of a tiny request (real, median of 200): %.1f us with the "
              "interruption, %.1f us polling every 250 us\n",
              irq_us, poll_us);
  std::printf("RATIO %.3f\n", emu_rate / direct_rate);
  return 0;
}
