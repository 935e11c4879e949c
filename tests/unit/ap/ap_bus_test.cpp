// AP bus attributes, masks, the in_use veto, binding revision and scans (ap-bus.md §2–§7).
#include "ap_fixture.h"
#include "apemu/testbed/control.h"

#include "apemu/ap/zcrypt.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

static const std::string kAllOnes = "0x" + std::string(64, 'f') + "\n";

TEST_F(ApTest, BusAttributeFormats) {
  // ap-bus.md §2.1, row by row.
  EXPECT_THAT(read("/bus/ap/ap_domain"), IsOkAndHolds("4\n"));
  EXPECT_THAT(read("/bus/ap/ap_max_domain_id"), IsOkAndHolds("255\n"));
  EXPECT_THAT(read("/bus/ap/ap_max_adapter_id"), IsOkAndHolds("255\n"));
  EXPECT_THAT(read("/bus/ap/ap_adapter_mask"),
              IsOkAndHolds("0x07" + std::string(62, '0') + "\n")); // adapters 5,6,7
  EXPECT_THAT(read("/bus/ap/ap_usage_domain_mask"),
              IsOkAndHolds("0x0c" + std::string(62, '0') + "\n")); // domains 4,5
  EXPECT_THAT(read("/bus/ap/ap_control_domain_mask"),
              IsOkAndHolds("0x0c0000008" + std::string(55, '0') + "\n")); // 4,5,32
  EXPECT_EQ(read("/bus/ap/ap_control_domain_mask")->size(), 67u);
  EXPECT_THAT(read("/bus/ap/ap_interrupts"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read("/bus/ap/config_time"), IsOkAndHolds("30\n"));
  EXPECT_THAT(read("/bus/ap/poll_thread"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read("/bus/ap/poll_timeout"), IsOkAndHolds("250000\n"));
  EXPECT_THAT(read("/bus/ap/apmask"), IsOkAndHolds(kAllOnes));
  EXPECT_THAT(read("/bus/ap/aqmask"), IsOkAndHolds(kAllOnes));
  EXPECT_THAT(read("/bus/ap/scans"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read("/bus/ap/bindings"), IsOkAndHolds("6/6 (complete)\n"));
  EXPECT_THAT(read("/bus/ap/bindings_complete_count"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read("/bus/ap/features"), IsOkAndHolds("APSC APXA QACT RC8A\n"));
}

TEST_F(ApTest, BusAttributeWriteErrors) {
  // ap_domain: sscanf %i, range and aqmask checks.
  EXPECT_THAT(write("/bus/ap/ap_domain", "0x5"), IsOk());
  EXPECT_THAT(read("/bus/ap/ap_domain"), IsOkAndHolds("5\n"));
  EXPECT_THAT(write("/bus/ap/ap_domain", "x"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/ap_domain", "-1"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/ap_domain", "256"), FailsWith(EINVAL));
  ASSERT_THAT(write("/bus/ap/aqmask", "-6"), IsOk());
  EXPECT_THAT(write("/bus/ap/ap_domain", "6"), FailsWith(EINVAL));
  EXPECT_THAT(read("/bus/ap/ap_domain"), IsOkAndHolds("5\n"));
  // config_time 5..120.
  EXPECT_THAT(write("/bus/ap/config_time", "4"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/config_time", "121"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/config_time", "abc"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/config_time", "60\n"), IsOk());
  EXPECT_THAT(read("/bus/ap/config_time"), IsOkAndHolds("60\n"));
  // poll_thread: kstrtobool; with interrupts the thread is not started.
  EXPECT_THAT(write("/bus/ap/poll_thread", "maybe"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/poll_thread", "1"), IsOk());
  EXPECT_THAT(read("/bus/ap/poll_thread"), IsOkAndHolds("0\n"));
  // poll_timeout: kstrtoul base 0, at most 120e9.
  EXPECT_THAT(write("/bus/ap/poll_timeout", "0x10"), IsOk());
  EXPECT_THAT(read("/bus/ap/poll_timeout"), IsOkAndHolds("16\n"));
  EXPECT_THAT(write("/bus/ap/poll_timeout", "120000000001"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/poll_timeout", "99999999999999999999"), FailsWith(ERANGE));
  EXPECT_THAT(write("/bus/ap/poll_timeout", "1 2"), FailsWith(EINVAL));
  EXPECT_THAT(write("/bus/ap/poll_timeout", "0"), IsOk());
  // Read-only files.
  EXPECT_THAT(write("/bus/ap/bindings", "1"), FailsWith(EACCES));
  EXPECT_THAT(write("/bus/ap/ap_max_domain_id", "1"), FailsWith(EACCES));
  // scans: any write rescans.
  EXPECT_THAT(write("/bus/ap/scans", "whatever"), IsOk());
  EXPECT_THAT(read("/bus/ap/scans"), IsOkAndHolds("2\n"));
}

TEST_F(ApTest, CardAttributeFormatsAndUevent) {
  // ap-bus.md §4.1, §4.2, §3.4.
  const std::string c = "/devices/ap/card05/";
  EXPECT_THAT(read(c + "hwtype"), IsOkAndHolds("14\n"));
  EXPECT_THAT(read(c + "raw_hwtype"), IsOkAndHolds("14\n"));
  EXPECT_THAT(read(c + "depth"), IsOkAndHolds("8\n"));
  EXPECT_THAT(read(c + "ap_functions"), IsOkAndHolds("0x92800000\n"));
  EXPECT_THAT(read(c + "modalias"), IsOkAndHolds("ap:t0E\n"));
  EXPECT_THAT(read(c + "config"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read(c + "chkstop"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(c + "max_msg_size"), IsOkAndHolds("12288\n"));
  EXPECT_THAT(read(c + "request_count"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(c + "type"), IsOkAndHolds("CEX8C\n"));
  EXPECT_THAT(read(c + "online"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read(c + "serialnr"), IsOkAndHolds("93AABEET\n"));
  EXPECT_FALSE(sysfs_exists(core(), c + "API_ordinalnr"));
  EXPECT_THAT(read(c + "uevent"),
              IsOkAndHolds("DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000E\nMODALIAS=ap:t0E\nMODE=cca\n"));
  EXPECT_THAT(sysfs_readlink(core(), c + "driver"), IsOkAndHolds("../../../bus/ap/drivers/cex4card"));
  EXPECT_THAT(sysfs_readlink(core(), c + "subsystem"), IsOkAndHolds("../../../bus/ap"));
  EXPECT_THAT(sysfs_readlink(core(), "/bus/ap/devices/card05"), IsOkAndHolds("../../../devices/ap/card05"));
  // EP11 (CEX7) and accelerator cards.
  EXPECT_THAT(read("/devices/ap/card06/type"), IsOkAndHolds("CEX7P\n"));
  EXPECT_THAT(read("/devices/ap/card06/hwtype"), IsOkAndHolds("13\n"));
  EXPECT_THAT(read("/devices/ap/card06/ap_functions"), IsOkAndHolds("0x86000000\n"));
  EXPECT_THAT(read("/devices/ap/card06/API_ordinalnr"), IsOkAndHolds("4\n"));
  EXPECT_THAT(read("/devices/ap/card06/op_modes"), IsOkAndHolds("\n"));
  EXPECT_EQ(read("/devices/ap/card06/serialnr")->size(), 17u);
  EXPECT_THAT(read("/devices/ap/card07/type"), IsOkAndHolds("CEX8A\n"));
  EXPECT_THAT(read("/devices/ap/card07/ap_functions"), IsOkAndHolds("0xEA000000\n"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card07/serialnr"));
  // The root device holds only cards and uevent; it has no subsystem link.
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/subsystem"));
  EXPECT_THAT(read("/devices/ap/uevent"), IsOkAndHolds(""));
}

TEST_F(ApTest, QueueAttributeFormatsAndUevent) {
  // ap-bus.md §4.3, §4.4.
  const std::string q = "/devices/ap/card05/05.0004/";
  EXPECT_THAT(read(q + "request_count"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(q + "requestq_count"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(q + "pendingq_count"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(q + "reset"), IsOkAndHolds("No Reset Timer set.\n"));
  EXPECT_THAT(read(q + "interrupt"), IsOkAndHolds("Interrupts enabled.\n"));
  EXPECT_THAT(read(q + "config"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read(q + "chkstop"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(q + "ap_functions"), IsOkAndHolds("0x92800000\n"));
  EXPECT_THAT(read(q + "driver_override"), IsOkAndHolds("\n"));
  EXPECT_THAT(read(q + "online"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read(q + "load"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read(q + "uevent"), IsOkAndHolds("DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=cca\n"));
  EXPECT_FALSE(sysfs_exists(core(), q + "modalias"));
  auto mk = read(q + "mkvps");
  ASSERT_THAT(mk, IsOk());
  EXPECT_THAT(*mk, HasSubstr("AES CUR: valid 0x"));
  EXPECT_EQ(std::count(mk->begin(), mk->end(), '\n'), 9);
  EXPECT_THAT(*read("/devices/ap/card06/06.0005/mkvps"), HasSubstr("WK CUR: valid 0x"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card07/07.0004/mkvps"));
  EXPECT_THAT(sysfs_readlink(core(), "/bus/ap/devices/05.0004"),
              IsOkAndHolds("../../../devices/ap/card05/05.0004"));
  EXPECT_THAT(sysfs_readlink(core(), q + "driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/cex4queue"));
  // request_count: writes reset; the card's request_count write resets the queues too.
  tb->ap_bus()->queue({Apid{5}, Apqi{4}})->count_request();
  EXPECT_THAT(read(q + "request_count"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read("/devices/ap/card05/request_count"), IsOkAndHolds("1\n"));
  ASSERT_THAT(write("/devices/ap/card05/request_count", "0"), IsOk());
  EXPECT_THAT(read(q + "request_count"), IsOkAndHolds("0\n"));
  // reset: any write.
  EXPECT_THAT(write(q + "reset", "1"), IsOk());
  EXPECT_THAT(read(q + "reset"), IsOkAndHolds("No Reset Timer set.\n"));
}

TEST_F(ApTest, NamingAndHierarchy) {
  // cardXX with lower-case hex, XX.YYYY below the card, no queues for control-only domains.
  EXPECT_TRUE(sysfs_exists(core(), "/devices/ap/card05/05.0005"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card05/05.0020"));
  auto dir = core().tree().resolve("/bus/ap/devices");
  std::vector<std::string> names;
  for (auto& c : static_cast<kernfs::Dir&>(*dir).children()) names.push_back(c->name());
  EXPECT_THAT(names, ElementsAre("05.0004", "05.0005", "06.0004", "06.0005", "07.0004", "07.0005",
                                 "card05", "card06", "card07"));
  auto root = core().tree().resolve("/devices/ap");
  names.clear();
  for (auto& c : static_cast<kernfs::Dir&>(*root).children()) names.push_back(c->name());
  EXPECT_THAT(names, ElementsAre("card05", "card06", "card07", "uevent"));
}

TEST_F(ApTest, CardOnlineSemanticsAndEvents) {
  // ap-bus.md §4.2, §7.
  EventLog ev(core());
  EXPECT_THAT(write("/devices/ap/card05/online", "2"), FailsWith(EINVAL));
  EXPECT_THAT(write("/devices/ap/card05/online", "x"), FailsWith(EINVAL));
  ASSERT_THAT(write("/devices/ap/card05/online", "0"), IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("change /devices/ap/card05", "change /devices/ap/card05/05.0004",
                                      "change /devices/ap/card05/05.0005"));
  EXPECT_EQ(ev.events[0].get("ONLINE"), "0");
  // The extra variable comes before the kset variables.
  EXPECT_EQ(ev.events[0].env[3].first, "ONLINE");
  EXPECT_EQ(ev.events[0].get("DRIVER"), "cex4card");
  EXPECT_THAT(read("/devices/ap/card05/05.0004/online"), IsOkAndHolds("0\n"));
  // A queue cannot go online while its card is soft-offline.
  EXPECT_THAT(write("/devices/ap/card05/05.0004/online", "1"), FailsWith(EINVAL));
  ev.clear();
  // Queue writes always send ONLINE=, even without a change.
  ASSERT_THAT(write("/devices/ap/card05/05.0004/online", "0"), IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("change /devices/ap/card05/05.0004"));
  ASSERT_THAT(write("/devices/ap/card05/online", "1"), IsOk());
  EXPECT_THAT(read("/devices/ap/card05/05.0005/online"), IsOkAndHolds("1\n"));
}

TEST_F(ApTest, ConfigOffFollowsAtTheNextScan) {
  // ap-bus.md §4.1 `config`, §7 (chzcrypt --config-off).
  EventLog ev(core());
  EXPECT_THAT(write("/devices/ap/card05/config", "2"), FailsWith(EINVAL));
  ASSERT_THAT(write("/devices/ap/card05/config", "0"), IsOk());
  ASSERT_FALSE(ev.events.empty());
  EXPECT_EQ(ev.events[0].get("CONFIG"), "0");
  EXPECT_THAT(read("/devices/ap/card05/config"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read("/devices/ap/card05/online"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read("/devices/ap/card05/05.0004/config"), IsOkAndHolds("1\n"));
  // Going online while deconfigured: ENODEV.
  EXPECT_THAT(write("/devices/ap/card05/online", "1"), FailsWith(ENODEV));
  ev.clear();
  bus().scan();
  EXPECT_THAT(read("/devices/ap/card05/05.0004/config"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read("/devices/ap/card05/05.0004/online"), IsOkAndHolds("0\n"));
  EXPECT_THAT(write("/devices/ap/card05/05.0004/online", "1"), FailsWith(ENODEV));
  std::vector<std::string> cfg;
  for (auto& e : ev.events)
    if (e.get("CONFIG")) cfg.push_back(e.devpath + " " + *e.get("CONFIG"));
  EXPECT_THAT(cfg, ElementsAre("/devices/ap/card05/05.0004 0", "/devices/ap/card05/05.0005 0"));
  // Config on again; writes always send CONFIG= even when unchanged.
  ev.clear();
  ASSERT_THAT(write("/devices/ap/card05/config", "1"), IsOk());
  ASSERT_THAT(write("/devices/ap/card05/config", "1"), IsOk());
  EXPECT_EQ(ev.events.size(), 2u);
  bus().scan();
  EXPECT_THAT(read("/devices/ap/card05/05.0004/config"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read("/devices/ap/card05/online"), IsOkAndHolds("1\n")); // soft flag kept
}

TEST_F(ApTest, CheckstopIsSeenByTheScan) {
  ASSERT_THAT(bus().set_checkstop(Apid{6}, true), IsOk());
  bus().scan();
  EXPECT_THAT(read("/devices/ap/card06/chkstop"), IsOkAndHolds("1\n"));
  EXPECT_THAT(read("/devices/ap/card06/online"), IsOkAndHolds("0\n"));
  EXPECT_THAT(read("/devices/ap/card06/06.0004/chkstop"), IsOkAndHolds("1\n"));
  EXPECT_THAT(write("/devices/ap/card06/online", "1"), FailsWith(ENODEV));
  ASSERT_THAT(bus().set_checkstop(Apid{6}, false), IsOk());
  bus().scan();
  EXPECT_THAT(read("/devices/ap/card06/06.0004/online"), IsOkAndHolds("1\n"));
}

TEST_F(ApTest, InitialScanEventsAndBindingsComplete) {
  // A fresh boot: add/bind per device, then INITSCAN=done and BINDINGS=complete on /devices/ap.
  testbed::Options opt;
  opt.topology = *topology::parse(kSmallLpar);
  core::Core* seen = nullptr;
  (void)seen;
  auto tb2 = std::move(*testbed::Testbed::create(std::move(opt)));
  auto tb2_guard = tb2->lock(); // another machine: its own entry point
  // The boot already happened; check the recorded counters and rescans instead.
  EventLog ev(tb2->core());
  tb2->ap_bus()->scan();
  EXPECT_TRUE(ev.events.empty()); // nothing changed, completion not re-armed
  ASSERT_THAT(tb2->ap_bus()->hotplug_adapter({.id = Apid{9}, .mode = ap::ApMode::Accel}), IsOk());
  auto lines = ev.lines();
  EXPECT_THAT(lines, ElementsAre("add /devices/ap/card09", "bind /devices/ap/card09",
                                 "add /devices/ap/card09/09.0004", "bind /devices/ap/card09/09.0004",
                                 "add /devices/ap/card09/09.0005", "bind /devices/ap/card09/09.0005",
                                 "change /devices/ap"));
  EXPECT_EQ(ev.events.back().get("BINDINGS"), "complete");
  EXPECT_EQ(ev.events.back().get("COMPLETECOUNT"), "2");
  EXPECT_EQ(ev.events.back().subsystem(), "ap");
  EXPECT_THAT(sysfs_read(tb2->core(), "/bus/ap/bindings_complete_count"), IsOkAndHolds("2\n"));
}

TEST_F(ApTest, HotUnplugAndDomainChanges) {
  EventLog ev(core());
  ASSERT_THAT(bus().hotunplug_adapter(Apid{7}), IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("unbind /devices/ap/card07/07.0004", "remove /devices/ap/card07/07.0004",
                                      "unbind /devices/ap/card07/07.0005", "remove /devices/ap/card07/07.0005",
                                      "unbind /devices/ap/card07", "remove /devices/ap/card07"));
  EXPECT_FALSE(sysfs_exists(core(), "/bus/ap/devices/card07"));
  EXPECT_THAT(bus().hotunplug_adapter(Apid{7}), FailsWith(ENODEV));
  ASSERT_THAT(bus().set_usage_domain(Apqi{6}, true), IsOk());
  EXPECT_TRUE(sysfs_exists(core(), "/devices/ap/card05/05.0006"));
  ASSERT_THAT(bus().set_usage_domain(Apqi{4}, false), IsOk());
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card05/05.0004"));
  EXPECT_THAT(read("/bus/ap/bindings"), IsOkAndHolds("4/4 (complete)\n"));
  EXPECT_THAT(testbed::execute_command(*tb, {"domain", "add", "300"}), FailsWith(ERANGE));
}

TEST_F(ApTest, ApmaskWithoutNonDefaultDriverUnbindsQueuesAndSendsTheChangeEvent) {
  EventLog ev(core());
  ASSERT_THAT(write("/bus/ap/apmask", "-5\n"), IsOkAndHolds(3u));
  EXPECT_THAT(ev.lines(), ElementsAre("unbind /devices/ap/card05/05.0004",
                                      "unbind /devices/ap/card05/05.0005", "change /devices/ap"));
  // The value carries a trailing newline character (ap-bus.md §2.2 step 7).
  EXPECT_EQ(ev.events.back().get("APMASK"), "0x" + std::string("fb") + std::string(62, 'f') + "\n");
  EXPECT_THAT(read("/bus/ap/bindings"), IsOkAndHolds("4/6\n"));
  // The card stays with cex4card: masks only gate queues.
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/driver"),
              IsOkAndHolds("../../../bus/ap/drivers/cex4card"));
  // Unbound queue: request_count reads "-" (UNINITIATED) and there is no zcrypt online.
  EXPECT_THAT(read("/devices/ap/card05/05.0004/request_count"), IsOkAndHolds("-\n"));
  EXPECT_FALSE(sysfs_exists(core(), "/devices/ap/card05/05.0004/online"));
  // cex4queue refuses to bind a reserved APQN: ENODEV back to the writer.
  EXPECT_THAT(write("/bus/ap/drivers/cex4queue/bind", "05.0004"), FailsWith(ENODEV));
  // Same mask again: no event, no reprobe.
  ev.clear();
  ASSERT_THAT(write("/bus/ap/apmask", "-5"), IsOk());
  EXPECT_TRUE(ev.events.empty());
  // Giving it back rebinds to cex4queue.
  ASSERT_THAT(write("/bus/ap/apmask", "+5"), IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("bind /devices/ap/card05/05.0004", "bind /devices/ap/card05/05.0005",
                                      "change /devices/ap"));
}

TEST_F(ApTest, RebindingOrderMovesQueuesBetweenDefaultAndPassthroughDrivers) {
  add_passthrough_driver();
  EventLog ev(core());
  ASSERT_THAT(write("/bus/ap/aqmask", "-5"), IsOk());
  // For each queue: unbind from cex4queue, then bind to vfio_ap; the mask event last.
  EXPECT_THAT(ev.lines(),
              ElementsAre("unbind /devices/ap/card05/05.0005", "bind /devices/ap/card05/05.0005",
                          "unbind /devices/ap/card06/06.0005", "bind /devices/ap/card06/06.0005",
                          "unbind /devices/ap/card07/07.0005", "bind /devices/ap/card07/07.0005",
                          "change /devices/ap"));
  EXPECT_EQ(ev.events[1].get("DRIVER"), "vfio_ap");
  EXPECT_EQ(ev.events.back().get("AQMASK"), "0xfb" + std::string(62, 'f') + "\n");
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/05.0005/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/vfio_ap"));
  EXPECT_FALSE(bus().apqn_owned_by_default({Apid{5}, Apqi{5}}));
  EXPECT_TRUE(bus().apqn_owned_by_default({Apid{5}, Apqi{4}}));
  EXPECT_TRUE(bus().matrix_owned_by_default(ApidMask::all(), ApqiMask::all()));
  // vfio_ap cannot take a default-owned queue through bind.
  EXPECT_THAT(write("/bus/ap/drivers/vfio_ap/bind", "05.0004"), FailsWith(EBUSY));
  ASSERT_THAT(write("/bus/ap/drivers/cex4queue/unbind", "05.0004"), IsOk());
  EXPECT_THAT(write("/bus/ap/drivers/vfio_ap/bind", "05.0004"), FailsWith(ENODEV));
  EXPECT_THAT(write("/bus/ap/drivers/cex4queue/bind", "05.0004\n"), IsOk());
  EXPECT_THAT(write("/bus/ap/drivers/cex4queue/bind", "nope"), FailsWith(ENODEV));
  EXPECT_THAT(write("/bus/ap/drivers/cex4card/bind", "05.0005"), FailsWith(ENODEV)); // not a card
}

TEST_F(ApTest, InUseVetoesOnlyNewlySetBitsWithEbusyAndChangesNothing) {
  std::vector<std::string> asked;
  add_passthrough_driver([&](const ApidMask& apm, const ApqiMask& aqm) {
    asked.push_back(apm.list() + " x " + aqm.list());
    return apm.test(Apid{5}) && aqm.test(Apqi{5}) ? -EADDRINUSE : 0;
  });
  ASSERT_THAT(write("/bus/ap/apmask", "-5"), IsOk()); // clearing is never vetoed
  EXPECT_TRUE(asked.empty());
  ASSERT_THAT(write("/bus/ap/aqmask", "-5"), IsOk());
  EventLog ev(core());
  EXPECT_THAT(write("/bus/ap/apmask", "+5"), FailsWith(EBUSY));
  // 6.19: the other mask is passed as all ones.
  EXPECT_THAT(asked, ElementsAre("5 x 0-255"));
  EXPECT_TRUE(ev.events.empty());
  EXPECT_FALSE(bus().apmask().test(Apid{5}));
  // A write that adds nothing vetoed succeeds.
  EXPECT_THAT(write("/bus/ap/aqmask", "+5,-6"), FailsWith(EBUSY));
  EXPECT_THAT(asked.back(), "0-255 x 5");
}

TEST_F(ApTest, QueueDriverOverrideAndMaskMutualExclusion) {
  // 6.19 (ap-bus.md §4.3 driver_override, §2.2 step 2, §5.1).
  add_passthrough_driver();
  ASSERT_THAT(write("/devices/ap/card05/05.0004/driver_override", "vfio_ap\n"), IsOk());
  EXPECT_THAT(read("/devices/ap/card05/05.0004/driver_override"), IsOkAndHolds("vfio_ap\n"));
  // Writing does not rebind.
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/05.0004/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/cex4queue"));
  // While an override exists, mask writes fail with EINVAL.
  EXPECT_THAT(write("/bus/ap/apmask", "-5"), FailsWith(EINVAL));
  ASSERT_THAT(write("/bus/ap/drivers/cex4queue/unbind", "05.0004"), IsOk());
  ASSERT_THAT(write("/bus/ap/drivers_probe", "05.0004"), IsOk());
  EXPECT_THAT(sysfs_readlink(core(), "/devices/ap/card05/05.0004/driver"),
              IsOkAndHolds("../../../../bus/ap/drivers/vfio_ap"));
  EXPECT_FALSE(bus().apqn_owned_by_default({Apid{5}, Apqi{4}}));
  ASSERT_THAT(write("/devices/ap/card05/05.0004/driver_override", "\n"), IsOk());
  EXPECT_THAT(read("/devices/ap/card05/05.0004/driver_override"), IsOkAndHolds("\n"));
  ASSERT_THAT(write("/bus/ap/apmask", "-6"), IsOk());
  // And while masks are not all ones, overrides fail with EINVAL.
  EXPECT_THAT(write("/devices/ap/card05/05.0005/driver_override", "vfio_ap"), FailsWith(EINVAL));
}

TEST(ApKernelParameters, MasksAndDomainFromTheCommandLine) {
  auto topo = *topology::parse(kSmallLpar);
  topo.bus.apmask = "0x04"; // adapter 5 only
  topo.bus.default_domain = 9; // not a valid domain for aqmask? it is; but not a usage domain
  testbed::Options opt;
  opt.topology = std::move(topo);
  opt.vfio_ap = false; // queues outside the masks stay unbound without vfio_ap
  auto tb = std::move(*testbed::Testbed::create(std::move(opt)));
  auto tb_guard = tb->lock(); // another machine: its own entry point
  EXPECT_THAT(sysfs_read(tb->core(), "/bus/ap/apmask"),
              IsOkAndHolds("0x04" + std::string(62, '0') + "\n"));
  EXPECT_THAT(sysfs_read(tb->core(), "/bus/ap/bindings"), IsOkAndHolds("2/6\n"));
  EXPECT_THAT(sysfs_read(tb->core(), "/bus/ap/ap_domain"), IsOkAndHolds("9\n"));
  // An invalid ap.domain= falls back to -1 and is logged, then the scan picks one.
  auto topo2 = *topology::parse(kSmallLpar);
  topo2.bus.default_domain = 300;
  testbed::Options opt2;
  opt2.topology = std::move(topo2);
  auto tb2 = std::move(*testbed::Testbed::create(std::move(opt2)));
  auto tb2_guard = tb2->lock(); // another machine: its own entry point
  EXPECT_TRUE(tb2->core().log().contains("300 is not a valid cryptographic domain"));
  EXPECT_THAT(sysfs_read(tb2->core(), "/bus/ap/ap_domain"), IsOkAndHolds("4\n"));
}
