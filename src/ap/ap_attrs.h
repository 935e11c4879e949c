// Attribute tables of the AP bus, cards and queues (private to src/ap).
#pragma once

#include <span>

#include "apemu/core/attribute.h"

namespace apemu::ap {

std::span<const core::BusAttributeGroup> bus_attr_groups();
std::span<const core::DeviceAttributeGroup> card_attr_groups();
std::span<const core::DeviceAttributeGroup> queue_attr_groups();

} // namespace apemu::ap
