// The zcrypt device nodes (zcrypt_api.c: the z90crypt misc device and the "zcdn" multi-node
// class; ap-bus.md §8.1): /sys/class/zcrypt/{create,destroy}, zcrypt_<name> devices with their
// apmask/aqmask/admask/ioctlmask filters and `dev`, /sys/class/misc/z90crypt. What a node
// filters is kept but not used: the zcrypt ioctl API is not emulated.
#include <cctype>

#include "apemu/ap/abi_names.h"
#include "apemu/ap/ap_mask.h"
#include "apemu/ap/zcrypt.h"

namespace apemu::ap {

using core::Device;

ZcdnDevice::ZcdnDevice(core::DeviceKey k, std::string name, unsigned minor)
    : Device(k, std::move(name), [](Device&) {}), m_minor_nr(minor) {}

namespace {

ZcryptNodes& nodes_of(core::Class& c) { return *static_cast<ZcryptNodes*>(c.data()); }
ZcdnDevice& zcdn(Device& d) { return static_cast<ZcdnDevice&>(d); }

/// The name handling of zcdn_create/zcdn_destroy: leading whitespace skipped, the rest copied
/// into a 32-byte buffer (so at most 31 characters, silently cut), trailing whitespace trimmed.
std::string zcdn_name(std::string_view text) {
  std::size_t b = 0;
  while (b < text.size() && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  std::string name(text.substr(b, 31));
  if (const auto nul = name.find('\0'); nul != std::string::npos) name.resize(nul);
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  return name;
}

// ---- class attributes: create, destroy (0600, no show) ----------------------------------------

Result<void> create_store(core::Class& c, std::string_view text) {
  APEMU_TRY_VOID(nodes_of(c).create_node(text));
  return {};
}
Result<void> destroy_store(core::Class& c, std::string_view text) {
  return nodes_of(c).destroy_node(text);
}

const core::ClassAttribute kClassAttrs[] = {
    {abi::kZcdnCreate, 0600, nullptr, create_store},
    {abi::kZcdnDestroy, 0600, nullptr, destroy_store},
};
const core::ClassAttributeGroup kClassGroups[] = {{"", kClassAttrs}};

// ---- node attributes: the four filter masks (0644) ---------------------------------------------

template <class Id, IdMask<Id> ZcdnDevice::*M> Result<std::string> mask_show(Device& d) {
  return (zcdn(d).*M).hex() + "\n";
}
/// The §2.2 parser (absolute hex or relative +N,-M-K); no veto, no reprobe, no uevent.
template <class Id, IdMask<Id> ZcdnDevice::*M> Result<void> mask_store(Device& d, std::string_view t) {
  APEMU_TRY(auto m, parse_ap_mask<Id>(t, zcdn(d).*M));
  zcdn(d).*M = m;
  return {};
}

const core::DeviceAttribute kNodeAttrs[] = {
    {"ioctlmask", 0644, mask_show<Apqi, &ZcdnDevice::ioctlmask>,
     mask_store<Apqi, &ZcdnDevice::ioctlmask>},
    {"apmask", 0644, mask_show<Apid, &ZcdnDevice::apmask>, mask_store<Apid, &ZcdnDevice::apmask>},
    {"aqmask", 0644, mask_show<Apqi, &ZcdnDevice::aqmask>, mask_store<Apqi, &ZcdnDevice::aqmask>},
    {"admask", 0644, mask_show<Apqi, &ZcdnDevice::admask>, mask_store<Apqi, &ZcdnDevice::admask>},
};
const core::DeviceAttributeGroup kNodeGroups[] = {{"", kNodeAttrs}};

} // namespace

// ---- ZcryptNodes --------------------------------------------------------------------------------

Result<std::unique_ptr<ZcryptNodes>> ZcryptNodes::create(core::Core& core) {
  core.held();
  std::unique_ptr<ZcryptNodes> z(new ZcryptNodes(core));
  z->m_major = abi::kZcryptDynamicMajor;
  // zcrypt_api_init: the misc device first, then the class of the extra nodes.
  z->m_misc = core.find_class(abi::kMiscClass);
  if (!z->m_misc) {
    APEMU_TRY(z->m_misc, core.class_register({.name = std::string(abi::kMiscClass)}));
  } else {
    z->m_misc = nullptr; // not ours to unregister
  }
  core::Class* misc = z->m_misc ? z->m_misc : core.find_class(abi::kMiscClass);
  auto dev = Device::create(std::string(abi::kZ90crypt), [](Device&) {});
  dev->set_class(misc);
  dev->set_devt(abi::kMiscMajor, abi::kZ90cryptDynamicMinor);
  APEMU_TRY_VOID(core.device_add(*dev));
  z->m_z90crypt = std::move(dev);
  core::ClassType t;
  t.name = std::string(abi::kZcryptClass);
  t.class_groups = kClassGroups;
  APEMU_TRY(z->m_class, core.class_register(std::move(t)));
  z->m_class->set_data(z.get());
  return z;
}

ZcryptNodes::~ZcryptNodes() {
  m_core->held();
  while (!m_nodes.empty()) {
    m_core->device_unregister(std::move(m_nodes.back()));
    m_nodes.pop_back();
  }
  if (m_class) m_core->class_unregister(*m_class);
  m_core->device_unregister(std::move(m_z90crypt));
  if (m_misc) m_core->class_unregister(*m_misc);
}

Result<ZcdnDevice*> ZcryptNodes::create_node(std::string_view text) {
  m_core->held();
  std::string name = zcdn_name(text);
  if (!name.empty() && find(name)) return Error(EEXIST);
  unsigned minor = 0;
  while (minor < abi::kZcryptMaxMinorNodes) {
    bool used = false;
    for (const auto& n : m_nodes) used = used || n->node_minor() == minor;
    if (!used) break;
    ++minor;
  }
  if (minor == abi::kZcryptMaxMinorNodes) return Error(ENOSPC);
  if (name.empty()) name = std::string(abi::kZcdnPrefix) + std::to_string(minor);
  auto dev = Device::create<ZcdnDevice>(std::move(name), minor);
  dev->set_class(m_class);
  dev->set_devt(m_major, minor);
  dev->set_groups(kNodeGroups);
  APEMU_TRY_VOID(m_core->device_add(*dev));
  ZcdnDevice* raw = dev.get();
  auto pos = m_nodes.begin();
  while (pos != m_nodes.end() && (*pos)->node_minor() < minor) ++pos;
  m_nodes.insert(pos, std::move(dev));
  return raw;
}

Result<void> ZcryptNodes::destroy_node(std::string_view text) {
  m_core->held();
  const std::string name = zcdn_name(text);
  for (auto it = m_nodes.begin(); it != m_nodes.end(); ++it) {
    if ((*it)->name() != name) continue;
    core::Ref<ZcdnDevice> dev = std::move(*it);
    m_nodes.erase(it);
    m_core->device_unregister(std::move(dev));
    return {};
  }
  return Error(ENOENT);
}

std::vector<ZcdnDevice*> ZcryptNodes::nodes() const {
  std::vector<ZcdnDevice*> out;
  for (const auto& n : m_nodes) out.push_back(n.get());
  return out;
}

ZcdnDevice* ZcryptNodes::find(std::string_view name) const {
  for (const auto& n : m_nodes)
    if (n->name() == name) return n.get();
  return nullptr;
}

} // namespace apemu::ap
