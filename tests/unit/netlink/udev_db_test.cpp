// The udev database files (driver-core.md §3.9, §4.3) in a temporary directory. The check that
// udevadm reads them is in udev_e2e_test.cpp.
#include "apemu/netlink/udev_db.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "matchers.h"

using namespace apemu;
using namespace apemu::netlink;
using apemu::testing::FailsWith;
using apemu::testing::IsOk;
using apemu::testing::IsOkAndHolds;
namespace fs = std::filesystem;

namespace {

class UdevDatabaseTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/apemu-udevdb-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_root = m_dir + "/udev";
  }
  void TearDown() override { fs::remove_all(m_dir); }

  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::vector<std::string> data_entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(m_root + "/data"))
      out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  static uevent::Event event(uevent::Action action, std::string devpath, std::string subsystem,
                             std::vector<std::pair<std::string, std::string>> extra = {}) {
    uevent::Event ev;
    ev.action = action;
    ev.devpath = devpath;
    ev.seqnum = 1;
    ev.env = {{"ACTION", std::string(uevent::action_name(action))},
              {"DEVPATH", devpath},
              {"SUBSYSTEM", std::move(subsystem)}};
    for (auto& kv : extra)
      ev.env.push_back(std::move(kv));
    ev.env.emplace_back("SEQNUM", "1");
    return ev;
  }

  std::string m_dir;
  std::string m_root;
};

} // namespace

TEST_F(UdevDatabaseTest, InitCreatesTreeAndControlFile) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  for (const char* d : {"", "/data", "/tags", "/links"}) {
    struct stat st {};
    ASSERT_EQ(stat((m_root + d).c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
  }
  struct stat st {};
  ASSERT_EQ(stat((m_root + "/control").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 0);
  EXPECT_THAT(db.init(), IsOk()); // idempotent
}

TEST_F(UdevDatabaseTest, InitFailsWithEnotdirWhenDataIsAFile) {
  ASSERT_EQ(mkdir(m_root.c_str(), 0755), 0);
  std::ofstream(m_root + "/data") << "x";
  UdevDatabase db(m_root);
  EXPECT_THAT(db.init(), FailsWith(ENOTDIR));
}

TEST_F(UdevDatabaseTest, InitFailsWithEnoentWithoutParent) {
  UdevDatabase db(m_dir + "/missing/udev");
  EXPECT_THAT(db.init(), FailsWith(ENOENT));
}

TEST_F(UdevDatabaseTest, AddWritesRecordsUnderTheDeviceId) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("ap", "card00", {}, 1234567), IsOk());
  ASSERT_THAT(db.add("foo", "foo0", {{"ID_APEMU", "1"}, {"ID_X", "a b"}}, 42), IsOk());
  ASSERT_THAT(db.add("drivers", "vfio_ap", {}, 7, "matrix"), IsOk());
  EXPECT_THAT(data_entries(),
              ::testing::ElementsAre("+ap:card00", "+drivers:matrix:vfio_ap", "+foo:foo0"));
  EXPECT_EQ(slurp(db.data_path("+ap:card00")), "I:1234567\nV:1\n");
  EXPECT_EQ(slurp(db.data_path("+foo:foo0")), "I:42\nE:ID_APEMU=1\nE:ID_X=a b\nV:1\n");
  struct stat st {};
  ASSERT_EQ(stat(db.data_path("+ap:card00").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_THAT(db.usec_initialized("ap", "card00"), IsOkAndHolds(1234567u));
}

TEST_F(UdevDatabaseTest, AddWithoutUsecWritesOnlyVersion) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("foo", "foo0", {}, 0), IsOk());
  EXPECT_EQ(slurp(db.data_path("+foo:foo0")), "V:1\n");
  EXPECT_THAT(db.usec_initialized("foo", "foo0"), IsOkAndHolds(0u));
}

TEST_F(UdevDatabaseTest, AddReplacesAtomicallyAndLeavesNoTemporaries) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("foo", "foo0", {}, 1), IsOk());
  // A reader holding the old file keeps seeing the old content: rename() swaps inodes.
  std::ifstream old_reader(db.data_path("+foo:foo0"));
  struct stat before {};
  ASSERT_EQ(stat(db.data_path("+foo:foo0").c_str(), &before), 0);
  ASSERT_THAT(db.add("foo", "foo0", {{"K", "v"}}, 2), IsOk());
  struct stat after {};
  ASSERT_EQ(stat(db.data_path("+foo:foo0").c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);
  std::stringstream ss;
  ss << old_reader.rdbuf();
  EXPECT_EQ(ss.str(), "I:1\nV:1\n");
  EXPECT_EQ(slurp(db.data_path("+foo:foo0")), "I:2\nE:K=v\nV:1\n");
  EXPECT_THAT(data_entries(), ::testing::ElementsAre("+foo:foo0"));
}

