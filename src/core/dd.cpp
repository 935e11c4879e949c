// Binding: matching, really_probe, the probe-error policy, deferred probing and release
// (drivers/base/dd.c; driver-core.md §1.5, §1.6). This file is the one place that interprets
// probe errors.
#include <algorithm>

#include "apemu/base/assert.h"
#include "apemu/core/abi_names.h"
#include "apemu/core/core.h"
#include "internal.h"

namespace apemu::core {

using uevent::Action;

int Core::driver_match_device(Driver& drv, Device& dev) {
  held();
  Bus& bus = drv.bus();
  // driver_override: when set, only the named driver may bind.
  if (dev.m_driver_override)
    return *dev.m_driver_override == drv.name() ? 1 : 0;
  if (!bus.type().match) return 1;
  return bus.type().match(dev, drv);
}

Result<void> Core::really_probe(Device& dev, Driver& drv) {
  if (dev.m_dead || !dev.registered()) return Error(ENODEV);
  if (dev.m_driver) return Error(EBUSY);
  Bus& bus = *dev.m_bus;
  dev.m_driver = &drv;
  // The links exist before probe() runs (§1.5 step 6).
  notify(bus, BusEvent::BindDriver, dev);
  (void)m_tree.create_link(*drv.m_dir, dev.m_name, dev.m_dir);
  (void)m_tree.create_link(*dev.m_dir, std::string(abi::kDriver), drv.m_dir);

  Result<void> r;
  if (bus.type().probe) r = bus.type().probe(dev);
  else if (drv.ops().probe) r = drv.ops().probe(dev);
  if (r) r = add_groups(*dev.m_dir, drv.ops().dev_groups, dev);

  if (!r) {
    m_tree.remove_child(*drv.m_dir, dev.m_name);
    m_tree.remove_child(*dev.m_dir, abi::kDriver);
    dev.m_driver = nullptr;
    dev.m_drvdata = nullptr;
    const int code = r.error().code;
    if (code == kEProbeDefer) {
      if (m_log.debug_enabled())
        m_log.debug(drv.name() + " " + dev.m_name + ": Driver " + drv.name() +
                  " requests probe deferral");
      deferred_add(dev);
    } else if (code == ENODEV || code == ENXIO) {
      if (m_log.debug_enabled())
        m_log.debug(drv.name() + ": probe of " + dev.m_name + " rejects match " +
                  std::to_string(-code));
    } else {
      m_log.error(bus.name() + " " + dev.m_name + ": probe with driver " + drv.name() +
                  " failed with error " + std::to_string(-code));
      notify(bus, BusEvent::DriverNotBound, dev);
    }
    return r;
  }
  driver_bound(dev);
  return {};
}

void Core::driver_bound(Device& dev) {
  Driver& drv = *dev.m_driver;
  drv.m_bound.push_back(&dev);
  dev.m_bound = true;
  deferred_remove(dev);
  notify(*dev.m_bus, BusEvent::BoundDriver, dev);
  (void)device_uevent(dev, Action::Bind);
  // A successful bind may satisfy what deferred devices waited for.
  deferred_retry();
}

void Core::release_driver_locked(Device& dev) {
  Driver* drv = dev.m_driver;
  if (!drv || !dev.m_bound) return;
  Bus& bus = *dev.m_bus;
  m_tree.remove_child(*drv->m_dir, dev.m_name);
  m_tree.remove_child(*dev.m_dir, abi::kDriver);
  notify(bus, BusEvent::UnbindDriver, dev);
  remove_groups(*dev.m_dir, drv->ops().dev_groups);
  if (bus.type().remove) bus.type().remove(dev);
  else if (drv->ops().remove) drv->ops().remove(dev);
  dev.m_driver = nullptr;
  dev.m_drvdata = nullptr;
  dev.m_bound = false;
  internal::erase_one(drv->m_bound, &dev);
  notify(bus, BusEvent::UnboundDriver, dev);
  // The environment is built now, without DRIVER=, and MODALIAS is stripped.
  (void)device_uevent(dev, Action::Unbind);
}

void Core::device_release_driver(Device& dev) {
  held();
  release_driver_locked(dev);
}

Result<bool> Core::device_attach(Device& dev) {
  held();
  return device_attach_locked(dev);
}

Result<bool> Core::device_attach_locked(Device& dev) {
  if (!dev.registered() || dev.m_dead || !dev.m_bus) return Error(ENODEV);
  if (dev.m_driver) return true;
  Ref<Device> keep(&dev);
  for (Driver* drv : dev.m_bus->drivers()) {
    const int m = driver_match_device(*drv, dev);
    if (m == 0) continue;
    if (m == -kEProbeDefer) {
      deferred_add(dev);
      return false;
    }
    if (m < 0) return Error(-m);
    if (really_probe(dev, *drv)) return true;
    if (!dev.registered()) return Error(ENODEV);
    // Any probe failure: try the next driver.
  }
  return false;
}

void Core::bus_probe_device(Device& dev) {
  if (!dev.m_bus->m_autoprobe) return;
  (void)device_attach_locked(dev);
}

Result<void> Core::device_driver_attach(Driver& drv, Device& dev) {
  held();
  if (dev.m_dead || !dev.registered()) return Error(ENODEV);
  if (dev.m_driver) return Error(EBUSY);
  auto r = really_probe(dev, drv);
  if (!r && r.error().code == kEProbeDefer) return Error(EAGAIN);
  return r;
}

void Core::driver_attach(Driver& drv) {
  // Driver-driven: every device on the bus in bus order; failures do not stop the walk.
  Bus& bus = drv.bus();
  bus_for_each_dev(bus, nullptr, [&](Device& dev) {
    const int m = driver_match_device(drv, dev);
    if (m == 0) return 0;
    if (m == -kEProbeDefer) {
      deferred_add(dev);
      return 0;
    }
    if (m < 0) return 0;
    if (dev.m_driver) return 0;
    (void)really_probe(dev, drv);
    return 0;
  });
}

// ---- deferred probing -------------------------------------------------------------------------

void Core::deferred_add(Device& dev) {
  for (const auto& d : m_deferred)
    if (d.get() == &dev) return;
  m_deferred.emplace_back(&dev);
}

void Core::deferred_remove(Device& dev) {
  auto it = std::find_if(m_deferred.begin(), m_deferred.end(),
                         [&](const Ref<Device>& d) { return d.get() == &dev; });
  if (it != m_deferred.end()) m_deferred.erase(it);
}

std::vector<Device*> Core::deferred_devices() const {
  held();
  std::vector<Device*> out;
  for (const auto& d : m_deferred) out.push_back(d.get());
  return out;
}

void Core::deferred_retry() {
  // Re-entrancy: a bind inside the retry loop only asks for another round.
  if (m_deferred_running) {
    m_deferred_trigger = true;
    return;
  }
  m_deferred_running = true;
  do {
    m_deferred_trigger = false;
    auto pending = std::move(m_deferred);
    m_deferred.clear();
    for (auto& dev : pending)
      if (dev->registered() && !dev->m_driver) bus_probe_device(*dev);
  } while (m_deferred_trigger);
  m_deferred_running = false;
}

} // namespace apemu::core
