// The FUSE inode table: which kernfs nodes the kernel currently holds a lookup count for
// (passthrough_hp.cc's Inode map at fuse-3.14.0; STYLE.md §4), and what the kernel may have
// cached about each.
//
// An inode number is the kernfs node id (ids are never reused, so no generation numbers are
// needed). Every reply that hands an inode to the kernel (lookup, create, a readdirplus entry)
// adds one reference; FORGET/BATCH_FORGET drop them; an entry disappears only when its count
// reaches zero, which is when the kernel has evicted the inode with everything it cached (page
// cache, attributes). The table holds weak_ptrs: it never keeps a removed node alive, and a dead
// or inactive node answers ENOENT. The root (FUSE_ROOT_ID == kernfs::kRootId) is never looked up
// and is not stored.
//
// Kept text (render-at-open page cache, see fuse_server.cpp): for an attribute, the text that
// the kernel may hold in its page cache for the inode: the last one rendered by a read-only
// open. It lives in the entry, so it is dropped exactly when the kernel forgets the inode, and
// ref() can tell atomically what size a reply handing out the inode must report. When an open
// renders another text, the kernel learns of it only when the notifier has delivered that
// open's invalidation: until then READs and sizes keep giving the text it knew (the announced
// one), so that a reader of an older fd never gets the new text cut at the old size.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "apemu/kernfs/node.h"

namespace apemu::fusefs {

class InodeTable {
public:
  /// What an open found when it compared its text with the kept one (keep_text()).
  enum class Kept {
    Fresh,   ///< nothing was kept: the kernel has no page of this inode yet
    Same,    ///< the kernel's pages (if any) hold exactly this text
    Changed, ///< the kernel may hold an older text: its pages must be dropped
  };

  /// Adds one kernel reference to `node` (call before the reply that hands it out). Returns the
  /// st_size that reply must carry for an attribute: the kept text's length, or
  /// kernfs::kPageSize when nothing is kept (sysfs's size for every attribute).
  /// Locking: internal leaf mutex; callers usually hold the model lock (which is fine: the model
  /// lock always comes first).
  off_t ref(const std::shared_ptr<kernfs::Node>& node);
  /// Drops `n` references of `ino` (FORGET); the kept text goes with the last one. Forgetting
  /// more than was handed out is a bug of the adapter or of the kernel and aborts (passthrough_hp
  /// does the same).
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

  /// The st_size to report for attribute `ino` (see ref()).
  off_t attr_size(kernfs::NodeId ino) const;
  /// Makes `text` the kept text of `ino` and says how it relates to the previous one. An inode
  /// the kernel does not hold (the open raced with its FORGET) keeps nothing and is Fresh.
  Kept keep_text(kernfs::NodeId ino, const std::string& text);
  /// The text READs of `ino` serve and whose length is its size, if any: the kept one, or the
  /// one before while an invalidation of a change is on its way (see announce()).
  std::optional<std::string> kept_text(kernfs::NodeId ino) const;
  /// The kernel has dropped what it cached of `ino` (the notifier delivered an invalidation):
  /// from now on the kept text is what READs serve and sizes report.
  void announce(kernfs::NodeId ino);
  /// Inodes of symlinks the kernel holds (their cached target text and size may be stale after
  /// a rename or move).
  std::vector<kernfs::NodeId> links() const;

private:
  struct Entry {
    std::weak_ptr<kernfs::Node> node;
    std::uint64_t nlookup = 0;
    bool is_link = false;
    std::unique_ptr<std::string> kept; ///< attributes opened read-only only
    /// The text the kernel may still hold while a change of `kept` is being invalidated.
    std::unique_ptr<std::string> announced;
    const std::string* served() const { return announced ? announced.get() : kept.get(); }
  };
  mutable std::mutex m_mutex; // leaf lock, after the model lock
  std::unordered_map<kernfs::NodeId, Entry> m_entries;
};

} // namespace apemu::fusefs
