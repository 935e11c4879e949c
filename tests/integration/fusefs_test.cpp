// Integration tests of the FUSE front end: a driver-core tree (bus "foo", driver "food",
// devices foo0..foo2) mounted on a fresh directory under /tmp and driven with real syscalls, the
// way udev, mdevctl or a shell would. Every failing syscall is checked for its exact errno
// (driver-core.md §2.8, §6). Skipped only when /dev/fuse is absent (and then failed if CI=true).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apemu/core/core.h"
#include "apemu/fusefs/fuse_server.h"
#include "inode_table.h" // src/fusefs (private): the lookup-count invariants
#include "matchers.h"
#include "sysfs_helpers.h"

namespace apemu::testing {
namespace {

using ::testing::Contains;
using ::testing::Not;
using ::testing::UnorderedElementsAreArray;

constexpr unsigned long kFuseSuperMagic = 0x65735546; // FUSE_SUPER_MAGIC

bool fuse_device_present() { return ::access("/dev/fuse", F_OK) == 0; }
bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

/// Closes a descriptor at scope exit (so a failing assertion leaks nothing into teardown).
struct Fd {
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd;
};

// ---- syscall wrappers returning Result with the errno of the failing call -------------------------

Result<void> check(int rc) {
  if (rc < 0) return Error(errno);
  return {};
}

Result<int> open_path(const std::string& path, int flags, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Error(errno);
  return fd;
}

Result<std::string> read_fd(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) return Error(errno);
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

Result<std::string> read_file(const std::string& path) {
  APEMU_TRY(int fd, open_path(path, O_RDONLY));
  Fd guard(fd);
  return read_fd(fd);
}

/// One open and one write(2), as sd-device writes an attribute.
Result<std::size_t> write_file(const std::string& path, std::string_view text,
                               int flags = O_WRONLY) {
  APEMU_TRY(int fd, open_path(path, flags));
  Fd guard(fd);
  ssize_t n = ::write(fd, text.data(), text.size());
  if (n < 0) return Error(errno);
  return static_cast<std::size_t>(n);
}

Result<std::string> read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return Error(errno);
  return std::string(buf, static_cast<std::size_t>(n));
}

Result<struct stat> stat_path(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Error(errno);
  return st;
}

Result<struct stat> lstat_path(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Error(errno);
  return st;
}

struct DirEntry {
  std::string name;
  unsigned char type;
  ino_t ino;
};

Result<std::vector<DirEntry>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return Error(errno);
  std::vector<DirEntry> out;
  errno = 0;
  while (dirent* e = ::readdir(d)) out.push_back({e->d_name, e->d_type, e->d_ino});
  const int err = errno;
  ::closedir(d);
  if (err) return Error(err);
  return out;
}

