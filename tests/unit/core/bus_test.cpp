// Bus and driver registration, matching, probing and the generic bus/driver files
// (driver-core.md §1.3–1.7, §2.3, §2.4, §3.6, §6, §7).
#include "core_fixture.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::ElementsAre;

TEST_F(CoreTest, BusRegisterCreatesGenericFilesAndEmitsAdd) {
  EventLog ev(core);
  auto r = core.bus_register({.name = "bar"});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("add /bus/bar"));
  EXPECT_EQ(ev.events[0].subsystem(), "bus");
  for (auto p : {"/bus/bar/devices", "/bus/bar/drivers", "/bus/bar/uevent", "/bus/bar/drivers_probe",
                 "/bus/bar/drivers_autoprobe"})
    EXPECT_TRUE(sysfs_exists(core, p)) << p;
  EXPECT_THAT(core.bus_register({.name = "bar"}), FailsWith(EEXIST));
  core.bus_unregister(**r);
  EXPECT_EQ(ev.lines().back(), "remove /bus/bar");
  EXPECT_FALSE(sysfs_exists(core, "/bus/bar"));
}

TEST_F(CoreTest, DuplicateDriverNameFailsWithEbusy) {
  add_driver("d");
  core::DriverOps ops;
  ops.name = "d";
  EXPECT_THAT(core.driver_register(*bus, ops), FailsWith(EBUSY));
  EXPECT_TRUE(core.log().contains("Driver 'd' is already registered, aborting..."));
}

TEST_F(CoreTest, DriverOnUnregisteredBusFailsWithEinval) {
  auto other = *core.bus_register({.name = "gone"});
  core.bus_unregister(*other);
  core::Core core2;
  auto guard2 = core2.lock(); // another machine, another lock
  auto b2 = *core2.bus_register({.name = "x"});
  core::DriverOps ops;
  ops.name = "d";
  EXPECT_THAT(core.driver_register(*b2, ops), FailsWith(EINVAL));
}

TEST_F(CoreTest, DeviceAddThenBindWhenDriverMatches) {
  // §3.6: add (no DRIVER), then bind (DRIVER=d).
  add_driver("d");
  EventLog ev(core);
  auto x = add_device("x0");
  EXPECT_THAT(ev.lines(), ElementsAre("add /devices/x0", "bind /devices/x0"));
  EXPECT_FALSE(ev.events[0].get("DRIVER").has_value());
  EXPECT_EQ(ev.events[1].get("DRIVER"), "d");
  EXPECT_EQ(x->driver()->name(), "d");
  EXPECT_THAT(sysfs_readlink(core, "/devices/x0/driver"), IsOkAndHolds("../../bus/foo/drivers/d"));
  EXPECT_THAT(sysfs_readlink(core, "/bus/foo/drivers/d/x0"), IsOkAndHolds("../../../../devices/x0"));
  EXPECT_THAT(sysfs_readlink(core, "/devices/x0/subsystem"), IsOkAndHolds("../../bus/foo"));
  EXPECT_THAT(sysfs_readlink(core, "/bus/foo/devices/x0"), IsOkAndHolds("../../../devices/x0"));
  EXPECT_THAT(sysfs_read(core, "/devices/x0/uevent"), IsOkAndHolds("DRIVER=d\nMODALIAS=foo:x0\n"));
}

TEST_F(CoreTest, DriverRegisteredAfterDevicesBindsThemBeforeItsOwnAdd) {
  auto a = add_device("a");
  auto b = add_device("b");
  EventLog ev(core);
  add_driver("d");
  EXPECT_THAT(ev.lines(),
              ElementsAre("bind /devices/a", "bind /devices/b", "add /bus/foo/drivers/d"));
  EXPECT_EQ(ev.events[2].subsystem(), "drivers");
  EXPECT_EQ(a->driver()->name(), "d");
  EXPECT_EQ(b->driver()->name(), "d");
}

