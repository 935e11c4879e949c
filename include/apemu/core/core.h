// The driver core of one emulated machine (drivers/base: core.c, bus.c, dd.c, driver.c,
// class.c, kobject_uevent.c glue).
//
// Core owns the sysfs tree (/sys/devices, /sys/bus, /sys/class, /sys/kernel/uevent_seqnum ...),
// the uevent broadcaster and the kernel log, and is the only code that creates generic files,
// links and list entries. Subsystems register BusType/DriverOps/ClassType tables and Devices.
//
// Locking: every public function requires the machine lock (runtime().lock()) and asserts it;
// none takes it. Entry points (FUSE handlers, control commands, timers, C++ callers such as
// tests) take it once. Events are delivered to subscribers synchronously, in SEQNUM order,
// while the lock is held.
//
// @code
//   core::Core core;
//   auto g = core.lock();                   // this code is the entry point
//   auto* bus = *core.bus_register({.name = "foo"});
//   auto* drv = *core.driver_register(*bus, {.name = "food", .probe = [](Device&) {
//     return Result<void>{}; }});
//   auto dev = core::Device::create("foo0", [](core::Device&) {});
//   dev->set_bus(bus);
//   if (auto r = core.device_add(*dev); !r) return r.error();  // add, then bind
//   core.device_unregister(std::move(dev));                      // unbind, remove, put
// @endcode
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/base/log.h"
#include "apemu/base/result.h"
#include "apemu/core/bus.h"
#include "apemu/core/class.h"
#include "apemu/core/device.h"
#include "apemu/core/driver.h"
#include "apemu/kernfs/tree.h"
#include "apemu/profile/kernel_profile.h"
#include "apemu/uevent/event.h"

namespace apemu::core {

/// Bus notifier events (include/linux/device/bus.h BUS_NOTIFY_*).
enum class BusEvent {
  AddDevice,
  DelDevice,
  RemovedDevice,
  BindDriver,
  BoundDriver,
  UnbindDriver,
  UnboundDriver,
  DriverNotBound
};

class Core {
public:
  /// A machine driven by `rt` (its lock, clock and executor) that behaves like `profile`.
  explicit Core(Runtime& rt, const profile::KernelProfile& profile = profile::default_profile());
  /// A machine with a runtime of its own (virtual clock, no executor thread), newest profile.
  Core();
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  Runtime& runtime() const { return *m_rt; }
  /// The kernel this machine behaves like: every subsystem asks it about features.
  const profile::KernelProfile& profile() const { return *m_profile; }
  kernfs::Tree& tree() { return m_tree; }
  const kernfs::Tree& tree() const { return m_tree; }
  uevent::Broadcaster& uevents() { return m_uevents; }
  Log& log() { return m_log; }
  /// Takes the machine lock for a scope: only entry points call this.
  [[nodiscard]] MachineGuard lock() const { return m_rt->lock().guard(); }
  /// Asserts that the caller holds the machine lock.
  void held() const { m_rt->lock().assert_held(); }

  /// Well-known directories.
  const std::shared_ptr<kernfs::Dir>& devices_dir() const { return m_devices_dir; }
  const std::shared_ptr<kernfs::Dir>& kernel_dir() const { return m_kernel_dir; }
  const std::shared_ptr<kernfs::Dir>& module_dir() const { return m_module_dir; }

  // ---- buses (bus.c) -----------------------------------------------------------------------------
  /// bus_register: /sys/bus/NAME with devices/, drivers/, uevent, drivers_probe,
  /// drivers_autoprobe and the bus groups. Emits: add /bus/NAME (SUBSYSTEM=bus).
  /// Returns: EEXIST for a duplicate name, EINVAL for an empty one.
  Result<Bus*> bus_register(BusType type);
  /// bus_unregister: all devices and drivers must already be gone (asserted).
  /// Emits: remove /bus/NAME.
  void bus_unregister(Bus& bus);
  Bus* find_bus(std::string_view name) const;
  /// Registered buses in registration order.
  std::vector<Bus*> buses() const;

  /// bus_for_each_dev: every registered device of the bus in add order, starting after
  /// `start` (exclusive; null = from the head). Stops at and returns the first non-zero return
  /// of fn. Removal of the current element during the walk neither skips nor revisits others.
  int bus_for_each_dev(Bus& bus, Device* start, const std::function<int(Device&)>& fn);
  /// bus_find_device_by_name with sysfs_streq comparison; a new reference or null.
  Ref<Device> bus_find_device_by_name(Bus& bus, std::string_view name);
  /// driver_for_each_device: only devices whose binding completed, in bind order.
  int driver_for_each_device(Driver& drv, Device* start, const std::function<int(Device&)>& fn);
  int device_for_each_child(Device& parent, const std::function<int(Device&)>& fn);

