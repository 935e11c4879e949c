// Crash safety of `--state` end to end (issue 9, acceptance 2): a writer drives mdev creation,
// assignment, mask writes and control-socket topology changes through a live `apemu serve`; the
// daemon is killed with SIGKILL at a random moment; a new `serve` on the same mountpoint and
// state directory must show every acknowledged change and nothing that was not requested. The
// one operation in flight at the kill may be present or absent, nothing else may differ.
//
// The test runs in a private mount namespace of its own (ctest starts one process per test), so
// no mount of it can reach the host, and the namespace takes every mount with it when it ends.
#include <gtest/gtest.h>

#include "integration/serve_daemon.h"
#include "integration/shell.h"

#include <algorithm>
#include <atomic>
#include <bitset>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace apemu::testing;

namespace {

constexpr const char* kMatrix = "/devices/vfio_ap/matrix";
constexpr const char* kCreate = "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
constexpr int kHotCard = 5;      // added and removed through the control socket
constexpr int kToggledDomain = 9; // usage domain added and removed through the control socket
constexpr int kOnlineCard = 2;   // its `online` flag is toggled through the tree

using Mask = std::bitset<256>;

/// The kernel's 256-bit mask text (ap_bus.md §2): "0x" and 64 hex digits, bit 0 leftmost.
std::string mask_text(const Mask& m) {
  std::string out = "0x";
  for (int nib = 0; nib < 64; ++nib) {
    int v = 0;
    for (int b = 0; b < 4; ++b) v = (v << 1) | (m[nib * 4 + b] ? 1 : 0);
    out += "0123456789abcdef"[v];
  }
  return out + "\n";
}

std::string uuid_of(int index) {
  char b[40];
  std::snprintf(b, sizeof b, "5eed0000-0000-4000-8000-%012x", index);
  return b;
}

/// What the machine should look like, built only from acknowledged operations.
struct Model {
  Mask apmask, aqmask, usage;
  bool hot_card = false;
  bool card_online = true;
  struct Mdev {
    int index;
    bool adapter = false, domain = false;
    int apid() const { return index % 3; }
    int apqi() const { return 4 + index % 4; }
  };
  std::deque<Mdev> mdevs; // oldest first; indices are consecutive, so domains never clash
  int next_index = 0;
  int rotation = 0;

  bool operator==(const Model& o) const { return describe() == o.describe(); }