std::vector<std::string> names_of(const std::vector<DirEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

/// Runs `cmd` through /bin/sh (system(3)); the exit status, or -1 when killed.
int run_sh(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::size_t thread_count() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

bool is_mounted(const std::string& dir) {
  std::ifstream in("/proc/self/mounts");
  std::string src, mnt, type, rest;
  while (in >> src >> mnt >> type && std::getline(in, rest))
    if (mnt == dir) return true;
  return false;
}

// ---- the device model under test ------------------------------------------------------------------

Result<std::string> hwtype_show(core::Device&) { return std::string("14\n"); }
Result<std::string> online_show(core::Device& d) {
  return std::string(d.drvdata() ? "1\n" : "0\n");
}
Result<void> online_store(core::Device& d, std::string_view t) {
  if (t.empty() || (t[0] != '0' && t[0] != '1')) return Error(EINVAL);
  d.set_drvdata(t[0] == '1' ? &d : nullptr);
  return {};
}
const core::DeviceAttribute kFooAttrs[] = {
    {"hwtype", 0444, hwtype_show, nullptr},
    {"online", 0644, online_show, online_store},
};
const core::DeviceAttributeGroup kFooGroups[] = {{"", kFooAttrs, nullptr}};

class FuseFsTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!fuse_device_present()) {
      if (in_ci()) FAIL() << "/dev/fuse is absent, but CI=true requires the FUSE tests to run";
      GTEST_SKIP() << "/dev/fuse is absent: FUSE filesystems cannot be mounted here";
    }
    m_threads_before = thread_count();
    build_model();
    if (HasFatalFailure()) return;
    char tmpl[] = "/tmp/apemu-fusefs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    m_dir = tmpl;
    auto srv = fusefs::FuseServer::mount(core.tree(), m_dir);
    ASSERT_THAT(srv, IsOk());
    server = std::move(*srv);
  }

  void TearDown() override {
    if (server) {
      // close(2) releases handles asynchronously; every test must have closed its files.
      if (server->mounted()) {
        EXPECT_TRUE(wait_until([&] { return server->handle_count() == 0; }))
            << server->handle_count() << " FUSE file handles leaked";
      }
      server->unmount();
      EXPECT_FALSE(is_mounted(m_dir)) << m_dir << " is still mounted";
      server.reset();
      // A joined thread can stay listed in /proc for a moment while the kernel reaps it.
      EXPECT_TRUE(wait_until([&] { return thread_count() == m_threads_before; }))
          << thread_count() - m_threads_before << " FUSE threads left running";
    }
    if (!m_dir.empty()) {
      EXPECT_EQ(::rmdir(m_dir.c_str()), 0) << std::strerror(errno);
    }
    auto g = core.lock();
    for (auto& [name, dev] : devices)
      if (dev && dev->registered()) core.device_unregister(std::move(dev));
  }

  // The model is changed under the machine lock (each helper is an entry point); syscalls on
  // the mount are made without it, or the FUSE handler serving them would wait forever.
  void build_model() {
    auto g = core.lock();
    core::BusType type;
    type.name = "foo";
    type.uevent = [](const core::Device& d, uevent::Env& env) -> Result<void> {
      APEMU_TRY_VOID(env.add("MODALIAS", "foo:" + d.name()));
      return {};
    };
    auto b = core.bus_register(type);
    ASSERT_THAT(b, IsOk());
    bus = *b;
    // Devices stay unbound (autoprobe off while they arrive) so the tests can bind them.
    ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers_autoprobe", "0"), IsOk());
    core::DriverOps ops;
    ops.name = "food";
    ops.probe = [](core::Device&) -> Result<void> { return {}; };
    ops.remove = [](core::Device&) {};
    auto d = core.driver_register(*bus, std::move(ops));
    ASSERT_THAT(d, IsOk());
    g.unlock(); // add_device takes it
    for (const char* name : {"foo0", "foo1", "foo2"}) add_device(name);
    g.lock();
    ASSERT_THAT(sysfs_write(core, "/bus/foo/drivers_autoprobe", "1"), IsOk());
  }

  void add_device(const std::string& name) {
    auto g = core.lock();
    auto dev = core::Device::create(name, [](core::Device&) {});
    dev->set_bus(bus);
    dev->set_groups(kFooGroups);
    auto r = core.device_add(*dev);
    ASSERT_THAT(r, IsOk());
    devices[name] = std::move(dev);
  }

  void remove_device(const std::string& name) {
    auto g = core.lock();
    core.device_unregister(std::move(devices.at(name)));
    devices.erase(name);
  }

  /// Absolute path of `rel` (a sysfs path such as "/bus/foo") inside the mount.
  std::string p(const std::string& rel) const { return m_dir + rel; }

  core::Core core;
  core::Bus* bus = nullptr;
  std::map<std::string, core::Ref<core::Device>> devices;
  std::string m_dir;
  std::size_t m_threads_before = 0;
  std::unique_ptr<fusefs::FuseServer> server; // destroyed before `core`
};

// ---- layout: listing, stat, readlink -------------------------------------------------------------

TEST_F(FuseFsTest, ListingOfBusDevicesShowsDeviceLinks) {
  auto entries = list_dir(p("/bus/foo/devices"));
  ASSERT_THAT(entries, IsOk());
  EXPECT_THAT(names_of(*entries),
              UnorderedElementsAreArray({".", "..", "foo0", "foo1", "foo2"}));
  for (const auto& e : *entries) {
    if (e.name == "." || e.name == "..") {
      EXPECT_EQ(e.type, DT_DIR);
      continue;
    }
    EXPECT_EQ(e.type, DT_LNK) << e.name;
    auto st = lstat_path(p("/bus/foo/devices/" + e.name));
    ASSERT_THAT(st, IsOk());
    EXPECT_EQ(st->st_ino, e.ino) << "readdir and lstat disagree on the inode of " << e.name;
  }
}

TEST_F(FuseFsTest, ListingIsSortedAndStableAcrossCalls) {
  auto a = list_dir(p("/bus/foo"));
  auto b = list_dir(p("/bus/foo"));
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(names_of(*a), names_of(*b));
  EXPECT_EQ(names_of(*a), (std::vector<std::string>{".", "..", "devices", "drivers",
                                                    "drivers_autoprobe", "drivers_probe",
                                                    "uevent"}));
}

