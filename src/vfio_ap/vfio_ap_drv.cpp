// Module init and exit of vfio_ap: the root device, the matrix bus, device and driver, the AP
// queue driver and the mdev registration (drivers/s390/crypto/vfio_ap_drv.c and
// vfio_ap_mdev_register; vfio-ap.md §1.1, §1.5, §1.6; driver-core.md §4.7).
#include "apemu/vfio_ap/abi_names.h"
#include "apemu/vfio_ap/vfio_ap.h"
#include "vfio_ap_private.h"

namespace apemu::vfio_ap {

Result<KernelProfile> parse_kernel_profile(std::string_view text) {
  if (text == "6.16") return KernelProfile::V6_16;
  if (text == "4.20") return KernelProfile::V4_20;
  return Error(EINVAL, "unknown kernel profile '" + std::string(text) + "' (6.16 or 4.20)");
}

std::string_view kernel_profile_name(KernelProfile p) {
  return p == KernelProfile::V4_20 ? "4.20" : "6.16";
}

Result<std::unique_ptr<VfioAp>> VfioAp::create(ap::ApBus& bus, mdev::MdevBus& mdevs,
                                               VfioApOptions opt) {
  bus.core().held();
  if (mdevs.legacy() != (opt.profile == KernelProfile::V4_20))
    return Error(EINVAL, "the mdev core generation does not match the vfio_ap profile");
  std::unique_ptr<VfioAp> v(new VfioAp(bus, mdevs, opt));
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
  // Step 2 of §1.5 (AP instructions available) always holds here: the machine has an AP bus.
  APEMU_TRY(m_root, c.root_device_register(std::string(abi::kVfioAp), std::string(abi::kVfioAp)));
  if (!legacy()) {
    // The private bus only gives the matrix device a subsystem; no match callback: everything
    // matches, so the matrix driver binds the device at registration.
    core::BusType matrix_bus;
    matrix_bus.name = std::string(abi::kMatrix);
    APEMU_TRY(m_matrix_bus, c.bus_register(std::move(matrix_bus)));
  }
  // The cached host configuration (PQAP(QCI) when facility 12 is installed, else zeros).
  set_info(m_bus->hw().qci());
  m_queues.resize(ap::kMaxApIds * ap::kMaxApIds);

  auto matrix = core::Device::create<core::Device>(std::string(abi::kMatrix), [](core::Device&) {});
  matrix->set_parent(m_root.get());
  if (m_matrix_bus) matrix->set_bus(m_matrix_bus);
  APEMU_TRY_VOID(c.device_add(*matrix));
  m_matrix = std::move(matrix);
  if (!legacy()) {
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
  apdrv.card_driver = false;
  apdrv.default_driver = false;
  if (!legacy()) {
    apdrv.base.dev_groups = queue_attr_groups();
    apdrv.in_use = [this](const ap::Mask256& apm, const ap::Mask256& aqm) {
      return resource_in_use(apm, aqm);
    };
    apdrv.on_config_changed = [this] { on_config_changed(); };
    apdrv.on_scan_complete = [this] { on_scan_complete(); };
  }
  APEMU_TRY(m_ap_driver, m_bus->register_driver(std::move(apdrv)));

  mdev::MdevDriverOps md;
  md.base.name = std::string(abi::kVfioApMdev);
  md.base.mod_name = std::string(abi::kVfioAp);
  md.base.probe = [this](core::Device& d) { return mdev_probe(d); };
  md.base.remove = [this](core::Device& d) { mdev_remove(d); };
  md.base.dev_groups = mdev_attr_groups();
  md.device_api = std::string(abi::kDeviceApi);
  md.max_instances = abi::kMaxInstances;
  // ≤6.0 vfio_ap counted instances itself and answered EPERM (§1.4).
  md.exhausted_errno = legacy() ? EPERM : EUSERS;
  md.unregister_vfio_dev = [this](mdev::MdevDevice& d) { return mdev_unregister_wait(d); };
  APEMU_TRY(m_mdev_driver, m_mdevs->register_driver(std::move(md)));
  // 6.16: the prefix is the bound matrix driver's name; 4.20: the kernel had forced the
  // matrix device's driver pointer to the AP driver `vfio_ap` (see the header).
  APEMU_TRY(m_parent, m_mdevs->register_parent(
                          *m_matrix, *m_mdev_driver,
                          {{std::string(abi::kTypeSysfsName), std::string(abi::kTypeName)}},
                          legacy() ? std::string(abi::kVfioAp) : std::string()));
  return {};
}

void VfioAp::teardown() {
  core::Core& c = core();
  if (m_parent) {
    // Unregistering the parent removes every mdev; their users must have closed them (the
    // kernel would block here), so detach the guests first.
    for (MatrixMdev* m : mdevs())
      if (m->opened()) (void)guest_stop(*m);
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

} // namespace apemu::vfio_ap
