// Device lifecycle, placement, refcounts, uevent environments and the generic device files
// (driver-core.md §1.1, §1.2, §1.8–1.11, §2.2, §2.5, §3.2, §3.5, §7).
#include "core_fixture.h"

#include "apemu/core/uevent_file.h"
#include "apemu/kernfs/export.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::ElementsAre;

TEST_F(CoreTest, ReleaseRunsExactlyOnceAfterTheLastReference) {
  auto x = add_device("x");
  Ref<Device> extra = x; // get_device
  EXPECT_EQ(x->refcount(), 3); // creator, extra, the core's lists
  core.device_unregister(std::move(x));
  EXPECT_TRUE(released.empty()); // `extra` still holds it
  extra.reset();
  EXPECT_THAT(released, ElementsAre("x"));
}

TEST_F(CoreTest, ParentIsReleasedOnlyAfterItsLastChild) {
  auto p = add_device("p");
  auto c = add_device("c", p.get());
  core.device_del(*c); // leaf first
  Ref<Device> hold_child = c;
  c.reset();
  core.device_unregister(std::move(p));
  EXPECT_THAT(released, ElementsAre("p")); // the child was deleted before, its parent ref dropped
  hold_child.reset();
  EXPECT_THAT(released, ElementsAre("p", "c"));
}

