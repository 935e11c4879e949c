// vfio_ap-private declarations shared by its files (drivers/s390/crypto/vfio_ap_private.h).
#pragma once

#include <span>
#include <string>

#include "apemu/core/attribute.h"
#include "apemu/vfio_ap/vfio_ap.h"

namespace apemu::vfio_ap {

/// The mdev driver's dev_groups (vfio_ap_mdev_attr_groups); rows the profile lacks are hidden.
std::span<const core::DeviceAttributeGroup> mdev_attr_groups();
/// The matrix driver's dev_groups: `features` [6.12+].
std::span<const core::DeviceAttributeGroup> matrix_dev_groups();
/// The AP queue driver's dev_groups: `status` [~6.2+].
std::span<const core::DeviceAttributeGroup> queue_attr_groups();

} // namespace apemu::vfio_ap
