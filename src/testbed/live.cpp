#include "apemu/testbed/live.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "apemu/fusefs/fuse_server.h"
#include "apemu/netlink/udev_db.h"
#include "apemu/netlink/udev_message.h"
#include "apemu/netlink/udev_sender.h"
#include "apemu/testbed/control.h"

namespace apemu::testbed {

namespace {

/// Writes a database entry for every registered bus device (what udevd has after coldplug).
/// The names are taken under the machine lock, the files written without it. A device whose
/// entry cannot be written is reported uninitialized by sd-device, nothing worse.
void populate_db(core::Core& core, netlink::UdevDatabase& db) {
  std::vector<netlink::UdevDatabase::DeviceName> names;
  {
    auto lk = core.lock();
    for (core::Bus* bus : core.buses())
      for (core::Device* d : bus->devices()) names.emplace_back(bus->name(), d->name());
  }
  (void)db.add_coldplug(names, netlink::monotonic_usec());
}

/// Whether fusermount3 lets an ordinary user mount with allow_other (fuse.conf(5)).
bool fuse_conf_allows_other() {
  std::ifstream in("/etc/fuse.conf");
  std::string line;
  while (std::getline(in, line)) {
    const auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    const auto e = line.find_last_not_of(" \t\r");
    if (line.substr(b, e - b + 1) == "user_allow_other") return true;
  }
  return false;
}

} // namespace

Result<std::unique_ptr<LiveSession>> LiveSession::start(Testbed& tb, const LiveOptions& opt) {
  std::unique_ptr<LiveSession> s(new LiveSession());
  s->m_tb = &tb;
  if (!opt.udev_root.empty()) {
    s->m_db = std::make_unique<netlink::UdevDatabase>(opt.udev_root);
    APEMU_TRY_VOID(s->m_db->init());
    populate_db(tb.core(), *s->m_db);
  }
  if (opt.netlink || s->m_db) {
    netlink::UdevSenderOptions so;
    netlink::UdevDatabase* db = s->m_db.get();
    so.prepare = [db](const uevent::Event& ev) {
      return netlink::UdevExtras{db ? db->on_event(ev) : netlink::monotonic_usec(), {}};
    };
    // Without netlink the sender only maintains the database (group 0 sends nothing).
    if (!opt.netlink) so.group = 0;
    so.log = &tb.core().log();
    APEMU_TRY(s->m_sender, netlink::UdevSender::create(std::move(so)));
    auto lk = tb.core().lock();
    netlink::UdevSender* sender = s->m_sender.get();
    s->m_subscription =
        tb.core().uevents().subscribe([sender](const uevent::Event& ev) { sender->enqueue(ev); });
  }
  // The control socket first: a path held by a live daemon must fail before anything is mounted.
  if (!opt.control_socket.empty()) {
    ControlServerOptions co;
    co.path = opt.control_socket;
    LiveSession* self = s.get();
    co.after_command = [self] { self->flush(); };
    if (opt.persist) co.commit = [&tb] { return tb.persist(); };
    APEMU_TRY(s->m_control, ControlServer::start(tb, std::move(co)));
  }
  fusefs::Options fo;
  fo.on_lost = opt.on_mount_lost;
  // Whoever serves the tree is its root (0 for root and inside `apemu run`'s user namespace).
  // An ordinary user mounts through fusermount3, which allows allow_other only when fuse.conf
  // says so; without it the mount is the user's alone, as FUSE mounts of users are.
  fo.owner_uid = ::geteuid();
  fo.owner_gid = ::getegid();
  fo.allow_other = fo.owner_uid == 0 || fuse_conf_allows_other();
  fo.refuse_own_process = opt.refuse_own_process;
  if (opt.persist) {
    fo.after_store = [&tb] { return tb.persist(); };
    tb.runtime().set_after_work([&tb] {
      if (auto r = tb.persist(); !r)
        tb.core().log().error("apemu: state: " + r.error().describe());
    });
  }
  if (!opt.dev_dir.empty()) {
    APEMU_TRY(s->m_dev_nodes, DevNodes::start(tb.core(), opt.dev_dir));
  }
  APEMU_TRY(s->m_fuse, fusefs::FuseServer::mount(tb.core().tree(), opt.mountpoint, fo));
  // Timers (the AP bus config timer, delayed hardware effects) and user-space reactions run on
  // the executor thread from now on.
  tb.runtime().start();
  return s;
}

void LiveSession::flush() {
  if (m_sender) m_sender->flush();
  if (m_fuse) m_fuse->flush_invalidations();
}

void LiveSession::stop() {
  m_control.reset();
  if (m_tb) m_tb->runtime().stop();
  if (m_subscription) {
    auto lk = m_tb->core().lock();
    m_tb->core().uevents().unsubscribe(m_subscription);
    m_subscription = 0;
  }
  if (m_sender) m_sender->flush();
  m_dev_nodes.reset();
  if (m_fuse) m_fuse->unmount();
  m_sender.reset();
  m_fuse.reset();
}

LiveSession::~LiveSession() { stop(); }

} // namespace apemu::testbed
