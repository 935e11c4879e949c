// FUSE inode table (see inode_table.h).
#include "inode_table.h"

#include "apemu/base/assert.h"
#include "apemu/kernfs/tree.h"

namespace apemu::fusefs {

off_t InodeTable::ref(const std::shared_ptr<kernfs::Node>& node) {
  APEMU_ASSERT(node && node->id() != kernfs::kRootId);
  std::lock_guard g(m_mutex);
  auto& e = m_entries[node->id()];
  if (e.nlookup == 0) {
    e.node = node;
    e.is_link = node->type() == kernfs::NodeType::Link;
  }
  ++e.nlookup;
  return e.kept ? static_cast<off_t>(e.served()->size()) : static_cast<off_t>(kernfs::kPageSize);
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

off_t InodeTable::attr_size(kernfs::NodeId ino) const {
  std::lock_guard g(m_mutex);
  auto it = m_entries.find(ino);
  if (it == m_entries.end() || !it->second.kept) return static_cast<off_t>(kernfs::kPageSize);
  return static_cast<off_t>(it->second.served()->size());
}

InodeTable::Kept InodeTable::keep_text(kernfs::NodeId ino, const std::string& text) {
  std::lock_guard g(m_mutex);
  auto it = m_entries.find(ino);
  if (it == m_entries.end()) return Kept::Fresh;
  auto& kept = it->second.kept;
  if (!kept) {
    kept = std::make_unique<std::string>(text);
    return Kept::Fresh;
  }
  if (*kept == text) return Kept::Same;
  // The first change since the kernel was last told: what it may hold stays served.
  if (!it->second.announced) it->second.announced = std::move(kept);
  kept = std::make_unique<std::string>(text);
  return Kept::Changed;
}

std::optional<std::string> InodeTable::kept_text(kernfs::NodeId ino) const {
  std::lock_guard g(m_mutex);
  auto it = m_entries.find(ino);
  if (it == m_entries.end() || !it->second.kept) return std::nullopt;
  return *it->second.served();
}

void InodeTable::announce(kernfs::NodeId ino) {
  std::lock_guard g(m_mutex);
  if (auto it = m_entries.find(ino); it != m_entries.end()) it->second.announced.reset();
}

std::vector<kernfs::NodeId> InodeTable::links() const {
  std::lock_guard g(m_mutex);
  std::vector<kernfs::NodeId> out;
  for (const auto& [ino, e] : m_entries)
    if (e.is_link) out.push_back(ino);
  return out;
}

} // namespace apemu::fusefs
