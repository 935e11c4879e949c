// Device object basics: naming and reference counting (kobject/device refcount rules).
#include "apemu/core/device.h"

#include <algorithm>

#include "apemu/base/assert.h"
#include "apemu/core/bus.h"
#include "apemu/core/class.h"
#include "apemu/core/driver.h"

namespace apemu::core {

Device::Device(DeviceKey, std::string name, Release release)
    : m_release(std::move(release)), m_name(std::move(name)) {
  // kobject_set_name: '/' cannot appear in a sysfs name and becomes '!'.
  std::replace(m_name.begin(), m_name.end(), '/', '!');
}

Device::~Device() = default;

void Device::ref_put() {
  const int before = m_refs.fetch_sub(1, std::memory_order_acq_rel);
  APEMU_ASSERT(before > 0);
  if (before != 1) return;
  // A registered device holds a reference for the core's lists, so the count can only reach
  // zero once the device was deleted or never added.
  APEMU_ASSERT(m_state != State::Added);
  if (m_release) m_release(*this);
  delete this;
}

std::string Device::driver_string() const {
  if (m_driver) return m_driver->name();
  if (m_bus) return m_bus->name();
  if (m_class) return m_class->name();
  return {};
}

} // namespace apemu::core

namespace apemu::core {

std::string Device::devnode_name() const {
  std::string n = m_name;
  std::replace(n.begin(), n.end(), '!', '/');
  return n;
}

} // namespace apemu::core