TEST_F(FuseFsTest, StatOfAttributeGivesRegularFileOfPageSizeWithItsMode) {
  auto st = stat_path(p("/bus/foo/drivers_autoprobe"));
  ASSERT_THAT(st, IsOk());
  EXPECT_TRUE(S_ISREG(st->st_mode));
  EXPECT_EQ(st->st_mode & 07777, 0644u);
  EXPECT_EQ(st->st_size, 4096);
  EXPECT_EQ(st->st_uid, 0u);
  EXPECT_EQ(st->st_gid, 0u);

  auto wo = stat_path(p("/bus/foo/drivers_probe"));
  ASSERT_THAT(wo, IsOk());
  EXPECT_EQ(wo->st_mode & 07777, 0200u);
  auto ro = stat_path(p("/kernel/uevent_seqnum"));
  ASSERT_THAT(ro, IsOk());
  EXPECT_EQ(ro->st_mode & 07777, 0444u);

  auto dir = stat_path(p("/bus/foo"));
  ASSERT_THAT(dir, IsOk());
  EXPECT_TRUE(S_ISDIR(dir->st_mode));
  EXPECT_EQ(dir->st_nlink, 2u);

  auto root = stat_path(m_dir);
  ASSERT_THAT(root, IsOk());
  EXPECT_EQ(root->st_ino, 1u); // FUSE_ROOT_ID == kernfs root id
}

TEST_F(FuseFsTest, LstatOfLinkGivesSymlinkSizedByTargetText) {
  auto st = lstat_path(p("/bus/foo/devices/foo0"));
  ASSERT_THAT(st, IsOk());
  EXPECT_TRUE(S_ISLNK(st->st_mode));
  EXPECT_EQ(st->st_mode & 07777, 0777u);
  EXPECT_EQ(static_cast<std::size_t>(st->st_size), std::strlen("../../../devices/foo0"));
  EXPECT_THAT(read_link(p("/bus/foo/devices/foo0")), IsOkAndHolds("../../../devices/foo0"));
  // Following the link lands in the device directory.
  auto dev = stat_path(p("/bus/foo/devices/foo0"));
  auto real = stat_path(p("/devices/foo0"));
  ASSERT_THAT(dev, IsOk());
  ASSERT_THAT(real, IsOk());
  EXPECT_EQ(dev->st_ino, real->st_ino);
}

TEST_F(FuseFsTest, ReadlinkOfNonLinkFailsWithEinval) {
  EXPECT_THAT(read_link(p("/bus/foo/drivers_autoprobe")), FailsWith(EINVAL));
}

TEST_F(FuseFsTest, MissingNameFailsWithEnoent) {
  EXPECT_THAT(stat_path(p("/bus/nosuch")), FailsWith(ENOENT));
  EXPECT_THAT(open_path(p("/devices/foo0/nosuch"), O_RDONLY), FailsWith(ENOENT));
  // An attribute is not a directory.
  EXPECT_THAT(stat_path(p("/bus/foo/drivers_autoprobe/x")), FailsWith(ENOTDIR));
}

TEST_F(FuseFsTest, MountIsListedAsSysfsOfTypeFuseApemu) {
  std::ifstream in("/proc/self/mounts");
  std::string src, mnt, type, rest;
  bool found = false;
  while (in >> src >> mnt >> type && std::getline(in, rest)) {
    if (mnt != m_dir) continue;
    found = true;
    EXPECT_EQ(src, "sysfs");
    EXPECT_EQ(type, "fuse.apemu");
    EXPECT_THAT(rest, ::testing::HasSubstr("allow_other"));
    EXPECT_THAT(rest, Not(::testing::HasSubstr("default_permissions")));
  }
  EXPECT_TRUE(found);
  struct statfs sfs;
  ASSERT_EQ(::statfs(m_dir.c_str(), &sfs), 0) << std::strerror(errno);
  EXPECT_EQ(static_cast<unsigned long>(sfs.f_type), kFuseSuperMagic);
  EXPECT_EQ(sfs.f_bsize, 4096);
}

// ---- attribute I/O ----------------------------------------------------------------------------------

TEST_F(FuseFsTest, ReadingAndWritingDriversAutoprobe) {
  EXPECT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOkAndHolds("1\n"));
  EXPECT_THAT(write_file(p("/bus/foo/drivers_autoprobe"), "0"), IsOkAndHolds(1u));
  EXPECT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOkAndHolds("0\n"));
  EXPECT_FALSE(bus->autoprobe());
  EXPECT_THAT(write_file(p("/bus/foo/drivers_autoprobe"), "1\n"), IsOkAndHolds(2u));
  EXPECT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOkAndHolds("1\n"));
}

TEST_F(FuseFsTest, SnapshotIsTakenPerOpenAndPreadAtZeroRerenders) {
  auto fd = open_path(p("/devices/foo0/online"), O_RDWR);
  ASSERT_THAT(fd, IsOk());
  Fd guard(*fd);
  char buf[16];
  ASSERT_EQ(::pread(*fd, buf, 1, 0), 1);
  EXPECT_EQ(buf[0], '0');
  // The value changes, but the rest of this read sequence comes from the snapshot.
  ASSERT_EQ(::pwrite(*fd, "1", 1, 0), 1);
  ASSERT_EQ(::pread(*fd, buf, sizeof buf, 1), 1);
  EXPECT_EQ(buf[0], '\n');
  // A read at offset 0 renders again.
  ASSERT_EQ(::pread(*fd, buf, sizeof buf, 0), 2);
  EXPECT_EQ(std::string(buf, 2), "1\n");
}

