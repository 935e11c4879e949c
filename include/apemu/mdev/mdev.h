// The mediated-device core (drivers/vfio/mdev: mdev_core.c, mdev_sysfs.c, mdev_driver.c) and the
// emulated IOMMU groups of VFIO devices (vfio_register_emulated_iommu_dev → iommu_group_alloc /
// iommu_group_add_device).
//
// An MdevBus is the `mdev` bus of one machine plus the /sys/class/mdev_bus compat class. A vendor
// driver (vfio_ap) registers an MdevDriver (struct mdev_driver: a core driver table plus
// device_api and max_instances) and then registers a parent device with its types
// (mdev_register_parent). The core then publishes
//   PARENT/mdev_supported_types/<prefix>-<type>/{create,name,device_api,available_instances,devices/}
//   /sys/class/mdev_bus/<parent> -> the parent
// and sends `change` with MDEV_STATE=registered on the parent. A write of a UUID to `create`
// synchronously creates PARENT/<uuid> on the mdev bus, binds it to the parent's mdev driver
// (mdev_bus has no match: only this explicit attach binds), and adds `remove`, the `mdev_type`
// link and the type's devices/<uuid> link, so mdevctl finds every file as soon as its write()
// returns (clients.md §0.1).
//
// Two generations of the mdev core are modelled (profile::KernelProfile::mdev_vendor_driver_binds):
//  * current (≥5.16): the vendor's mdev driver binds the device; its dev_groups are the vendor
//    attributes; the vendor probe registers an emulated-IOMMU VFIO device, which gives the mdev
//    an `iommu_group` link; instance exhaustion is counted by the core (EUSERS, ≥6.1).
//  * legacy (≤5.x, e.g. 4.20): every mdev binds the generic `vfio_mdev` driver through normal
//    matching; the mdev bus probe attaches the IOMMU group; the vendor table is used as the old
//    mdev_parent_ops: probe = create, remove = remove, dev_groups = mdev_attr_groups, all
//    called by the mdev core after device registration. Exhaustion is reported by the vendor
//    (MdevDriverOps::exhausted_errno, EPERM for vfio_ap ≤6.0).
//
// A `remove` of a device in use blocks its writer until the user releases the device (see
// MdevDriverOps::unregister_vfio_dev and kernfs::Blocker). Divergence: no /dev/vfio/N nodes. Group ids are
// allocated lowest-free from 0 as the kernel's IDA does, but no other (PCI) groups exist.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apemu/base/parse.h"
#include "apemu/base/result.h"
#include "apemu/core/core.h"

