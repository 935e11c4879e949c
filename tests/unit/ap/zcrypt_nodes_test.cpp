// The zcrypt device nodes: z90crypt and the multi-node class zcrypt (ap-bus.md §8.1, §9.3;
// driver-core.md §2.5, §2.6, §3.2, §3.6).
#include "ap_fixture.h"

#include "apemu/ap/zcrypt.h"

using namespace apemu;
using namespace apemu::testing;
using ::testing::ElementsAre;

namespace {

const std::string kZero = "0x" + std::string(64, '0') + "\n";

class ZcryptNodesTest : public ApTest {};

} // namespace

TEST_F(ZcryptNodesTest, Z90cryptIsAMiscCharDevice) {
  // §8.1: misc device z90crypt, major 10; driver-core.md §2.5/§2.6: `dev`, /sys/dev/char link,
  // class link; §3.2: MAJOR, MINOR, DEVNAME in the uevent file.
  EXPECT_THAT(read("/devices/virtual/misc/z90crypt/dev"), IsOkAndHolds("10:127\n"));
  EXPECT_THAT(read("/devices/virtual/misc/z90crypt/uevent"),
              IsOkAndHolds("MAJOR=10\nMINOR=127\nDEVNAME=z90crypt\n"));
  EXPECT_THAT(sysfs_readlink(core(), "/class/misc/z90crypt"),
              IsOkAndHolds("../../devices/virtual/misc/z90crypt"));
  EXPECT_THAT(sysfs_readlink(core(), "/devices/virtual/misc/z90crypt/subsystem"),
              IsOkAndHolds("../../../../class/misc"));
  EXPECT_THAT(sysfs_readlink(core(), "/dev/char/10:127"),
              IsOkAndHolds("../../devices/virtual/misc/z90crypt"));
}

TEST_F(ZcryptNodesTest, CreateMakesANodeWithZeroMasksAndSendsAdd) {
  // §8.1: create/destroy are 0600 class files; a node takes the lowest free minor, starts with
  // all masks zero, lives in /sys/devices/virtual/zcrypt; driver-core.md §3.6: class device with
  // devt → add with MAJOR/MINOR/DEVNAME.
  EXPECT_THAT(sysfs_list(core(), "/class/zcrypt"), ElementsAre("create", "destroy"));
  EventLog ev(core());
  ASSERT_THAT(write("/class/zcrypt/create", "  node1 \n"), IsOk());
  ASSERT_EQ(ev.events.size(), 1u);
  EXPECT_EQ(ev.lines()[0], "add /devices/virtual/zcrypt/node1");
  EXPECT_EQ(ev.events[0].subsystem(), "zcrypt");
  EXPECT_EQ(ev.events[0].get("MAJOR"), "254");
  EXPECT_EQ(ev.events[0].get("MINOR"), "0");
  EXPECT_EQ(ev.events[0].get("DEVNAME"), "node1");
  EXPECT_THAT(read("/class/zcrypt/node1/dev"), IsOkAndHolds("254:0\n"));
  for (const char* m : {"apmask", "aqmask", "admask", "ioctlmask"})
    EXPECT_THAT(read(std::string("/devices/virtual/zcrypt/node1/") + m), IsOkAndHolds(kZero)) << m;
  EXPECT_THAT(sysfs_readlink(core(), "/class/zcrypt/node1"),
              IsOkAndHolds("../../devices/virtual/zcrypt/node1"));
  // An empty name (zcryptctl writes "\n\n") becomes zcrypt_<minor>.
  ASSERT_THAT(write("/class/zcrypt/create", "\n\n"), IsOk());
  EXPECT_THAT(read("/class/zcrypt/zcrypt_1/dev"), IsOkAndHolds("254:1\n"));
  // At most 31 characters are kept.
  ASSERT_THAT(write("/class/zcrypt/create", std::string(40, 'x')), IsOk());
  EXPECT_TRUE(sysfs_exists(core(), "/class/zcrypt/" + std::string(31, 'x')));
}

