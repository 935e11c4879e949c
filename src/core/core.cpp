// Device lifecycle, placement, generic device files and uevent environments
// (drivers/base/core.c, lib/kobject_uevent.c; driver-core.md §1.1, §1.2, §1.8, §1.11, §2, §3).
#include "apemu/core/core.h"

#include <algorithm>

#include "apemu/base/assert.h"
#include "apemu/base/parse.h"
#include "apemu/core/abi_names.h"
#include "apemu/core/uevent_file.h"
#include "internal.h"

namespace apemu::core {

using uevent::Action;

// ---- generic device attributes (core.c: uevent, online; bus.c: driver_override) ---------------

struct DeviceFiles {
  static Result<std::string> uevent_show(Device& d) { return d.core()->device_uevent_text(d); }
  static Result<void> uevent_store(Device& d, std::string_view text) {
    return d.core()->device_uevent_store(d, text);
  }
  static Result<std::string> override_show(Device& d) {
    // A NULL override is printed with %s: "(null)" (driver-core.md §2.8).
    return (d.driver_override() ? *d.driver_override() : std::string("(null)")) + "\n";
  }
  static Result<void> override_store(Device& d, std::string_view text) {
    return d.core()->driver_set_override(d, text);
  }
  static Result<std::string> online_show(Device& d) {
    return std::string(d.core()->device_is_offline(d) ? "0\n" : "1\n");
  }
  static Result<void> online_store(Device& d, std::string_view text) {
    APEMU_TRY(bool on, kstrtobool(text));
    return on ? d.core()->device_online(d) : d.core()->device_offline(d);
  }
};

static const DeviceAttribute kUeventAttr{abi::kUevent, 0644, DeviceFiles::uevent_show,
                                         DeviceFiles::uevent_store};
static const DeviceAttribute kDriverOverrideAttr{abi::kDriverOverride, 0644,
                                                 DeviceFiles::override_show,
                                                 DeviceFiles::override_store};
static const DeviceAttribute kOnlineAttr{abi::kOnline, 0644, DeviceFiles::online_show,
                                         DeviceFiles::online_store};

static Result<std::string> seqnum_show(Core& core) {
  return std::to_string(core.uevents().seqnum()) + "\n";
}

// ---- Core construction ------------------------------------------------------------------------

Core::Core() : Core(std::make_unique<Runtime>()) {}

Core::Core(std::unique_ptr<Runtime> own) : Core(*own) { m_own_rt = std::move(own); }

Core::Core(Runtime& rt, const profile::KernelProfile& profile)
    : m_rt(&rt), m_profile(&profile), m_tree(rt.lock()) {
  auto lk = lock(); // construction is an entry point
  auto& root = *m_tree.root();
  // The top level of a real /sys; only some directories have content here.
  for (std::string_view name : {"block", "dev", "firmware", "fs", "power"})
    (void)m_tree.create_dir(root, std::string(name));
  auto dev_dir = root.find("dev");
  (void)m_tree.create_dir(static_cast<kernfs::Dir&>(*dev_dir), "block");
  (void)m_tree.create_dir(static_cast<kernfs::Dir&>(*dev_dir), "char");
  m_bus_dir = *m_tree.create_dir(root, std::string(abi::kBus));
  m_class_dir = *m_tree.create_dir(root, std::string(abi::kClass));
  m_devices_dir = *m_tree.create_dir(root, std::string(abi::kDevices));
  m_virtual_dir = *m_tree.create_dir(*m_devices_dir, std::string(abi::kVirtual));
  m_kernel_dir = *m_tree.create_dir(root, std::string(abi::kKernel));
  m_module_dir = *m_tree.create_dir(root, std::string(abi::kModule));
  (void)m_tree.create_attr(*m_kernel_dir, std::string(abi::kUeventSeqnum), 0444,
                           std::make_unique<kernfs::FunctionAttrOps>(
                               [this] { return seqnum_show(*this); }, nullptr));
}

Core::~Core() = default;

std::shared_ptr<kernfs::Dir> Core::module_dir_for(const std::string& name) {
  held();
  if (auto n = m_module_dir->find(name)) return std::static_pointer_cast<kernfs::Dir>(n);
  return *m_tree.create_dir(*m_module_dir, name);
}

Result<void> Core::driver_set_override(Device& dev, std::string_view text) {
  held();
  if (text.size() >= kernfs::kPageSize - 1) return Error(EINVAL);
  text = text.substr(0, text.find('\n'));
  if (text.empty()) dev.m_driver_override.reset();
  else dev.m_driver_override = std::make_unique<std::string>(text);
  return {};
}

std::string Core::devpath(const Device& dev) const {
  return dev.m_dir && dev.m_dir->active() ? dev.m_dir->path() : std::string();
}

// ---- attribute groups -------------------------------------------------------------------------

Result<void> Core::add_groups(kernfs::Dir& dir, std::span<const DeviceAttributeGroup> groups,
                              Device& dev) {
  std::size_t done = 0;
  for (const auto& g : groups) {
    kernfs::Dir* target = &dir;
    std::shared_ptr<kernfs::Dir> sub;
    if (!g.name.empty()) {
      // Named groups may be shared between tables (the kernel merges into an existing dir).
      if (auto existing = dir.find(g.name); existing && existing->type() == kernfs::NodeType::Dir)
        sub = std::static_pointer_cast<kernfs::Dir>(existing);
      else {
        auto made = m_tree.create_dir(dir, std::string(g.name));
        if (!made) {
          remove_groups(dir, groups.first(done));
          return made.error();
        }
        sub = *made;
      }
      target = sub.get();
    }
    for (const auto& a : g.attrs) {
      mode_t mode = a.mode;
      if (g.is_visible) {
        mode = g.is_visible(dev, a);
        if (mode == 0) continue;
      }
      auto r = m_tree.create_attr(*target, std::string(a.name), mode, &a, &dev);
      if (!r) {
        m_log.error("sysfs: cannot create duplicate filename '" + target->path() + "/" +
                    std::string(a.name) + "'");
        remove_groups(dir, groups.first(done + 1));
        return r.error();
      }
    }
    ++done;
  }
  return {};
}

void Core::remove_groups(kernfs::Dir& dir, std::span<const DeviceAttributeGroup> groups) {
  for (const auto& g : groups) {
    kernfs::Dir* target = &dir;
    std::shared_ptr<kernfs::Node> sub;
    if (!g.name.empty()) {
      sub = dir.find(g.name);
      if (!sub || sub->type() != kernfs::NodeType::Dir) continue;
      target = static_cast<kernfs::Dir*>(sub.get());
    }
    for (const auto& a : g.attrs) {
      // Only remove nodes this row created for this device (a clash may have left another's).
      auto n = target->find(a.name);
      if (!n || n->type() != kernfs::NodeType::Attr) continue;
      m_tree.remove(*n);
    }
    if (sub && static_cast<kernfs::Dir&>(*sub).children().empty()) m_tree.remove(*sub);
  }
}

Result<void> Core::device_add_groups(Device& dev, std::span<const DeviceAttributeGroup> groups) {
  held();
  if (!dev.m_dir) return Error(EINVAL);
  return add_groups(*dev.m_dir, groups, dev);
}

void Core::device_remove_groups(Device& dev, std::span<const DeviceAttributeGroup> groups) {
  held();
  if (dev.m_dir) remove_groups(*dev.m_dir, groups);
}

// ---- placement (driver-core.md §2.2) -----------------------------------------------------------

Result<Core::Placement> Core::parent_dir_for(Device& dev) {
  if (dev.m_class) {
    const std::string& cname = dev.m_class->name();
    kernfs::Dir* base = nullptr;
    if (!dev.m_parent) {
      base = m_virtual_dir.get();
    } else if (dev.m_parent->m_class) {
      return Placement{dev.m_parent->m_dir, false}; // class device below a class device
    } else {
      base = dev.m_parent->m_dir.get();
    }
    // A glue directory named after the class, shared by siblings, never a device itself.
    if (auto g = base->find(cname); g && g->type() == kernfs::NodeType::Dir)
      return Placement{std::static_pointer_cast<kernfs::Dir>(g), true};
    APEMU_TRY(auto glue, m_tree.create_dir(*base, cname));
    return Placement{glue, true};
  }
  if (dev.m_parent) return Placement{dev.m_parent->m_dir, false};
  return Placement{m_devices_dir, false};
}

/// Removes `dir/name` only if it is a link to `target`: when adding a device fails because the
/// name is taken, the entry belongs to the other device and must stay.
static void remove_link_to(kernfs::Tree& tree, kernfs::Dir& dir, const std::string& name,
                           const kernfs::Node& target) {
  auto n = dir.find(name);
  if (n && n->type() == kernfs::NodeType::Link &&
      static_cast<kernfs::Link&>(*n).target().get() == &target)
    tree.remove(*n);
}

static void remove_if_empty_glue(kernfs::Tree& tree, const std::shared_ptr<kernfs::Dir>& glue) {
  if (glue && glue->active() && glue->children().empty()) tree.remove(*glue);
}

// ---- device_add / device_del -------------------------------------------------------------------

Result<void> Core::device_add(Device& dev) {
  held();
  if (dev.m_state != Device::State::Initialized)
    return Error(EINVAL, "device '" + dev.m_name + "' was already added");
  if (dev.m_name.empty()) return Error(EINVAL, "device has no name");
  if (!dev.m_release) {
    m_log.error("Device '" + dev.m_name +
                "' does not have a release() function, it is broken and must be fixed.");
    return Error(EINVAL, "no release callback");
  }
  if (dev.m_parent && !dev.m_parent->registered())
    return Error(EINVAL, "parent of '" + dev.m_name + "' is not registered");
  if (dev.m_bus && !internal::owns(m_buses, dev.m_bus))
    return Error(EINVAL, "bus of '" + dev.m_name + "' is not registered");
  if (dev.m_class && !internal::owns(m_classes, dev.m_class))
    return Error(EINVAL, "class of '" + dev.m_name + "' is not registered");
  dev.m_core = this;
  auto place = parent_dir_for(dev);
  if (!place) {
    dev.m_core = nullptr;
    return place.error();
  }
  std::shared_ptr<kernfs::Dir> glue = place->is_glue ? place->dir : nullptr;
  auto made = m_tree.create_dir(*place->dir, dev.m_name);
  if (!made) {
    m_log.error("sysfs: cannot create duplicate filename '" + place->dir->path() + "/" +
                dev.m_name + "'");
    remove_if_empty_glue(m_tree, glue);
    dev.m_core = nullptr;
    return made.error();
  }
  dev.m_dir = *made;
  dev.m_glue = glue;
  auto& dir = *dev.m_dir;

  auto unwind = [&](Error e) -> Result<void> {
    if (dev.m_class) remove_link_to(m_tree, *dev.m_class->m_dir, dev.m_name, dir);
    if (dev.m_bus) remove_link_to(m_tree, *dev.m_bus->m_devices_dir, dev.m_name, dir);
    m_tree.remove(dir);
    remove_if_empty_glue(m_tree, dev.m_glue);
    dev.m_dir.reset();
    dev.m_glue.reset();
    dev.m_core = nullptr;
    return e;
  };

  // Step 5: uevent. Step 6: class links.
  (void)m_tree.create_attr(dir, std::string(abi::kUevent), kUeventAttr.mode, &kUeventAttr, &dev);
  if (dev.m_class) {
    (void)m_tree.create_link(dir, std::string(abi::kSubsystem), dev.m_class->m_dir);
    if (dev.m_parent) (void)m_tree.create_link(dir, std::string(abi::kDevice), dev.m_parent->m_dir);
    if (auto r = m_tree.create_link(*dev.m_class->m_dir, dev.m_name, dev.m_dir); !r)
      return unwind(r.error());
  }
  // Step 7: groups (class, device), online.
  if (dev.m_class)
    if (auto r = add_groups(dir, dev.m_class->type().dev_groups, dev); !r) return unwind(r.error());
  if (auto r = add_groups(dir, dev.m_groups, dev); !r) return unwind(r.error());
  if (dev.m_bus && dev.m_bus->type().online && dev.m_bus->type().offline)
    (void)m_tree.create_attr(dir, std::string(abi::kOnline), kOnlineAttr.mode, &kOnlineAttr, &dev);
  // Step 8: bus_add_device.
  if (dev.m_bus) {
    Bus& bus = *dev.m_bus;
    if (auto r = add_groups(dir, bus.type().dev_groups, dev); !r) return unwind(r.error());
    if (bus.type().driver_override)
      (void)m_tree.create_attr(dir, std::string(abi::kDriverOverride), kDriverOverrideAttr.mode,
                               &kDriverOverrideAttr, &dev);
    if (auto r = m_tree.create_link(*bus.m_devices_dir, dev.m_name, dev.m_dir); !r)
      return unwind(r.error());
    (void)m_tree.create_link(dir, std::string(abi::kSubsystem), bus.m_dir);
  }
  // Step 9: power/.
  if (!dev.m_pm_not_required) (void)m_tree.create_dir(dir, std::string(abi::kPower));

  // Published: the lists hold a reference, the child holds one on its parent.
  dev.m_state = Device::State::Added;
  dev.ref_get();
  if (dev.m_parent) dev.m_parent->ref_get();
  if (dev.m_bus) dev.m_bus->m_devices.push_back(&dev);

  // Step 11: notifier, then `add`. Step 12: probe. Step 13: parent and class lists.
  if (dev.m_bus) notify(*dev.m_bus, BusEvent::AddDevice, dev);
  (void)device_uevent(dev, Action::Add);
  if (dev.m_bus) bus_probe_device(dev);
  if (dev.m_parent) dev.m_parent->m_children.push_back(&dev);
  if (dev.m_class) dev.m_class->m_devices.push_back(&dev);
  return {};
}

void Core::device_del(Device& dev) {
  held();
  if (dev.m_state != Device::State::Added) return;
  APEMU_ASSERT(dev.m_children.empty()); // leaf first is the only supported order
  Ref<Device> keep(&dev);
  dev.m_dead = true;
  if (dev.m_bus) notify(*dev.m_bus, BusEvent::DelDevice, dev);
  if (dev.m_parent) internal::erase_one(dev.m_parent->m_children, &dev);
  if (dev.m_class) {
    m_tree.remove_child(*dev.m_class->m_dir, dev.m_name);
    internal::erase_one(dev.m_class->m_devices, &dev);
  }
  if (dev.m_bus) {
    Bus& bus = *dev.m_bus;
    m_tree.remove_child(*dev.m_dir, abi::kSubsystem);
    m_tree.remove_child(*bus.m_devices_dir, dev.m_name);
    internal::erase_one(bus.m_devices, &dev);
    release_driver_locked(dev);
  }
  deferred_remove(dev);
  m_offline.erase(&dev);
  if (dev.m_bus) notify(*dev.m_bus, BusEvent::RemovedDevice, dev);
  (void)device_uevent(dev, Action::Remove);
  m_tree.remove(*dev.m_dir);
  remove_if_empty_glue(m_tree, dev.m_glue);
  dev.m_glue.reset();
  dev.m_state = Device::State::Deleted;
  Device* parent = dev.m_parent;
  dev.ref_put(); // the lists' reference
  if (parent) parent->ref_put();
}

void Core::device_unregister(Ref<Device> dev) {
  if (!dev) return;
  device_del(*dev);
  // `dev` goes out of scope here: put_device of the caller's reference.
}

Result<Ref<Device>> Core::root_device_register(std::string name, std::string module) {
  held();
  auto dev = Device::create(std::move(name), [](Device&) {});
  dev->set_pm_not_required(true);
  APEMU_TRY_VOID(device_add(*dev));
  if (!module.empty()) {
    auto mdir = module_dir_for(module);
    (void)m_tree.create_link(*dev->m_dir, std::string(abi::kModule), mdir);
  }
  return dev;
}

void Core::root_device_unregister(Ref<Device> dev) {
  if (!dev) return;
  held();
  if (dev->m_dir) m_tree.remove_child(*dev->m_dir, abi::kModule);
  device_unregister(std::move(dev));
}

// ---- rename / move / online --------------------------------------------------------------------

Result<void> Core::device_rename(Device& dev, std::string new_name) {
  held();
  if (!dev.registered()) return Error(EINVAL);
  std::replace(new_name.begin(), new_name.end(), '/', '!');
  if (new_name.empty()) return Error(EINVAL);
  if (dev.m_bus && dev.m_bus->m_devices_dir->find(new_name)) return Error(EEXIST);
  const std::string old_path = devpath(dev);
  const std::string old_name = dev.m_name;
  APEMU_TRY_VOID(m_tree.rename(*dev.m_dir, new_name));
  dev.m_name = new_name;
  if (dev.m_bus)
    if (auto l = dev.m_bus->m_devices_dir->find(old_name)) (void)m_tree.rename(*l, new_name);
  if (dev.m_class)
    if (auto l = dev.m_class->m_dir->find(old_name)) (void)m_tree.rename(*l, new_name);
  if (dev.m_driver && dev.m_driver->m_dir)
    if (auto l = dev.m_driver->m_dir->find(old_name)) (void)m_tree.rename(*l, new_name);
  (void)device_uevent(dev, Action::Move, {{"DEVPATH_OLD", old_path}});
  return {};
}

Result<void> Core::device_move(Device& dev, Device* new_parent) {
  held();
  if (!dev.registered()) return Error(EINVAL);
  if (new_parent && !new_parent->registered()) return Error(EINVAL);
  const std::string old_path = devpath(dev);
  kernfs::Dir& target = new_parent ? *new_parent->m_dir : *m_devices_dir;
  APEMU_TRY_VOID(m_tree.move(*dev.m_dir, target));
  if (dev.m_parent) {
    internal::erase_one(dev.m_parent->m_children, &dev);
    dev.m_parent->ref_put();
  }
  dev.m_parent = new_parent;
  if (new_parent) {
    new_parent->ref_get();
    new_parent->m_children.push_back(&dev);
  }
  (void)device_uevent(dev, Action::Move, {{"DEVPATH_OLD", old_path}});
  return {};
}

bool Core::device_is_offline(const Device& dev) const {
  held();
  auto it = m_offline.find(&dev);
  return it != m_offline.end() && it->second;
}

Result<void> Core::device_online(Device& dev) {
  held();
  if (!dev.m_bus || !dev.m_bus->type().online) return Error(EINVAL);
  if (!device_is_offline(dev)) return {};
  APEMU_TRY_VOID(dev.m_bus->type().online(dev));
  m_offline[&dev] = false;
  (void)device_uevent(dev, Action::Online);
  return {};
}

Result<void> Core::device_offline(Device& dev) {
  held();
  if (!dev.m_bus || !dev.m_bus->type().offline) return Error(EINVAL);
  if (device_is_offline(dev)) return {};
  for (Device* c : dev.m_children)
    if (c->m_bus && c->m_bus->type().offline && !device_is_offline(*c)) return Error(EBUSY);
  APEMU_TRY_VOID(dev.m_bus->type().offline(dev));
  m_offline[&dev] = true;
  (void)device_uevent(dev, Action::Offline);
  return {};
}

// ---- uevents ----------------------------------------------------------------------------------

Result<void> Core::build_device_env(const Device& dev, uevent::Env& env) {
  // driver-core.md §3.2 step 5: MAJOR/MINOR/DEVNAME (no devt here), DEVTYPE, DRIVER, bus, class.
  if (!dev.m_devtype.empty()) APEMU_TRY_VOID(env.add("DEVTYPE", dev.m_devtype));
  if (dev.m_bus && dev.m_driver) APEMU_TRY_VOID(env.add("DRIVER", dev.m_driver->name()));
  if (dev.m_bus && dev.m_bus->type().uevent) APEMU_TRY_VOID(dev.m_bus->type().uevent(dev, env));
  if (dev.m_class && dev.m_class->type().dev_uevent)
    APEMU_TRY_VOID(dev.m_class->type().dev_uevent(dev, env));
  return {};
}

Result<void> Core::device_uevent(Device& dev, Action action,
                                 const std::vector<std::pair<std::string, std::string>>& extra) {
  held();
  if (!dev.m_dir) return Error(EINVAL);
  // The devices kset filter: only bus or class devices send events (§1.9).
  if ((!dev.m_bus && !dev.m_class && dev.m_uevent_subsystem.empty()) || dev.m_uevent_suppress)
    return {};
  uevent::Env env(m_profile->uevent_num_envp);
  APEMU_TRY_VOID(env.add("ACTION", uevent::action_name(action)));
  const std::string path = devpath(dev);
  APEMU_TRY_VOID(env.add("DEVPATH", path));
  APEMU_TRY_VOID(env.add("SUBSYSTEM", dev.m_bus     ? std::string_view(dev.m_bus->name())
                                      : dev.m_class ? std::string_view(dev.m_class->name())
                                                    : dev.m_uevent_subsystem));
  for (const auto& [k, v] : extra) APEMU_TRY_VOID(env.add(k, v));
  if (auto r = build_device_env(dev, env); !r) {
    m_log.error("kobject: '" + dev.m_name + "': uevent environment too large");
    return r;
  }
  // Unbind events must not trigger module loading.
  if (action == Action::Unbind) env.remove_all("MODALIAS");
  auto sent = m_uevents.send(action, path, std::move(env));
  if (!sent) return sent.error();
  return {};
}

std::string Core::device_uevent_text(const Device& dev) {
  held();
  if (!dev.m_bus && !dev.m_class) return {};
  uevent::Env env(m_profile->uevent_num_envp);
  if (!build_device_env(dev, env)) return {};
  std::string out;
  for (const auto& [k, v] : env.vars()) out += k + "=" + v + "\n";
  return out;
}

Result<void> Core::device_uevent_store(Device& dev, std::string_view text) {
  held();
  auto parsed = parse_synthetic_uevent(text);
  if (!parsed) {
    m_log.error("synth uevent: " + devpath(dev) + ": " + parsed.error().context);
    return parsed.error();
  }
  return device_uevent(dev, parsed->action, parsed->vars);
}

Result<void> Core::send_object_event(Action action, const std::string& devpath,
                                     const std::string& subsystem,
                                     const std::vector<std::pair<std::string, std::string>>& extra) {
  uevent::Env env(m_profile->uevent_num_envp);
  APEMU_TRY_VOID(env.add("ACTION", uevent::action_name(action)));
  APEMU_TRY_VOID(env.add("DEVPATH", devpath));
  APEMU_TRY_VOID(env.add("SUBSYSTEM", subsystem));
  for (const auto& [k, v] : extra) APEMU_TRY_VOID(env.add(k, v));
  auto sent = m_uevents.send(action, devpath, std::move(env));
  if (!sent) return sent.error();
  return {};
}

Result<void> Core::object_uevent_store(std::string_view text, const std::string& devpath,
                                       const std::string& subsystem) {
  held();
  auto parsed = parse_synthetic_uevent(text);
  if (!parsed) {
    m_log.error("synth uevent: " + devpath + ": " + parsed.error().context);
    return parsed.error();
  }
  return send_object_event(parsed->action, devpath, subsystem, parsed->vars);
}

} // namespace apemu::core
