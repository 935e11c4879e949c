// Classes and class_compat directories (drivers/base/class.c; driver-core.md §1.11, §2.6).
#include <algorithm>

#include "apemu/base/assert.h"
#include "apemu/core/core.h"
#include "internal.h"

namespace apemu::core {

Result<Class*> Core::class_register(ClassType type) {
  held();
  if (type.name.empty()) return Error(EINVAL);
  if (m_class_dir->find(type.name)) return Error(EEXIST);
  auto cls = std::make_unique<Class>(Class::Key{}, *this, std::move(type));
  APEMU_TRY(cls->m_dir, m_tree.create_dir(*m_class_dir, cls->name()));
  for (const auto& g : cls->type().class_groups)
    for (const auto& a : g.attrs)
      (void)m_tree.create_attr(*cls->m_dir, std::string(a.name), a.mode, &a, cls.get());
  // The class kset has no uevent ops: SUBSYSTEM is the kset name (driver-core.md §1.11).
  (void)send_object_event(uevent::Action::Add, "/class/" + cls->name(), "class");
  m_classes.push_back(std::move(cls));
  return m_classes.back().get();
}

void Core::class_unregister(Class& cls) {
  held();
  APEMU_ASSERT(cls.m_devices.empty());
  const std::string path = "/class/" + cls.name();
  m_tree.remove(*cls.m_dir);
  (void)send_object_event(uevent::Action::Remove, path, "class");
  auto it = std::find_if(m_classes.begin(), m_classes.end(),
                         [&](const auto& c) { return c.get() == &cls; });
  if (it != m_classes.end()) m_classes.erase(it);
}

Class* Core::find_class(std::string_view name) const {
  held();
  for (const auto& c : m_classes)
    if (c->name() == name) return c.get();
  return nullptr;
}

std::vector<Class*> Core::classes() const {
  held();
  std::vector<Class*> out;
  for (const auto& c : m_classes) out.push_back(c.get());
  return out;
}

Result<CompatClass*> Core::class_compat_register(std::string name) {
  held();
  if (name.empty()) return Error(EINVAL);
  if (m_class_dir->find(name)) return Error(EEXIST);
  auto cc = std::make_unique<CompatClass>(CompatClass::Key{}, std::move(name));
  APEMU_TRY(cc->m_dir, m_tree.create_dir(*m_class_dir, cc->name()));
  m_compat_classes.push_back(std::move(cc));
  return m_compat_classes.back().get();
}

void Core::class_compat_unregister(CompatClass& cc) {
  held();
  m_tree.remove(*cc.m_dir);
  auto it = std::find_if(m_compat_classes.begin(), m_compat_classes.end(),
                         [&](const auto& c) { return c.get() == &cc; });
  if (it != m_compat_classes.end()) m_compat_classes.erase(it);
}

Result<void> Core::class_compat_create_link(CompatClass& cc, Device& dev) {
  held();
  if (!dev.m_dir) return Error(EINVAL);
  APEMU_TRY_VOID(m_tree.create_link(*cc.m_dir, dev.m_name, dev.m_dir));
  return {};
}

void Core::class_compat_remove_link(CompatClass& cc, Device& dev) {
  held();
  m_tree.remove_child(*cc.m_dir, dev.m_name);
}

} // namespace apemu::core
