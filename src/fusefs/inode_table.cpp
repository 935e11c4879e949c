// FUSE inode table (see inode_table.h).
#include "inode_table.h"

#include "apemu/base/assert.h"

namespace apemu::fusefs {

void InodeTable::ref(const std::shared_ptr<kernfs::Node>& node) {
  APEMU_ASSERT(node && node->id() != kernfs::kRootId);
  std::lock_guard g(m_mutex);
  auto& e = m_entries[node->id()];
  if (e.nlookup == 0) e.node = node;
  ++e.nlookup;
}

void InodeTable::forget(kernfs::NodeId ino, std::uint64_t n) {
  if (ino == kernfs::kRootId || n == 0) return; // the kernel's root reference is implicit
  std::lock_guard g(m_mutex);
  auto it = m_entries.find(ino);
  APEMU_ASSERT(it != m_entries.end());
  APEMU_ASSERT(it->second.nlookup >= n);
  it->second.nlookup -= n;
  if (it->second.nlookup == 0) m_entries.erase(it);
}

std::shared_ptr<kernfs::Node> InodeTable::get(kernfs::NodeId ino) const {
  std::lock_guard g(m_mutex);
  auto it = m_entries.find(ino);
  return it == m_entries.end() ? nullptr : it->second.node.lock();
}

bool InodeTable::contains(kernfs::NodeId ino) const {
  std::lock_guard g(m_mutex);
  return m_entries.count(ino) != 0;
}

std::size_t InodeTable::size() const {
  std::lock_guard g(m_mutex);
  return m_entries.size();
}

std::uint64_t InodeTable::nlookup(kernfs::NodeId ino) const {
  std::lock_guard g(m_mutex);
  auto it = m_entries.find(ino);
  return it == m_entries.end() ? 0 : it->second.nlookup;
}

void InodeTable::clear() {
  std::lock_guard g(m_mutex);
  m_entries.clear();
}

} // namespace apemu::fusefs