TEST_F(CoreTest, ProbeFailureLeavesDeviceUnboundAndTriesTheNextDriver) {
  add_driver("first");
  add_driver("second");
  probe_errno["first/x"] = EIO;
  EventLog ev(core);
  auto x = add_device("x");
  EXPECT_THAT(calls, ElementsAre("probe first x", "probe second x"));
  EXPECT_EQ(x->driver()->name(), "second");
  EXPECT_THAT(ev.lines(), ElementsAre("add /devices/x", "bind /devices/x"));
  EXPECT_TRUE(core.log().contains("foo x: probe with driver first failed with error -5"));
  EXPECT_FALSE(sysfs_exists(core, "/bus/foo/drivers/first/x"));
}

TEST_F(CoreTest, SilentRejectionWithEnodevIsNotLogged) {
  add_driver("d");
  probe_errno["d/x"] = ENODEV;
  EventLog ev(core);
  auto x = add_device("x");
  EXPECT_EQ(x->driver(), nullptr);
  EXPECT_THAT(ev.lines(), ElementsAre("add /devices/x"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/x/driver"));
  EXPECT_FALSE(core.log().contains("probe with driver"));
}

TEST_F(CoreTest, AllProbesFailingLeavesNoLinksAndNoBindEvent) {
  add_driver("d");
  probe_errno["d/x"] = ENOMEM;
  EventLog ev(core);
  auto x = add_device("x");
  EXPECT_EQ(x->driver(), nullptr);
  EXPECT_THAT(ev.lines(), ElementsAre("add /devices/x"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/x/driver"));
  // A later driver registration may bind it (§7 item 8).
  add_driver("e");
  EXPECT_EQ(x->driver()->name(), "e");
}

TEST_F(CoreTest, UnbindFileRunsRemoveDropsLinksAndEmitsUnbindWithoutDriverOrModalias) {
  add_driver("d");
  auto x = add_device("x");
  EventLog ev(core);
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/unbind", "x\n"), IsOkAndHolds(2u));
  EXPECT_THAT(calls, ElementsAre("probe d x", "remove d x"));
  EXPECT_EQ(x->driver(), nullptr);
  EXPECT_FALSE(sysfs_exists(core, "/devices/x/driver"));
  EXPECT_FALSE(sysfs_exists(core, "/bus/foo/drivers/d/x"));
  ASSERT_THAT(ev.lines(), ElementsAre("unbind /devices/x"));
  EXPECT_FALSE(ev.events[0].get("DRIVER").has_value());
  EXPECT_FALSE(ev.events[0].get("MODALIAS").has_value());
  // Unbinding again, or from another driver, is ENODEV.
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/unbind", "x"), FailsWith(ENODEV));
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/unbind", "nope"), FailsWith(ENODEV));
}

TEST_F(CoreTest, UnbindOfADeviceBoundToAnotherDriverIsEnodev) {
  add_driver("d", {"x"});
  add_driver("e", {"y"});
  auto x = add_device("x");
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/e/unbind", "x"), FailsWith(ENODEV));
  EXPECT_EQ(x->driver()->name(), "d");
}

TEST_F(CoreTest, BindFileErrnos) {
  add_driver("d", {"x"});
  add_driver("e", {"x"});
  probe_errno["d/x"] = ENODEV;
  probe_errno["e/x"] = ENODEV;
  auto x = add_device("x");
  auto y = add_device("y");
  ASSERT_EQ(x->driver(), nullptr);
  // No such device, or the driver does not match it: ENODEV.
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "zz"), FailsWith(ENODEV));
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "y"), FailsWith(ENODEV));
  // The probe's own error comes back.
  probe_errno["d/x"] = EIO;
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "x\n"), FailsWith(EIO));
  // Deferral becomes EAGAIN.
  probe_errno["d/x"] = kEProbeDefer;
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "x"), FailsWith(EAGAIN));
  probe_errno["d/x"] = 0;
  EventLog ev(core);
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "x\n"), IsOkAndHolds(2u));
  EXPECT_THAT(ev.lines(), ElementsAre("bind /devices/x"));
  // Already bound (to any driver): EBUSY.
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "x"), FailsWith(EBUSY));
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/e/bind", "x"), FailsWith(EBUSY));
}

