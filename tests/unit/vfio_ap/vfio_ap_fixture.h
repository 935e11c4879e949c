// A machine with vfio_ap loaded, for the vfio_ap tests: four adapters, usage domains 4-7,
// control domains 4-7 and 0x20, extended addressing (maxima 255).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apemu/testbed/testbed.h"
#include "apemu/vfio_ap/vfio_ap.h"
#include "matchers.h"
#include "sysfs_helpers.h"

namespace apemu::testing {

inline constexpr std::string_view kVfioLpar = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4-7"
control_domains = "4-7,0x20"
default_domain = 4

[[adapter]]
id = 0x05
type = "CEX8"
mode = "cca"

[[adapter]]
id = 0x06
type = "CEX7"
mode = "ep11"

[[adapter]]
id = 0x07
type = "CEX8"
mode = "accel"

[[adapter]]
id = 0x08
type = "CEX8"
mode = "cca"
)";

inline constexpr const char* kU1 = "11111111-1111-1111-1111-111111111111";
inline constexpr const char* kU2 = "22222222-2222-2222-2222-222222222222";
inline constexpr const char* kU3 = "33333333-3333-3333-3333-333333333333";
inline constexpr const char* kMatrixDir = "/devices/vfio_ap/matrix";
inline constexpr const char* kTypeDir =
    "/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";

inline std::unique_ptr<testbed::Testbed> boot_vfio(std::string_view toml,
                                                   const char* profile = "6.19", bool vfio = true) {
  auto topo = topology::parse(toml);
  EXPECT_TRUE(topo.has_value()) << (topo ? "" : topo.error().context);
  testbed::Options opt;
  opt.topology = std::move(*topo);
  opt.kernel_profile = profile;
  opt.vfio_ap = vfio;
  auto tb = testbed::Testbed::create(std::move(opt));
  EXPECT_TRUE(tb.has_value()) << (tb ? "" : tb.error().describe());
  return std::move(*tb);
}

inline std::string mdev_path(const char* uuid) { return std::string(kMatrixDir) + "/" + uuid; }

class VfioApTest : public ::testing::Test {
protected:
  virtual const char* profile() const { return "6.19"; }
  void SetUp() override {
    tb = boot_vfio(kVfioLpar, profile());
    guard = tb->lock(); // the test body is the entry point
  }
  void TearDown() override {
    if (guard.owns_lock()) guard.unlock(); // the Testbed's destructor takes it itself
  }

  core::Core& core() { return tb->core(); }
  ap::ApBus& bus() { return *tb->ap_bus(); }
  vfio_ap::VfioAp& vfio() { return *tb->vfio_ap(); }
  Result<std::string> read(std::string_view p) { return sysfs_read(core(), p); }
  Result<std::size_t> write(std::string_view p, std::string_view v) {
    return sysfs_write(core(), p, v);
  }
  /// Writes `value` to the mdev attribute `attr`.
  Result<std::size_t> mw(const char* uuid, std::string_view attr, std::string_view value) {
    return write(mdev_path(uuid) + "/" + std::string(attr), value);
  }
  Result<std::string> mr(const char* uuid, std::string_view attr) {
    return read(mdev_path(uuid) + "/" + std::string(attr));
  }
  /// Creates an mdev through the `create` file.
  vfio_ap::MatrixMdev* create(const char* uuid) {
    EXPECT_THAT(write(std::string(kTypeDir) + "/create", uuid), IsOk());
    return vfio().find_mdev(uuid);
  }
  /// Gives adapters to vfio_ap (apmask "-a,-b"): their queues bind to vfio_ap.
  void release_adapters(std::string_view list) {
    ASSERT_THAT(write("/bus/ap/apmask", list), IsOk());
  }
  /// Assigns adapters × domains (and control domains) through the files.
  void assign(const char* uuid, std::initializer_list<const char*> apids,
              std::initializer_list<const char*> apqis,
              std::initializer_list<const char*> cdoms = {}) {
    for (auto a : apids) ASSERT_THAT(mw(uuid, "assign_adapter", a), IsOk()) << a;
    for (auto d : apqis) ASSERT_THAT(mw(uuid, "assign_domain", d), IsOk()) << d;
    for (auto c : cdoms) ASSERT_THAT(mw(uuid, "assign_control_domain", c), IsOk()) << c;
  }
  std::size_t log_count(const std::string& needle) {
    std::size_t n = 0;
    for (const auto& l : core().log().lines(LogLevel::Debug))
      if (l.find(needle) != std::string::npos) ++n;
    return n;
  }

  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
};

} // namespace apemu::testing