  using BusNotifier = std::function<void(BusEvent, Device&)>;
  /// bus_register_notifier; returns an id for bus_unregister_notifier.
  int bus_register_notifier(Bus& bus, BusNotifier fn);
  void bus_unregister_notifier(Bus& bus, int id);

  // ---- drivers (driver.c, dd.c) ------------------------------------------------------------------
  /// driver_register: /sys/bus/B/drivers/NAME; attaches to every matching unbound device when
  /// autoprobe is on (their `bind` events come first), then emits add (SUBSYSTEM=drivers).
  /// Returns: EBUSY when the bus already has a driver of that name.
  Result<Driver*> driver_register(Bus& bus, DriverOps ops);
  /// driver_unregister: unbinds every bound device (last bound first), then removes the driver.
  /// Emits: unbind per device, then remove /bus/B/drivers/NAME.
  void driver_unregister(Driver& drv);

  /// device_attach: device-driven probe in driver registration order, ignoring autoprobe.
  /// Returns: true when bound (or already bound), false when nothing matched; an error when
  /// match() failed or the device is not registered (ENODEV).
  Result<bool> device_attach(Device& dev);
  /// device_driver_attach (the `bind` file): Returns: EBUSY when already bound, ENODEV when the
  /// device is dead/unregistered, EAGAIN when the probe deferred, else the probe's errno.
  Result<void> device_driver_attach(Driver& drv, Device& dev);
  /// device_release_driver: unbinds if bound. Emits: unbind (no DRIVER, no MODALIAS).
  void device_release_driver(Device& dev);
  /// driver_match_device: driver_override first (when set, only that driver), then bus match().
  int driver_match_device(Driver& drv, Device& dev);
  /// driver_set_override (the generic rules, driver-core.md §2.8): input of PAGE_SIZE-1 bytes
  /// or more is EINVAL; the value is cut at the first newline; an empty value clears the
  /// override. Does not rebind. Returns: EINVAL.
  Result<void> driver_set_override(Device& dev, std::string_view text);
  /// Devices currently on the deferred-probe list.
  std::vector<Device*> deferred_devices() const;

  // ---- devices (core.c) --------------------------------------------------------------------------
  /// device_add: publishes an initialized device (driver-core.md §1.1): directory, uevent,
  /// class links, groups, bus links, power/, `add` uevent, probe. Returns: EINVAL (no name,
  /// no release callback, already added or deleted, parent not registered), EEXIST (duplicate
  /// name in the directory or on the bus). On failure nothing is left behind.
  Result<void> device_add(Device& dev);
  /// device_del (§1.2): unbind, `remove` uevent, directory and links gone, parent put.
  /// Children must be deleted first (asserted).
  void device_del(Device& dev);
  /// device_unregister: device_del plus dropping the caller's reference.
  void device_unregister(Ref<Device> dev);
  template <class T> void device_unregister(Ref<T> dev) { device_unregister(Ref<Device>(std::move(dev))); }

  /// root_device_register: /sys/devices/NAME, no bus, no class, no uevents, no power/; a
  /// `module` link when `module` is non-empty. Returns: EEXIST on duplicates.
  Result<Ref<Device>> root_device_register(std::string name, std::string module = {});
  void root_device_unregister(Ref<Device> dev);

  /// device_rename: Emits: move with DEVPATH_OLD. Returns: EEXIST on clash, EINVAL if not
  /// registered.
  Result<void> device_rename(Device& dev, std::string new_name);
  /// device_move: re-parents (null = /sys/devices). Emits: move with DEVPATH_OLD.
  Result<void> device_move(Device& dev, Device* new_parent);
  /// device_online/device_offline through the bus callbacks. Emits: online/offline.
  /// Returns: EINVAL when the bus has none, EBUSY (offline) when a child is online.
  Result<void> device_online(Device& dev);
  Result<void> device_offline(Device& dev);
  bool device_is_offline(const Device& dev) const;

  /// The devpath ("/devices/ap/card05") of a registered device; "" otherwise.
  std::string devpath(const Device& dev) const;

