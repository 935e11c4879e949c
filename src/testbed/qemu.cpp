// The QEMU role (see qemu.h): hw/vfio/ap.c's realize/unrealize/reset and its IRQ notifiers,
// through the VFIO device ioctls.
#include "apemu/testbed/qemu.h"

#include <cstring>

namespace apemu::testbed {

namespace {

void put_u32(std::vector<std::uint8_t>& b, std::size_t off, std::uint32_t v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}
std::uint32_t get_u32(const std::vector<std::uint8_t>& b, std::size_t off) {
  std::uint32_t v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

} // namespace

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

Result<void> Qemu::set_irq(vfio_ap::MatrixMdev& m, Guest& g, std::uint32_t index,
                           std::shared_ptr<EventFd> efd) {
  namespace vfio = vfio_ap::vfio;
  if (efd) {
    // VFIO_DEVICE_GET_IRQ_INFO: the index must have at least one IRQ.
    std::vector<std::uint8_t> info(vfio::kIrqInfoSize, 0);
    put_u32(info, 0, vfio::kIrqInfoSize);
    put_u32(info, 8, index);
    APEMU_TRY_VOID(m_vfio->device_ioctl(m, vfio::kDeviceGetIrqInfo, info));
    if (get_u32(info, 12) < 1) return Error(EINVAL, "IRQ index without IRQs");
  }
  // VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER, start 0, count 1, one s32 fd.
  std::vector<std::uint8_t> set(vfio::kIrqSetHeaderSize + 4, 0);
  put_u32(set, 0, static_cast<std::uint32_t>(set.size()));
  put_u32(set, 4, vfio::kIrqSetDataEventfd | vfio::kIrqSetActionTrigger);
  put_u32(set, 8, index);
  put_u32(set, 12, 0);
  put_u32(set, 16, 1);
  const int fd = efd ? g.fds->install(efd) : -1;
  put_u32(set, vfio::kIrqSetHeaderSize, static_cast<std::uint32_t>(fd));
  return m_vfio->device_ioctl(m, vfio::kDeviceSetIrqs, set, g.fds.get());
}

Result<std::shared_ptr<kvm::Kvm>> Qemu::start(vfio_ap::MatrixMdev& m, GuestOptions opt) {
  namespace vfio = vfio_ap::vfio;
  m_vfio->core().held();
  const std::string uuid = m.name();
  if (m_guests.count(uuid) || m.opened())
    return Error(EBUSY, "mdev " + uuid + " is already used by a guest");
  if (opt.name.empty()) opt.name = "guest-" + uuid.substr(0, 8);
  kvm::KvmConfig cfg = opt.vm;
  cfg.format = opt.format;
  cfg.has_crycb = opt.has_crycb;
  if (!m_machine) cfg.memory = 0;
  auto kvm = std::make_shared<kvm::Kvm>(opt.name, cfg, m_machine, m_vfio->profile());
  // vfio_ap_realize: attach (open_device with the VM's KVM), then the IRQ notifiers.
  APEMU_TRY_VOID(m_vfio->open_device(m, kvm));
  Guest g{uuid, opt.name, kvm, nullptr, nullptr, opt.honour_requests,
          std::make_shared<FdTable>(), nullptr};
  std::vector<std::uint8_t> info(vfio::kDeviceInfoSize, 0);
  put_u32(info, 0, vfio::kDeviceInfoSize);
  if (auto r = m_vfio->device_ioctl(m, vfio::kDeviceGetInfo, info); !r) {
    m_vfio->close_device(m);
    return r.error();
  }
  const std::uint32_t num_irqs = get_u32(info, 12);
  Runtime& rt = m_vfio->core().runtime();
  // A failing notifier registration is only a warning in QEMU.
  if (num_irqs > 0) {
    // The notifier reads the eventfd on QEMU's main loop: a posted reaction.
    g.request = std::make_shared<EventFd>(rt, [this, uuid] { on_request(uuid); });
    if (auto r = set_irq(m, g, 0, g.request); !r) {
      m_vfio->core().log().warn("apemu: qemu: " + opt.name + ": request notifier: " +
                                r.error().describe());
      g.request.reset();
    }
  }
  if (num_irqs > 1) {
    g.cfg_chg = std::make_shared<EventFd>(rt); // counted; the guest would see a CRW
    if (auto r = set_irq(m, g, 1, g.cfg_chg); !r) {
      m_vfio->core().log().warn("apemu: qemu: " + opt.name + ": config-change notifier: " +
                                r.error().describe());
      g.cfg_chg.reset();
    }
  }
  if (m_machine && cfg.memory) g.os = std::make_shared<guest::Guest>(kvm, rt);
  m_guests.emplace(uuid, std::move(g));
  m_vfio->core().log().info("apemu: guest " + opt.name + " started with mdev " + uuid);
  return kvm;
}

Result<void> Qemu::stop(std::string uuid) {
  m_vfio->core().held();
  auto it = m_guests.find(uuid);
  if (it == m_guests.end()) return Error(ENODEV, "no guest uses mdev " + uuid);
  Guest g = std::move(it->second);
  m_guests.erase(it);
  g.os.reset(); // the guest OS is gone with its VM
  vfio_ap::MatrixMdev* m = m_vfio->find_mdev(uuid);
  if (m) {
    // vfio_ap_unrealize: unregister the notifiers (SET_IRQS with fd -1), then detach (close).
    if (m->req_trigger()) (void)set_irq(*m, g, 0, nullptr);
    if (m->cfg_chg_trigger()) (void)set_irq(*m, g, 1, nullptr);
    m_vfio->close_device(*m); // `m` may be gone now (a waiting `remove` completed)
  }
  m_vfio->core().log().info("apemu: guest " + g.name + " stopped, mdev " + uuid + " released");
  return {};
}

Result<std::shared_ptr<Completion>> Qemu::reset(const std::string& uuid) {
  m_vfio->core().held();
  if (!m_guests.count(uuid)) return Error(ENODEV, "no guest uses mdev " + uuid);
  vfio_ap::MatrixMdev* m = m_vfio->find_mdev(uuid);
  if (!m) return Error(ENODEV, "no mdev " + uuid);
  std::shared_ptr<Completion> pending;
  std::vector<std::uint8_t> none;
  auto r = m_vfio->device_ioctl(*m, vfio_ap::vfio::kDeviceReset, none, nullptr, &pending);
  if (!r && r.error().code == kEIocbQueued && pending) return pending;
  auto done = std::make_shared<Completion>();
  done->complete(std::move(r));
  return done;
}

void Qemu::on_request(const std::string& uuid) {
  // vfio_ap_req_notifier_handler: unplug the device, which closes it.
  const Guest* g = guest(uuid);
  if (!g || !g->honour_requests) return;
  (void)stop(uuid);
}

} // namespace apemu::testbed