  /// The canonical text of everything the test checks, as the tree must show it.
  std::string describe() const {
    std::string s = "apmask " + mask_text(apmask) + "aqmask " + mask_text(aqmask) +
                    "usage " + mask_text(usage) + "card05 " + (hot_card ? "yes\n" : "no\n") +
                    "card02 online " + (card_online ? "1\n" : "0\n");
    std::vector<std::string> lines;
    for (const Mdev& m : mdevs) {
      char b[32];
      std::string matrix;
      if (m.adapter && m.domain)
        std::snprintf(b, sizeof b, "%02x.%04x\n", m.apid(), m.apqi());
      else if (m.adapter)
        std::snprintf(b, sizeof b, "%02x.\n", m.apid());
      else if (m.domain)
        std::snprintf(b, sizeof b, ".%04x\n", m.apqi());
      else
        b[0] = 0;
      lines.push_back("mdev " + uuid_of(m.index) + " matrix " + b);
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& l : lines) s += l.back() == '\n' ? l : l + "\n";
    return s;
  }
};

/// One operation: a write to a file of the tree or a control-socket command.
struct Op {
  std::string file;              // relative to the mountpoint; empty for a ctl command
  std::string value;
  std::vector<std::string> argv; // ctl command
  std::string text() const {
    if (file.empty()) {
      std::string s = "ctl";
      for (const auto& a : argv) s += " " + a;
      return s;
    }
    return "echo " + value + " > " + file;
  }
};

/// The next operation for `m` and the model once it is acknowledged. New mdevs are assigned
/// first, so that every mdev gets an adapter and a domain; the rest rotate.
std::pair<Op, Model> next(const Model& m) {
  Model n = m;
  Op op;
  auto write = [&](std::string file, std::string value) {
    op.file = std::move(file);
    op.value = std::move(value);
  };
  // The first operations reserve adapters 0-2 and domains 4-7 for vfio_ap.
  for (int a = 0; a < 3; ++a)
    if (m.apmask[a]) {
      n.apmask[a] = false;
      write("/bus/ap/apmask", "-" + std::to_string(a));
      return {op, n};
    }
  for (int d = 4; d < 8; ++d)
    if (m.aqmask[d]) {
      n.aqmask[d] = false;
      write("/bus/ap/aqmask", "-" + std::to_string(d));
      return {op, n};
    }
  if (!m.mdevs.empty()) {
    const Model::Mdev& last = m.mdevs.back();
    const std::string dir = std::string(kMatrix) + "/" + uuid_of(last.index);
    if (!last.adapter) {
      n.mdevs.back().adapter = true;
      write(dir + "/assign_adapter", std::to_string(last.apid()));
      return {op, n};
    }
    if (!last.domain) {
      n.mdevs.back().domain = true;
      write(dir + "/assign_domain", "0x" + std::to_string(last.apqi()));
      return {op, n};
    }
  }
  switch (n.rotation++ % 6) {
  case 0:
  case 3:
    if (m.mdevs.size() >= 4) { // at most four live mdevs: four distinct domains
      n.mdevs.pop_front();
      write(std::string(kMatrix) + "/" + uuid_of(m.mdevs.front().index) + "/remove", "1");
    } else {
      n.mdevs.push_back({n.next_index++});
      write(kCreate, uuid_of(n.mdevs.back().index));
    }
    return {op, n};
  case 1: { // an adapter that does not exist: the mask alone changes
    const int a = 8 + n.rotation % 4;
    n.apmask[a] = !m.apmask[a];
    write("/bus/ap/apmask", (n.apmask[a] ? "+" : "-") + std::to_string(a));
    return {op, n};
  }
  case 2:
    n.usage[kToggledDomain] = !m.usage[kToggledDomain];
    op.argv = {"domain", n.usage[kToggledDomain] ? "add" : "remove", std::to_string(kToggledDomain)};
    return {op, n};
  case 4:
    n.hot_card = !m.hot_card;
    op.argv = n.hot_card ? std::vector<std::string>{"card", "add", "5", "CEX8", "accel"}
                         : std::vector<std::string>{"card", "remove", "5"};
    return {op, n};
  default:
    n.card_online = !m.card_online;
    write("/devices/ap/card02/online", n.card_online ? "1" : "0");
    return {op, n};
  }
}

/// The state the tree shows, in Model::describe's form.
std::string observe(const std::string& root) {
  std::string s = "apmask " + slurp(root + "/bus/ap/apmask") + "aqmask " +
                  slurp(root + "/bus/ap/aqmask") + "usage " +
                  slurp(root + "/bus/ap/ap_usage_domain_mask") + "card05 " +
                  (fs::exists(root + "/devices/ap/card05") ? "yes\n" : "no\n") + "card02 online " +
                  slurp(root + "/devices/ap/card02/online");
  std::vector<std::string> lines;
  for (const auto& e : fs::directory_iterator(root + kMatrix)) {
    const std::string name = e.path().filename();
    if (name.size() == 36 && name[8] == '-')
      lines.push_back("mdev " + name + " matrix " + slurp(e.path().string() + "/matrix"));
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) s += l.back() == '\n' ? l : l + "\n";
  return s;
}

/// The bindings the masks imply (ap_bus.md §4): adapters 0-2 x domains 4-7 go to vfio_ap when
/// either mask takes them from the default drivers. "" when every queue is where it belongs.
std::string wrong_bindings(const std::string& root, const Model& m) {
  std::string out;
  for (int a = 0; a < 3; ++a)
    for (int d = 4; d < 8; ++d) {
      char q[64];
      std::snprintf(q, sizeof q, "/devices/ap/card%02x/%02x.%04x/driver", a, a, d);
      std::error_code ec;
      const std::string drv = fs::read_symlink(root + q, ec).filename();
      const std::string want = (m.apmask[a] && m.aqmask[d]) ? "cex4queue" : "vfio_ap";
      if (drv != want) out += std::string(q) + " -> '" + drv + "', want " + want + "\n";
    }
  return out;
}

} // namespace

