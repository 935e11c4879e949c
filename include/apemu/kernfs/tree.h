// kernfs::Tree: owns the root directory and hands out node ids.
//
// Locking: the tree belongs to one machine and is protected by that machine's MachineLock (the
// Runtime's, or a lock of its own for a standalone tree). Every mutating function and every
// show()/store() asserts that the caller holds it; it is taken once at each entry point (a FUSE
// handler, a control command, a timer, a C++ caller), never inside. show()/store() run with it
// held, which gives the kernfs "active protection" for free: a node cannot be removed while its
// callback runs. Change notifications are reported to a listener while the lock is held; the
// listener must only queue them (the FUSE adapter drains its queue on another thread after the
// lock is released, per libfuse's rule for notify_inval_*).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/kernfs/node.h"

namespace apemu::kernfs {

/// What changed in the tree, for cache invalidation.
struct Change {
  /// Tree::rename and Tree::move report Removed for the old place, then Added for the new one,
  /// with the same node id (ids of new nodes are never those of earlier ones).
  enum class Kind { Added, Removed, Renamed };
  Kind kind;
  NodeId parent; ///< directory whose entry changed
  std::string name;
  NodeId node; ///< the node added, removed or renamed
};

class Tree {
public:
  /// A tree protected by `lock` (the machine's).
  explicit Tree(MachineLock& lock);
  /// A standalone tree with a lock of its own (tests, tools).
  Tree();
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  /// The machine lock that protects this tree.
  MachineLock& machine_lock() const { return *m_lock; }
  /// Takes the machine lock for a scope (an entry point).
  [[nodiscard]] MachineGuard lock() const { return m_lock->guard(); }
  void assert_locked() const { m_lock->assert_held(); }

  const std::shared_ptr<Dir>& root() const { return m_root; }

  /// Creates a directory. Returns: EEXIST when `parent` has a child of that name, ENOENT when
  /// `parent` was removed, EINVAL for an empty name or one containing '/'.
  Result<std::shared_ptr<Dir>> create_dir(Dir& parent, std::string name, mode_t mode = 0755);
  /// Creates an attribute backed by a shared ops row and a context pointer (not owned).
  /// Same errors as create_dir.
  Result<std::shared_ptr<Attr>> create_attr(Dir& parent, std::string name, mode_t mode,
                                            const AttrOps* ops, void* ctx);
  /// Creates an attribute that owns its ops.
  Result<std::shared_ptr<Attr>> create_attr(Dir& parent, std::string name, mode_t mode,
                                            std::unique_ptr<AttrOps> ops);
  /// Adds the rows of a static attribute table (`count` rows of `type` at `rows`, each with
  /// context `ctx`) whose bit is set in `visible` to `parent` as lazy attributes: their ids are
  /// reserved now (in row order, as create_attr would hand them out), they count as nodes and
  /// are reported to the change listener as added, but their nodes are only created when the
  /// directory is listed, one of their names is looked up, or they are removed (see Dir).
  /// A lazy attribute has the row's own mode. Returns false, and changes nothing, when this
  /// cannot be done exactly: more than 64 rows, a name twice in the table, or a visible name
  /// already taken in `parent`; the caller then creates the rows with create_attr, which
  /// reports the clash. Locking: model lock. Lifetime: `rows` must be static (kernfs keeps
  /// what it learnt about a table by its address, process-wide); `ctx` must outlive the
  /// directory or the rows (remove_lazy_attrs).
  bool add_lazy_attrs(Dir& parent, const AttrRowType& type, const void* rows, std::size_t count,
                      std::uint64_t visible, void* ctx);
  /// Removes the rows that add_lazy_attrs(parent, ..., rows, ..., ctx) added and that were not
  /// created since. Returns false when there are none (the caller removes created nodes by
  /// name). Locking: model lock.
  bool remove_lazy_attrs(Dir& parent, const void* rows, void* ctx);
  /// Off: add_lazy_attrs declines everything, so every attribute is created at once (to
  /// compare both ways in tests). On by default.
  void set_lazy_attrs(bool on) { m_lazy_attrs = on; }