  // ---- uevents (kobject_uevent.c) -----------------------------------------------------------------
  /// kobject_uevent_env for a device: builds the environment (§3.2) and sends it. Filtered
  /// devices (no bus, no class) and suppressed ones send nothing and succeed.
  /// Returns: ENOMEM when the environment exceeds the limits (nothing sent).
  Result<void> device_uevent(Device& dev, uevent::Action action,
                             const std::vector<std::pair<std::string, std::string>>& extra = {});
  /// The `uevent` file text of a device: kset variables only, one KEY=VALUE per line.
  std::string device_uevent_text(const Device& dev);
  /// Handles a write to a device's `uevent` file (§3.5). Returns: EINVAL on bad grammar.
  Result<void> device_uevent_store(Device& dev, std::string_view text);

  // ---- classes (class.c) --------------------------------------------------------------------------
  /// class_register: /sys/class/NAME and class attributes. Emits: add /class/NAME.
  /// Returns: EEXIST for a duplicate.
  Result<Class*> class_register(ClassType type);
  void class_unregister(Class& cls);
  Class* find_class(std::string_view name) const;
  /// class_compat_register: bare /sys/class/NAME (no uevent). Returns: EEXIST.
  Result<CompatClass*> class_compat_register(std::string name);
  void class_compat_unregister(CompatClass& cc);
  /// Adds /sys/class/NAME/<dev name> pointing at the device. Returns: EEXIST.
  Result<void> class_compat_create_link(CompatClass& cc, Device& dev);
  void class_compat_remove_link(CompatClass& cc, Device& dev);

  // ---- attribute helpers for subsystems ---------------------------------------------------------
  /// Creates groups on a registered device (device_add_groups). Returns: EEXIST on a clash
  /// (everything created by this call is removed again).
  Result<void> device_add_groups(Device& dev, std::span<const DeviceAttributeGroup> groups);
  void device_remove_groups(Device& dev, std::span<const DeviceAttributeGroup> groups);
  /// /sys/module/NAME, created on first use (modules of drivers and root devices).
  std::shared_ptr<kernfs::Dir> module_dir_for(const std::string& name);

private:
  explicit Core(std::unique_ptr<Runtime> own);
  // dd.c
  Result<void> really_probe(Device& dev, Driver& drv);
  void driver_bound(Device& dev);
  void release_driver_locked(Device& dev);
  Result<bool> device_attach_locked(Device& dev);
  void driver_attach(Driver& drv);
  void deferred_add(Device& dev);
  void deferred_remove(Device& dev);
  void deferred_retry();
  void bus_probe_device(Device& dev);
  void notify(Bus& bus, BusEvent ev, Device& dev);
  // core.c
  struct Placement {
    std::shared_ptr<kernfs::Dir> dir;
    bool is_glue; ///< a class glue directory (removed when it becomes empty)
  };
  Result<Placement> parent_dir_for(Device& dev);
  Result<void> add_groups(kernfs::Dir& dir, std::span<const DeviceAttributeGroup> groups,
                          Device& dev);
  void remove_groups(kernfs::Dir& dir, std::span<const DeviceAttributeGroup> groups);
  Result<void> build_device_env(const Device& dev, uevent::Env& env);
  Result<void> send_object_event(uevent::Action action, const std::string& devpath,
                                 const std::string& subsystem,
                                 const std::vector<std::pair<std::string, std::string>>& extra = {});
  Result<void> object_uevent_store(std::string_view text, const std::string& devpath,
                                   const std::string& subsystem);
  friend struct BusFiles;
  friend struct DriverFiles;
  friend struct DeviceFiles;

  std::unique_ptr<Runtime> m_own_rt; ///< Core() only
  Runtime* m_rt;
  const profile::KernelProfile* m_profile;
  kernfs::Tree m_tree;
  uevent::Broadcaster m_uevents;
  Log m_log;
  std::shared_ptr<kernfs::Dir> m_devices_dir, m_bus_dir, m_class_dir, m_kernel_dir, m_module_dir,
      m_virtual_dir;
  std::vector<std::unique_ptr<Bus>> m_buses;
  std::vector<std::unique_ptr<Class>> m_classes;
  std::vector<std::unique_ptr<CompatClass>> m_compat_classes;
  std::vector<Ref<Device>> m_deferred;
  bool m_deferred_running = false;
  bool m_deferred_trigger = false;
  std::map<Bus*, std::map<int, BusNotifier>> m_notifiers;
  int m_next_notifier = 1;
  std::map<const Device*, bool> m_offline; ///< devices offlined through device_offline
};

} // namespace apemu::core
