// The sysfs files of the mdev core: the type directories (create, name, device_api,
// available_instances, description, devices/) and the per-device `remove` file
// (drivers/vfio/mdev/mdev_sysfs.c; driver-core.md §2.8, vfio-ap.md §1.4, §3.11).
#include "mdev_sysfs.h"

#include "apemu/base/parse.h"
#include "apemu/mdev/abi_names.h"

namespace apemu::mdev {

namespace {

/// The canonical UUID text length (UUID_STRING_LEN).
constexpr std::size_t kUuidStringLen = 36;

} // namespace

struct MdevTypeFiles {
  static Result<void> create_store(MdevType& t, std::string_view text) {
    // 36 bytes, or 37 with one trailing character such as '\n'; the UUID parser then only
    // looks at the first 36 (guid_parse on the duplicated string).
    if (text.size() < kUuidStringLen || text.size() > kUuidStringLen + 1) return Error(EINVAL);
    APEMU_TRY(Uuid uuid, parse_uuid(text.substr(0, kUuidStringLen)));
    APEMU_TRY_VOID(t.parent().mdev_bus().create_device(t, uuid));
    return {};
  }
  static Result<std::string> device_api_show(MdevType& t) {
    return t.parent().driver().ops().device_api + "\n";
  }
  static Result<std::string> name_show(MdevType& t) { return t.name() + "\n"; }
  static Result<std::string> available_instances_show(MdevType& t) {
    return std::to_string(t.parent().available_instances()) + "\n";
  }
  static Result<std::string> description_show(MdevType& t) {
    const auto& fn = t.parent().driver().ops().show_description;
    if (!fn) return Error(EIO);
    return fn(t);
  }
  static mode_t is_visible(MdevType& t, const core::Attribute<MdevType>& a) {
    if (a.name == abi::kDescription && !t.parent().driver().ops().show_description) return 0;
    return a.mode;
  }
};

namespace {

const core::Attribute<MdevType> kTypeAttrs[] = {
    {abi::kCreate, 0200, nullptr, MdevTypeFiles::create_store},
    {abi::kDeviceApi, 0444, MdevTypeFiles::device_api_show, nullptr},
    {abi::kName, 0444, MdevTypeFiles::name_show, nullptr},
    {abi::kAvailableInstances, 0444, MdevTypeFiles::available_instances_show, nullptr},
    {abi::kDescription, 0444, MdevTypeFiles::description_show, nullptr},
};

Result<void> remove_store(core::Device& d, std::string_view text, kernfs::Blocker* blocker) {
  // Any parse failure is EINVAL (the kernel maps every kstrtoul error, ERANGE included).
  auto v = kstrtoul(text, 0);
  if (!v) return Error(EINVAL);
  if (*v == 0) return {};
  MdevDevice& mdev = to_mdev_device(d);
  // `mdev` may be destroyed by this call; nothing may touch it afterwards. A device in use
  // blocks the writer (kEIocbQueued) until its user releases it.
  return mdev.mdev_bus().remove_device(mdev, blocker);
}

const core::DeviceAttribute kDeviceAttrs[] = {
    core::DeviceAttribute::blocking(abi::kRemove, 0200, nullptr, remove_store),
};

const core::DeviceAttributeGroup kDeviceGroups[] = {{"", kDeviceAttrs}};

} // namespace

Result<void> create_type_files(kernfs::Tree& tree, MdevType& type) {
  for (const auto& a : kTypeAttrs) {
    const mode_t mode = MdevTypeFiles::is_visible(type, a);
    if (mode == 0) continue;
    APEMU_TRY_VOID(tree.create_attr(*type.dir(), std::string(a.name), mode, &a, &type));
  }
  return {};
}

std::span<const core::DeviceAttributeGroup> mdev_device_groups() { return kDeviceGroups; }

} // namespace apemu::mdev
