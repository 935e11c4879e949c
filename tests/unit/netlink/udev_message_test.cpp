// The udev netlink message layout, MurmurHash2, tag bloom and device ids (driver-core.md §3.7,
// §4.3). Hash vectors come from an independent Python implementation of systemd's
// MurmurHash2.c (little-endian block loads).
#include "apemu/netlink/udev_message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cstring>

#include "matchers.h"

using namespace apemu;
using namespace apemu::netlink;
using apemu::testing::FailsWith;
using apemu::testing::IsOkAndHolds;

namespace {

uevent::Event make_event(uevent::Action action, std::string devpath,
                         std::vector<std::pair<std::string, std::string>> extra,
                         std::uint64_t seqnum) {
  uevent::Event ev;
  ev.action = action;
  ev.devpath = devpath;
  ev.seqnum = seqnum;
  ev.env = {{"ACTION", std::string(uevent::action_name(action))},
            {"DEVPATH", devpath},
            {"SUBSYSTEM", "foo"}};
  for (auto& kv : extra)
    ev.env.push_back(std::move(kv));
  ev.env.emplace_back("SEQNUM", std::to_string(seqnum));
  return ev;
}

std::uint32_t be32_at(const std::string& s, std::size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + off);
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::uint32_t host32_at(const std::string& s, std::size_t off) {
  std::uint32_t v;
  std::memcpy(&v, s.data() + off, 4);
  return v;
}

std::vector<std::string> split_nul(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const std::size_t nul = s.find('\0');
    EXPECT_NE(nul, std::string_view::npos) << "property not NUL-terminated";
    if (nul == std::string_view::npos) break;
    out.emplace_back(s.substr(0, nul));
    s.remove_prefix(nul + 1);
  }
  return out;
}

constexpr bool kLittleEndian = std::endian::native == std::endian::little;

} // namespace

TEST(UdevMurmurHash2, MatchesIndependentImplementationOnLittleEndian) {
  if (!kLittleEndian) GTEST_SKIP() << "vectors are for little-endian block loads (as systemd's)";
  EXPECT_EQ(murmur_hash2(""), 0x00000000u);
  EXPECT_EQ(murmur_hash2("a"), 0x92685f5eu);
  EXPECT_EQ(murmur_hash2("ab"), 0x1aa14063u);
  EXPECT_EQ(murmur_hash2("abc"), 0x13577c9bu);
  EXPECT_EQ(murmur_hash2("abcd"), 0x26873021u);
  EXPECT_EQ(murmur_hash2("foo"), 0x8fea6375u);
  EXPECT_EQ(murmur_hash2("drivers"), 0x4d035eb4u);
  EXPECT_EQ(murmur_hash2("systemd"), 0xa75f972au);
  EXPECT_EQ(murmur_hash2("usb_device"), 0x27f8f50cu);
  EXPECT_EQ(murmur_hash2("vfio_ap"), 0x7f1bfa5bu);
  EXPECT_EQ(murmur_hash2("matrix"), 0x9f470338u);
  EXPECT_EQ(murmur_hash2("abc", 0x9747b28c), 0x1c94221bu);
}

TEST(UdevTagBloom, SetsFourBitsFromSixBitSlicesOfTheHash) {
  if (!kLittleEndian) GTEST_SKIP() << "vectors are for little-endian block loads (as systemd's)";
  EXPECT_EQ(tag_bloom("systemd"), 0x0200040010800000u);
  EXPECT_EQ(tag_bloom("seat"), 0x0208000000400001u);
  // Generic property, independent of byte order.
  for (std::string_view tag : {"a", "systemd", "uaccess", "vfio_ap"}) {
    const std::uint32_t h = murmur_hash2(tag);
    std::uint64_t want = 0;
    for (int shift : {0, 6, 12, 18})
      want |= std::uint64_t{1} << ((h >> shift) & 63);
    EXPECT_EQ(tag_bloom(tag), want) << tag;
  }
}