namespace apemu::mdev {

class MdevBus;
class MdevParent;
class MdevDevice;
class MdevDriver;

/// What a vendor declares per type (struct mdev_type's sysfs_name and pretty_name).
struct MdevTypeInfo {
  std::string sysfs_name;  ///< directory suffix, e.g. "passthrough"
  std::string pretty_name; ///< `name` file; empty: sysfs_name
};

/// struct mdev_type: one supported type of a parent, with its sysfs directory.
class MdevType {
public:
  MdevType(const MdevType&) = delete;
  MdevType& operator=(const MdevType&) = delete;
  const std::string& sysfs_name() const { return m_info.sysfs_name; }
  /// The `name` file's value: the pretty name, else the sysfs name.
  const std::string& name() const {
    return m_info.pretty_name.empty() ? m_info.sysfs_name : m_info.pretty_name;
  }
  /// "<prefix>-<sysfs_name>", e.g. "vfio_ap-passthrough".
  const std::string& dir_name() const { return m_dir_name; }
  MdevParent& parent() const { return *m_parent; }
  /// The type directory (PARENT/mdev_supported_types/<dir_name>).
  const std::shared_ptr<kernfs::Dir>& dir() const { return m_dir; }

private:
  friend class MdevBus;
  friend struct MdevTypeFiles;
  struct Key {};

public:
  MdevType(Key, MdevParent& parent, MdevTypeInfo info, std::string dir_name)
      : m_parent(&parent), m_info(std::move(info)), m_dir_name(std::move(dir_name)) {}

private:
  MdevParent* m_parent;
  MdevTypeInfo m_info;
  std::string m_dir_name;
  std::shared_ptr<kernfs::Dir> m_dir, m_devices_dir;
};

/// struct mdev_driver: the vendor's driver table. In the current model `base` is registered on
/// the mdev bus as is (name, probe, remove, dev_groups, mod_name); see the file comment for the
/// legacy model.
struct MdevDriverOps {
  core::DriverOps base;
  /// The type's `device_api` (e.g. "vfio-ap"). Required: registration fails with EINVAL without.
  std::string device_api;
  /// Instances per parent (parent->available_instances starts here).
  unsigned max_instances = 0;
  /// Errno of `create` when no instance is left: EUSERS (core counting, ≥6.1); legacy vendors
  /// counted themselves (vfio_ap ≤6.0: EPERM).
  int exhausted_errno = EUSERS;
  /// Optional `description` file of the types.
  std::function<std::string(const MdevType&)> show_description;
  /// Called by `remove` before anything is torn down: models vfio_unregister_group_dev's wait
  /// for the last user of the VFIO device, or the vendor's own refusal (4.20: EBUSY while a
  /// guest uses it). Returns: an error, which aborts the removal and leaves the device intact;
  /// null when nobody uses the device (the removal goes on at once); or a completion that is
  /// completed when the user released the device (the removal then finishes) and cancelled
  /// (its undo hook runs) when the remover gives up. Locking: machine lock held.
  std::function<Result<std::shared_ptr<Completion>>(MdevDevice&)> unregister_vfio_dev;
};

/// A registered mdev driver.
class MdevDriver {
public:
  const MdevDriverOps& ops() const { return m_ops; }
  const std::string& name() const { return m_ops.base.name; }
  /// The core driver on the mdev bus; null in the legacy model (the vendor table is then only
  /// called by the mdev core).
  core::Driver* driver() const { return m_driver; }

private:
  friend class MdevBus;
  struct Key {};

public:
  MdevDriver(Key, MdevDriverOps ops) : m_ops(std::move(ops)) {}

private:
  MdevDriverOps m_ops;
  core::Driver* m_driver = nullptr;
};

/// struct mdev_parent: a device that can host mdevs.
class MdevParent {
public:
  MdevParent(const MdevParent&) = delete;
  MdevParent& operator=(const MdevParent&) = delete;
  core::Device& device() const { return *m_dev; }
  MdevDriver& driver() const { return *m_driver; }
  const std::vector<std::unique_ptr<MdevType>>& types() const { return m_types; }
  MdevType* find_type(std::string_view dir_name) const;
  MdevBus& mdev_bus() const { return *m_bus; }
  /// parent->available_instances.
  unsigned available_instances() const { return m_available; }

private:
  friend class MdevBus;
  friend struct MdevTypeFiles;
  struct Key {};

public:
  MdevParent(Key, MdevBus& bus, core::Device& dev, MdevDriver& drv)
      : m_bus(&bus), m_dev(&dev), m_driver(&drv) {}

private:
  MdevBus* m_bus;
  core::Device* m_dev;
  MdevDriver* m_driver;
  std::vector<std::unique_ptr<MdevType>> m_types;
  std::shared_ptr<kernfs::Dir> m_types_dir;
  unsigned m_available = 0;
  bool m_unregistering = false;
  std::string m_log_prefix; ///< "<driver> <device>: " of dev_info lines
};

/// struct mdev_device: a mediated device, named by its lower-case UUID, child of its parent
/// device, on the mdev bus. Its driver-private data (drvdata) belongs to the bound driver.
class MdevDevice final : public core::Device {
public:
  MdevDevice(core::DeviceKey k, MdevBus& bus, MdevType& type, const Uuid& uuid);
  const Uuid& uuid() const { return m_uuid; }
  MdevType& type() const { return *m_type; }
  MdevParent& parent_info() const { return m_type->parent(); }
  MdevBus& mdev_bus() const { return *m_bus; }
  /// Set once creation completed; cleared when a removal starts (mdev->active).
  bool active() const { return m_active; }
  /// The IOMMU group number, or -1 without a group.
  int iommu_group() const { return m_group; }

private:
  friend class MdevBus;
  MdevBus* m_bus;
  MdevType* m_type;
  Uuid m_uuid;
  bool m_active = false;
  int m_group = -1;
};

class MdevBus {
public:
  /// mdev_init: registers the `mdev` bus and the `mdev_bus` compat class, and makes sure
  /// /sys/kernel/iommu_groups exists. The generation follows the machine's profile
  /// (mdev_vendor_driver_binds); the legacy one also registers the `vfio_mdev` driver.
  /// Returns: the errno of the failing registration (EEXIST when already present).
  static Result<std::unique_ptr<MdevBus>> create(core::Core& core);
  /// mdev_exit. Every parent and driver must have been unregistered (asserted).
  ~MdevBus();
  MdevBus(const MdevBus&) = delete;
  MdevBus& operator=(const MdevBus&) = delete;

  core::Core& core() const { return *m_core; }
  core::Bus& bus() const { return *m_bus; }
  /// ≥5.16: the vendor's mdev driver binds mdevs; else the generic `vfio_mdev` does and the
  /// vendor is called through mdev_parent_ops (profile::KernelProfile::mdev_vendor_driver_binds).
  bool vendor_driver_binds() const { return m_core->profile().mdev_vendor_driver_binds; }