// Issue 9, acceptance 2 (README "Persistent state"): at least 20 rounds of operations through
// the live tree and the control socket, each ended by SIGKILL at a random moment; after every
// restart the tree shows exactly the acknowledged operations (plus, possibly, the one in flight).
TEST(StateLive, SigkillAtRandomMomentsLosesNoAcknowledgedChange) {
  REQUIRE_FACILITIES();
  ASSERT_EQ(private_mount_namespace(), 0);

  char base[] = "/tmp/apemu-state-live-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  const std::string root = std::string(base) + "/mnt", state = std::string(base) + "/state",
                    sock = std::string(base) + "/ctl.sock";
  fs::create_directories(root);
  Daemon daemon(root, sock, state, std::string(base) + "/serve.log");

  // The default topology (topologies/default.toml): every mask bit set, usage domains 4-7.
  Model model;
  model.apmask.set();
  model.aqmask.set();
  for (int d = 4; d < 8; ++d) model.usage[d] = true;

  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));

  constexpr int kRounds = 24;
  int acked_total = 0, in_flight_applied = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string why;
    ASSERT_TRUE(daemon.start(why)) << why;

    // What this daemon restored: the acknowledged model, exactly.
    ASSERT_EQ(observe(root), model.describe()) << daemon.log();
    ASSERT_EQ(wrong_bindings(root, model), "");

    std::atomic<bool> killing{false};
    std::optional<Model> in_flight; // the model if the interrupted operation took effect
    std::string failure;
    int acked = 0;
    std::thread writer([&] {
      for (;;) {
        auto [op, after] = next(model);
        const std::string err = op.file.empty()
                                    ? ctl(sock, op.argv)
                                    : std::string(write_file(root + op.file, op.value) ? "failed" : "");
        if (!err.empty()) {
          if (!killing.load()) failure = op.text() + ": " + err;
          else in_flight = after;
          return;
        }
        model = after;
        ++acked;
      }
    });
    // Round 0 always lets the reservation land; the others end anywhere in 0-250 ms, a fifth of
    // them at once (the restored state killed before any operation).
    const int ms = round == 0 ? 200 : (rng() % 5 == 0 ? 0 : static_cast<int>(rng() % 250));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    killing = true;
    daemon.kill9();
    writer.join();
    ASSERT_EQ(failure, "") << "an operation failed before the kill\n" << daemon.log();
    acked_total += acked;

    // The restart must show the acknowledged model, or that model plus the interrupted op.
    ASSERT_TRUE(daemon.start(why)) << why;
    const std::string seen = observe(root);
    if (in_flight && seen == in_flight->describe()) {
      model = *in_flight;
      ++in_flight_applied;
    } else {
      ASSERT_EQ(seen, model.describe()) << "after " << acked << " acknowledged operations";
    }
    ASSERT_EQ(wrong_bindings(root, model), "");
    daemon.kill9(); // the next round starts from the state on disk again
  }
  RecordProperty("acknowledged", std::to_string(acked_total));
  std::printf("%d rounds, %d acknowledged operations, %d interrupted operations found applied\n",
              kRounds, acked_total, in_flight_applied);
  EXPECT_GT(acked_total, kRounds) << "the rounds did too little to test anything";
  EXPECT_GE(model.next_index, 3) << "too few mdevs were created";

  // A clean end: the last daemon restores once more and exits 0 on SIGTERM, leaving no mount.
  std::string why;
  ASSERT_TRUE(daemon.start(why)) << why;
  EXPECT_EQ(observe(root), model.describe());
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  fs::remove_all(base);
}
