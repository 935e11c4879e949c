// The QEMU role (see qemu.h): hw/vfio/ap.c's realize/unrealize and its request notifier.
#include "apemu/testbed/qemu.h"

namespace apemu::testbed {

Qemu::~Qemu() {
  while (!m_guests.empty()) (void)stop(m_guests.begin()->first);
}

const Qemu::Guest* Qemu::guest(const std::string& uuid) const {
  auto it = m_guests.find(uuid);
  return it == m_guests.end() ? nullptr : &it->second;
}

std::vector<const Qemu::Guest*> Qemu::guests() const {
  std::vector<const Guest*> out;
  for (const auto& [uuid, g] : m_guests) out.push_back(&g);
  return out;
}

Result<std::shared_ptr<kvm::Kvm>> Qemu::start(vfio_ap::MatrixMdev& m, GuestOptions opt) {
  m_vfio->core().held();
  const std::string uuid = m.name();
  if (m_guests.count(uuid) || m.opened())
    return Error(EBUSY, "mdev " + uuid + " is already used by a guest");
  if (opt.name.empty()) opt.name = "guest-" + uuid.substr(0, 8);
  auto kvm = std::make_shared<kvm::Kvm>(opt.name, opt.format, opt.has_crycb);
  // vfio_ap_realize: attach (open_device with the VM's KVM), then the IRQ notifiers.
  APEMU_TRY_VOID(m_vfio->open_device(m, kvm));
  Guest g{uuid, opt.name, kvm, nullptr, nullptr, opt.honour_requests};
  Runtime& rt = m_vfio->core().runtime();
  if (m_vfio->profile().vfio_ap_request_irq) {
    // The notifier reads the eventfd on QEMU's main loop: a posted reaction.
    g.request = std::make_shared<EventFd>(rt, [this, uuid] { on_request(uuid); });
    (void)m_vfio->set_irq_eventfd(m, vfio_ap::IrqIndex::Request, g.request);
  }
  if (m_vfio->profile().vfio_ap_cfg_chg_irq) {
    g.cfg_chg = std::make_shared<EventFd>(rt); // counted; the guest would see a CRW
    (void)m_vfio->set_irq_eventfd(m, vfio_ap::IrqIndex::CfgChg, g.cfg_chg);
  }
  m_guests.emplace(uuid, std::move(g));
  m_vfio->core().log().info("apemu: guest " + opt.name + " started with mdev " + uuid);
  return kvm;
}

Result<void> Qemu::stop(const std::string& uuid) {
  m_vfio->core().held();
  auto it = m_guests.find(uuid);
  if (it == m_guests.end()) return Error(ENODEV, "no guest uses mdev " + uuid);
  const std::string name = it->second.name;
  m_guests.erase(it);
  vfio_ap::MatrixMdev* m = m_vfio->find_mdev(uuid);
  if (m) {
    // vfio_ap_unrealize: unregister the notifiers (SET_IRQS with fd -1), then detach (close).
    if (m->req_trigger()) (void)m_vfio->set_irq_eventfd(*m, vfio_ap::IrqIndex::Request, nullptr);
    if (m->cfg_chg_trigger()) (void)m_vfio->set_irq_eventfd(*m, vfio_ap::IrqIndex::CfgChg, nullptr);
    m_vfio->close_device(*m); // `m` may be gone now (a waiting `remove` completed)
  }
  m_vfio->core().log().info("apemu: guest " + name + " stopped, mdev " + uuid + " released");
  return {};
}

void Qemu::on_request(const std::string& uuid) {
  // vfio_ap_req_notifier_handler: unplug the device, which closes it.
  const Guest* g = guest(uuid);
  if (!g || !g->honour_requests) return;
  (void)stop(uuid);
}

} // namespace apemu::testbed