TEST_F(UdevDatabaseTest, AddRejectsInvalidInput) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  EXPECT_THAT(db.add("", "foo0", {}, 1), FailsWith(ENOENT));
  EXPECT_THAT(db.add("foo", "a/b", {}, 1), FailsWith(EINVAL));
  EXPECT_THAT(db.add("drivers", "vfio_ap", {}, 1), FailsWith(EINVAL));
  EXPECT_THAT(db.add("foo", "foo0", {{"", "v"}}, 1), FailsWith(EINVAL));
  EXPECT_THAT(db.add("foo", "foo0", {{"A=B", "v"}}, 1), FailsWith(EINVAL));
  EXPECT_THAT(db.add("foo", "foo0", {{"A", "v\nE:EVIL=1"}}, 1), FailsWith(EINVAL));
  EXPECT_THAT(data_entries(), ::testing::IsEmpty());
}

TEST_F(UdevDatabaseTest, AddBeforeInitFailsWithEnoent) {
  UdevDatabase db(m_root);
  EXPECT_THAT(db.add("foo", "foo0", {}, 1), FailsWith(ENOENT));
}

TEST_F(UdevDatabaseTest, RemoveDeletesTheEntry) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("foo", "foo0", {}, 1), IsOk());
  EXPECT_THAT(db.remove("foo", "foo0"), IsOk());
  EXPECT_THAT(data_entries(), ::testing::IsEmpty());
  EXPECT_THAT(db.remove("foo", "foo0"), FailsWith(ENOENT));
  EXPECT_THAT(db.usec_initialized("foo", "foo0"), FailsWith(ENOENT));
  EXPECT_THAT(db.remove("", "foo0"), FailsWith(ENOENT));
}

TEST_F(UdevDatabaseTest, OnEventKeepsFirstUsecUntilRemove) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  const std::uint64_t t_add =
      db.on_event(event(uevent::Action::Add, "/devices/apemu-test/foo0", "foo"));
  EXPECT_GT(t_add, 0u);
  EXPECT_EQ(slurp(db.data_path("+foo:foo0")), "I:" + std::to_string(t_add) + "\nV:1\n");
  for (auto a : {uevent::Action::Bind, uevent::Action::Change, uevent::Action::Online,
                 uevent::Action::Offline, uevent::Action::Unbind, uevent::Action::Add})
    EXPECT_EQ(db.on_event(event(a, "/devices/apemu-test/foo0", "foo")), t_add);
  EXPECT_EQ(db.on_event(event(uevent::Action::Remove, "/devices/apemu-test/foo0", "foo")), t_add);
  EXPECT_THAT(data_entries(), ::testing::IsEmpty());
  // A remove without an entry is no error.
  EXPECT_EQ(db.on_event(event(uevent::Action::Remove, "/devices/apemu-test/foo0", "foo")), 0u);
  EXPECT_EQ(db.errors(), 0u);
}

TEST_F(UdevDatabaseTest, OnEventChangeWithoutEntryCreatesOne) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  const std::uint64_t t = db.on_event(event(uevent::Action::Change, "/devices/ap/card00", "ap"));
  EXPECT_GT(t, 0u);
  EXPECT_THAT(db.usec_initialized("ap", "card00"), IsOkAndHolds(t));
}

TEST_F(UdevDatabaseTest, OnEventKeepsPersistedPropertiesOfExistingEntry) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("foo", "foo0", {{"ID_APEMU", "1"}}, 5), IsOk());
  EXPECT_EQ(db.on_event(event(uevent::Action::Bind, "/devices/x/foo0", "foo")), 5u);
  EXPECT_EQ(slurp(db.data_path("+foo:foo0")), "I:5\nE:ID_APEMU=1\nV:1\n");
}

TEST_F(UdevDatabaseTest, OnEventMoveRenamesTheEntry) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("foo", "old0", {{"ID_APEMU", "1"}}, 9), IsOk());
  EXPECT_EQ(db.on_event(event(uevent::Action::Move, "/devices/x/new0", "foo",
                              {{"DEVPATH_OLD", "/devices/x/old0"}})),
            9u);
  EXPECT_THAT(data_entries(), ::testing::ElementsAre("+foo:new0"));
  EXPECT_EQ(slurp(db.data_path("+foo:new0")), "I:9\nE:ID_APEMU=1\nV:1\n");
}

