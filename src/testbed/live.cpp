#include "apemu/testbed/live.h"

#include "apemu/fusefs/fuse_server.h"
#include "apemu/netlink/udev_db.h"
#include "apemu/netlink/udev_message.h"
#include "apemu/netlink/udev_sender.h"
#include "apemu/testbed/control.h"

namespace apemu::testbed {

namespace {

/// Writes a database entry for every registered bus device (what udevd has after coldplug).
void populate_db(core::Core& core, netlink::UdevDatabase& db) {
  const auto now = netlink::monotonic_usec();
  auto lk = core.lock();
  for (core::Bus* bus : core.buses())
    for (core::Device* d : bus->devices()) (void)db.add(bus->name(), d->name(), {}, now);
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
  fo.refuse_own_process = opt.refuse_own_process;
  if (opt.persist) {
    fo.after_store = [&tb] { return tb.persist(); };
    tb.runtime().set_after_work([&tb] {
      if (auto r = tb.persist(); !r)
        tb.core().log().error("apemu: state: " + r.error().describe());
    });
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
  if (m_fuse) m_fuse->unmount();
  m_sender.reset();
  m_fuse.reset();
}

LiveSession::~LiveSession() { stop(); }

} // namespace apemu::testbed
