// The udev database writer (systemd device_update_db, device_read_db).
#include "apemu/netlink/udev_db.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "apemu/netlink/udev_message.h"

namespace apemu::netlink {
namespace {

Result<void> make_dir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0) return {};
  const int err = errno;
  if (err != EEXIST) return Error(err, "mkdir " + path);
  struct stat st {};
  if (stat(path.c_str(), &st) < 0) return Error(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return Error(ENOTDIR, path + " exists and is not a directory");
  return {};
}

Result<void> write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error(errno, "write");
    }
    off += static_cast<std::size_t>(n);
  }
  return {};
}

bool valid_property(const std::string& key, const std::string& value) {
  return !key.empty() && key.find_first_of("=\n") == std::string::npos &&
         value.find('\n') == std::string::npos;
}

} // namespace

UdevDatabase::UdevDatabase(std::string root) : m_root(std::move(root)) {}

std::string UdevDatabase::data_path(std::string_view id) const {
  std::string p = m_root + "/data/";
  p.append(id);
  return p;
}

Result<void> UdevDatabase::init() {
  std::lock_guard lock(m_mutex);
  APEMU_TRY_VOID(make_dir(m_root));
  for (const char* sub : {"/data", "/tags", "/links"})
    APEMU_TRY_VOID(make_dir(m_root + sub));
  const std::string control = m_root + "/control";
  // Only existence matters to sd-device (access(F_OK)); keep whatever is already there, which
  // may be a real udevd's socket.
  const int fd = open(control.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (fchmod(fd, 0644) < 0) { // against the umask
      const int err = errno;
      close(fd);
      return Error(err, "fchmod " + control);
    }
    close(fd);
  } else if (errno != EEXIST) {
    return Error(errno, "create " + control);
  }
  return {};
}

Result<std::string> UdevDatabase::path_for(std::string_view subsystem, std::string_view sysname,
                                           std::string_view driver_subsystem) const {
  APEMU_TRY(auto id, device_id(subsystem, sysname, driver_subsystem));
  return data_path(id);
}

Result<void> UdevDatabase::write_locked(const std::string& path, const Properties& properties,
                                        std::uint64_t usec_initialized) {
  APEMU_TRY(std::string tmp, write_temp_locked(path, properties, usec_initialized));
  if (rename(tmp.c_str(), path.c_str()) < 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return Error(err, "rename " + tmp);
  }
  return {};
}

Result<std::string> UdevDatabase::write_temp_locked(const std::string& path,
                                                    const Properties& properties,
                                                    std::uint64_t usec_initialized) {
  std::string text;
  if (usec_initialized != 0) text += "I:" + std::to_string(usec_initialized) + "\n";
  for (const auto& [key, value] : properties) {
    if (!valid_property(key, value)) return Error(EINVAL, "invalid persisted property " + key);
    text += "E:" + key + "=" + value + "\n";
  }
  text += "V:" + std::to_string(kUdevDatabaseVersion) + "\n";

  // Same directory as the target so that rename() is atomic (fopen_temporary's ".#" prefix).
  const std::size_t slash = path.rfind('/');
  std::string tmp = path.substr(0, slash + 1) + ".#" + path.substr(slash + 1) + "XXXXXX";
  const int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Error(errno, "mkostemp " + tmp);
  auto fail = [&](Error e) -> Error {
    close(fd);
    unlink(tmp.c_str());
    return e;
  };
  if (fchmod(fd, 0644) < 0) return fail(Error(errno, "fchmod " + tmp));
  if (auto r = write_all(fd, text); !r) return fail(std::move(r.error()));
  if (close(fd) < 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return Error(err, "close " + tmp);
  }
  return tmp;
}

Result<std::uint64_t> UdevDatabase::read_usec_locked(const std::string& path) const {
  FILE* f = fopen(path.c_str(), "re");
  if (!f) return Error(errno, "open " + path);
  std::uint64_t usec = 0;
  char* line = nullptr;
  std::size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    std::string_view l(line, static_cast<std::size_t>(n));
    if (l.back() == '\n') l.remove_suffix(1);
    if (l.size() < 3 || l.substr(0, 2) != "I:") continue;
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(l.data() + 2, l.data() + l.size(), v);
    if (ec == std::errc() && end == l.data() + l.size()) usec = v; // invalid lines are skipped
  }
  const bool failed = ferror(f) != 0;
  free(line);
  fclose(f);
  if (failed) return Error(EIO, "read " + path);
  return usec;
}

Result<void> UdevDatabase::add(std::string_view subsystem, std::string_view sysname,
                               const Properties& properties, std::uint64_t usec_initialized,
                               std::string_view driver_subsystem) {
  APEMU_TRY(auto path, path_for(subsystem, sysname, driver_subsystem));
  std::lock_guard lock(m_mutex);
  return write_locked(path, properties, usec_initialized);
}

