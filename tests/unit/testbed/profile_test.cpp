// Kernel profiles, one test per row of the specs' version tables × each of the five profiles
// (ap-bus.md §11, vfio-ap.md §1.7, driver-core.md [ver] notes). Every row boots a fresh machine
// with the profile, observes one file set, format or errno the way a client would (through the
// kernfs files, under the machine lock), and compares with what that kernel shows.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <functional>

#include "apemu/profile/kernel_profile.h"
#include "apemu/testbed/testbed.h"
#include "matchers.h"
#include "sysfs_helpers.h"

using namespace apemu;
using namespace apemu::testing;

namespace {

// Adapter 5: CCA; 6: EP11 with a small max message length; 7: accelerator; 9: a CEX3C that only
// kernels up to 6.4 drive. Usage domains 4-5.
constexpr std::string_view kProfileLpar = R"(
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "4-5"
control_domains = "4-5"
default_domain = 4

[[adapter]]
id = 5
type = "CEX8"
mode = "cca"

[[adapter]]
id = 6
type = "CEX7"
mode = "ep11"
max_msg_units = 2

[[adapter]]
id = 7
type = "CEX8"
mode = "accel"

[[adapter]]
id = 9
type = "CEX3C"
)";

constexpr const char* kUuid = "11111111-1111-1111-1111-111111111111";
constexpr const char* kMdev = "/devices/vfio_ap/matrix/11111111-1111-1111-1111-111111111111";