TEST(UdevMessage, HeaderLayoutByteByByte) {
  auto ev = make_event(uevent::Action::Add, "/devices/apemu-test/foo0", {{"DEVTYPE", "bar"}}, 7);
  const std::string msg = build_udev_message(ev, UdevExtras{123456, {}});
  ASSERT_GE(msg.size(), kUdevHeaderSize);
  EXPECT_EQ(std::string(msg.data(), 8), std::string("libudev\0", 8));
  // magic 0xfeedcafe big-endian: bytes fe ed ca fe
  EXPECT_EQ(static_cast<unsigned char>(msg[8]), 0xfe);
  EXPECT_EQ(static_cast<unsigned char>(msg[9]), 0xed);
  EXPECT_EQ(static_cast<unsigned char>(msg[10]), 0xca);
  EXPECT_EQ(static_cast<unsigned char>(msg[11]), 0xfe);
  EXPECT_EQ(host32_at(msg, 12), 40u);             // header_size
  EXPECT_EQ(host32_at(msg, 16), 40u);             // properties_off
  EXPECT_EQ(host32_at(msg, 20), msg.size() - 40); // properties_len
  EXPECT_EQ(be32_at(msg, 24), murmur_hash2("foo"));
  EXPECT_EQ(be32_at(msg, 28), murmur_hash2("bar"));
  EXPECT_EQ(be32_at(msg, 32), 0u); // no tags, no bloom
  EXPECT_EQ(be32_at(msg, 36), 0u);
  if (kLittleEndian) {
    // murmur("foo") = 0x8fea6375 stored big-endian
    EXPECT_EQ(msg.substr(24, 4), std::string("\x8f\xea\x63\x75", 4));
  }
  EXPECT_EQ(msg.back(), '\0');
}

TEST(UdevMessage, DevtypeHashIsZeroWithoutDevtype) {
  auto ev = make_event(uevent::Action::Change, "/devices/x/y", {}, 1);
  const std::string msg = build_udev_message(ev, {});
  EXPECT_EQ(be32_at(msg, 28), 0u);
}

TEST(UdevMessage, PropertiesInKernelOrderBetweenDatabaseVersionAndUsec) {
  auto ev = make_event(uevent::Action::Bind, "/devices/apemu-test/foo0",
                       {{"DEVTYPE", "bar"}, {"DRIVER", "x"}, {"MODALIAS", "foo:t1"}}, 42);
  const std::string msg = build_udev_message(ev, UdevExtras{99, {}});
  EXPECT_THAT(split_nul(std::string_view(msg).substr(40)),
              ::testing::ElementsAre("UDEV_DATABASE_VERSION=1", "ACTION=bind",
                                     "DEVPATH=/devices/apemu-test/foo0", "SUBSYSTEM=foo",
                                     "DEVTYPE=bar", "DRIVER=x", "MODALIAS=foo:t1", "SEQNUM=42",
                                     "USEC_INITIALIZED=99"));
}

TEST(UdevMessage, ZeroUsecIsLeftOut) {
  auto ev = make_event(uevent::Action::Add, "/devices/x", {}, 3);
  const std::string msg = build_udev_message(ev, {});
  EXPECT_THAT(split_nul(std::string_view(msg).substr(40)),
              ::testing::ElementsAre("UDEV_DATABASE_VERSION=1", "ACTION=add", "DEVPATH=/devices/x",
                                     "SUBSYSTEM=foo", "SEQNUM=3"));
}

TEST(UdevMessage, TagsGoToTagsCurrentTagsAndTheBloom) {
  auto ev = make_event(uevent::Action::Add, "/devices/x", {}, 5);
  const std::string msg = build_udev_message(ev, UdevExtras{1, {"systemd", "seat"}});
  EXPECT_THAT(split_nul(std::string_view(msg).substr(40)),
              ::testing::ElementsAre("UDEV_DATABASE_VERSION=1", "ACTION=add", "DEVPATH=/devices/x",
                                     "SUBSYSTEM=foo", "SEQNUM=5", "USEC_INITIALIZED=1",
                                     "TAGS=:systemd:seat:", "CURRENT_TAGS=:systemd:seat:"));
  const std::uint64_t bloom = tag_bloom("systemd") | tag_bloom("seat");
  EXPECT_EQ(be32_at(msg, 32), static_cast<std::uint32_t>(bloom >> 32));
  EXPECT_EQ(be32_at(msg, 36), static_cast<std::uint32_t>(bloom));
  if (kLittleEndian) {
    EXPECT_EQ(be32_at(msg, 32), 0x02080400u);
    EXPECT_EQ(be32_at(msg, 36), 0x10c00001u);
  }
}

