// mdev-core-private: the sysfs tables of mdev_sysfs.cpp used by mdev_core.cpp.
#pragma once

#include <span>

#include "apemu/core/attribute.h"
#include "apemu/kernfs/tree.h"
#include "apemu/mdev/mdev.h"

namespace apemu::mdev {

/// Creates the files of a type directory (type->dir() must exist). Locking: model lock.
Result<void> create_type_files(kernfs::Tree& tree, MdevType& type);
/// mdev_device_groups: the `remove` file of every mdev.
std::span<const core::DeviceAttributeGroup> mdev_device_groups();

} // namespace apemu::mdev