  /// Creates a symlink to `target`. Same errors as create_dir.
  Result<std::shared_ptr<Link>> create_link(Dir& parent, std::string name,
                                            const std::shared_ptr<Node>& target);

  /// Detaches `node` from its parent and deactivates it and everything below it. Idempotent.
  void remove(Node& node);
  /// Removes the child `name` of `parent` if present. Returns true when something was removed.
  bool remove_child(Dir& parent, std::string_view name);
  /// Renames a node in place. Returns: EEXIST on a clash, ENOENT when removed.
  Result<void> rename(Node& node, std::string new_name);
  /// Moves a node under another directory. Returns: EEXIST on a clash, ENOENT when removed,
  /// EINVAL when moving a directory below itself.
  Result<void> move(Node& node, Dir& new_parent);

  /// Looks up an absolute or root-relative path without following symlinks except in
  /// intermediate components (like the kernel's path walk). Returns null when absent.
  std::shared_ptr<Node> resolve(std::string_view path) const;
  /// Node by id (linear search; for tests and debugging only).
  std::shared_ptr<Node> find_by_id(NodeId id) const;
  /// Number of active nodes (for leak checks in tests).
  std::size_t node_count() const { return m_node_count; }

  /// Registers the single change listener (the FUSE adapter). Called with the model lock held.
  void set_change_listener(std::function<void(const Change&)> fn) { m_listener = std::move(fn); }

private:
  /// Validates a new name; returns the sorted insert position.
  Result<std::size_t> check_new_child(Dir& parent, const std::string& name) const;
  void insert(Dir& parent, std::size_t at, std::shared_ptr<Node> child);
  void deactivate(Node& node);
  void notify(Change::Kind kind, const Dir& parent, const std::string& name, NodeId node);

  std::unique_ptr<MachineLock> m_own_lock; ///< standalone trees only
  MachineLock* m_lock;
  std::shared_ptr<Dir> m_root;
  NodeId m_next_id = kRootId + 1;
  std::size_t m_node_count = 1;
  bool m_lazy_attrs = true;
  const AttrTable& cached_table(const AttrRowType& type, const void* rows, std::size_t count);
  bool cached_disjoint(const AttrTable& a, const AttrTable& b);
  std::vector<std::tuple<const void*, std::size_t, const AttrTable*>> m_tables;
  std::vector<std::tuple<const AttrTable*, const AttrTable*, bool>> m_disjoint;
  std::function<void(const Change&)> m_listener;
};

/// An open attribute: show() is rendered once at the first read at offset 0 (or after a read
/// at offset 0 again), reads are served from that snapshot, and each write is one store()
/// (driver-core.md §2.8).
class OpenFile {
public:
  /// Opens an attribute for reading and/or writing. Returns: EACCES when the mode or the missing
  /// show/store forbids the access (even for root), EISDIR for a directory, ELOOP for a link,
  /// ENOENT for a removed node.
  static Result<OpenFile> open(const std::shared_ptr<Node>& node, bool read, bool write);

  /// Reads up to `size` bytes at `offset`. Re-renders when offset is 0. Locking: machine lock.
  Result<std::string> read(std::size_t offset, std::size_t size);
  /// One store() of at most kPageSize bytes. Returns the number of bytes consumed (0 for an
  /// empty write, which does not call store); kEIocbQueued when the store blocked (then
  /// blocker->completion() finishes it, and the count is min(size, kPageSize)).
  /// Locking: machine lock.
  Result<std::size_t> write(std::string_view data, Blocker* blocker = nullptr);

  const std::shared_ptr<Attr>& attr() const { return m_attr; }

private:
  explicit OpenFile(std::shared_ptr<Attr> a, bool read, bool write)
      : m_attr(std::move(a)), m_read(read), m_write(write) {}
  std::shared_ptr<Attr> m_attr;
  bool m_read;
  bool m_write;
  bool m_rendered = false;
  std::string m_snapshot;
};

/// Renders an attribute as a reader of the real sysfs would see it with one read at offset 0:
/// show() truncated to kPageSize-1 bytes. Locking: machine lock.
Result<std::string> read_attr(const Attr& attr);

} // namespace apemu::kernfs