TEST_F(CoreTest, DeviceAddErrorsLeaveNothingBehind) {
  auto noname = Device::create<Device>("", [](Device&) {});
  noname->set_bus(bus);
  EXPECT_THAT(core.device_add(*noname), FailsWith(EINVAL));

  auto norelease = Device::create<Device>("nr");
  norelease->set_bus(bus);
  EXPECT_THAT(core.device_add(*norelease), FailsWith(EINVAL));
  EXPECT_TRUE(core.log().contains("does not have a release() function"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/nr"));

  auto a = add_device("dup");
  auto b = Device::create<Device>("dup", [](Device&) {});
  b->set_bus(bus);
  EventLog ev(core);
  EXPECT_THAT(core.device_add(*b), FailsWith(EEXIST));
  EXPECT_TRUE(ev.events.empty());
  EXPECT_FALSE(b->registered());

  // Re-adding a registered or deleted device is refused.
  EXPECT_THAT(core.device_add(*a), FailsWith(EINVAL));
  core.device_del(*a);
  EXPECT_THAT(core.device_add(*a), FailsWith(EINVAL));
}

TEST_F(CoreTest, DuplicateNameInTheSameDirectoryIsEexistWithoutBus) {
  auto root = *core.root_device_register("grp");
  auto a = Device::create<Device>("same", [](Device&) {});
  a->set_parent(root.get());
  ASSERT_THAT(core.device_add(*a), IsOk());
  auto b = Device::create<Device>("same", [](Device&) {});
  b->set_parent(root.get());
  EXPECT_THAT(core.device_add(*b), FailsWith(EEXIST));
  core.device_unregister(std::move(a));
  core.root_device_unregister(std::move(root));
}

TEST_F(CoreTest, SlashInANameBecomesBang) {
  auto x = add_device("cciss/c0d0");
  EXPECT_EQ(x->name(), "cciss!c0d0");
  EXPECT_TRUE(sysfs_exists(core, "/devices/cciss!c0d0"));
}

TEST_F(CoreTest, RootDeviceHasNoSubsystemNoEventsNoPowerAndAnOptionalModuleLink) {
  EventLog ev(core);
  auto root = core.root_device_register("vfio_ap", "vfio_ap");
  ASSERT_THAT(root, IsOk());
  EXPECT_TRUE(ev.events.empty());
  EXPECT_TRUE(sysfs_exists(core, "/devices/vfio_ap/uevent"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/vfio_ap/subsystem"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/vfio_ap/power"));
  EXPECT_THAT(sysfs_readlink(core, "/devices/vfio_ap/module"), IsOkAndHolds("../../module/vfio_ap"));
  EXPECT_THAT(sysfs_read(core, "/devices/vfio_ap/uevent"), IsOkAndHolds(""));
  core.root_device_unregister(std::move(*root));
  EXPECT_TRUE(ev.events.empty());
  EXPECT_FALSE(sysfs_exists(core, "/devices/vfio_ap"));
}

TEST_F(CoreTest, DeviceWithoutBusHasNoSubsystemLinkNoEventsAndIsNeverProbed) {
  add_driver("d");
  auto root = *core.root_device_register("grp");
  EventLog ev(core);
  auto m = Device::create<Device>("matrix", [](Device&) {});
  m->set_parent(root.get());
  ASSERT_THAT(core.device_add(*m), IsOk());
  EXPECT_FALSE(sysfs_exists(core, "/devices/grp/matrix/subsystem"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/grp/matrix/driver"));
  EXPECT_TRUE(sysfs_exists(core, "/devices/grp/matrix/power"));
  EXPECT_EQ(m->driver(), nullptr);
  EXPECT_THAT(sysfs_read(core, "/devices/grp/matrix/uevent"), IsOkAndHolds(""));
  // Writing its uevent succeeds and sends nothing (§1.9).
  EXPECT_THAT(sysfs_write(core, "/devices/grp/matrix/uevent", "change"), IsOkAndHolds(6u));
  EXPECT_TRUE(ev.events.empty());
  EXPECT_EQ(m->driver_string(), "");
  core.device_unregister(std::move(m));
  EXPECT_TRUE(ev.events.empty());
  core.root_device_unregister(std::move(root));
}

TEST_F(CoreTest, ChildDevicePlacementAndRelativeLinks) {
  add_driver("d");
  auto root = *core.root_device_register("ap");
  auto card = add_device("card05", root.get());
  auto q = add_device("05.0004", card.get());
  EXPECT_EQ(core.devpath(*q), "/devices/ap/card05/05.0004");
  EXPECT_THAT(sysfs_readlink(core, "/devices/ap/card05/05.0004/subsystem"),
              IsOkAndHolds("../../../../bus/foo"));
  EXPECT_THAT(sysfs_readlink(core, "/devices/ap/card05/05.0004/driver"),
              IsOkAndHolds("../../../../bus/foo/drivers/d"));
  EXPECT_THAT(sysfs_readlink(core, "/bus/foo/devices/05.0004"),
              IsOkAndHolds("../../../devices/ap/card05/05.0004"));
  std::vector<std::string> kids;
  core.device_for_each_child(*card, [&](Device& c) {
    kids.push_back(c.name());
    return 0;
  });
  EXPECT_THAT(kids, ElementsAre("05.0004"));
  core.device_unregister(std::move(q));
  core.device_unregister(std::move(card));
  core.root_device_unregister(std::move(root));
}

TEST(CoreDeathTest, DeletingAParentBeforeItsChildIsABug) {
  core::Core core;
  auto guard = core.lock(); // the test is the entry point
  auto root = *core.root_device_register("grp");
  auto child = Device::create<Device>("c", [](Device&) {});
  child->set_parent(root.get());
  ASSERT_TRUE(core.device_add(*child).has_value());
  EXPECT_DEATH(core.device_del(*root), "assertion failed");
  core.device_unregister(std::move(child));
  core.root_device_unregister(std::move(root));
}

TEST_F(CoreTest, UeventEnvironmentOrderAndDevtype) {
  add_driver("d");
  EventLog ev(core);
  auto x = Device::create<Device>("x", [](Device&) {});
  x->set_bus(bus);
  x->set_devtype("ap_card");
  ASSERT_THAT(core.device_add(*x), IsOk());
  ASSERT_EQ(ev.events.size(), 2u);
  std::vector<std::string> keys;
  for (auto& [k, v] : ev.events[1].env) keys.push_back(k);
  EXPECT_THAT(keys, ElementsAre("ACTION", "DEVPATH", "SUBSYSTEM", "DEVTYPE", "DRIVER", "MODALIAS",
                                "SEQNUM"));
  EXPECT_THAT(sysfs_read(core, "/devices/x/uevent"),
              IsOkAndHolds("DEVTYPE=ap_card\nDRIVER=d\nMODALIAS=foo:x\n"));
  core.device_unregister(std::move(x));
}

TEST_F(CoreTest, SyntheticUeventsOnADevice) {
  auto x = add_device("x");
  EventLog ev(core);
  ASSERT_THAT(sysfs_write(core, "/devices/x/uevent", "change\n"), IsOk());
  ASSERT_THAT(sysfs_write(core, "/devices/x/uevent",
                          "add 0123abcd-4567-89ab-cdef-0123456789ab A=1 bb=x2"),
              IsOk());
  ASSERT_EQ(ev.events.size(), 2u);
  EXPECT_EQ(ev.events[0].get("SYNTH_UUID"), "0");
  EXPECT_EQ(ev.events[0].get("MODALIAS"), "foo:x");
  EXPECT_EQ(ev.events[1].get("SYNTH_UUID"), "0123abcd-4567-89ab-cdef-0123456789ab");
  EXPECT_EQ(ev.events[1].get("SYNTH_ARG_A"), "1");
  EXPECT_EQ(ev.events[1].get("SYNTH_ARG_bb"), "x2");
  // Extras come before the kset variables (§3.2 step 4).
  EXPECT_EQ(ev.events[1].env[3].first, "SYNTH_UUID");
  // A zero-length write never reaches store() (driver-core.md §2.8).
  EXPECT_THAT(sysfs_write(core, "/devices/x/uevent", ""), IsOkAndHolds(0u));
  for (auto bad : {"\n", "chnage", "change ", "change 1234", "add Change",
                   "change 0123abcd-4567-89ab-cdef-0123456789ab A", "change "
                   "0123abcd-4567-89ab-cdef-0123456789ab A=-", "change "
                   "0123abcd-4567-89ab-cdef-0123456789ab  A=1"})
    EXPECT_THAT(sysfs_write(core, "/devices/x/uevent", bad), FailsWith(EINVAL)) << bad;
  EXPECT_EQ(ev.events.size(), 2u);
}

// Found by fuzz/uevent_file_fuzz: kobject_action_args adds the arguments to an environment of
// its own, and one that does not fit is EINVAL ("incorrect uevent action arguments"); only an
// event that overflows with the kset variables added is ENOMEM.
TEST_F(CoreTest, SyntheticUeventArgumentsBeyondTheLimitsAreEinval) {
  auto x = add_device("x");
  EventLog ev(core);
  const std::string head = "change 0123abcd-4567-89ab-cdef-0123456789ab";
  std::string args63, args64;
  for (int i = 0; i < 63; ++i) args63 += " K" + std::to_string(i) + "=v";
  args64 = args63 + " K63=v";
  // SYNTH_UUID and 63 arguments fill the 64 variables; the event then overflows: ENOMEM.
  EXPECT_THAT(sysfs_write(core, "/devices/x/uevent", head + args63), FailsWith(ENOMEM));
  EXPECT_THAT(sysfs_write(core, "/devices/x/uevent", head + args64), FailsWith(EINVAL));
  // 2048 bytes: SYNTH_UUID=<uuid>\0 takes 48 and SYNTH_ARG_K=<value>\0 13 more, so a value
  // of 1987 characters is the longest that fits.
  EXPECT_THAT(sysfs_write(core, "/devices/x/uevent", head + " K=" + std::string(1988, 'a')),
              FailsWith(EINVAL));
  EXPECT_THAT(sysfs_write(core, "/devices/x/uevent", head + " K=" + std::string(1987, 'a')),
              FailsWith(ENOMEM));
  EXPECT_TRUE(core::parse_synthetic_uevent(head + " K=" + std::string(1987, 'a')).has_value());
  EXPECT_TRUE(ev.events.empty());
}

TEST(SyntheticUeventGrammar, FuzzedInputsNeverCrashAndOnlyEinval) {
  // A deterministic fuzz loop over the grammar (the libFuzzer target reuses the same parser).
  std::uint32_t s = 12345;
  const std::string alphabet = "adchngemovbui 0123456789abcdef-=AZ\n\0x";
  for (int i = 0; i < 20000; ++i) {
    std::string in;
    const int len = static_cast<int>((s = s * 1103515245 + 12345) >> 16) % 60;
    for (int j = 0; j < len; ++j)
      in += alphabet[((s = s * 1103515245 + 12345) >> 16) % alphabet.size()];
    auto r = core::parse_synthetic_uevent(in);
    if (!r) {
      ASSERT_EQ(r.error().code, EINVAL) << in;
    }
  }
}

TEST_F(CoreTest, UeventSeqnumFileMirrorsTheLastEvent) {
  auto x = add_device("x");
  const auto n = core.uevents().seqnum();
  EXPECT_GT(n, 0u);
  EXPECT_THAT(sysfs_read(core, "/kernel/uevent_seqnum"), IsOkAndHolds(std::to_string(n) + "\n"));
}

TEST_F(CoreTest, EnvironmentOverflowIsEnomemAndSendsNothing) {
  core::BusType big;
  big.name = "big";
  big.uevent = [](const Device&, uevent::Env& env) -> Result<void> {
    for (int i = 0; i < 70; ++i) APEMU_TRY_VOID(env.add("K" + std::to_string(i), "v"));
    return {};
  };
  auto* b = *core.bus_register(big);
  auto x = Device::create<Device>("x", [](Device&) {});
  x->set_bus(b);
  const auto before = core.uevents().seqnum();
  ASSERT_THAT(core.device_add(*x), IsOk()); // uevent errors are not fatal for device_add
  EXPECT_EQ(core.uevents().seqnum(), before);
  EXPECT_THAT(core.device_uevent(*x, uevent::Action::Change), FailsWith(ENOMEM));
  core.device_unregister(std::move(x));
}

TEST_F(CoreTest, RenameAndMoveEmitMoveWithDevpathOld) {
  auto root = *core.root_device_register("grp");
  auto x = add_device("x");
  EventLog ev(core);
  ASSERT_THAT(core.device_rename(*x, "y"), IsOk());
  ASSERT_THAT(ev.lines(), ElementsAre("move /devices/y"));
  EXPECT_EQ(ev.events[0].get("DEVPATH_OLD"), "/devices/x");
  EXPECT_THAT(sysfs_readlink(core, "/bus/foo/devices/y"), IsOkAndHolds("../../../devices/y"));
  ASSERT_THAT(core.device_move(*x, root.get()), IsOk());
  EXPECT_EQ(ev.events[1].get("DEVPATH_OLD"), "/devices/y");
  EXPECT_EQ(ev.events[1].devpath, "/devices/grp/y");
  EXPECT_THAT(sysfs_readlink(core, "/bus/foo/devices/y"), IsOkAndHolds("../../../devices/grp/y"));
  auto other = add_device("z");
  EXPECT_THAT(core.device_rename(*x, "z"), FailsWith(EEXIST));
  ASSERT_THAT(core.device_move(*x, nullptr), IsOk());
  core.device_unregister(std::move(x));
  core.root_device_unregister(std::move(root));
}

TEST(CoreOnline, OnlineAttributeAndEvents) {
  core::Core core;
  auto guard = core.lock(); // the test is the entry point
  core::BusType t;
  t.name = "cpu";
  int offline_calls = 0;
  t.online = [](Device&) -> Result<void> { return {}; };
  t.offline = [&](Device&) -> Result<void> {
    ++offline_calls;
    return {};
  };
  auto* b = *core.bus_register(t);
  auto x = Device::create<Device>("cpu0", [](Device&) {});
  x->set_bus(b);
  ASSERT_THAT(core.device_add(*x), IsOk());
  EventLog ev(core);
  EXPECT_THAT(sysfs_read(core, "/devices/cpu0/online"), IsOkAndHolds("1\n"));
  EXPECT_THAT(sysfs_write(core, "/devices/cpu0/online", "maybe"), FailsWith(EINVAL));
  EXPECT_THAT(sysfs_write(core, "/devices/cpu0/online", "0"), IsOk());
  EXPECT_THAT(sysfs_write(core, "/devices/cpu0/online", "0"), IsOk()); // no second event
  EXPECT_THAT(sysfs_read(core, "/devices/cpu0/online"), IsOkAndHolds("0\n"));
  EXPECT_THAT(sysfs_write(core, "/devices/cpu0/online", "on"), IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("offline /devices/cpu0", "online /devices/cpu0"));
  EXPECT_EQ(offline_calls, 1);
  core.device_unregister(std::move(x));
}

TEST(CoreClass, ClassDevicePlacementGlueDirsAndLinks) {
  core::Core core;
  auto guard = core.lock(); // the test is the entry point
  EventLog ev(core);
  auto* cls = *core.class_register({.name = "zcrypt"});
  EXPECT_THAT(ev.lines(), ElementsAre("add /class/zcrypt"));
  EXPECT_THAT(core.class_register({.name = "zcrypt"}), FailsWith(EEXIST));
  // No parent: /sys/devices/virtual/CLASS/NAME.
  auto node = Device::create<Device>("zcrypt_foo", [](Device&) {});
  node->set_class(cls);
  ASSERT_THAT(core.device_add(*node), IsOk());
  EXPECT_EQ(core.devpath(*node), "/devices/virtual/zcrypt/zcrypt_foo");
  EXPECT_THAT(sysfs_readlink(core, "/class/zcrypt/zcrypt_foo"),
              IsOkAndHolds("../../devices/virtual/zcrypt/zcrypt_foo"));
  EXPECT_THAT(sysfs_readlink(core, "/devices/virtual/zcrypt/zcrypt_foo/subsystem"),
              IsOkAndHolds("../../../../class/zcrypt"));
  EXPECT_EQ(ev.events.back().subsystem(), "zcrypt");
  // Parent that is not a class device: a glue directory named after the class.
  auto root = *core.root_device_register("grp");
  auto child = Device::create<Device>("c0", [](Device&) {});
  child->set_class(cls);
  child->set_parent(root.get());
  ASSERT_THAT(core.device_add(*child), IsOk());
  EXPECT_EQ(core.devpath(*child), "/devices/grp/zcrypt/c0");
  EXPECT_THAT(sysfs_readlink(core, "/devices/grp/zcrypt/c0/device"), IsOkAndHolds("../../../grp"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/grp/zcrypt/uevent")); // glue is not a device
  core.device_unregister(std::move(child));
  EXPECT_FALSE(sysfs_exists(core, "/devices/grp/zcrypt")); // empty glue removed
  core.device_unregister(std::move(node));
  core.root_device_unregister(std::move(root));
  core.class_unregister(*cls);
  EXPECT_EQ(ev.lines().back(), "remove /class/zcrypt");
}

TEST(CoreClass, CompatClassHoldsOnlyLinks) {
  core::Core core;
  auto guard = core.lock(); // the test is the entry point
  auto root = *core.root_device_register("vfio_ap");
  auto* cc = *core.class_compat_register("mdev_bus");
  EXPECT_THAT(core.class_compat_register("mdev_bus"), FailsWith(EEXIST));
  ASSERT_THAT(core.class_compat_create_link(*cc, *root), IsOk());
  EXPECT_THAT(core.class_compat_create_link(*cc, *root), FailsWith(EEXIST));
  EXPECT_THAT(sysfs_readlink(core, "/class/mdev_bus/vfio_ap"),
              IsOkAndHolds("../../devices/vfio_ap"));
  core.class_compat_remove_link(*cc, *root);
  EXPECT_FALSE(sysfs_exists(core, "/class/mdev_bus/vfio_ap"));
  core.class_compat_unregister(*cc);
  core.root_device_unregister(std::move(root));
}

TEST_F(CoreTest, DeviceGroupsNamedSubdirectoriesAndVisibility) {
  static const core::DeviceAttribute attrs[] = {
      {"hwtype", 0444, [](Device&) -> Result<std::string> { return std::string("14\n"); },
       nullptr},
      {"secret", 0444, [](Device&) -> Result<std::string> { return std::string("x\n"); }, nullptr},
  };
  static const core::DeviceAttributeGroup groups[] = {
      {"", attrs,
       [](Device&, const core::DeviceAttribute& a) -> mode_t {
         return a.name == "secret" ? 0 : a.mode;
       }},
      {"stats", attrs, nullptr},
  };
  auto x = Device::create<Device>("x", [](Device&) {});
  x->set_bus(bus);
  x->set_groups(groups);
  ASSERT_THAT(core.device_add(*x), IsOk());
  EXPECT_THAT(sysfs_read(core, "/devices/x/hwtype"), IsOkAndHolds("14\n"));
  EXPECT_FALSE(sysfs_exists(core, "/devices/x/secret"));
  EXPECT_THAT(sysfs_read(core, "/devices/x/stats/secret"), IsOkAndHolds("x\n"));
  EXPECT_THAT(sysfs_write(core, "/devices/x/hwtype", "1"), FailsWith(EACCES));
  core.device_unregister(std::move(x));
}

TEST_F(CoreTest, DriverDevGroupsExistOnlyWhileBound) {
  static const core::DeviceAttribute attrs[] = {
      {"status", 0444, [](Device&) -> Result<std::string> { return std::string("bound\n"); },
       nullptr},
  };
  static const core::DeviceAttributeGroup groups[] = {{"", attrs, nullptr}};
  core::DriverOps ops;
  ops.name = "vfio";
  ops.dev_groups = groups;
  ASSERT_THAT(core.driver_register(*bus, ops), IsOk());
  EventLog ev(core);
  auto x = add_device("x");
  EXPECT_THAT(sysfs_read(core, "/devices/x/status"), IsOkAndHolds("bound\n"));
  ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers/vfio/unbind", "x"), IsOk());
  EXPECT_FALSE(sysfs_exists(core, "/devices/x/status"));
}

TEST_F(CoreTest, NoWayToSetADriverByHand) {
  // The only way to bind is through the core: Device has no driver setter, and a bus-less
  // device can never be bound (driver-core.md §1.10). This is a compile-time property; the
  // runtime half is that bind through the bind file needs the device on the driver's bus.
  static_assert(!std::is_invocable_v<decltype(&Device::set_bus), Device&, core::Driver*>);
  add_driver("d");
  auto root = *core.root_device_register("grp");
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/d/bind", "grp"), FailsWith(ENODEV));
  core.root_device_unregister(std::move(root));
}

// Lazy attribute nodes (issue 11): the same tree, ids and values as creating them at once, for
// groups with hidden rows, a mode override, a named group, a driver's groups and removal.
namespace {

/// "id path" of every node, depth first, plus the dump with values.
std::string ids_and_dump(Core& core) {
  std::string out;
  std::vector<std::shared_ptr<kernfs::Node>> stack{core.tree().root()};
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    out += std::to_string(n->id()) + " " + n->path() + "\n";
    if (n->type() == kernfs::NodeType::Dir)
      for (const auto& c : static_cast<kernfs::Dir&>(*n).children()) stack.push_back(c);
  }
  return out + kernfs::dump_tree(core.tree()) + std::to_string(core.tree().node_count());
}

Result<std::string> lazy_name_show(Device& d) { return d.name() + "\n"; }
Result<std::string> lazy_one_show(Device&) { return std::string("1\n"); }
Result<void> lazy_store(Device&, std::string_view) { return {}; }
const core::DeviceAttribute kLazyAttrs[] = {
    {"name", 0444, lazy_name_show, nullptr},
    {"hidden", 0444, lazy_one_show, nullptr},
    {"override", 0644, lazy_one_show, lazy_store},
    {"reset", 0200, nullptr, lazy_store},
};
const core::DeviceAttributeGroup kLazyGroups[] = {
    {"", std::span(kLazyAttrs).first(2),
     [](Device&, const core::DeviceAttribute& a) -> mode_t { return a.name == "hidden" ? 0 : a.mode; }},
    {"", std::span(kLazyAttrs).subspan(2),
     [](Device& d, const core::DeviceAttribute& a) -> mode_t {
       return a.name == "override" && d.name() == "x1" ? 0600 : a.mode; // created at once
     }},
    {"stats", kLazyAttrs, nullptr},
};
const core::DeviceAttribute kLazyDriverAttrs[] = {{"status", 0444, lazy_one_show, nullptr}};
const core::DeviceAttributeGroup kLazyDriverGroups[] = {{"", kLazyDriverAttrs, nullptr}};

std::string build_lazy_machine(bool lazy, bool look_first) {
  Core core;
  core.tree().set_lazy_attrs(lazy);
  auto g = core.lock();
  core::BusType type;
  type.name = "foo";
  type.dev_groups = std::span(kLazyGroups).first(1);
  type.driver_override = true;
  auto* bus = *core.bus_register(type);
  core::DriverOps ops;
  ops.name = "drv";
  ops.dev_groups = kLazyDriverGroups;
  ops.probe = [](Device& d) -> Result<void> {
    if (d.name() == "x2") return Error(ENODEV);
    return {};
  };
  (void)*core.driver_register(*bus, ops);
  std::vector<Ref<Device>> devs;
  for (const char* name : {"x0", "x1", "x2", "x3"}) {
    auto d = Device::create(name, [](Device&) {});
    d->set_bus(bus);
    d->set_groups(std::span(kLazyGroups).subspan(1));
    EXPECT_THAT(core.device_add(*d), IsOk());
    devs.push_back(std::move(d));
  }
  if (look_first) {
    EXPECT_THAT(sysfs_read(core, "/devices/x0/status"), IsOkAndHolds("1\n"));
  }
  // Unbinding removes the driver's group: created (x0 when looked at) or still lazy.
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/drv/unbind", "x0"), IsOk());
  EXPECT_THAT(sysfs_write(core, "/bus/foo/drivers/drv/unbind", "x3"), IsOk());
  core.device_unregister(std::move(devs[2]));
  std::string out = ids_and_dump(core);
  for (auto& d : devs)
    if (d) core.device_unregister(std::move(d));
  return out;
}

} // namespace

TEST(CoreLazyAttributes, GiveTheTreeAndIdsOfCreatingThemAtOnce) {
  for (bool look_first : {false, true}) {
    const std::string eager = build_lazy_machine(false, look_first);
    const std::string lazy = build_lazy_machine(true, look_first);
    EXPECT_EQ(lazy, eager);
    EXPECT_NE(eager.find("A 0600 /devices/x1/override = 1"), std::string::npos);
    EXPECT_EQ(eager.find("/devices/x0/hidden"), std::string::npos);
    EXPECT_NE(eager.find("A 0644 /devices/x3/driver_override = (null)"), std::string::npos);
  }
}

TEST_F(CoreTest, DeviceAttributesAreLazyUntilSomeoneLooks) {
  auto x = add_device("x");
  auto dir = std::static_pointer_cast<kernfs::Dir>(core.tree().resolve("/devices/x"));
  ASSERT_NE(dir, nullptr);
  EXPECT_EQ(dir->lazy_count(), 2u); // uevent, driver_override
  EXPECT_THAT(sysfs_readlink(core, "/devices/x/subsystem"), IsOkAndHolds("../../bus/foo"));
  EXPECT_EQ(dir->lazy_count(), 2u);
  EXPECT_THAT(sysfs_read(core, "/devices/x/uevent"), IsOkAndHolds("MODALIAS=foo:x\n"));
  EXPECT_EQ(dir->lazy_count(), 0u);
  core.device_unregister(std::move(x));
}
