// The mdev core: bus and driver registration, parents and types, device creation and removal
// (drivers/vfio/mdev/mdev_core.c, mdev_driver.c; driver-core.md §2.8, §4.8; vfio-ap.md §1.2,
// §1.4, §3.11, §5.1, §5.4). See mdev.h for the two modelled generations.
#include "apemu/mdev/mdev.h"

#include <algorithm>

#include "apemu/base/assert.h"
#include "apemu/mdev/abi_names.h"
#include "mdev_sysfs.h"

namespace apemu::mdev {

using uevent::Action;

namespace {

/// dev_info/dev_warn prefix: "<driver string> <device name>: ".
std::string dev_prefix(const core::Device& d, const std::string& driver_string) {
  return driver_string + " " + d.name() + ": ";
}

} // namespace

MdevDevice::MdevDevice(core::DeviceKey k, MdevBus& bus, MdevType& type, const Uuid& uuid)
    : Device(k, uuid.str(),
             [](core::Device& d) {
               auto& m = static_cast<MdevDevice&>(d);
               m.m_bus->device_released(m);
             }),
      m_bus(&bus), m_type(&type), m_uuid(uuid) {}

MdevType* MdevParent::find_type(std::string_view dir_name) const {
  for (const auto& t : m_types)
    if (t->dir_name() == dir_name) return t.get();
  return nullptr;
}

// ---- bus ---------------------------------------------------------------------------------------

Result<std::unique_ptr<MdevBus>> MdevBus::create(core::Core& core) {
  core.held();
  std::unique_ptr<MdevBus> mb(new MdevBus(core));
  const bool vendor_binds = mb->vendor_driver_binds();
  MdevBus* self = mb.get();
  core::BusType type;
  type.name = std::string(abi::kMdevBus);
  if (vendor_binds) {
    // No automatic matching: only mdev_device_create's explicit attach binds.
    type.match = [](core::Device&, const core::Driver&) { return 0; };
  } else {
    // ≤5.x: no match callback (everything matches, so vfio_mdev binds on add); the bus probe
    // attaches the mdev to its own IOMMU group before the driver's probe (mdev_attach_iommu).
    type.probe = [self](core::Device& d) -> Result<void> {
      APEMU_TRY_VOID(self->iommu_group_add_device(to_mdev_device(d)));
      return {};
    };
    type.remove = [self](core::Device& d) { self->iommu_group_remove_device(to_mdev_device(d)); };
  }
  APEMU_TRY(mb->m_bus, core.bus_register(std::move(type)));
  mb->m_bus->set_data(self);
  auto compat = core.class_compat_register(std::string(abi::kMdevBusCompatClass));
  if (!compat) {
    core.bus_unregister(*mb->m_bus);
    return compat.error();
  }
  mb->m_compat = *compat;
  if (auto g = core.kernel_dir()->find(abi::kIommuGroups);
      g && g->type() == kernfs::NodeType::Dir) {
    mb->m_groups_dir = std::static_pointer_cast<kernfs::Dir>(g);
  } else {
    APEMU_TRY(mb->m_groups_dir,
              core.tree().create_dir(*core.kernel_dir(), std::string(abi::kIommuGroups)));
    mb->m_made_groups_dir = true;
  }
  if (!vendor_binds) {
    core::DriverOps vfio_mdev;
    vfio_mdev.name = std::string(abi::kVfioMdev);
    vfio_mdev.mod_name = std::string(abi::kVfioMdev);
    vfio_mdev.probe = [](core::Device&) -> Result<void> { return {}; };
    APEMU_TRY(mb->m_vfio_mdev, core.driver_register(*mb->m_bus, std::move(vfio_mdev)));
  }
  return mb;
}

MdevBus::~MdevBus() {
  m_core->held();
  while (!m_parents.empty()) unregister_parent(m_parents.back().get());
  while (!m_drivers.empty()) unregister_driver(m_drivers.back().get());
  APEMU_ASSERT(m_devices.empty());
  if (m_vfio_mdev) m_core->driver_unregister(*m_vfio_mdev);
  if (m_made_groups_dir) m_core->tree().remove(*m_groups_dir);
  m_core->class_compat_unregister(*m_compat);
  m_core->bus_unregister(*m_bus);
}

Result<MdevDriver*> MdevBus::register_driver(MdevDriverOps ops) {
  m_core->held();
  if (ops.device_api.empty()) return Error(EINVAL, "mdev driver without device_api");
  auto drv = std::make_unique<MdevDriver>(MdevDriver::Key{}, std::move(ops));
  if (vendor_driver_binds()) {
    APEMU_TRY(drv->m_driver, m_core->driver_register(*m_bus, drv->m_ops.base));
  }
  m_drivers.push_back(std::move(drv));
  return m_drivers.back().get();
}

void MdevBus::unregister_driver(MdevDriver* drv) {
  m_core->held();
  auto it = std::find_if(m_drivers.begin(), m_drivers.end(),
                         [&](const auto& d) { return d.get() == drv; });
  if (it == m_drivers.end()) return;
  for (const auto& p : m_parents) APEMU_ASSERT(&p->driver() != drv);
  if (drv->m_driver) m_core->driver_unregister(*drv->m_driver);
  m_drivers.erase(it);
}

// ---- parents ----------------------------------------------------------------------------------

Result<MdevParent*> MdevBus::register_parent(core::Device& dev, MdevDriver& drv,
                                             std::vector<MdevTypeInfo> types,
                                             std::string type_prefix) {
  m_core->held();
  if (!dev.registered() || !dev.dir()) return Error(EINVAL, "parent device not registered");
  if (types.empty()) return Error(EINVAL, "no mdev types");
  for (const auto& p : m_parents)
    if (&p->device() == &dev) return Error(EEXIST, dev.name() + " is already an mdev parent");
  auto parent = std::make_unique<MdevParent>(MdevParent::Key{}, *this, dev, drv);
  parent->m_available = drv.ops().max_instances;
  // The type directory is named after the driver bound to the parent (dev_driver_string), which
  // is why vfio_ap binds its matrix device before registering it.
  const std::string prefix = type_prefix.empty() ? dev.driver_string() : type_prefix;
  auto& tree = m_core->tree();
  APEMU_TRY(parent->m_types_dir, tree.create_dir(*dev.dir(), std::string(abi::kSupportedTypes)));
  auto fail = [&](Error e) -> Result<MdevParent*> {
    tree.remove(*parent->m_types_dir);
    return e;
  };
  for (auto& info : types) {
    std::string dir_name = prefix + "-" + info.sysfs_name;
    auto t = std::make_unique<MdevType>(MdevType::Key{}, *parent, std::move(info), dir_name);
    auto d = tree.create_dir(*parent->m_types_dir, dir_name);
    if (!d) return fail(d.error());
    t->m_dir = *d;
    if (auto r = create_type_files(tree, *t); !r) return fail(r.error());
    auto devs = tree.create_dir(*t->m_dir, std::string(abi::kDevices));
    if (!devs) return fail(devs.error());
    t->m_devices_dir = *devs;
    parent->m_types.push_back(std::move(t));
  }
  // dev_info names the bound driver; a bus-less parent (4.20's matrix device, whose driver
  // pointer the kernel forced) uses the prefix instead.
  parent->m_log_prefix =
      dev_prefix(dev, dev.driver_string().empty() ? prefix : dev.driver_string());
  if (!m_core->class_compat_create_link(*m_compat, dev))
    m_core->log().warn(parent->m_log_prefix + "Failed to create compatibility class link");
  m_core->log().info(parent->m_log_prefix + "MDEV: Registered");
  m_parents.push_back(std::move(parent));
  (void)m_core->device_uevent(dev, Action::Change,
                              {{std::string(abi::kMdevState), std::string(abi::kRegistered)}});
  return m_parents.back().get();
}

void MdevBus::unregister_parent(MdevParent* parent) {
  m_core->held();
  auto it = std::find_if(m_parents.begin(), m_parents.end(),
                         [&](const auto& p) { return p.get() == parent; });
  if (it == m_parents.end()) return;
  core::Device& dev = parent->device();
  m_core->log().info(parent->m_log_prefix + "MDEV: Unregistering");
  parent->m_unregistering = true;
  m_core->class_compat_remove_link(*m_compat, dev);
  // device_for_each_child: the parent's mdevs in creation order.
  std::vector<MdevDevice*> mine;
  for (MdevDevice* m : m_devices)
    if (&m->parent_info() == parent && m->registered()) mine.push_back(m);
  for (MdevDevice* m : mine) remove_common(*m);
  for (MdevDevice* m : m_devices) APEMU_ASSERT(&m->parent_info() != parent); // all released
  m_core->tree().remove(*parent->m_types_dir);
  m_parents.erase(it);
  (void)m_core->device_uevent(dev, Action::Change,
                              {{std::string(abi::kMdevState), std::string(abi::kUnregistered)}});
}

// ---- devices ----------------------------------------------------------------------------------

MdevDevice* MdevBus::find_device(const Uuid& uuid) const {
  auto it = m_by_uuid.find(uuid);
  return it == m_by_uuid.end() ? nullptr : it->second;
}

Result<MdevDevice*> MdevBus::create_device(MdevType& type, const Uuid& uuid) {
  m_core->held();
  MdevParent& parent = type.parent();
  MdevDriver& drv = parent.driver();
  if (m_by_uuid.count(uuid)) return Error(EEXIST, "mdev " + uuid.str() + " exists");
  const bool core_counts = vendor_driver_binds();
  if (core_counts) {
    if (parent.m_available == 0) return Error(drv.ops().exhausted_errno);
    --parent.m_available;
  }
  auto dev = core::Device::create<MdevDevice>(*this, type, uuid);
  dev->set_parent(&parent.device());
  dev->set_bus(m_bus);
  dev->set_groups(mdev_device_groups());
  // list_add before device_add: the UUID is taken from here until the release.
  m_devices.push_back(dev.get());
  m_by_uuid[uuid] = dev.get();
  m_counted[dev.get()] = core_counts;
  if (parent.m_unregistering) return Error(ENODEV); // `dev` drops: release undoes the above
  APEMU_TRY_VOID(m_core->device_add(*dev));

  auto undo = [&](Error e) -> Result<MdevDevice*> {
    m_core->device_del(*dev);
    return e;
  };
  if (vendor_driver_binds()) {
    if (auto r = m_core->device_driver_attach(*drv.driver(), *dev); !r) return undo(r.error());
  } else {
    // vfio_mdev bound on add (its bus probe attached the IOMMU group); the vendor's create op
    // counted instances itself.
    if (parent.m_available == 0) return undo(Error(drv.ops().exhausted_errno));
    --parent.m_available;
    m_counted[dev.get()] = true;
    if (drv.ops().base.probe)
      if (auto r = drv.ops().base.probe(*dev); !r) return undo(r.error());
    if (auto r = m_core->device_add_groups(*dev, drv.ops().base.dev_groups); !r) {
      if (drv.ops().base.remove) drv.ops().base.remove(*dev);
      return undo(r.error());
    }
  }
  if (auto r = publish_device(*dev); !r) {
    if (!vendor_driver_binds()) {
      m_core->device_remove_groups(*dev, drv.ops().base.dev_groups);
      if (drv.ops().base.remove) drv.ops().base.remove(*dev);
    }
    return undo(r.error());
  }
  dev->m_active = true;
  m_core->log().debug(dev_prefix(*dev, dev->driver_string()) + "MDEV: created");
  MdevDevice* raw = dev.get();
  m_owned[raw] = std::move(dev);
  return raw;
}

Result<void> MdevBus::publish_device(MdevDevice& dev) {
  auto& tree = m_core->tree();
  MdevType& type = dev.type();
  APEMU_TRY_VOID(tree.create_link(*type.m_devices_dir, dev.name(), dev.dir()));
  if (auto r = tree.create_link(*dev.dir(), std::string(abi::kMdevType), type.m_dir); !r) {
    tree.remove_child(*type.m_devices_dir, dev.name());
    return r.error();
  }
  return {};
}

Result<void> MdevBus::remove_device(MdevDevice& mdev, kernfs::Blocker* blocker) {
  m_core->held();
  if (!m_owned.count(&mdev)) return Error(ENODEV);
  if (!mdev.m_active) return Error(EAGAIN);
  if (mdev.parent_info().m_unregistering) return Error(ENODEV);
  MdevDriver& drv = mdev.parent_info().driver();
  std::shared_ptr<Completion> released;
  if (drv.ops().unregister_vfio_dev) {
    APEMU_TRY(released, drv.ops().unregister_vfio_dev(mdev));
  }
  if (!released) {
    remove_common(mdev);
    return {};
  }
  // The device is in use: vfio_unregister_group_dev waits for the user to close it. Removal
  // is under way (another `remove` gets EAGAIN) until it completes or the writer gives up.
  if (!blocker) {
    released->cancel(EAGAIN);
    return Error(EAGAIN, "the device is in use and the caller cannot wait");
  }
  mdev.m_active = false;
  std::shared_ptr<Completion> writer = blocker->block();
  const Uuid uuid = mdev.uuid();
  released->on_done([this, uuid, writer](const Result<void>& r) {
    MdevDevice* d = find_device(uuid);
    if (!d) return writer->complete(Error(ENODEV));
    if (!r) {
      d->m_active = true; // the remover gave up: the device stays as it was
      return writer->complete(r);
    }
    remove_common(*d);
    writer->complete({});
  });
  writer->on_cancel([released] { released->cancel(EINTR); });
  return Error(kEIocbQueued);
}

void MdevBus::remove_common(MdevDevice& mdev) {
  core::Ref<MdevDevice> keep(&mdev);
  mdev.m_active = false;
  auto& tree = m_core->tree();
  MdevType& type = mdev.type();
  if (!vendor_driver_binds()) {
    // mdev_device_remove_ops: the vendor's remove, then its attribute groups.
    const auto& ops = mdev.parent_info().driver().ops();
    if (ops.base.remove) ops.base.remove(mdev);
    m_core->device_remove_groups(mdev, ops.base.dev_groups);
  }
  if (mdev.dir()) tree.remove_child(*mdev.dir(), abi::kMdevType);
  tree.remove_child(*type.m_devices_dir, mdev.name());
  m_core->device_del(mdev);
  // Balances device_initialize: the creation reference.
  m_owned.erase(&mdev);
  // `keep` goes last: the release runs here unless someone else still holds a reference.
}

void MdevBus::device_released(MdevDevice& dev) {
  // mdev_device_release: leaves mdev_list and returns the instance.
  auto it = std::find(m_devices.rbegin(), m_devices.rend(), &dev);
  if (it != m_devices.rend()) m_devices.erase(std::next(it).base());
  m_by_uuid.erase(dev.uuid());
  auto c = m_counted.find(&dev);
  if (c != m_counted.end()) {
    if (c->second) ++dev.parent_info().m_available;
    m_counted.erase(c);
  }
}

} // namespace apemu::mdev