TEST_F(FuseFsTest, EachWriteIsOneStoreWithTheExactErrno) {
  auto fd = open_path(p("/devices/foo0/online"), O_WRONLY);
  ASSERT_THAT(fd, IsOk());
  Fd guard(*fd);
  EXPECT_EQ(::write(*fd, "1", 1), 1);
  errno = 0;
  EXPECT_EQ(::write(*fd, "x", 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(::write(*fd, "0\n", 2), 2); // the same descriptor keeps working after an error
  auto g = core.lock();
  EXPECT_THAT(sysfs_read(core, "/devices/foo0/online"), IsOkAndHolds("0\n"));
}

TEST_F(FuseFsTest, BindFileBindsAndCreatesDriverAndSubsystemLinks) {
  EXPECT_THAT(lstat_path(p("/devices/foo0/driver")), FailsWith(ENOENT));
  EXPECT_THAT(write_file(p("/bus/foo/drivers/food/bind"), "foo0"), IsOkAndHolds(4u));
  EXPECT_THAT(read_link(p("/devices/foo0/driver")), IsOkAndHolds("../../bus/foo/drivers/food"));
  EXPECT_THAT(read_link(p("/devices/foo0/subsystem")), IsOkAndHolds("../../bus/foo"));
  EXPECT_THAT(read_link(p("/bus/foo/drivers/food/foo0")),
              IsOkAndHolds("../../../../devices/foo0"));
  // A second bind of the same device: EBUSY (driver-core.md §2.4).
  EXPECT_THAT(write_file(p("/bus/foo/drivers/food/bind"), "foo0\n"), FailsWith(EBUSY));
  // unbind removes the link again.
  EXPECT_THAT(write_file(p("/bus/foo/drivers/food/unbind"), "foo0"), IsOkAndHolds(4u));
  server->flush_invalidations();
  EXPECT_THAT(lstat_path(p("/devices/foo0/driver")), FailsWith(ENOENT));
}

TEST_F(FuseFsTest, BindOfUnknownDeviceFailsWithEnodev) {
  EXPECT_THAT(write_file(p("/bus/foo/drivers/food/bind"), "nosuchdev"), FailsWith(ENODEV));
}

TEST_F(FuseFsTest, DriversProbeOfUnknownDeviceFailsWithEnodev) {
  EXPECT_THAT(write_file(p("/bus/foo/drivers_probe"), "nosuchdev\n"), FailsWith(ENODEV));
  EXPECT_THAT(write_file(p("/bus/foo/drivers_probe"), "foo2\n"), IsOkAndHolds(5u));
  EXPECT_THAT(read_link(p("/devices/foo2/driver")), IsOkAndHolds("../../bus/foo/drivers/food"));
}

TEST_F(FuseFsTest, GarbageWrittenToDeviceUeventFailsWithEinval) {
  EXPECT_THAT(write_file(p("/devices/foo0/uevent"), "garbage"), FailsWith(EINVAL));
  EXPECT_THAT(read_file(p("/devices/foo0/uevent")), IsOkAndHolds("MODALIAS=foo:foo0\n"));
}

// ---- permissions and forbidden operations -----------------------------------------------------

TEST_F(FuseFsTest, ReadOpenOfWriteOnlyFileFailsWithEaccesEvenForRoot) {
  EXPECT_THAT(open_path(p("/bus/foo/drivers_probe"), O_RDONLY), FailsWith(EACCES));
  EXPECT_THAT(open_path(p("/bus/foo/drivers_probe"), O_RDWR), FailsWith(EACCES));
  EXPECT_THAT(read_file(p("/bus/foo/drivers/food/bind")), FailsWith(EACCES));
}

TEST_F(FuseFsTest, WriteOpenOfReadOnlyFileFailsWithEaccesEvenForRoot) {
  EXPECT_THAT(open_path(p("/kernel/uevent_seqnum"), O_WRONLY), FailsWith(EACCES));
  EXPECT_THAT(open_path(p("/devices/foo0/hwtype"), O_RDWR), FailsWith(EACCES));
  EXPECT_THAT(write_file(p("/kernel/uevent_seqnum"), "5", O_WRONLY | O_TRUNC), FailsWith(EACCES));
}

TEST_F(FuseFsTest, EchoStyleOpenWithCreatAndTruncWritesTheAttribute) {
  EXPECT_THAT(write_file(p("/bus/foo/drivers_autoprobe"), "0\n", O_WRONLY | O_CREAT | O_TRUNC),
              IsOkAndHolds(2u));
  EXPECT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOkAndHolds("0\n"));
  EXPECT_THAT(check(::truncate(p("/bus/foo/drivers_autoprobe").c_str(), 0)), IsOk());
}

TEST_F(FuseFsTest, CreatingANewFileFailsWithEacces) {
  EXPECT_THAT(open_path(p("/bus/foo/newfile"), O_WRONLY | O_CREAT), FailsWith(EACCES));
  EXPECT_THAT(open_path(p("/newfile"), O_RDWR | O_CREAT | O_EXCL), FailsWith(EACCES));
  // O_EXCL on an existing name is the VFS's EEXIST.
  EXPECT_THAT(open_path(p("/bus/foo/drivers_autoprobe"), O_WRONLY | O_CREAT | O_EXCL),
              FailsWith(EEXIST));
}

TEST_F(FuseFsTest, NamespaceChangesFailWithEperm) {
  EXPECT_THAT(check(::mkdir(p("/bus/newdir").c_str(), 0755)), FailsWith(EPERM));
  EXPECT_THAT(check(::unlink(p("/bus/foo/drivers_autoprobe").c_str())), FailsWith(EPERM));
  EXPECT_THAT(check(::unlink(p("/bus/foo/devices/foo0").c_str())), FailsWith(EPERM));
  EXPECT_THAT(check(::rmdir(p("/bus/foo/drivers/food").c_str())), FailsWith(EPERM));
  EXPECT_THAT(check(::rename(p("/bus/foo/uevent").c_str(), p("/bus/foo/uevent2").c_str())),
              FailsWith(EPERM));
  EXPECT_THAT(check(::symlink("x", p("/bus/foo/link").c_str())), FailsWith(EPERM));
  EXPECT_THAT(check(::link(p("/bus/foo/uevent").c_str(), p("/bus/foo/hard").c_str())),
              FailsWith(EPERM));
  EXPECT_THAT(check(::mkfifo(p("/bus/fifo").c_str(), 0644)), FailsWith(EPERM));
}

TEST_F(FuseFsTest, ChmodChownAndTruncateToNonZeroFailWithEperm) {
  const std::string f = p("/bus/foo/drivers_autoprobe");
  EXPECT_THAT(check(::chmod(f.c_str(), 0600)), FailsWith(EPERM));
  EXPECT_THAT(check(::chown(f.c_str(), 1, 1)), FailsWith(EPERM));
  EXPECT_THAT(check(::truncate(f.c_str(), 5)), FailsWith(EPERM));
  EXPECT_THAT(check(::utimes(f.c_str(), nullptr)), FailsWith(EPERM));
  auto st = stat_path(f);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->st_mode & 07777, 0644u);
}

