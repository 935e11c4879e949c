// The FUSE inode table: which kernfs nodes the kernel currently holds a lookup count for
// (passthrough_hp.cc's Inode map at fuse-3.14.0; STYLE.md §4).
//
// An inode number is the kernfs node id (ids are never reused, so no generation numbers are
// needed). Every reply that hands an inode to the kernel (lookup, create, a readdirplus entry)
// adds one reference; FORGET/BATCH_FORGET drop them; an entry disappears only when its count
// reaches zero. The table holds weak_ptrs: it never keeps a removed node alive, and a dead or
// inactive node answers ENOENT. The root (FUSE_ROOT_ID == kernfs::kRootId) is never looked up
// and is not stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "apemu/kernfs/node.h"

namespace apemu::fusefs {

class InodeTable {
public:
  /// Adds one kernel reference to `node` (call before the reply that hands it out).
  /// Locking: internal leaf mutex; callers usually hold the model lock (which is fine: the model
  /// lock always comes first).
  void ref(const std::shared_ptr<kernfs::Node>& node);
  /// Drops `n` references of `ino` (FORGET). Forgetting more than was handed out is a bug of the
  /// adapter or of the kernel and aborts (passthrough_hp does the same).
  void forget(kernfs::NodeId ino, std::uint64_t n);
  /// The node behind `ino`, or null when unknown or already destroyed. Activity is not checked
  /// here: that needs the model lock.
  std::shared_ptr<kernfs::Node> get(kernfs::NodeId ino) const;
  /// True when the kernel holds a reference to `ino` (so it may have cached the inode).
  bool contains(kernfs::NodeId ino) const;
  /// Number of inodes with a non-zero count.
  std::size_t size() const;
  /// The lookup count of `ino` (0 when absent); for tests and debugging.
  std::uint64_t nlookup(kernfs::NodeId ino) const;
  /// Forgets everything (after unmount, when the kernel is gone).
  void clear();

private:
  struct Entry {
    std::weak_ptr<kernfs::Node> node;
    std::uint64_t nlookup = 0;
  };
  mutable std::mutex m_mutex; // leaf lock, after the model lock
  std::unordered_map<kernfs::NodeId, Entry> m_entries;
};

} // namespace apemu::fusefs