TEST_F(UdevDatabaseTest, OnEventDriversUseTheBusAndBusObjectsAreSkipped) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  EXPECT_GT(db.on_event(event(uevent::Action::Add, "/bus/matrix/drivers/vfio_ap", "drivers")), 0u);
  EXPECT_EQ(db.on_event(event(uevent::Action::Add, "/bus/matrix", "bus")), 0u);
  EXPECT_EQ(db.on_event(event(uevent::Action::Add, "/module/vfio_ap", "module")), 0u);
  EXPECT_EQ(db.on_event(event(uevent::Action::Add, "/devices/x/nosub", "")), 0u);
  EXPECT_THAT(data_entries(), ::testing::ElementsAre("+drivers:matrix:vfio_ap"));
  EXPECT_GT(db.on_event(event(uevent::Action::Remove, "/bus/matrix/drivers/vfio_ap", "drivers")),
            0u);
  EXPECT_THAT(data_entries(), ::testing::IsEmpty());
  EXPECT_EQ(db.errors(), 0u);
}

TEST_F(UdevDatabaseTest, OnEventCountsErrors) {
  UdevDatabase db(m_root); // no init(): <root>/data is missing
  EXPECT_EQ(db.on_event(event(uevent::Action::Add, "/devices/x/foo0", "foo")), 0u);
  EXPECT_EQ(db.errors(), 1u);
  EXPECT_EQ(db.last_error().code, ENOENT);
}

// Coldplug (issue 11): one file, a hard link per device; every later change touches one entry.
TEST_F(UdevDatabaseTest, ColdplugEntriesShareOneFileUntilOneOfThemChanges) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  ASSERT_THAT(db.add("ap", "card01", {{"OLD", "1"}}, 5), IsOk()); // an earlier daemon's entry
  ASSERT_THAT(db.add_coldplug({{"ap", "card00"}, {"ap", "card01"}, {"ap", "00.0004"}}, 1234),
              IsOk());
  EXPECT_EQ(data_entries(),
            (std::vector<std::string>{"+ap:00.0004", "+ap:card00", "+ap:card01"}));
  const std::string card0 = m_root + "/data/+ap:card00";
  const std::string card1 = m_root + "/data/+ap:card01";
  const std::string queue = m_root + "/data/+ap:00.0004";
  EXPECT_EQ(slurp(card1), "I:1234\nV:1\n"); // replaced
  struct stat a {}, b {};
  ASSERT_EQ(stat(card0.c_str(), &a), 0);
  ASSERT_EQ(stat(queue.c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(a.st_mode & 07777, 0644u);
  EXPECT_THAT(db.usec_initialized("ap", "00.0004"), IsOkAndHolds(1234u));
  // An update replaces one entry; the others keep the shared content.
  ASSERT_THAT(db.add("ap", "card00", {{"ID_X", "1"}}, 99), IsOk());
  EXPECT_EQ(slurp(card0), "I:99\nE:ID_X=1\nV:1\n");
  EXPECT_EQ(slurp(queue), "I:1234\nV:1\n");
  EXPECT_EQ(slurp(card1), "I:1234\nV:1\n");
  ASSERT_THAT(db.remove("ap", "card01"), IsOk());
  EXPECT_EQ(slurp(queue), "I:1234\nV:1\n");
  ASSERT_EQ(stat(queue.c_str(), &b), 0);
  EXPECT_EQ(b.st_nlink, 1u);
  // A remove event unlinks its own entry only, a move renames it.
  EXPECT_EQ(db.on_event(event(uevent::Action::Move, "/devices/ap/card00/00.0005", "ap",
                              {{"DEVPATH_OLD", "/devices/ap/card00/00.0004"}})),
            1234u);
  EXPECT_EQ(data_entries(), (std::vector<std::string>{"+ap:00.0005", "+ap:card00"}));
  EXPECT_EQ(db.errors(), 0u);
}

TEST_F(UdevDatabaseTest, ColdplugReportsBadNamesAndWritesTheOthers) {
  UdevDatabase db(m_root);
  ASSERT_THAT(db.init(), IsOk());
  EXPECT_THAT(db.add_coldplug({{"ap", ""}, {"ap", "card00"}}, 1), FailsWith(EINVAL));
  EXPECT_EQ(data_entries(), (std::vector<std::string>{"+ap:card00"}));
  EXPECT_THAT(db.add_coldplug({}, 1), IsOk());
}
