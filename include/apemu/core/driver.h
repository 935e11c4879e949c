// struct device_driver (drivers/base/driver.c, dd.c): the const description a subsystem writes
// (DriverOps) and the registered Driver the core owns, with its list of bound devices.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "apemu/core/attribute.h"

namespace apemu::core {

class Bus;
class Device;

struct DriverOps {
  std::string name;
  /// Binds the device. Errors follow the probe policy (driver-core.md §1.5): kEProbeDefer
  /// defers, ENODEV/ENXIO are a silent "not mine", anything else is logged.
  std::function<Result<void>(Device&)> probe;
  /// Unbinds; cannot fail.
  std::function<void(Device&)> remove;
  std::span<const DriverAttributeGroup> groups;
  /// Attributes created on each bound device before the `bind` uevent.
  std::span<const DeviceAttributeGroup> dev_groups;
  /// No bind/unbind files (e.g. the vfio_ap matrix driver).
  bool suppress_bind_attrs = false;
  /// When set, a `module` link to /sys/module/<mod_name> (and the module directory).
  std::string mod_name;
  /// The bus's own driver structure this table belongs to (the kernel's container_of, e.g.
  /// struct ap_driver), so the bus finds it in O(1) from a Driver (Driver::bus_ext()). Set
  /// before registration: matching starts inside driver_register.
  const void* bus_ext = nullptr;
};

class Driver {
public:
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  const std::string& name() const { return m_ops.name; }
  const DriverOps& ops() const { return m_ops; }
  Bus& bus() const { return *m_bus; }
  /// Devices whose binding completed, in bind order. Locking: model lock.
  const std::vector<Device*>& bound_devices() const { return m_bound; }
  const std::shared_ptr<kernfs::Dir>& dir() const { return m_dir; }

  void set_data(void* p) { m_data = p; }
  void* data() const { return m_data; }
  /// DriverOps::bus_ext.
  const void* bus_ext() const { return m_ops.bus_ext; }

private:
  friend class Core;
  struct Key {};

public:
  Driver(Key, Bus& bus, DriverOps ops) : m_bus(&bus), m_ops(std::move(ops)) {}

private:
  Bus* m_bus;
  DriverOps m_ops;
  void* m_data = nullptr;
  std::vector<Device*> m_bound;
  std::shared_ptr<kernfs::Dir> m_dir;
};

} // namespace apemu::core