TEST_F(ZcryptNodesTest, CreateAndDestroyErrnos) {
  ASSERT_THAT(write("/class/zcrypt/create", "node1"), IsOk());
  EXPECT_THAT(write("/class/zcrypt/create", "node1\n"), FailsWith(EEXIST)); // §8.1
  EXPECT_THAT(write("/class/zcrypt/destroy", "nosuch"), FailsWith(ENOENT)); // §8.1
  // 256 minors: the 257th node has none left (ENOSPC).
  for (int i = 1; i < 256; ++i)
    ASSERT_THAT(write("/class/zcrypt/create", "\n"), IsOk()) << i;
  EXPECT_THAT(write("/class/zcrypt/create", "\n"), FailsWith(ENOSPC));
  EventLog ev(core());
  ASSERT_THAT(write("/class/zcrypt/destroy", " node1\n"), IsOk());
  EXPECT_THAT(ev.lines(), ElementsAre("remove /devices/virtual/zcrypt/node1"));
  EXPECT_FALSE(sysfs_exists(core(), "/class/zcrypt/node1"));
  EXPECT_FALSE(sysfs_exists(core(), "/dev/char/254:0"));
  // The freed minor is the lowest free one again.
  ASSERT_THAT(write("/class/zcrypt/create", "again"), IsOk());
  EXPECT_THAT(read("/class/zcrypt/again/dev"), IsOkAndHolds("254:0\n"));
}

TEST_F(ZcryptNodesTest, MasksTakeTheApMaskGrammarWithoutEvents) {
  // §8.1: the §2.2 parser (absolute hex or relative), EINVAL on a parse error; no uevent.
  ASSERT_THAT(write("/class/zcrypt/create", "n"), IsOk());
  EventLog ev(core());
  const std::string dir = "/devices/virtual/zcrypt/n/";
  ASSERT_THAT(write(dir + "apmask", "+1\n"), IsOk());
  ASSERT_THAT(write(dir + "apmask", "+0x0b"), IsOk());
  EXPECT_THAT(read(dir + "apmask"), IsOkAndHolds("0x401" + std::string(61, '0') + "\n"));
  ASSERT_THAT(write(dir + "aqmask", "0xf0"), IsOk());
  EXPECT_THAT(read(dir + "aqmask"), IsOkAndHolds("0xf0" + std::string(62, '0') + "\n"));
  ASSERT_THAT(write(dir + "ioctlmask", "+0-255"), IsOk());
  EXPECT_THAT(read(dir + "ioctlmask"), IsOkAndHolds("0x" + std::string(64, 'f') + "\n"));
  ASSERT_THAT(write(dir + "admask", "-0,+4"), IsOk());
  EXPECT_THAT(read(dir + "admask"), IsOkAndHolds("0x08" + std::string(62, '0') + "\n"));
  EXPECT_THAT(write(dir + "apmask", "+256"), FailsWith(EINVAL));
  EXPECT_THAT(write(dir + "aqmask", "bogus"), FailsWith(EINVAL));
  EXPECT_THAT(read(dir + "aqmask"), IsOkAndHolds("0xf0" + std::string(62, '0') + "\n"));
  EXPECT_TRUE(ev.events.empty());
  // The files read by zcryptctl with fgets(80): 67 characters.
  EXPECT_EQ(read(dir + "admask")->size(), 67u);
}

// ap-bus.md §11: the multi nodes exist in every profile (4.20 on).
TEST(ZcryptNodesProfiles, PresentInEveryProfile) {
  for (const auto& p : profile::all_profiles()) {
    auto topo = topology::parse(kSmallLpar);
    testbed::Options opt;
    opt.topology = std::move(*topo);
    opt.kernel_profile = std::string(p.name);
    auto tb = std::move(*testbed::Testbed::create(std::move(opt)));
    auto g = tb->lock();
    EXPECT_TRUE(sysfs_exists(tb->core(), "/class/zcrypt/create")) << p.name;
    EXPECT_TRUE(sysfs_exists(tb->core(), "/class/misc/z90crypt")) << p.name;
    g.unlock();
  }
}