Result<void> UdevDatabase::add_coldplug(const std::vector<DeviceName>& devices,
                                        std::uint64_t usec_initialized) {
  if (devices.empty()) return {};
  std::lock_guard lock(m_mutex);
  // One file, then a link per device. The temporary name (".#coldplugXXXXXX" in data/) keeps
  // the shared inode reachable until every link exists; it goes at the end either way.
  APEMU_TRY(std::string shared, write_temp_locked(data_path("coldplug"), {}, usec_initialized));
  Result<void> out;
  auto failed = [&](Error e) {
    if (out) out = std::move(e);
  };
  // Names relative to the data directory: no path walk per link.
  const std::string data = m_root + "/data";
  const int dfd = open(data.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    const int err = errno;
    unlink(shared.c_str());
    return Error(err, "open " + data);
  }
  const std::string shared_name = shared.substr(shared.rfind('/') + 1);
  const std::string again = shared_name + ".1";
  for (const auto& [subsystem, sysname] : devices) {
    auto id = device_id(subsystem, sysname, {});
    if (!id) {
      failed(std::move(id.error()));
      continue;
    }
    if (linkat(dfd, shared_name.c_str(), dfd, id->c_str(), 0) == 0) continue;
    if (errno != EEXIST) {
      failed(Error(errno, "link " + data_path(*id)));
      continue;
    }
    // An entry from an earlier daemon: replace it as atomically as add() would.
    if (linkat(dfd, shared_name.c_str(), dfd, again.c_str(), 0) < 0 ||
        renameat(dfd, again.c_str(), dfd, id->c_str()) < 0) {
      failed(Error(errno, "link " + data_path(*id)));
      unlinkat(dfd, again.c_str(), 0);
    }
  }
  unlinkat(dfd, shared_name.c_str(), 0);
  close(dfd);
  return out;
}

Result<void> UdevDatabase::remove(std::string_view subsystem, std::string_view sysname,
                                  std::string_view driver_subsystem) {
  APEMU_TRY(auto path, path_for(subsystem, sysname, driver_subsystem));
  std::lock_guard lock(m_mutex);
  if (unlink(path.c_str()) < 0) return Error(errno, "unlink " + path);
  return {};
}

Result<std::uint64_t> UdevDatabase::usec_initialized(std::string_view subsystem,
                                                     std::string_view sysname,
                                                     std::string_view driver_subsystem) const {
  APEMU_TRY(auto path, path_for(subsystem, sysname, driver_subsystem));
  std::lock_guard lock(m_mutex);
  return read_usec_locked(path);
}

Result<std::uint64_t> UdevDatabase::apply_locked(const uevent::Event& ev) {
  const std::string subsystem = ev.subsystem();
  std::string bus;
  if (subsystem == "drivers") {
    auto b = driver_subsystem_from_devpath(ev.devpath);
    if (!b) return std::uint64_t{0};
    bus = std::move(*b);
  } else if (subsystem.empty() || ev.devpath.rfind("/devices/", 0) != 0) {
    return std::uint64_t{0}; // bus, module and class kobjects
  }
  APEMU_TRY(auto path, path_for(subsystem, devpath_sysname(ev.devpath), bus));

  auto existing = read_usec_locked(path);
  if (!existing && existing.error().code != ENOENT) return std::move(existing.error());

  switch (ev.action) {
  case uevent::Action::Remove:
    if (!existing) return std::uint64_t{0};
    if (unlink(path.c_str()) < 0 && errno != ENOENT) return Error(errno, "unlink " + path);
    return *existing;
  case uevent::Action::Move:
    if (auto old = ev.get("DEVPATH_OLD"); !existing && old) {
      auto old_path = path_for(subsystem, devpath_sysname(*old), bus);
      if (old_path && *old_path != path) {
        // Renaming carries I: and any persisted E: records over, as udevd copies the old
        // device's database into the renamed one.
        if (auto usec = read_usec_locked(*old_path)) {
          if (rename(old_path->c_str(), path.c_str()) < 0) return Error(errno, "rename " + path);
          return *usec;
        }
      }
    }
    break;
  default:
    break;
  }
  if (existing) return *existing; // udevd keeps the first USEC_INITIALIZED
  const std::uint64_t now = monotonic_usec();
  APEMU_TRY_VOID(write_locked(path, {}, now));
  return now;
}

std::uint64_t UdevDatabase::on_event(const uevent::Event& ev) {
  std::lock_guard lock(m_mutex);
  auto r = apply_locked(ev);
  if (r) return *r;
  ++m_errors;
  m_last_error = r.error();
  return 0;
}

std::uint64_t UdevDatabase::errors() const {
  std::lock_guard lock(m_mutex);
  return m_errors;
}

Error UdevDatabase::last_error() const {
  std::lock_guard lock(m_mutex);
  return m_last_error;
}

} // namespace apemu::netlink