TEST_F(FuseFsTest, AccessFollowsGenericPermissionForRoot) {
  EXPECT_THAT(check(::access(p("/bus/foo/drivers_probe").c_str(), W_OK)), IsOk());
  EXPECT_THAT(check(::access(p("/bus/foo/drivers_autoprobe").c_str(), R_OK | W_OK)), IsOk());
  EXPECT_THAT(check(::access(p("/kernel/uevent_seqnum").c_str(), X_OK)), FailsWith(EACCES));
  EXPECT_THAT(check(::access(p("/bus/foo").c_str(), X_OK)), IsOk());
}

TEST_F(FuseFsTest, OtherUsersGetModeBitChecksThroughAllowOther) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  const std::string rw = p("/bus/foo/drivers_autoprobe");
  const std::string wo = p("/bus/foo/drivers_probe");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: only async-signal-safe calls; the exit code encodes the first mismatch.
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    int fd = ::open(rw.c_str(), O_RDONLY);
    if (fd < 0) ::_exit(11);
    char c;
    if (::read(fd, &c, 1) != 1 || (c != '0' && c != '1')) ::_exit(12);
    ::close(fd);
    if (::open(rw.c_str(), O_WRONLY) != -1 || errno != EACCES) ::_exit(13);
    if (::open(wo.c_str(), O_WRONLY) != -1 || errno != EACCES) ::_exit(14);
    if (::access(rw.c_str(), W_OK) != -1 || errno != EACCES) ::_exit(15);
    // vfs_truncate checks MAY_WRITE before the filesystem sees the size (issue 9 item 6).
    if (::truncate(rw.c_str(), 0) != -1 || errno != EACCES) ::_exit(16);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- tree changes reach the kernel's caches ------------------------------------------------------