TEST(UdevDeviceId, SubsystemAndRawSysname) {
  EXPECT_THAT(device_id("ap", "card00"), IsOkAndHolds(std::string("+ap:card00")));
  EXPECT_THAT(device_id("ap", "00.0005"), IsOkAndHolds(std::string("+ap:00.0005")));
  // '!' is kept in the raw kernel name (sysname would turn it into '/').
  EXPECT_THAT(device_id("foo", "a!b"), IsOkAndHolds(std::string("+foo:a!b")));
  EXPECT_THAT(device_id("mdev", "6f1a2b3c-0000-4000-8000-000000000001"),
              IsOkAndHolds(std::string("+mdev:6f1a2b3c-0000-4000-8000-000000000001")));
}

TEST(UdevDeviceId, DriversCarryTheirBus) {
  EXPECT_THAT(device_id("drivers", "vfio_ap", "matrix"),
              IsOkAndHolds(std::string("+drivers:matrix:vfio_ap")));
  EXPECT_THAT(device_id("drivers", "cex4queue", "ap"),
              IsOkAndHolds(std::string("+drivers:ap:cex4queue")));
  EXPECT_THAT(device_id("drivers", "vfio_ap"), FailsWith(EINVAL));
}

TEST(UdevDeviceId, RejectsWhatIsNoFileName) {
  EXPECT_THAT(device_id("", "card00"), FailsWith(ENOENT));
  EXPECT_THAT(device_id("ap", ""), FailsWith(EINVAL));
  EXPECT_THAT(device_id("ap", "."), FailsWith(EINVAL));
  EXPECT_THAT(device_id("ap", ".."), FailsWith(EINVAL));
  EXPECT_THAT(device_id("ap", "a/b"), FailsWith(EINVAL));
  EXPECT_THAT(device_id("a/p", "x"), FailsWith(EINVAL));
  EXPECT_THAT(device_id("ap", std::string_view("a\0b", 3)), FailsWith(EINVAL));
  EXPECT_THAT(device_id("ap", std::string(252, 'x')), FailsWith(ENAMETOOLONG));
  EXPECT_THAT(device_id("ap", std::string(251, 'x')), // "+ap:" + 251 = 255 = NAME_MAX
              IsOkAndHolds(::testing::SizeIs(255)));
}

TEST(UdevDevpath, DriverSubsystemIsTheElementBeforeDrivers) {
  EXPECT_EQ(driver_subsystem_from_devpath("/bus/ap/drivers/cex4queue"), "ap");
  EXPECT_EQ(driver_subsystem_from_devpath("/bus/matrix/drivers/vfio_ap"), "matrix");
  EXPECT_EQ(driver_subsystem_from_devpath("/bus/ap/drivers"), "ap");
  EXPECT_EQ(driver_subsystem_from_devpath("/bus/ap"), std::nullopt);
  EXPECT_EQ(driver_subsystem_from_devpath("/devices/ap/card00"), std::nullopt);
  EXPECT_EQ(driver_subsystem_from_devpath("/drivers/x"), std::nullopt);
}

TEST(UdevDevpath, SysnameIsTheLastElement) {
  EXPECT_EQ(devpath_sysname("/devices/ap/card00/00.0005"), "00.0005");
  EXPECT_EQ(devpath_sysname("/bus/ap/drivers/cex4queue"), "cex4queue");
  EXPECT_EQ(devpath_sysname("/devices/x/"), "x");
  EXPECT_EQ(devpath_sysname("/"), "");
  EXPECT_EQ(devpath_sysname(""), "");
}

TEST(UdevClock, MonotonicUsecIncreases) {
  const std::uint64_t a = monotonic_usec();
  const std::uint64_t b = monotonic_usec();
  EXPECT_GT(a, 0u);
  EXPECT_LE(a, b);
}
