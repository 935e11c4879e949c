// struct device: a named, counted node of the device hierarchy (drivers/base/core.c).
//
// A Device is created with Device::create<T>(...) (infallible, refcount 1, not yet visible:
// device_initialize) and published with Core::device_add (fallible: directory, attributes,
// links, `add` uevent, probing). Subsystems derive from Device to add their state, as the
// kernel embeds struct device in struct ap_queue.
//
// Binding is owned by the core: there is no setter for the driver. A device is bound only after
// a successful probe through Core (driver-core.md §1.10: the 2019 vfio_ap matrix-device defect
// was a hand-set driver pointer).
//
// Lifetime: counted references (Ref<Device>). The creator holds the first; a registered device
// holds one more for the core's lists (dropped by device_del) and one on its parent. The release
// callback is mandatory and runs exactly once, when the last reference goes; then the object is
// destroyed.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/core/attribute.h"
#include "apemu/core/ref.h"
#include "apemu/kernfs/node.h"

namespace apemu::core {

class Core;

/// Passkey for Device constructors: only Device::create can make one.
class DeviceKey {
  friend class Device;
  DeviceKey() = default;
};

class Device {
public:
  using Release = std::function<void(Device&)>;

  /// device_initialize: allocates a T (derived from Device) with refcount 1. T's constructor
  /// takes a DeviceKey first and forwards it to Device's.
  template <class T = Device, class... Args> static Ref<T> create(Args&&... args) {
    static_assert(std::is_base_of_v<Device, T>);
    return Ref<T>::adopt(new T(DeviceKey{}, std::forward<Args>(args)...));
  }

  /// A plain device named `name` with release callback `release` (may be empty, which
  /// device_add rejects with EINVAL, as the kernel's "does not have a release() function").
  Device(DeviceKey, std::string name, Release release = {});
  virtual ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // ---- configuration before device_add (device_initialize callers set these) ------------------
  void set_parent(Device* parent) { m_parent = parent; }
  void set_bus(Bus* bus) { m_bus = bus; }
  void set_class(Class* cls) { m_class = cls; }
  /// DEVTYPE (the struct device_type name). The text must have static storage duration.
  void set_devtype(std::string_view name) { m_devtype = name; }
  void set_groups(std::span<const DeviceAttributeGroup> groups) { m_groups = groups; }
  /// dev->devt of a character device (major != 0): device_add then gives it a `dev` file,
  /// /sys/dev/char/MAJ:MIN and MAJOR/MINOR/DEVNAME in its uevents (driver-core.md §2.5, §2.6,
  /// §3.2).
  void set_devt(unsigned major, unsigned minor) {
    m_major = major;
    m_minor = minor;
  }
  void set_release(Release release) { m_release = std::move(release); }
  /// Root devices and grouping nodes have no power/ directory.
  void set_pm_not_required(bool v) { m_pm_not_required = v; }
  void set_uevent_suppress(bool v) { m_uevent_suppress = v; }
  /// For a bus-less root device whose owner points its bus at it after registration (the AP
  /// bus does this with /sys/devices/ap): its events pass the kset filter and carry
  /// SUBSYSTEM=<name>, but it gets no subsystem link and is on no bus list.
  /// The text must have static storage duration.
  void set_uevent_subsystem(std::string_view name) { m_uevent_subsystem = name; }

  // ---- queries ---------------------------------------------------------------------------------
  /// Kernel name; a '/' requested by the creator is stored as '!'.
  const std::string& name() const { return m_name; }
  Device* parent() const { return m_parent; }
  Bus* bus() const { return m_bus; }
  Class* device_class() const { return m_class; }
  /// The bound driver; null while unbound or while a probe is in progress and fails.
  Driver* driver() const { return m_driver; }
  std::string_view devtype() const { return m_devtype; }
  /// MAJOR(devt), 0 without a device number.
  unsigned devt_major() const { return m_major; }
  unsigned devt_minor() const { return m_minor; }
  /// The node name below /dev (DEVNAME): the kernel name with '!' turned back into '/'.
  std::string devnode_name() const;
  /// The driver_override name, or null when unset.
  const std::string* driver_override() const { return m_driver_override.get(); }
  /// True between device_add and device_del.
  bool registered() const { return m_state == State::Added; }
  bool dead() const { return m_dead; }
  /// The Core this device was added to (null before device_add).
  Core* core() const { return m_core; }
  /// The sysfs directory (null unless registered).
  const std::shared_ptr<kernfs::Dir>& dir() const { return m_dir; }
  /// dev_driver_string: driver name if bound, else bus name, else class name, else "".
  std::string driver_string() const;
  int refcount() const { return m_refs.load(); }

  /// Driver-private data pointer (dev_set_drvdata); the core clears it after remove().
  void set_drvdata(void* p) { m_drvdata = p; }
  void* drvdata() const { return m_drvdata; }

  // Intrusive counting for Ref<Device>.
  void ref_get() { m_refs.fetch_add(1, std::memory_order_relaxed); }
  void ref_put();

private:
  friend class Core;
  friend struct DeviceFiles;
  enum class State { Initialized, Added, Deleted };

  std::atomic<int> m_refs{1};
  Release m_release;
  std::string m_name;
  Device* m_parent = nullptr;
  Bus* m_bus = nullptr;
  Class* m_class = nullptr;
  Driver* m_driver = nullptr;
  std::string_view m_devtype;          // static text (device_type names are constants)
  std::string_view m_uevent_subsystem; // static text
  std::unique_ptr<std::string> m_driver_override; // rarely set: 8 bytes, not 40, per device
  std::span<const DeviceAttributeGroup> m_groups;
  void* m_drvdata = nullptr;
  unsigned m_major = 0, m_minor = 0;
  bool m_pm_not_required = false;
  bool m_uevent_suppress = false;
  bool m_dead = false;
  bool m_bound = false; ///< on the driver's bound list (driver_bound completed)
  State m_state = State::Initialized;
  Core* m_core = nullptr;
  std::shared_ptr<kernfs::Dir> m_dir;
  std::shared_ptr<kernfs::Dir> m_glue; ///< class glue directory holding m_dir, if any
  std::vector<Device*> m_children;     ///< registered children, add order
};

/// Casts a Device known to be a T (the subsystem's own devices).
template <class T> T& dev_cast(Device& d) { return static_cast<T&>(d); }
template <class T> const T& dev_cast(const Device& d) { return static_cast<const T&>(d); }

} // namespace apemu::core