TEST_F(FuseFsTest, RemovedDeviceDisappearsAndOpenFilesFailWithEnodev) {
  ASSERT_THAT(stat_path(p("/devices/foo1")), IsOk());
  ASSERT_THAT(stat_path(p("/devices/foo1/uevent")), IsOk());
  ASSERT_THAT(lstat_path(p("/bus/foo/devices/foo1")), IsOk());
  auto fd = open_path(p("/devices/foo1/uevent"), O_RDONLY);
  ASSERT_THAT(fd, IsOk());
  Fd guard(*fd);

  remove_device("foo1");
  server->flush_invalidations();

  EXPECT_THAT(stat_path(p("/devices/foo1")), FailsWith(ENOENT));
  EXPECT_THAT(stat_path(p("/devices/foo1/uevent")), FailsWith(ENOENT));
  EXPECT_THAT(lstat_path(p("/bus/foo/devices/foo1")), FailsWith(ENOENT));
  auto entries = list_dir(p("/bus/foo/devices"));
  ASSERT_THAT(entries, IsOk());
  EXPECT_THAT(names_of(*entries), Not(Contains("foo1")));
  // kernfs: a removed attribute's show() is not called any more.
  char buf[64];
  errno = 0;
  EXPECT_EQ(::pread(*fd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, ENODEV);
}

TEST_F(FuseFsTest, AddedDeviceAppears) {
  auto before = list_dir(p("/bus/foo/devices"));
  ASSERT_THAT(before, IsOk());
  EXPECT_THAT(names_of(*before), Not(Contains("foo9")));
  EXPECT_THAT(stat_path(p("/devices/foo9")), FailsWith(ENOENT));

  add_device("foo9");
  server->flush_invalidations();

  EXPECT_THAT(stat_path(p("/devices/foo9")), IsOk());
  EXPECT_THAT(read_link(p("/bus/foo/devices/foo9")), IsOkAndHolds("../../../devices/foo9"));
  EXPECT_THAT(read_file(p("/devices/foo9/hwtype")), IsOkAndHolds("14\n"));
  auto after = list_dir(p("/bus/foo/devices"));
  ASSERT_THAT(after, IsOk());
  EXPECT_THAT(names_of(*after), Contains("foo9"));
}

TEST_F(FuseFsTest, ReaddirResumesByNameWhenEntriesAreRemovedMidway) {
  std::vector<std::string> expected = {".", "..", "foo0", "foo1", "foo2"};
  for (int i = 0; i < 20; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "bar%02d", i);
    add_device(name);
    if (i != 5) expected.push_back(name);
  }
  server->flush_invalidations();
  auto fd = open_path(p("/bus/foo/devices"), O_RDONLY | O_DIRECTORY);
  ASSERT_THAT(fd, IsOk());
  Fd guard(*fd);

  // A small getdents buffer forces many READDIR requests, each resuming at an offset.
  std::vector<std::string> seen;
  bool removed = false;
  alignas(8) char buf[160];
  for (;;) {
    long n = ::syscall(SYS_getdents64, *fd, buf, sizeof buf);
    ASSERT_GE(n, 0) << std::strerror(errno);
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + pos);
      seen.emplace_back(d->d_name);
      pos += d->d_reclen;
    }
    if (!removed) {
      ASSERT_THAT(seen, Contains("bar01")) << "first chunk too small for this test";
      // One already listed, one still ahead: neither may make the listing skip another name.
      remove_device("bar01");
      remove_device("bar05");
      removed = true;
    }
  }
  EXPECT_THAT(seen, UnorderedElementsAreArray(expected));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size())
      << "an entry was listed twice";
}

// ---- concurrency and real clients -----------------------------------------------------------------

