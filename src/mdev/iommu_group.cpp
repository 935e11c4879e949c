// Emulated IOMMU groups of mdevs: the group directory under /sys/kernel/iommu_groups and the
// links both ways (drivers/iommu/iommu.c iommu_group_alloc / iommu_group_add_device /
// iommu_group_remove_device, as used by vfio_register_emulated_iommu_dev). QEMU's vfio-ap
// device reads the mdev's `iommu_group` link and parses its basename as an integer (STYLE.md,
// QEMU anchor), so the directory names are plain decimal numbers.
#include <cerrno>

#include "apemu/mdev/abi_names.h"
#include "apemu/mdev/mdev.h"

namespace apemu::mdev {

Result<unsigned> MdevBus::iommu_group_add_device(MdevDevice& dev) {
  m_core->held();
  if (dev.m_group >= 0) return Error(EEXIST);
  if (!dev.dir()) return Error(EINVAL);
  // The kernel's IDA hands out the lowest free number.
  unsigned n = 0;
  while (n < m_group_used.size() && m_group_used[n]) ++n;
  auto& tree = m_core->tree();
  APEMU_TRY(auto gdir, tree.create_dir(*m_groups_dir, std::to_string(n)));
  auto fail = [&](Error e) -> Result<unsigned> {
    tree.remove(*gdir);
    return e;
  };
  auto devs = tree.create_dir(*gdir, std::string(abi::kDevices));
  if (!devs) return fail(devs.error());
  // A group of an emulated-IOMMU device has no reserved regions and no default domain.
  (void)tree.create_attr(*gdir, std::string(abi::kReservedRegions), 0444,
                         std::make_unique<kernfs::FunctionAttrOps>(
                             [] { return Result<std::string>(std::string()); }, nullptr));
  (void)tree.create_attr(*gdir, std::string(abi::kType), 0644,
                         std::make_unique<kernfs::FunctionAttrOps>(
                             [] { return Result<std::string>(std::string("unknown\n")); },
                             // iommu_group_store_type: no default domain to change.
                             [](std::string_view) -> Result<void> { return Error(EINVAL); }));
  if (auto r = tree.create_link(**devs, dev.name(), dev.dir()); !r) return fail(r.error());
  if (auto r = tree.create_link(*dev.dir(), std::string(abi::kIommuGroup), gdir); !r)
    return fail(r.error());
  if (n >= m_group_used.size()) m_group_used.resize(n + 1, 0);
  m_group_used[n] = 1;
  dev.m_group = static_cast<int>(n);
  return n;
}

void MdevBus::iommu_group_remove_device(MdevDevice& dev) {
  m_core->held();
  if (dev.m_group < 0) return;
  const unsigned n = static_cast<unsigned>(dev.m_group);
  auto& tree = m_core->tree();
  if (dev.dir()) tree.remove_child(*dev.dir(), abi::kIommuGroup);
  // The group held only this device: it is released with its directory.
  tree.remove_child(*m_groups_dir, std::to_string(n));
  m_group_used[n] = 0;
  dev.m_group = -1;
}

} // namespace apemu::mdev
