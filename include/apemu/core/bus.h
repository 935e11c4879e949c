// struct bus_type (policy) and its registered instance (mechanism), drivers/base/bus.c.
//
// A BusType is a const table of callbacks and attribute groups written by a subsystem; it never
// touches lists, links or generic files. Core::bus_register turns it into a Bus, which owns the
// core-private state the kernel keeps in subsys_private: the device list (add order), the driver
// list (registration order) and drivers_autoprobe.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "apemu/core/attribute.h"
#include "apemu/core/ref.h"
#include "apemu/uevent/event.h"

namespace apemu::core {

class Core;
class Driver;
class Device;

struct BusType {
  std::string name;
  /// > 0: match; 0: no match; < 0: -errno (-kEProbeDefer defers). Absent: everything matches.
  std::function<int(Device&, const Driver&)> match;
  /// Adds bus variables to a device's uevent environment (after DRIVER=).
  std::function<Result<void>(const Device&, uevent::Env&)> uevent;
  /// Bus probe; when present it is called instead of the driver's probe (and must call it).
  std::function<Result<void>(Device&)> probe;
  /// Bus remove; when present it is called instead of the driver's remove.
  std::function<void(Device&)> remove;
  /// online/offline callbacks; when both are present devices get an `online` attribute.
  std::function<Result<void>(Device&)> online;
  std::function<Result<void>(Device&)> offline;
  std::span<const BusAttributeGroup> bus_groups;
  std::span<const DeviceAttributeGroup> dev_groups;
  std::span<const DriverAttributeGroup> drv_groups;
  /// Devices get the generic `driver_override` attribute (2025+ generic mechanism).
  bool driver_override = false;
};

class Bus {
public:
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  const std::string& name() const { return m_type.name; }
  const BusType& type() const { return m_type; }
  Core& core() const { return *m_core; }
  bool autoprobe() const { return m_autoprobe; }
  /// Registered devices in add order. Locking: model lock.
  const std::vector<Device*>& devices() const { return m_devices; }
  /// Registered drivers in registration order. Locking: model lock.
  std::vector<Driver*> drivers() const;
  Driver* find_driver(std::string_view name) const;
  const std::shared_ptr<kernfs::Dir>& dir() const { return m_dir; }

  /// Subsystem-private pointer (the bus module's state), for attribute callbacks.
  void set_data(void* p) { m_data = p; }
  void* data() const { return m_data; }

private:
  friend class Core;
  friend struct BusFiles;
  struct Key {};

public:
  Bus(Key, Core& core, BusType type) : m_core(&core), m_type(std::move(type)) {}

private:
  Core* m_core;
  BusType m_type;
  bool m_autoprobe = true;
  void* m_data = nullptr;
  std::vector<Device*> m_devices;
  std::vector<std::unique_ptr<Driver>> m_drivers;
  std::shared_ptr<kernfs::Dir> m_dir, m_devices_dir, m_drivers_dir;
};

} // namespace apemu::core
