// Buses and drivers: registration, the generic files under /sys/bus, iterators and notifiers
// (drivers/base/bus.c, driver.c; driver-core.md §1.3, §1.4, §1.7, §2.3, §2.4, §6).
#include <algorithm>

#include "apemu/base/assert.h"
#include "apemu/base/parse.h"
#include "apemu/core/abi_names.h"
#include "apemu/core/core.h"
#include "internal.h"

namespace apemu::core {

using uevent::Action;

// ---- /sys/bus/BUS/{drivers_autoprobe,drivers_probe,uevent} -----------------------------------

struct BusFiles {
  static Result<std::string> autoprobe_show(Bus& bus) {
    return std::string(bus.m_autoprobe ? "1\n" : "0\n");
  }
  static Result<void> autoprobe_store(Bus& bus, std::string_view text) {
    // Only a leading '0' turns it off; anything else (even garbage) turns it on (§2.3).
    bus.m_autoprobe = !(text.size() > 0 && text[0] == '0');
    return {};
  }
  static Result<void> probe_store(Bus& bus, std::string_view text) {
    Core& core = bus.core();
    auto dev = core.bus_find_device_by_name(bus, text);
    if (!dev) return Error(ENODEV);
    if (dev->driver()) return {};
    auto r = core.device_attach_locked(*dev);
    if (!r) return Error(EINVAL);
    return {};
  }
  static Result<void> uevent_store(Bus& bus, std::string_view text) {
    return bus.core().object_uevent_store(text, "/bus/" + bus.name(), "bus");
  }
};

static const BusAttribute kBusFiles[] = {
    {abi::kDriversAutoprobe, 0644, BusFiles::autoprobe_show, BusFiles::autoprobe_store},
    {abi::kDriversProbe, 0200, nullptr, BusFiles::probe_store},
    {abi::kUevent, 0200, nullptr, BusFiles::uevent_store},
};

// ---- /sys/bus/BUS/drivers/DRV/{bind,unbind,uevent} -------------------------------------------

struct DriverFiles {
  static Result<void> bind_store(Driver& drv, std::string_view text) {
    Core& core = drv.bus().core();
    auto dev = core.bus_find_device_by_name(drv.bus(), text);
    // The driver must want the device: no match is ENODEV (§2.4).
    if (!dev || core.driver_match_device(drv, *dev) == 0) return Error(ENODEV);
    if (!core.profile().bind_reports_probe_errors) {
      // Before 5.13 only a successful probe of an unbound device succeeded; everything else
      // (already bound, deferred, the probe's own error) was ENODEV.
      if (dev->driver()) return Error(ENODEV);
      auto r = core.device_driver_attach(drv, *dev);
      return r ? r : Result<void>(Error(ENODEV));
    }
    return core.device_driver_attach(drv, *dev);
  }
  static Result<void> unbind_store(Driver& drv, std::string_view text) {
    Core& core = drv.bus().core();
    auto dev = core.bus_find_device_by_name(drv.bus(), text);
    if (!dev || dev->driver() != &drv) return Error(ENODEV);
    core.device_release_driver(*dev);
    return {};
  }
  static Result<void> uevent_store(Driver& drv, std::string_view text) {
    return drv.bus().core().object_uevent_store(
        text, "/bus/" + drv.bus().name() + "/drivers/" + drv.name(), "drivers");
  }
};

static const DriverAttribute kDriverUevent[] = {
    {abi::kUevent, 0200, nullptr, DriverFiles::uevent_store},
};
static const DriverAttribute kDriverBindFiles[] = {
    {abi::kBind, 0200, nullptr, DriverFiles::bind_store},
    {abi::kUnbind, 0200, nullptr, DriverFiles::unbind_store},
};

template <class Obj>
static Result<void> create_object_attrs(kernfs::Tree& tree, kernfs::Dir& dir,
                                        std::span<const AttributeGroup<Obj>> groups, Obj& obj) {
  for (const auto& g : groups) {
    kernfs::Dir* target = &dir;
    std::shared_ptr<kernfs::Dir> sub;
    if (!g.name.empty()) {
      APEMU_TRY(sub, tree.create_dir(dir, std::string(g.name)));
      target = sub.get();
    }
    for (const auto& a : g.attrs) {
      mode_t mode = g.is_visible ? g.is_visible(obj, a) : a.mode;
      if (mode == 0) continue;
      APEMU_TRY_VOID(tree.create_attr(*target, std::string(a.name), mode, &a, &obj));
    }
  }
  return {};
}

template <class Obj>
static Result<void> create_object_attrs(kernfs::Tree& tree, kernfs::Dir& dir,
                                        std::span<const Attribute<Obj>> attrs, Obj& obj) {
  const AttributeGroup<Obj> g{"", attrs, nullptr};
  return create_object_attrs<Obj>(tree, dir, std::span<const AttributeGroup<Obj>>(&g, 1), obj);
}

// ---- buses ------------------------------------------------------------------------------------

Result<Bus*> Core::bus_register(BusType type) {
  held();
  if (type.name.empty() || type.name.find('/') != std::string::npos) return Error(EINVAL);
  if (m_bus_dir->find(type.name)) return Error(EEXIST, "bus " + type.name + " exists");
  auto bus = std::make_unique<Bus>(Bus::Key{}, *this, std::move(type));
  APEMU_TRY(bus->m_dir, m_tree.create_dir(*m_bus_dir, bus->name()));
  auto fail = [&](Error e) -> Result<Bus*> {
    m_tree.remove(*bus->m_dir);
    return e;
  };
  (void)send_object_event(Action::Add, "/bus/" + bus->name(), "bus");
  if (auto r = create_object_attrs<Bus>(m_tree, *bus->m_dir, std::span(kBusFiles), *bus); !r)
    return fail(r.error());
  bus->m_devices_dir = *m_tree.create_dir(*bus->m_dir, std::string(abi::kDevices));
  bus->m_drivers_dir = *m_tree.create_dir(*bus->m_dir, std::string(abi::kDrivers));
  if (auto r = create_object_attrs<Bus>(m_tree, *bus->m_dir, bus->type().bus_groups, *bus); !r)
    return fail(r.error());
  m_buses.push_back(std::move(bus));
  return m_buses.back().get();
}

void Core::bus_unregister(Bus& bus) {
  held();
  APEMU_ASSERT(bus.m_devices.empty() && bus.m_drivers.empty());
  const std::string path = "/bus/" + bus.name();
  m_tree.remove(*bus.m_dir);
  m_notifiers.erase(&bus);
  (void)send_object_event(Action::Remove, path, "bus");
  auto it = std::find_if(m_buses.begin(), m_buses.end(),
                         [&](const auto& b) { return b.get() == &bus; });
  if (it != m_buses.end()) m_buses.erase(it);
}

Bus* Core::find_bus(std::string_view name) const {
  held();
  for (const auto& b : m_buses)
    if (b->name() == name) return b.get();
  return nullptr;
}

std::vector<Bus*> Core::buses() const {
  held();
  std::vector<Bus*> out;
  for (const auto& b : m_buses) out.push_back(b.get());
  return out;
}

std::vector<Driver*> Bus::drivers() const {
  std::vector<Driver*> out;
  out.reserve(m_drivers.size());
  for (const auto& d : m_drivers) out.push_back(d.get());
  return out;
}

Driver* Bus::find_driver(std::string_view name) const {
  for (const auto& d : m_drivers)
    if (d->name() == name) return d.get();
  return nullptr;
}

// ---- iterators (klist semantics: a reference on the current element, removal-safe) ----------

static int walk(const std::vector<Device*>& list, Device* start,
                const std::function<int(Device&)>& fn, const std::function<bool(Device&)>& still) {
  // Snapshot with references: elements removed during the walk are skipped when reached, and
  // elements added during the walk are not visited (klist iteration behaves the same for
  // additions at the tail that happen after the walk passed).
  std::vector<Ref<Device>> snap;
  bool started = start == nullptr;
  for (Device* d : list) {
    if (!started) {
      started = d == start;
      continue;
    }
    snap.emplace_back(d);
  }
  for (auto& d : snap) {
    if (!still(*d)) continue;
    if (int r = fn(*d)) return r;
  }
  return 0;
}

int Core::bus_for_each_dev(Bus& bus, Device* start, const std::function<int(Device&)>& fn) {
  held();
  return walk(bus.m_devices, start, fn, [&](Device& d) { return d.registered() && d.m_bus == &bus; });
}

Ref<Device> Core::bus_find_device_by_name(Bus& bus, std::string_view name) {
  held();
  for (Device* d : bus.m_devices)
    if (sysfs_streq(d->name(), name)) return Ref<Device>(d);
  return nullptr;
}

int Core::driver_for_each_device(Driver& drv, Device* start,
                                 const std::function<int(Device&)>& fn) {
  held();
  return walk(drv.m_bound, start, fn, [&](Device& d) { return d.m_bound && d.m_driver == &drv; });
}

int Core::device_for_each_child(Device& parent, const std::function<int(Device&)>& fn) {
  held();
  return walk(parent.m_children, nullptr, fn, [](Device& d) { return d.registered(); });
}

int Core::bus_register_notifier(Bus& bus, BusNotifier fn) {
  held();
  const int id = m_next_notifier++;
  m_notifiers[&bus].emplace(id, std::move(fn));
  return id;
}

void Core::bus_unregister_notifier(Bus& bus, int id) {
  held();
  auto it = m_notifiers.find(&bus);
  if (it != m_notifiers.end()) it->second.erase(id);
}

void Core::notify(Bus& bus, BusEvent ev, Device& dev) {
  auto it = m_notifiers.find(&bus);
  if (it == m_notifiers.end()) return;
  auto copy = it->second; // a notifier may unregister itself
  for (auto& [id, fn] : copy) fn(ev, dev);
}

// ---- drivers ----------------------------------------------------------------------------------

Result<Driver*> Core::driver_register(Bus& bus, DriverOps ops) {
  held();
  if (!internal::owns(m_buses, &bus)) {
    m_log.error("Driver '" + ops.name + "' was unable to register with bus_type '" + bus.name() +
                "' because the bus was not initialized.");
    return Error(EINVAL);
  }
  if (ops.name.empty()) return Error(EINVAL);
  if (bus.find_driver(ops.name)) {
    m_log.error("Driver '" + ops.name + "' is already registered, aborting...");
    return Error(EBUSY);
  }
  if (bus.type().probe && ops.probe)
    m_log.warn("Driver '" + ops.name + "' needs updating - please use bus_type methods");
  auto drv = std::make_unique<Driver>(Driver::Key{}, bus, std::move(ops));
  APEMU_TRY(drv->m_dir, m_tree.create_dir(*bus.m_drivers_dir, drv->name()));
  Driver* raw = drv.get();
  bus.m_drivers.push_back(std::move(drv));
  // bus_add_driver: attach first, so bind events precede the driver's own add (§1.4).
  if (bus.m_autoprobe) driver_attach(*raw);
  if (!raw->ops().mod_name.empty()) {
    auto mdir = module_dir_for(raw->ops().mod_name);
    (void)m_tree.create_link(*raw->m_dir, std::string(abi::kModule), mdir);
    auto mdrivers = mdir->find("drivers");
    if (!mdrivers) mdrivers = *m_tree.create_dir(*mdir, "drivers");
    (void)m_tree.create_link(static_cast<kernfs::Dir&>(*mdrivers), bus.name() + ":" + raw->name(),
                             raw->m_dir);
  }
  (void)create_object_attrs<Driver>(m_tree, *raw->m_dir, std::span(kDriverUevent), *raw);
  (void)create_object_attrs<Driver>(m_tree, *raw->m_dir, bus.type().drv_groups, *raw);
  if (!raw->ops().suppress_bind_attrs)
    (void)create_object_attrs<Driver>(m_tree, *raw->m_dir, std::span(kDriverBindFiles), *raw);
  (void)create_object_attrs<Driver>(m_tree, *raw->m_dir, raw->ops().groups, *raw);
  (void)send_object_event(Action::Add, "/bus/" + bus.name() + "/drivers/" + raw->name(),
                          "drivers");
  return raw;
}

void Core::driver_unregister(Driver& drv) {
  held();
  Bus& bus = drv.bus();
  const std::string path = "/bus/" + bus.name() + "/drivers/" + drv.name();
  for (auto name : {abi::kBind, abi::kUnbind, abi::kUevent}) m_tree.remove_child(*drv.m_dir, name);
  // driver_detach: always the last bound device first.
  while (!drv.m_bound.empty()) release_driver_locked(*drv.m_bound.back());
  // Devices mid-probe or deferred are not on the bound list; none can point here now.
  if (!drv.ops().mod_name.empty())
    if (auto mdir = m_module_dir->find(drv.ops().mod_name))
      if (auto md = static_cast<kernfs::Dir&>(*mdir).find("drivers"))
        m_tree.remove_child(static_cast<kernfs::Dir&>(*md), bus.name() + ":" + drv.name());
  m_tree.remove(*drv.m_dir);
  (void)send_object_event(Action::Remove, path, "drivers");
  auto it = std::find_if(bus.m_drivers.begin(), bus.m_drivers.end(),
                         [&](const auto& d) { return d.get() == &drv; });
  APEMU_ASSERT(it != bus.m_drivers.end());
  bus.m_drivers.erase(it);
}

} // namespace apemu::core