TEST_F(CoreTest, DeferredProbeIsRetriedAfterALaterSuccessfulBind) {
  add_driver("d", {"x", "y"});
  probe_errno["d/x"] = kEProbeDefer;
  auto x = add_device("x");
  EXPECT_EQ(x->driver(), nullptr);
  EXPECT_THAT(core.deferred_devices(), ElementsAre(x.get()));
  probe_errno["d/x"] = 0;
  EventLog ev(core);
  auto y = add_device("y"); // its bind triggers the deferred retry
  EXPECT_THAT(ev.lines(), ElementsAre("add /devices/y", "bind /devices/y", "bind /devices/x"));
  EXPECT_TRUE(core.deferred_devices().empty());
}

TEST_F(CoreTest, DriversAutoprobeSemantics) {
  EXPECT_THAT(sysfs_read(core, "/bus/foo/drivers_autoprobe"), IsOkAndHolds("1\n"));
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers_autoprobe", "0\n"), IsOkAndHolds(2u));
  EXPECT_THAT(sysfs_read(core, "/bus/foo/drivers_autoprobe"), IsOkAndHolds("0\n"));
  add_driver("d");
  EventLog ev(core);
  auto x = add_device("x");
  EXPECT_THAT(ev.lines(), ElementsAre("add /devices/x")); // §7 item 10
  // drivers_probe ignores autoprobe; unknown names are ENODEV; bound or unmatched succeed.
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers_probe", "nope\n"), FailsWith(ENODEV));
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers_probe", "x\n"), IsOkAndHolds(2u));
  EXPECT_EQ(x->driver()->name(), "d");
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers_probe", "x"), IsOkAndHolds(1u));
  // Anything not starting with '0' turns it on, including garbage.
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers_autoprobe", "garbage"), IsOkAndHolds(7u));
  EXPECT_THAT(sysfs_read(core, "/bus/foo/drivers_autoprobe"), IsOkAndHolds("1\n"));
  // A driver registered while autoprobe is off does not attach.
  ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers_autoprobe", "0"), IsOk());
  auto y = add_device("y");
  add_driver("e");
  EXPECT_EQ(y->driver(), nullptr);
}

TEST_F(CoreTest, DriverOverrideRestrictsMatchingAndNeverRebindsByItself) {
  add_driver("d");
  add_driver("e");
  auto x = add_device("x");
  ASSERT_EQ(x->driver()->name(), "d");
  EXPECT_THAT(sysfs_read(core, "/devices/x/driver_override"), IsOkAndHolds("(null)\n"));
  EXPECT_THAT(sysfs_write(core, "/devices/x/driver_override", "e\n"), IsOkAndHolds(2u));
  EXPECT_THAT(sysfs_read(core, "/devices/x/driver_override"), IsOkAndHolds("e\n"));
  EXPECT_EQ(x->driver()->name(), "d"); // §7 item 9
  ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers/d/unbind", "x"), IsOk());
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "x"), FailsWith(ENODEV));
  ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers_probe", "x"), IsOk());
  EXPECT_EQ(x->driver()->name(), "e");
  // Too long: EINVAL and unchanged. Empty: cleared.
  EXPECT_THAT(sysfs_write(core, "/devices/x/driver_override", std::string(4095, 'a')),
              FailsWith(EINVAL));
  EXPECT_THAT(sysfs_read(core, "/devices/x/driver_override"), IsOkAndHolds("e\n"));
  ASSERT_THAT(sysfs_write(core, "/devices/x/driver_override", "\n"), IsOk());
  EXPECT_THAT(sysfs_read(core, "/devices/x/driver_override"), IsOkAndHolds("(null)\n"));
  // "none" blocks every driver.
  ASSERT_THAT(sysfs_write(core, "/devices/x/driver_override", "none"), IsOk());
  ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers/e/unbind", "x"), IsOk());
  ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers_probe", "x"), IsOk());
  EXPECT_EQ(x->driver(), nullptr);
}

TEST_F(CoreTest, BindAndUnbindFilesAreWriteOnlyAndAbsentWithSuppressBindAttrs) {
  add_driver("d");
  EXPECT_THAT(sysfs_read(core, "/bus/foo/drivers/d/bind"), FailsWith(EACCES));
  EXPECT_THAT(sysfs_read(core, "/bus/foo/drivers/d/unbind"), FailsWith(EACCES));
  EXPECT_THAT(sysfs_read(core, "/bus/foo/drivers_probe"), FailsWith(EACCES));
  EXPECT_THAT(sysfs_write(core, "/kernel/uevent_seqnum", "1"), FailsWith(EACCES));
  core::DriverOps ops;
  ops.name = "quiet";
  ops.suppress_bind_attrs = true;
  ASSERT_THAT(core.driver_register(*bus, ops), IsOk());
  EXPECT_FALSE(sysfs_exists(core, "/bus/foo/drivers/quiet/bind"));
  EXPECT_FALSE(sysfs_exists(core, "/bus/foo/drivers/quiet/unbind"));
  EXPECT_TRUE(sysfs_exists(core, "/bus/foo/drivers/quiet/uevent"));
}

