#include "apemu/testbed/devtmpfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace apemu::testbed {

Result<std::unique_ptr<DevNodes>> DevNodes::start(core::Core& core, std::string dir) {
  std::unique_ptr<DevNodes> d(new DevNodes(core, std::move(dir)));
  auto lk = core.lock();
  for (core::Class* c : core.classes())
    for (core::Device* dev : c->devices())
      if (dev->devt_major() != 0) APEMU_TRY_VOID(d->make(dev->devnode_name(), dev->devt_major(), dev->devt_minor()));
  DevNodes* self = d.get();
  d->m_subscription = core.uevents().subscribe([self](const uevent::Event& ev) {
    const auto name = ev.get("DEVNAME");
    const auto major = ev.get("MAJOR"), minor = ev.get("MINOR");
    if (!name || !major || !minor) return;
    if (ev.action == uevent::Action::Add) {
      if (auto r = self->make(*name, std::stoul(*major), std::stoul(*minor)); !r)
        self->m_core->log().error("devtmpfs: " + *name + ": " + r.error().describe());
    } else if (ev.action == uevent::Action::Remove) {
      self->remove(*name);
    }
  });
  return d;
}

DevNodes::~DevNodes() {
  auto lk = m_core->lock();
  if (m_subscription) m_core->uevents().unsubscribe(m_subscription);
  const auto made = m_made;
  for (const auto& n : made) remove(n);
}

Result<void> DevNodes::make(const std::string& name, unsigned major, unsigned minor) {
  const std::string path = m_dir + "/" + name;
  if (::mknod(path.c_str(), S_IFCHR | 0600, ::makedev(major, minor)) == 0) {
    m_made.insert(name);
    return {};
  }
  if (errno == EEXIST) return Error(EEXIST, path + " exists (the host has such a node)");
  if (errno != EPERM) return Error(errno, "mknod " + path);
  // No CAP_MKNOD in the initial namespace: a nodev bind of the host's /dev/null.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Error(errno, "create " + path);
  ::close(fd);
  const std::string null = m_dir + "/null";
  if (::mount(null.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_NODEV | MS_NOSUID,
              nullptr) != 0) {
    const int err = errno;
    ::umount2(path.c_str(), MNT_DETACH);
    ::unlink(path.c_str());
    return Error(err, "bind " + null + " on " + path);
  }
  m_made.insert(name);
  m_mounted.insert(name);
  return {};
}

void DevNodes::remove(const std::string& name) {
  if (!m_made.erase(name)) return;
  const std::string path = m_dir + "/" + name;
  if (m_mounted.erase(name)) ::umount2(path.c_str(), MNT_DETACH);
  ::unlink(path.c_str());
}

} // namespace apemu::testbed
