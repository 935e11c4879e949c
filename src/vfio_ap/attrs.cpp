// The sysfs tables of vfio_ap: the mdev attributes, the matrix device's `features` and the AP
// queue's `status` (vfio_ap_ops.c vfio_ap_mdev_attrs / vfio_queue_attrs, vfio_ap_drv.c
// matrix_dev_attrs; vfio-ap.md §1.2, §3, §4.7). The rows only dispatch to VfioAp, which holds
// the rules.
#include "private.h"

#include "apemu/vfio_ap/abi_names.h"

namespace apemu::vfio_ap {

struct VfioApAttrs {
  static MatrixMdev& m(core::Device& d) { return VfioAp::mdev_of(d); }
  static VfioAp& v(core::Device& d) { return m(d).vfio_ap(); }

#define APEMU_VFIO_AP_STORE(fn)                                                                    \
  static Result<void> fn(core::Device& d, std::string_view t) { return v(d).fn(m(d), t); }
  APEMU_VFIO_AP_STORE(assign_adapter)
  APEMU_VFIO_AP_STORE(unassign_adapter)
  APEMU_VFIO_AP_STORE(assign_domain)
  APEMU_VFIO_AP_STORE(unassign_domain)
  APEMU_VFIO_AP_STORE(assign_control_domain)
  APEMU_VFIO_AP_STORE(unassign_control_domain)
  APEMU_VFIO_AP_STORE(ap_config_store)
#undef APEMU_VFIO_AP_STORE

  static Result<std::string> ap_config_show(core::Device& d) { return v(d).ap_config_show(m(d)); }
  static Result<std::string> matrix_show(core::Device& d) { return v(d).matrix_show(m(d)); }
  static Result<std::string> guest_matrix_show(core::Device& d) {
    return v(d).guest_matrix_show(m(d));
  }
  static Result<std::string> control_domains_show(core::Device& d) {
    return v(d).control_domains_show(m(d));
  }
  static Result<std::string> features_show(core::Device&) {
    return std::string(abi::kFeaturesValue);
  }
  static Result<std::string> status_show(core::Device& d) {
    auto* q = static_cast<VfioApQueue*>(d.drvdata());
    if (!q || !d.driver()) return Error(ENODEV);
    // The AP driver's data is the module (set at registration).
    return static_cast<VfioAp*>(d.driver()->data())->queue_status(*q);
  }
  /// ap_config exists from 6.10, guest_matrix from 6.0 (dynamic configuration).
  static mode_t mdev_visible(core::Device& d, const core::DeviceAttribute& a) {
    const auto& p = v(d).profile();
    if (a.name == abi::kApConfig) return p.vfio_ap_ap_config ? a.mode : 0;
    if (a.name == abi::kGuestMatrix) return p.vfio_ap_dynamic_config ? a.mode : 0;
    return a.mode;
  }
  static mode_t matrix_visible(core::Device& d, const core::DeviceAttribute& a) {
    return d.core()->profile().vfio_ap_features ? a.mode : 0;
  }
  static mode_t queue_visible(core::Device& d, const core::DeviceAttribute& a) {
    return d.core()->profile().vfio_ap_queue_status ? a.mode : 0;
  }
};

namespace {

// Row order as vfio_ap_mdev_attrs.
const core::DeviceAttribute kMdevAttrs[] = {
    {abi::kAssignAdapter, 0200, nullptr, VfioApAttrs::assign_adapter},
    {abi::kUnassignAdapter, 0200, nullptr, VfioApAttrs::unassign_adapter},
    {abi::kAssignDomain, 0200, nullptr, VfioApAttrs::assign_domain},
    {abi::kUnassignDomain, 0200, nullptr, VfioApAttrs::unassign_domain},
    {abi::kAssignControlDomain, 0200, nullptr, VfioApAttrs::assign_control_domain},
    {abi::kUnassignControlDomain, 0200, nullptr, VfioApAttrs::unassign_control_domain},
    {abi::kApConfig, 0644, VfioApAttrs::ap_config_show, VfioApAttrs::ap_config_store},
    {abi::kControlDomains, 0444, VfioApAttrs::control_domains_show, nullptr},
    {abi::kMatrixAttr, 0444, VfioApAttrs::matrix_show, nullptr},
    {abi::kGuestMatrix, 0444, VfioApAttrs::guest_matrix_show, nullptr},
};


const core::DeviceAttributeGroup kMdevGroups[] = {{"", kMdevAttrs, VfioApAttrs::mdev_visible}};

const core::DeviceAttribute kMatrixDevAttrs[] = {
    {abi::kFeatures, 0444, VfioApAttrs::features_show, nullptr},
};
const core::DeviceAttributeGroup kMatrixDevGroups[] = {
    {"", kMatrixDevAttrs, VfioApAttrs::matrix_visible}};

const core::DeviceAttribute kQueueAttrs[] = {
    {abi::kStatus, 0444, VfioApAttrs::status_show, nullptr},
};
const core::DeviceAttributeGroup kQueueGroups[] = {{"", kQueueAttrs, VfioApAttrs::queue_visible}};

} // namespace

std::span<const core::DeviceAttributeGroup> mdev_attr_groups() { return kMdevGroups; }

std::span<const core::DeviceAttributeGroup> matrix_dev_groups() { return kMatrixDevGroups; }
std::span<const core::DeviceAttributeGroup> queue_attr_groups() { return kQueueGroups; }

} // namespace apemu::vfio_ap