TEST_F(CoreTest, DriverUnregisterUnbindsLastBoundFirstThenRemovesTheDriver) {
  auto* d = add_driver("d");
  auto x1 = add_device("x1");
  auto x2 = add_device("x2");
  EventLog ev(core);
  core.driver_unregister(*d);
  EXPECT_THAT(ev.lines(), ElementsAre("unbind /devices/x2", "unbind /devices/x1",
                                      "remove /bus/foo/drivers/d"));
  EXPECT_EQ(x1->driver(), nullptr);
  EXPECT_FALSE(sysfs_exists(core, "/bus/foo/drivers/d"));
}

TEST_F(CoreTest, DeviceUnregisterOfABoundDeviceEmitsUnbindThenRemove) {
  add_driver("d");
  auto x = add_device("x");
  EventLog ev(core);
  core.device_unregister(std::move(x));
  EXPECT_THAT(ev.lines(), ElementsAre("unbind /devices/x", "remove /devices/x"));
  EXPECT_THAT(calls, ElementsAre("probe d x", "remove d x"));
  EXPECT_FALSE(sysfs_exists(core, "/bus/foo/devices/x"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/x"));
}

TEST_F(CoreTest, DriverForEachDeviceSeesOnlyCompletedBindings) {
  auto* d = add_driver("d", {"b"});
  auto root = *core.root_device_register("grp");
  // A bus-less child of a root device with a plain (bus-less) device: never bound, never seen.
  auto lone = Device::create("lone", [](Device&) {});
  lone->set_parent(root.get());
  ASSERT_THAT(core.device_add(*lone), IsOk());
  auto unbound = add_device("u0", root.get()); // on the bus but does not match "b"
  auto bound = add_device("b0", root.get());
  std::vector<std::string> seen;
  core.driver_for_each_device(*d, nullptr, [&](Device& dev) {
    seen.push_back(dev.name());
    return 0;
  });
  EXPECT_THAT(seen, ElementsAre("b0"));
  EXPECT_EQ(lone->driver(), nullptr);
  // bus_for_each_dev sees every device on the bus, bound or not.
  seen.clear();
  core.bus_for_each_dev(*bus, nullptr, [&](Device& dev) {
    seen.push_back(dev.name());
    return 0;
  });
  EXPECT_THAT(seen, ElementsAre("u0", "b0"));
  core.device_unregister(std::move(bound));
  core.device_unregister(std::move(unbound));
  core.device_unregister(std::move(lone));
  core.root_device_unregister(std::move(root));
}

TEST_F(CoreTest, IteratorsStartAfterStartAndStopAtNonZero) {
  auto a = add_device("a");
  auto b = add_device("b");
  auto c = add_device("c");
  std::vector<std::string> seen;
  int r = core.bus_for_each_dev(*bus, a.get(), [&](Device& dev) {
    seen.push_back(dev.name());
    return dev.name() == "b" ? 7 : 0;
  });
  EXPECT_EQ(r, 7);
  EXPECT_THAT(seen, ElementsAre("b"));
}

TEST_F(CoreTest, RemovalDuringIterationNeitherSkipsNorRevisits) {
  std::vector<Ref<Device>> devs;
  for (auto n : {"a", "b", "c", "d"}) devs.push_back(add_device(n));
  std::vector<std::string> seen;
  core.bus_for_each_dev(*bus, nullptr, [&](Device& dev) {
    seen.push_back(dev.name());
    if (dev.name() == "b") core.device_del(dev); // remove the current element
    if (dev.name() == "a") core.device_del(*devs[2]); // remove a later one
    return 0;
  });
  EXPECT_THAT(seen, ElementsAre("a", "b", "d"));
}

TEST_F(CoreTest, BusFindDeviceByNameUsesSysfsStreq) {
  auto a = add_device("card05");
  EXPECT_EQ(core.bus_find_device_by_name(*bus, "card05\n").get(), a.get());
  EXPECT_EQ(core.bus_find_device_by_name(*bus, "card05\n\n").get(), nullptr);
}

TEST_F(CoreTest, BusNotifierSeesTheKernelSequence) {
  add_driver("d");
  std::vector<int> evs;
  int id = core.bus_register_notifier(*bus, [&](core::BusEvent e, Device&) {
    evs.push_back(static_cast<int>(e));
  });
  auto x = add_device("x");
  core.device_unregister(std::move(x));
  using E = core::BusEvent;
  EXPECT_THAT(evs, ElementsAre(int(E::AddDevice), int(E::BindDriver), int(E::BoundDriver),
                               int(E::DelDevice), int(E::UnbindDriver), int(E::UnboundDriver),
                               int(E::RemovedDevice)));
  core.bus_unregister_notifier(*bus, id);
}

TEST_F(CoreTest, BusAndDriverUeventFilesSendSyntheticEvents) {
  add_driver("d");
  EventLog ev(core);
  EXPECT_THAT(sysfs_write(core, "/bus/foo/uevent", "change\n"), IsOk());
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/uevent",
                          "add 12345678-1234-1234-1234-1234567890ab"),
              IsOk());
  ASSERT_THAT(ev.lines(), ElementsAre("change /bus/foo", "add /bus/foo/drivers/d"));
  EXPECT_EQ(ev.events[0].subsystem(), "bus");
  EXPECT_EQ(ev.events[0].get("SYNTH_UUID"), "0");
  EXPECT_EQ(ev.events[1].subsystem(), "drivers");
  EXPECT_EQ(ev.events[1].get("SYNTH_UUID"), "12345678-1234-1234-1234-1234567890ab");
  EXPECT_THAT(sysfs_write(core, "/bus/foo/uevent", "bogus"), FailsWith(EINVAL));
}