/// One machine of a profile, with the helpers the rows use.
struct Machine {
  explicit Machine(const char* profile) {
    testbed::Options opt;
    opt.topology = *topology::parse(kProfileLpar);
    opt.kernel_profile = profile;
    tb = std::move(*testbed::Testbed::create(std::move(opt)));
    guard = tb->lock();
  }
  ~Machine() { guard.unlock(); }
  core::Core& core() { return tb->core(); }
  /// The file's text without its trailing newline, "absent", or the read's errno name.
  std::string read(std::string_view p) {
    if (!sysfs_exists(core(), p)) return "absent";
    auto r = sysfs_read(core(), p);
    if (!r) return Errno(r.error().code).name();
    std::string s = *r;
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  /// "ok" or the errno name of one write.
  std::string write(std::string_view p, std::string_view v) {
    if (!sysfs_exists(core(), p)) return "absent";
    auto r = sysfs_write(core(), p, v);
    return r ? "ok" : Errno(r.error().code).name();
  }
  std::string exists(std::string_view p) { return sysfs_exists(core(), p) ? "present" : "absent"; }
  /// An mdev with adapter 5 × domain 4 (after giving adapter 5 to vfio_ap).
  void mdev_with_5_4() {
    (void)write("/bus/ap/apmask", "-5");
    (void)write("/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create", kUuid);
    (void)write(std::string(kMdev) + "/assign_adapter", "5");
    (void)write(std::string(kMdev) + "/assign_domain", "4");
  }
  vfio_ap::MatrixMdev& mdev() { return *tb->vfio_ap()->find_mdev(kUuid); }

  std::unique_ptr<testbed::Testbed> tb;
  MachineGuard guard;
};

struct Row {
  const char* name;
  const char* spec;
  std::function<std::string(Machine&)> observe;
  std::array<const char*, 5> want; ///< 4.20, 5.15, 6.1, 6.16, 6.19
};

const std::vector<Row>& rows() {
  static const std::vector<Row> r = {
      // ---- AP bus (ap-bus.md §11) ---------------------------------------------------------------
      {"CardDepth", "ap-bus.md §4.1 depth: qd, newest qd + 1",
       [](Machine& m) { return m.read("/devices/ap/card05/depth"); },
       {"7", "7", "7", "7", "8"}},
      {"CardMaxMsgSize", "ap-bus.md §4.1 max_msg_size (ml = 2)",
       [](Machine& m) { return m.read("/devices/ap/card06/max_msg_size"); },
       {"absent", "absent", "8192", "8192", "12288"}},
      {"CardConfigAndChkstop", "ap-bus.md §11 config/chkstop added ≈5.1x",
       [](Machine& m) {
         return m.exists("/devices/ap/card05/config") + " " +
                m.exists("/devices/ap/card05/05.0004/chkstop");
       },
       {"absent absent", "present present", "present present", "present present",
        "present present"}},
      {"QueueApFunctions", "ap-bus.md §4.3 ap_functions (SE era ≈6.5)",
       [](Machine& m) { return m.read("/devices/ap/card05/05.0004/ap_functions"); },
       {"absent", "absent", "absent", "0x92800000", "0x92800000"}},
      {"QueueRequestCountWhileUninitiated", "ap-bus.md §4.3 request_count '-'",
       [](Machine& m) {
         (void)m.write("/bus/ap/drivers/cex4queue/unbind", "05.0004");
         return m.read("/devices/ap/card05/05.0004/request_count");
       },
       {"0", "0", "-", "-", "-"}},
      {"QueueDriverOverride", "ap-bus.md §4.3 driver_override [6.19+]",
       [](Machine& m) { return m.exists("/devices/ap/card05/05.0004/driver_override"); },
       {"absent", "absent", "absent", "absent", "present"}},
      {"MaskAndOverrideExcludeEachOther", "ap-bus.md §2.2 step 2, §4.3 [6.19+]",
       [](Machine& m) {
         const std::string o = m.write("/devices/ap/card05/05.0004/driver_override", "vfio_ap");
         return o + " " + m.write("/bus/ap/apmask", "-6");
       },
       {"absent ok", "absent ok", "absent ok", "absent ok", "ok EINVAL"}},
      {"BindingsComplete", "ap-bus.md §3.4 bindings, bindings_complete_count",
       [](Machine& m) {
         return m.read("/bus/ap/bindings") + " / " + m.read("/bus/ap/bindings_complete_count");
       },
       // 5.15 and 6.1 also drive the CEX3C: its two queues count.
       {"absent / absent", "8/8 (complete) / absent", "8/8 (complete) / absent",
        "6/6 (complete) / absent", "6/6 (complete) / 1"}},
      {"BindingsCompleteRepetition", "ap-bus.md §3.4: every scan ≈5.10-6.18, transitions 6.19",
       [](Machine& m) {
         EventLog log(m.core());
         m.tb->ap_bus()->scan();
         m.tb->ap_bus()->scan();
         int n = 0;
         for (const auto& e : log.events) n += e.get("BINDINGS") == "complete";
         return std::to_string(n);
       },
       {"0", "2", "2", "2", "0"}},
      {"InUseVetoArguments", "ap-bus.md §2.2 step 5: other mask current (≤6.18) or all ones",
       [](Machine& m) {
         // aqmask -4, adapter 5 to vfio_ap, (5, 4) assigned: is `+4` on aqmask in use?
         (void)m.write("/bus/ap/aqmask", "-4");
         m.mdev_with_5_4();
         return m.write("/bus/ap/aqmask", "+4");
       },
       {"ok", "ok", "ok", "ok", "EBUSY"}},
      {"InUseVeto", "vfio-ap.md §4.5: in_use from 6.0",
       [](Machine& m) {
         m.mdev_with_5_4();
         return m.write("/bus/ap/apmask", "+5");
       },
       {"ok", "ok", "EBUSY", "EBUSY", "EBUSY"}},
      {"MaskUevent", "ap-bus.md §3.4 APMASK= change (≈5.10)",
       [](Machine& m) {
         EventLog log(m.core());
         (void)m.write("/bus/ap/apmask", "-6");
         for (const auto& e : log.events)
           if (e.get("APMASK")) return std::string("sent");
         return std::string("none");
       },
       {"none", "sent", "sent", "sent", "sent"}},
      {"QueueUeventContent", "ap-bus.md §3.4 DEV_TYPE/MODALIAS (older) or MODE (newer)",
       [](Machine& m) { return m.read("/devices/ap/card05/05.0004/uevent"); },
       {"DEVTYPE=ap_queue\nDRIVER=cex4queue\nDEV_TYPE=000E\nMODALIAS=ap:t0E",
        "DEVTYPE=ap_queue\nDRIVER=cex4queue\nDEV_TYPE=000E\nMODALIAS=ap:t0E",
        "DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=cca", "DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=cca",
        "DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=cca"}},
      {"Cex3CardAndDriver", "ap-bus.md §3.2, §3.3: CEX2/CEX3 up to 6.4",
       [](Machine& m) {
         if (!sysfs_exists(m.core(), "/devices/ap/card09")) return std::string("no card");
         auto drv = sysfs_readlink(m.core(), "/devices/ap/card09/driver");
         return m.read("/devices/ap/card09/type") + " " +
                (drv ? drv->substr(drv->rfind('/') + 1) : std::string("-"));
       },
       {"CEX3C cex2card", "CEX3C cex2card", "CEX3C cex2card", "no card", "no card"}},
      {"PollTimeoutParsing", "ap-bus.md §11: sscanf 1..120e9 or kstrtoul 0..120e9",
       [](Machine& m) {
         return m.write("/bus/ap/poll_timeout", "0") + " " + m.write("/bus/ap/poll_timeout", "0x10");
       },
       {"EINVAL EINVAL", "EINVAL EINVAL", "EINVAL EINVAL", "ok ok", "ok ok"}},
      {"PollThreadParsing", "ap-bus.md §11: sscanf %d or kstrtobool",
       [](Machine& m) { return m.write("/bus/ap/poll_thread", "y"); },
       {"EINVAL", "EINVAL", "EINVAL", "ok", "ok"}},
      {"BusFeatures", "ap-bus.md §2.1 features [newer]",
       [](Machine& m) { return m.read("/bus/ap/features"); },
       {"absent", "absent", "absent", "APSC APXA QACT RC8A", "APSC APXA QACT RC8A"}},
      // ---- driver core (driver-core.md) ---------------------------------------------------------
      {"BindOfABoundDevice", "driver-core.md §2.4 bind [ver: before 5.13 ENODEV]",
       [](Machine& m) { return m.write("/bus/ap/drivers/cex4queue/bind", "05.0004"); },
       {"ENODEV", "EBUSY", "EBUSY", "EBUSY", "EBUSY"}},
      {"UeventVariableLimit", "driver-core.md §3.2 limits: 32 variables before 5.8, then 64",
       [](Machine& m) {
         std::string text = "change 00000000-0000-0000-0000-000000000000";
         for (int i = 0; i < 40; ++i) text += " K" + std::to_string(i) + "=v";
         return m.write("/devices/ap/card05/uevent", text);
       },
       {"ENOMEM", "ok", "ok", "ok", "ok"}},
      // ---- vfio_ap and the mdev core (vfio-ap.md §1.7) ------------------------------------------
      {"MatrixBus", "vfio-ap.md §1.7: the matrix bus from 5.0",
       [](Machine& m) { return m.exists("/bus/matrix") + " " + m.exists("/devices/vfio_ap/matrix/subsystem"); },
       {"absent absent", "present present", "present present", "present present",
        "present present"}},
      {"MdevDriver", "vfio-ap.md §1.7, mdev core: vfio_mdev until 5.15, the vendor's from 5.16",
       [](Machine& m) {
         m.mdev_with_5_4();
         auto drv = sysfs_readlink(m.core(), std::string(kMdev) + "/driver");
         return drv ? drv->substr(drv->rfind('/') + 1) : Errno(drv.error().code).name();
       },
       {"vfio_mdev", "vfio_mdev", "vfio_ap_mdev", "vfio_ap_mdev", "vfio_ap_mdev"}},
      {"MdevAttributes", "vfio-ap.md §1.7: guest_matrix 6.0, ap_config 6.10",
       [](Machine& m) {
         m.mdev_with_5_4();
         return m.exists(std::string(kMdev) + "/guest_matrix") + " " +
                m.exists(std::string(kMdev) + "/ap_config");
       },
       {"absent absent", "absent absent", "present absent", "present present",
        "present present"}},
      {"MatrixFeatures", "vfio-ap.md §1.2, §1.7: features 6.12",
       [](Machine& m) { return m.read("/devices/vfio_ap/matrix/features"); },
       {"absent", "absent", "absent", "guest_matrix hotplug ap_config",
        "guest_matrix hotplug ap_config"}},
      {"QueueStatus", "vfio-ap.md §4.7: status ~6.1/6.2",
       [](Machine& m) {
         m.mdev_with_5_4();
         return m.read("/devices/ap/card05/05.0004/status");
       },
       {"absent", "absent", "absent", "assigned", "assigned"}},
      {"ExhaustedInstancesErrno", "vfio-ap.md §1.4: EPERM (vfio_ap ≤6.0) or EUSERS (mdev core 6.1)",
       [](Machine& m) {
         return std::string(Errno(m.tb->mdev_bus()->parents()[0]->driver().ops().exhausted_errno).name());
       },
       {"EPERM", "EPERM", "EUSERS", "EUSERS", "EUSERS"}},
      {"ReservationOfAnUnboundApqn", "vfio-ap.md §3.10 (≤5.19) vs §3.3 (6.0+)",
       [](Machine& m) {
         (void)m.write("/bus/ap/apmask", "-5");
         (void)m.write("/bus/ap/drivers/vfio_ap/unbind", "05.0004");
         (void)m.write("/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create", kUuid);
         // No (x, 4) is bound to vfio_ap any more; nor is one default-owned.
         return m.write(std::string(kMdev) + "/assign_domain", "4");
       },
       {"EADDRNOTAVAIL", "EADDRNOTAVAIL", "ok", "ok", "ok"}},
      {"AssignWhileAGuestRuns", "vfio-ap.md §3.9: EBUSY ≤5.19, hot plug 6.0+",
       [](Machine& m) {
         m.mdev_with_5_4();
         (void)m.tb->qemu()->start(m.mdev());
         return m.write(std::string(kMdev) + "/assign_domain", "5");
       },
       {"EBUSY", "EBUSY", "ok", "ok", "ok"}},
      {"GuestMasksAtOpen", "vfio-ap.md §3.10: raw masks ≤5.19, the filtered shadow 6.0+",
       [](Machine& m) {
         m.mdev_with_5_4();
         // Control domain 0x21 is not in the host configuration (control domains 4-5).
         (void)m.write(std::string(kMdev) + "/assign_control_domain", "0x21");
         auto g = m.tb->qemu()->start(m.mdev());
         return (*g)->apm().list() + "/" + (*g)->aqm().list() + "/" + (*g)->adm().list();
       },
       {"5/4/33", "5/4/33", "5/4/none", "5/4/none", "5/4/none"}},
      {"RemoveInUse", "vfio-ap.md §3.11: EBUSY (4.20), blocks the writer (~5.13+)",
       [](Machine& m) {
         m.mdev_with_5_4();
         (void)m.tb->qemu()->start(m.mdev(), {.honour_requests = false});
         auto w = sysfs_write_blocking(m.core(), std::string(kMdev) + "/remove", "1");
         const std::string out = w.result ? "ok" : Errno(w.result.error().code).name();
         if (w.completion) w.completion->cancel(EINTR);
         return out;
       },
       {"EBUSY", "EIOCBQUEUED", "EIOCBQUEUED", "EIOCBQUEUED", "EIOCBQUEUED"}},
      {"VfioIrqs", "vfio-ap.md §1.7, §7.4: request IRQ ~6.7, config-change IRQ 6.15",
       [](Machine& m) {
         m.mdev_with_5_4();
         auto fd = std::make_shared<EventFd>(m.tb->runtime());
         auto r = m.tb->vfio_ap()->set_irq_eventfd(m.mdev(), vfio_ap::IrqIndex::CfgChg, fd);
         return r ? std::string("ok") : std::string(Errno(r.error().code).name());
       },
       {"EOPNOTSUPP", "EOPNOTSUPP", "EOPNOTSUPP", "ok", "ok"}},
  };
  return r;
}

constexpr const char* kNames[] = {"4.20", "5.15", "6.1", "6.16", "6.19"};

class ProfileRow : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {};

TEST_P(ProfileRow, ShowsWhatThatKernelShows) {
  const auto [row_index, profile_index] = GetParam();
  const Row& row = rows()[row_index];
  Machine m(kNames[profile_index]);
  EXPECT_EQ(row.observe(m), row.want[profile_index]) << row.spec;
}

std::string row_name(const ::testing::TestParamInfo<ProfileRow::ParamType>& info) {
  std::string k = kNames[std::get<1>(info.param)];
  for (char& c : k)
    if (c == '.') c = '_';
  return std::string(rows()[std::get<0>(info.param)].name) + "_Kernel_" + k;
}

INSTANTIATE_TEST_SUITE_P(Spec, ProfileRow,
                         ::testing::Combine(::testing::Range<std::size_t>(0, rows().size()),
                                            ::testing::Range<std::size_t>(0, 5)),
                         row_name);

TEST(KernelProfiles, TheTableHasTheFiveProfilesNewestByDefault) {
  ASSERT_EQ(profile::all_profiles().size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(profile::all_profiles()[i].name, kNames[i]);
  EXPECT_EQ(profile::default_profile().name, "6.19");
  EXPECT_THAT(profile::find_profile("6.17"), FailsWith(EINVAL));
}

} // namespace