  /// mdev_register_driver. Returns: EINVAL without device_api, the core's errors (EBUSY for a
  /// duplicate name). Emits: add /bus/mdev/drivers/NAME (current model only).
  Result<MdevDriver*> register_driver(MdevDriverOps ops);
  /// mdev_unregister_driver; every device bound to it must be gone (parents unregistered).
  void unregister_driver(MdevDriver* drv);

  /// mdev_register_parent: publishes the types below `dev` (prefix: the name of the driver bound
  /// to `dev`, dev_driver_string(), unless `type_prefix` is given), the compat link, logs
  /// "MDEV: Registered" and emits `change` MDEV_STATE=registered on `dev` (no event for a
  /// bus-less device, as the kernel's kset filter drops it).
  /// Returns: EINVAL for an unregistered device or an empty type list, EEXIST when `dev` is
  /// already a parent. Lifetime: `dev` must outlive the registration.
  Result<MdevParent*> register_parent(core::Device& dev, MdevDriver& drv,
                                      std::vector<MdevTypeInfo> types,
                                      std::string type_prefix = {});
  /// mdev_unregister_parent: logs "MDEV: Unregistering", removes the compat link and every mdev
  /// of the parent (without asking the vendor: its remove must cope), the types, then emits
  /// `change` MDEV_STATE=unregistered.
  void unregister_parent(MdevParent* parent);
  const std::vector<std::unique_ptr<MdevParent>>& parents() const { return m_parents; }

  /// mdev_device_create (the `create` file after parsing). Returns: EEXIST (UUID used by any
  /// mdev, including one not yet released), the driver's exhausted_errno when no instance is
  /// left, ENODEV while the parent is being unregistered, or the error of device_add or of the
  /// driver's probe (the device is gone again then). Emits: add, bind.
  Result<MdevDevice*> create_device(MdevType& type, const Uuid& uuid);
  /// mdev_device_remove (the `remove` file with a non-zero value). Returns: ENODEV (unknown or
  /// parent going away), EAGAIN (not active: creation or removal in progress; or the device is
  /// in use and there is no `blocker` to wait with), the error of unregister_vfio_dev (nothing
  /// changed then), kEIocbQueued when the device is in use: the writer waits on
  /// blocker->completion(), which completes once the user released the device and the removal
  /// is done (EINTR and nothing removed if the writer gives up first). Emits: unbind, remove.
  Result<void> remove_device(MdevDevice& mdev, kernfs::Blocker* blocker = nullptr);
  /// Every mdev (all parents), creation order.
  const std::vector<MdevDevice*>& devices() const { return m_devices; }
  MdevDevice* find_device(const Uuid& uuid) const;

  /// vfio_register_emulated_iommu_dev's group: allocates the lowest free group number N,
  /// creates /sys/kernel/iommu_groups/N/{devices/,reserved_regions,type}, the link
  /// devices/<name> and <dev>/iommu_group. Returns: N; EEXIST if the device has a group.
  Result<unsigned> iommu_group_add_device(MdevDevice& dev);
  /// Removes the links and the (then empty) group. No-op without a group.
  void iommu_group_remove_device(MdevDevice& dev);

private:
  explicit MdevBus(core::Core& core) : m_core(&core) {}
  friend class MdevDevice;
  friend struct MdevTypeFiles;
  void device_released(MdevDevice& dev);
  void remove_common(MdevDevice& dev);
  Result<void> publish_device(MdevDevice& dev);

  core::Core* m_core;
  core::Bus* m_bus = nullptr;
  core::CompatClass* m_compat = nullptr;
  core::Driver* m_vfio_mdev = nullptr; ///< legacy generic driver
  std::shared_ptr<kernfs::Dir> m_groups_dir;
  bool m_made_groups_dir = false;
  std::vector<int> m_group_used; ///< group number → in use
  std::vector<std::unique_ptr<MdevDriver>> m_drivers;
  std::vector<std::unique_ptr<MdevParent>> m_parents;
  std::vector<MdevDevice*> m_devices; ///< mdev_list: from creation until the release
  std::map<Uuid, MdevDevice*> m_by_uuid;
  /// The creation reference of every published device (dropped by remove_common).
  std::map<const MdevDevice*, core::Ref<MdevDevice>> m_owned;
  /// Whether a device consumed an instance (returned by its release).
  std::map<const MdevDevice*, bool> m_counted;
};

/// The MdevDevice behind a device of the mdev bus.
inline MdevDevice& to_mdev_device(core::Device& d) { return core::dev_cast<MdevDevice>(d); }

} // namespace apemu::mdev
