// Attribute tables (DEVICE_ATTR_RW, BUS_ATTR_WO, DRIVER_ATTR_RO ...).
//
// Subsystems describe their sysfs files as static arrays of Attribute<Obj> rows: a name, a mode
// and plain show/store functions taking the object. The core instantiates them as kernfs
// attribute nodes pointing at the row, with the object as context. Rows must outlive every
// object that uses them (static storage).
//
// @code
//   static const core::DeviceAttribute kCardAttrs[] = {
//       {"hwtype", 0444, [](core::Device& d) -> Result<std::string> { ... }, nullptr},
//       {"online", 0644, show_online, store_online},
//   };
//   static const core::DeviceAttributeGroup kCardGroups[] = {{"", kCardAttrs}};
// @endcode
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <string_view>

#include "apemu/base/result.h"
#include "apemu/kernfs/node.h"

namespace apemu::core {

class Device;
class Driver;
class Bus;
class Class;

template <class Obj> struct Attribute final : kernfs::AttrOps {
  using Show = Result<std::string> (*)(Obj&);
  using Store = Result<void> (*)(Obj&, std::string_view);
  /// A store that may block its writer (see kernfs::Blocker; `blocker` may be null).
  using BlockingStore = Result<void> (*)(Obj&, std::string_view, kernfs::Blocker* blocker);

  Attribute(std::string_view n, mode_t m, Show s, Store st)
      : name(n), mode(m), show_fn(s), store_fn(st) {}
  /// A row whose store may block (DEVICE_ATTR_WO of a store that waits, e.g. mdev `remove`).
  static Attribute blocking(std::string_view n, mode_t m, Show s, BlockingStore st) {
    Attribute a(n, m, s, Store{nullptr});
    a.blocking_store_fn = st;
    return a;
  }

  std::string_view name;
  mode_t mode;
  Show show_fn;
  Store store_fn = nullptr;
  BlockingStore blocking_store_fn = nullptr;

  bool can_show() const override { return show_fn != nullptr; }
  bool can_store() const override { return store_fn || blocking_store_fn; }
  bool can_block() const override { return blocking_store_fn != nullptr; }
  Result<std::string> show(void* ctx) const override {
    return show_fn(*static_cast<Obj*>(ctx));
  }
  Result<void> store(void* ctx, std::string_view text, kernfs::Blocker* b) const override {
    if (blocking_store_fn) return blocking_store_fn(*static_cast<Obj*>(ctx), text, b);
    return store_fn(*static_cast<Obj*>(ctx), text);
  }
};

/// A group of attributes, optionally in a named subdirectory (struct attribute_group).
/// `is_visible` may return 0 to hide a row or another mode to override it.
template <class Obj> struct AttributeGroup {
  std::string_view name; ///< empty: the object's own directory
  std::span<const Attribute<Obj>> attrs;
  mode_t (*is_visible)(Obj&, const Attribute<Obj>&) = nullptr;
};

using DeviceAttribute = Attribute<Device>;
using BusAttribute = Attribute<Bus>;
using DriverAttribute = Attribute<Driver>;
using ClassAttribute = Attribute<Class>;
using DeviceAttributeGroup = AttributeGroup<Device>;
using BusAttributeGroup = AttributeGroup<Bus>;
using DriverAttributeGroup = AttributeGroup<Driver>;
using ClassAttributeGroup = AttributeGroup<Class>;

} // namespace apemu::core