TEST_F(CoreTest, ModuleLinksOfDrivers) {
  core::DriverOps ops;
  ops.name = "cex4queue";
  ops.mod_name = "zcrypt_cex4";
  ASSERT_THAT(core.driver_register(*bus, ops), IsOk());
  EXPECT_THAT(sysfs_readlink(core, "/bus/foo/drivers/cex4queue/module"),
              IsOkAndHolds("../../../../module/zcrypt_cex4"));
  EXPECT_THAT(sysfs_readlink(core, "/module/zcrypt_cex4/drivers/foo:cex4queue"),
              IsOkAndHolds("../../../bus/foo/drivers/cex4queue"));
}

// driver-core.md §1.4 step 2: a driver that brings its own probe or remove to a bus with
// bus_type methods gets the warning (the bus methods win); one that leaves them to the bus, as
// every AP and mdev driver does, does not.
TEST_F(CoreTest, DriverProbeOrRemoveOnBusWithMethodsWarnsNeedsUpdating) {
  core::BusType t;
  t.name = "methods";
  t.probe = [](Device&) -> Result<void> { return {}; };
  t.remove = [](Device&) {};
  auto* b = *core.bus_register(std::move(t));
  core::DriverOps plain;
  plain.name = "plain";
  ASSERT_THAT(core.driver_register(*b, plain), IsOk());
  EXPECT_FALSE(core.log().contains("needs updating"));
  core::DriverOps with_probe;
  with_probe.name = "withprobe";
  with_probe.probe = [](Device&) -> Result<void> { return {}; };
  ASSERT_THAT(core.driver_register(*b, with_probe), IsOk());
  EXPECT_TRUE(core.log().contains("Driver 'withprobe' needs updating - please use bus_type methods"));
  core::DriverOps with_remove;
  with_remove.name = "withremove";
  with_remove.remove = [](Device&) {};
  ASSERT_THAT(core.driver_register(*b, with_remove), IsOk());
  EXPECT_TRUE(core.log().contains("Driver 'withremove' needs updating - please use bus_type methods"));
  for (auto* d : b->drivers()) core.driver_unregister(*d);
  core.bus_unregister(*b);
}