TEST_F(FuseFsTest, ConcurrentReadersSeeOnlyWholeValuesWhileAWriterToggles) {
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> threads;
  const std::string autoprobe = p("/bus/foo/drivers_autoprobe");
  const std::vector<std::string> attrs = {autoprobe, p("/devices/foo0/hwtype"),
                                          p("/devices/foo1/online"), p("/devices/foo2/uevent")};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::size_t i = static_cast<std::size_t>(t);
      while (!stop.load()) {
        const std::string& f = attrs[i++ % attrs.size()];
        auto v = read_file(f);
        ++reads;
        if (!v) {
          ++errors;
        } else if (f == autoprobe) {
          if (*v != "0\n" && *v != "1\n") ++errors;
        } else if (f == attrs[1]) {
          if (*v != "14\n") ++errors;
        } else if (f == attrs[2]) {
          if (*v != "0\n") ++errors;
        } else if (*v != "MODALIAS=foo:foo2\n") {
          ++errors;
        }
      }
    });
  }
  long writes = 0;
  std::thread writer([&] {
    while (!stop.load()) {
      auto r = write_file(autoprobe, writes % 2 ? "1" : "0");
      ++writes;
      if (!r || *r != 1) ++errors;
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (auto& t : threads) t.join();
  writer.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(reads.load(), 100);
  EXPECT_GT(writes, 10);
}

TEST_F(FuseFsTest, ShellCatAndEchoWork) {
  const std::string f = p("/bus/foo/drivers_autoprobe");
  EXPECT_EQ(run_sh("test \"$(cat " + f + ")\" = 1"), 0);
  EXPECT_EQ(run_sh("echo 0 > " + f), 0);
  EXPECT_THAT(read_file(f), IsOkAndHolds("0\n"));
  EXPECT_EQ(run_sh("cat " + f + " > /dev/null"), 0);
  // The shell reports the store's error as a failed redirection/echo.
  EXPECT_NE(run_sh("echo nosuchdev > " + p("/bus/foo/drivers/food/bind") + " 2>/dev/null"), 0);
  EXPECT_NE(run_sh("cat " + p("/bus/foo/drivers_probe") + " 2>/dev/null"), 0);
  EXPECT_EQ(run_sh("ls " + p("/bus/foo/devices") + " | grep -qx foo2"), 0);
}

// ---- mount lifecycle ---------------------------------------------------------------------------------

TEST_F(FuseFsTest, UnmountIsIdempotentAndLeavesAPlainDirectory) {
  ASSERT_TRUE(is_mounted(m_dir));
  EXPECT_GE(server->session_fd(), 0);
  server->unmount();
  server->unmount();
  EXPECT_FALSE(server->mounted());
  EXPECT_EQ(server->session_fd(), -1);
  EXPECT_FALSE(is_mounted(m_dir));
  EXPECT_THAT(stat_path(p("/bus")), FailsWith(ENOENT));
  // The tree no longer reports to the server: changes after unmount are harmless.
  add_device("foo7");
}

TEST_F(FuseFsTest, UnmountWithAnOpenFileDoesNotHang) {
  auto fd = open_path(p("/bus/foo/drivers_autoprobe"), O_RDONLY);
  ASSERT_THAT(fd, IsOk());
  Fd guard(*fd);
  auto dir = open_path(p("/devices/foo0"), O_RDONLY | O_DIRECTORY);
  ASSERT_THAT(dir, IsOk());
  Fd dguard(*dir);
  server->unmount();
  EXPECT_FALSE(is_mounted(m_dir));
  char buf[8];
  errno = 0;
  EXPECT_EQ(::pread(*fd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_EQ(server->handle_count(), 0u);
}

TEST_F(FuseFsTest, ExternalUmountWorksAndUnmountStillReturns) {
  ASSERT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOk());
  // Nothing of ours pins the mount: a plain umount(8) succeeds (no EBUSY).
  ASSERT_THAT(check(::umount2(m_dir.c_str(), 0)), IsOk());
  EXPECT_FALSE(is_mounted(m_dir));
  server->unmount(); // the session already ended; this must not hang
  EXPECT_FALSE(server->mounted());
}

TEST_F(FuseFsTest, UnmountReturnsWhenTheMountWasDetachedWhileAFileIsOpen) {
  auto fd = open_path(p("/bus/foo/drivers_autoprobe"), O_RDONLY);
  ASSERT_THAT(fd, IsOk());
  Fd guard(*fd);
  // Lazily detached: the path no longer leads to the mount, but the open file keeps the
  // connection alive, so the session loop does not end by itself.
  ASSERT_THAT(check(::umount2(m_dir.c_str(), MNT_DETACH)), IsOk());
  char buf[8];
  EXPECT_EQ(::pread(*fd, buf, sizeof buf, 0), 2); // still served
  const auto t0 = std::chrono::steady_clock::now();
  server->unmount();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  errno = 0;
  EXPECT_EQ(::pread(*fd, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, ENOTCONN);
}

TEST_F(FuseFsTest, UnmountRightAfterMountReturns) {
  server->unmount();
  auto again = fusefs::FuseServer::mount(core.tree(), m_dir);
  ASSERT_THAT(again, IsOk());
  (*again)->unmount();
  EXPECT_FALSE(is_mounted(m_dir));
}

// `apemu run` mounts the tree as its own /sys, where glibc reads /sys/devices/system/cpu/online
// by itself (get_nprocs from malloc's arena setup or sysconf), possibly while that thread holds a
// lock a request handler needs: found as a hung `apemu run` whose invalidation thread waited in
// such a LOOKUP while a handler held the model lock and waited for the thread's queue lock. With
// refuse_own_process, a request from any thread of the server's process is answered at once
// with ENOENT, without the model lock; other processes see the tree as before.
TEST_F(FuseFsTest, OwnProcessRequestsFailWithEnoentWithoutTheModelLock) {
  server->unmount();
  fusefs::Options o;
  o.refuse_own_process = true;
  auto srv = fusefs::FuseServer::mount(core.tree(), m_dir, o);
  ASSERT_THAT(srv, IsOk());
  server = std::move(*srv);

  std::atomic<int> err{-1};
  {
    auto g = core.lock(); // a handler that needed it would wait until the end of this scope
    std::thread t([&] {
      struct stat st;
      err = ::stat(p("/devices/system/cpu/online").c_str(), &st) == 0 ? 0 : errno;
    });
    const bool answered = wait_until([&] { return err.load() != -1; });
    g.unlock();
    t.join();
    EXPECT_TRUE(answered) << "a request of the server's own process waited for the model lock";
  }
  EXPECT_EQ(err.load(), ENOENT);
  auto own = stat_path(p("/bus/foo")); // an existing path, from this process
  ASSERT_FALSE(own);
  EXPECT_EQ(own.error().code, ENOENT);

  // Another process (a forked child) sees the tree.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct stat st;
    const bool bus = ::stat(p("/bus/foo/devices/foo1").c_str(), &st) == 0;
    const bool missing = ::stat(p("/devices/system").c_str(), &st) != 0 && errno == ENOENT;
    ::_exit(bus && missing ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST_F(FuseFsTest, LookupCountsAreKept) {
  const auto before = server->inode_count();
  ASSERT_THAT(stat_path(p("/devices/foo2/hwtype")), IsOk());
  EXPECT_GE(server->inode_count(), before + 3); // devices, foo2, hwtype
}

TEST_F(FuseFsTest, RequestCountsShowDirectIoReads) {
  auto before = server->request_counts();
  ASSERT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOk());
  ASSERT_THAT(read_file(p("/bus/foo/drivers_autoprobe")), IsOk());
  auto after = server->request_counts();
  // No page cache: both opens and every read(2), including the one at EOF, reach the server.
  EXPECT_EQ(after["open"] - before["open"], 2u);
  EXPECT_EQ(after["read"] - before["read"], 4u);
}

// ---- the inode table on its own ------------------------------------------------------------------

TEST(FuseFsInodeTable, CountsLookupsAndErasesAtZero) {
  core::Core core;
  auto lk = core.lock();
  auto node = core.tree().resolve("/bus");
  ASSERT_NE(node, nullptr);
  fusefs::InodeTable t;
  t.ref(node);
  t.ref(node);
  EXPECT_EQ(t.nlookup(node->id()), 2u);
  EXPECT_EQ(t.get(node->id()), node);
  t.forget(node->id(), 1);
  EXPECT_TRUE(t.contains(node->id()));
  t.forget(node->id(), 1);
  EXPECT_FALSE(t.contains(node->id()));
  EXPECT_EQ(t.get(node->id()), nullptr);
  EXPECT_EQ(t.size(), 0u);
  t.forget(kernfs::kRootId, 5); // the root's reference is implicit: ignored
}

TEST(FuseFsInodeTable, DeadNodeResolvesToNull) {
  fusefs::InodeTable t;
  kernfs::NodeId id;
  {
    core::Core core;
    auto lk = core.lock();
    auto node = core.tree().resolve("/kernel/uevent_seqnum");
    ASSERT_NE(node, nullptr);
    id = node->id();
    t.ref(node);
  }
  EXPECT_TRUE(t.contains(id)); // the kernel still holds it...
  EXPECT_EQ(t.get(id), nullptr); // ...but it answers ENOENT
  t.forget(id, 1);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FuseFsInodeTableDeathTest, ForgettingMoreThanLookedUpAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  core::Core core;
  auto lk = core.lock();
  auto node = core.tree().resolve("/bus");
  fusefs::InodeTable t;
  t.ref(node);
  EXPECT_DEATH(t.forget(node->id(), 2), "nlookup");
  EXPECT_DEATH(t.forget(node->id() + 1000, 1), "");
}

TEST(FuseFsMount, MountOnMissingDirectoryFailsWithEnoent) {
  core::Core core;
  auto r = fusefs::FuseServer::mount(core.tree(), "/tmp/apemu-fusefs-does-not-exist/x");
  EXPECT_THAT(r, FailsWith(ENOENT));
}

TEST(FuseFsMount, BadFsnameFailsWithEinval) {
  core::Core core;
  fusefs::Options opt;
  opt.fsname = "sysfs,default_permissions";
  EXPECT_THAT(fusefs::FuseServer::mount(core.tree(), "/tmp", opt), FailsWith(EINVAL));
}

TEST(FuseFsMount, MountOnAFileFailsWithEnotdir) {
  core::Core core;
  char tmpl[] = "/tmp/apemu-fusefs-file-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto r = fusefs::FuseServer::mount(core.tree(), tmpl);
  EXPECT_THAT(r, FailsWith(ENOTDIR));
  ::unlink(tmpl);
}

} // namespace
} // namespace apemu::testing
