// Module init and exit of vfio_ap: the root device, the matrix bus, device and driver, the AP
// queue driver and the mdev registration (drivers/s390/crypto/vfio_ap_drv.c and
// vfio_ap_mdev_register; vfio-ap.md §1.1, §1.5, §1.6; driver-core.md §4.7).
#include "apemu/base/assert.h"
#include "apemu/base/parse.h"
#include "apemu/vfio_ap/abi_names.h"
#include "private.h"

namespace apemu::vfio_ap {

Result<std::unique_ptr<VfioAp>> VfioAp::create(ap::ApBus& bus, mdev::MdevBus& mdevs) {
  bus.core().held();
  if (&mdevs.core() != &bus.core())
    return Error(EINVAL, "the mdev core and the AP bus belong to different machines");
  std::unique_ptr<VfioAp> v(new VfioAp(bus, mdevs));
  if (auto r = v->init(); !r) {
    v->teardown();
    return r.error();
  }
  return v;
}

VfioAp::~VfioAp() {
  core().held();
  teardown();
}

Result<void> VfioAp::init() {
  core::Core& c = core();
  const profile::KernelProfile& p = profile();
  // Step 2 of §1.5 (AP instructions available) always holds here: the machine has an AP bus.
  APEMU_TRY(m_root, c.root_device_register(std::string(abi::kVfioAp), std::string(abi::kVfioAp)));
  if (p.vfio_ap_matrix_bus) {
    // The private bus only gives the matrix device a subsystem; no match callback: everything
    // matches, so the matrix driver binds the device at registration.
    core::BusType matrix_bus;
    matrix_bus.name = std::string(abi::kMatrix);
    APEMU_TRY(m_matrix_bus, c.bus_register(std::move(matrix_bus)));
  }
  // The cached host configuration (PQAP(QCI) when facility 12 is installed, else zeros).
  set_info(m_bus->hw().qci());
  m_queues.resize(kMaxApIds * kMaxApIds);

  auto matrix = core::Device::create<core::Device>(std::string(abi::kMatrix), [](core::Device&) {});
  matrix->set_parent(m_root.get());
  if (m_matrix_bus) matrix->set_bus(m_matrix_bus);
  APEMU_TRY_VOID(c.device_add(*matrix));
  m_matrix = std::move(matrix);
  if (m_matrix_bus) {
    core::DriverOps drv;
    drv.name = std::string(abi::kVfioAp);
    drv.suppress_bind_attrs = true;
    drv.dev_groups = matrix_dev_groups();
    drv.probe = [](core::Device&) -> Result<void> { return {}; };
    APEMU_TRY(m_matrix_driver, c.driver_register(*m_matrix_bus, std::move(drv)));
  }

  ap::ApDriverOps apdrv;
  apdrv.base.name = std::string(abi::kVfioAp);
  apdrv.base.mod_name = std::string(abi::kVfioAp);
  apdrv.base.probe = [this](core::Device& d) { return queue_probe(d); };
  apdrv.base.remove = [this](core::Device& d) { queue_remove(d); };
  apdrv.base.dev_groups = queue_attr_groups();
  apdrv.card_driver = false;
  apdrv.default_driver = false;
  if (p.vfio_ap_dynamic_config) {
    apdrv.in_use = [this](const ApidMask& apm, const ApqiMask& aqm) {
      return resource_in_use(apm, aqm);
    };
    apdrv.on_config_changed = [this] { on_config_changed(); };
    apdrv.on_scan_complete = [this] { on_scan_complete(); };
  }
  APEMU_TRY(m_ap_driver, m_bus->register_driver(std::move(apdrv)));
  m_ap_driver->set_data(this);

  mdev::MdevDriverOps md;
  md.base.name = std::string(abi::kVfioApMdev);
  md.base.mod_name = std::string(abi::kVfioAp);
  md.base.probe = [this](core::Device& d) { return mdev_probe(d); };
  md.base.remove = [this](core::Device& d) { mdev_remove(d); };
  md.base.dev_groups = mdev_attr_groups();
  md.device_api = std::string(abi::kDeviceApi);
  md.max_instances = abi::kMaxInstances;
  md.exhausted_errno = p.mdev_exhausted_errno;
  md.unregister_vfio_dev = [this](mdev::MdevDevice& d) { return mdev_unregister_wait(d); };
  APEMU_TRY(m_mdev_driver, m_mdevs->register_driver(std::move(md)));
  // With the matrix bus the type prefix is the bound matrix driver's name; the bus-less 4.20
  // matrix device had its driver pointer forced to the AP driver `vfio_ap` (§1.6), which
  // apemu cannot do (binding only through the core), so the prefix is passed explicitly.
  APEMU_TRY(m_parent, m_mdevs->register_parent(
                          *m_matrix, *m_mdev_driver,
                          {{std::string(abi::kTypeSysfsName), std::string(abi::kTypeName)}},
                          m_matrix_bus ? std::string() : std::string(abi::kVfioAp)));
  return {};
}

void VfioAp::teardown() {
  core::Core& c = core();
  if (m_parent) {
    // Unregistering the parent removes every mdev. Their users (the Testbed's QEMU role stops
    // its guests first) must be gone: devices still open are released as the VFIO core does
    // for a process that exits.
    std::vector<std::string> open;
    for (const auto& m : m_list)
      if (m->opened()) open.push_back(m->name());
    for (const auto& name : open)
      if (MatrixMdev* m = find_mdev(name)) close_device(*m);
    m_mdevs->unregister_parent(m_parent);
    m_parent = nullptr;
  }
  if (m_mdev_driver) {
    m_mdevs->unregister_driver(m_mdev_driver);
    m_mdev_driver = nullptr;
  }
  if (m_ap_driver) {
    m_bus->unregister_driver(m_ap_driver);
    m_ap_driver = nullptr;
  }
  if (m_matrix_driver) {
    c.driver_unregister(*m_matrix_driver);
    m_matrix_driver = nullptr;
  }
  if (m_matrix) c.device_unregister(std::move(m_matrix));
  if (m_matrix_bus) {
    c.bus_unregister(*m_matrix_bus);
    m_matrix_bus = nullptr;
  }
  if (m_root) c.root_device_unregister(std::move(m_root));
}

mdev::MdevType& VfioAp::mdev_type() const { return *m_parent->types().front(); }

// ---- lookups ------------------------------------------------------------------------------------

MatrixMdev& VfioAp::mdev_of(core::Device& d) { return *static_cast<MatrixMdev*>(d.drvdata()); }

std::string VfioAp::mdev_prefix(const MatrixMdev& m) const {
  // dev_warn: "<driver> <device>: "
  return m.mdev().driver_string() + " " + m.name() + ": ";
}

void VfioAp::set_info(const ap::Qci& qci) {
  if (qci.available) {
    m_info = qci;
  } else {
    // No QCI: the cached block stays all zero (§1.5, §2.2).
    m_info = ap::Qci{};
    m_info.available = false;
    m_info.apsc = m_info.apxa = m_info.qact = m_info.rc8a = m_info.apsb = false;
    m_info.na = m_info.nd = 0;
  }
}

void VfioAp::init_maxes(ApMatrix& mx) const {
  // vfio_ap_matrix_init: Na/Nd with APXA, else 63/15/15 (§2.2).
  mx.apm_max = m_info.apxa ? m_info.na : 63;
  mx.aqm_max = m_info.apxa ? m_info.nd : 15;
  mx.adm_max = m_info.apxa ? m_info.nd : 15;
}

ApMatrix VfioAp::init_matrix() const {
  ApMatrix mx;
  init_maxes(mx);
  return mx;
}

std::vector<MatrixMdev*> VfioAp::mdevs() const {
  std::vector<MatrixMdev*> out;
  out.reserve(m_list.size());
  for (auto it = m_list.rbegin(); it != m_list.rend(); ++it) out.push_back(it->get());
  return out;
}

MatrixMdev* VfioAp::find_mdev(std::string_view uuid) const {
  auto parsed = parse_uuid(uuid);
  if (!parsed) return nullptr;
  const std::string name = parsed->str();
  for (const auto& m : m_list)
    if (m->name() == name) return m.get();
  return nullptr;
}

MatrixMdev* VfioAp::mdev_for_apqn(Apqn q) const {
  // The first mdev in list order (newest first) whose matrix holds the APQN.
  MatrixMdev* best = nullptr;
  for (MatrixMdev* m : m_by_apid[id(q.apid)])
    if (m->m_matrix.aqm.test(q.apqi) && (!best || m->seq() > best->seq())) best = m;
  return best;
}

std::vector<VfioApQueue*> VfioAp::linked_queues(const MatrixMdev& m) const {
  std::vector<VfioApQueue*> out;
  m.m_matrix.apm.for_each([&](Apid a) {
    m.m_matrix.aqm.for_each([&](Apqi d) {
      VfioApQueue* q = queue({a, d});
      if (q && q->m_mdev == &m) out.push_back(q);
    });
  });
  return out;
}

} // namespace apemu::vfio_ap
