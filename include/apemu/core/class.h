// struct class (drivers/base/class.c) and class_compat directories.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "apemu/core/attribute.h"
#include "apemu/uevent/event.h"

namespace apemu::core {

class Core;
class Device;

struct ClassType {
  std::string name;
  std::function<Result<void>(const Device&, uevent::Env&)> dev_uevent;
  std::span<const ClassAttributeGroup> class_groups;
  std::span<const DeviceAttributeGroup> dev_groups;
};

class Class {
public:
  Class(const Class&) = delete;
  Class& operator=(const Class&) = delete;
  const std::string& name() const { return m_type.name; }
  const ClassType& type() const { return m_type; }
  Core& core() const { return *m_core; }
  const std::vector<Device*>& devices() const { return m_devices; }
  const std::shared_ptr<kernfs::Dir>& dir() const { return m_dir; }
  void set_data(void* p) { m_data = p; }
  void* data() const { return m_data; }

private:
  friend class Core;
  struct Key {};

public:
  Class(Key, Core& core, ClassType type) : m_core(&core), m_type(std::move(type)) {}

private:
  Core* m_core;
  ClassType m_type;
  void* m_data = nullptr;
  std::vector<Device*> m_devices;
  std::shared_ptr<kernfs::Dir> m_dir;
};

/// class_compat: a bare /sys/class/NAME directory of links to devices that live elsewhere
/// (the mdev parent list /sys/class/mdev_bus). No uevents, no subsystem links.
class CompatClass {
public:
  const std::string& name() const { return m_name; }
  const std::shared_ptr<kernfs::Dir>& dir() const { return m_dir; }

private:
  friend class Core;
  struct Key {};

public:
  CompatClass(Key, std::string name) : m_name(std::move(name)) {}

private:
  std::string m_name;
  std::shared_ptr<kernfs::Dir> m_dir;
};

} // namespace apemu::core
