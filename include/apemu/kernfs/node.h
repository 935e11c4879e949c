// The generic node tree behind apemu's sysfs (Linux kernfs; SerenityOS's SysFS component layer).
//
// A Tree holds directories, attributes (text files backed by show/store callbacks) and symlinks.
// It knows nothing about devices: the driver core (core/) decides what to create; the FUSE adapter
// (fusefs/) and the exporter only read it. Node ids are inode numbers: they increase
// monotonically and are never reused.
//
// Divergences from Linux: children are kept sorted by name (kernfs orders by name hash), so
// readdir order is alphabetical; binary attributes do not exist.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/base/runtime.h"

namespace apemu::kernfs {

using NodeId = std::uint64_t;

/// PAGE_SIZE of s390x and x86_64: the show() buffer and the largest single store().
inline constexpr std::size_t kPageSize = 4096;

/// The inode number of the root directory (FUSE_ROOT_ID).
inline constexpr NodeId kRootId = 1;

enum class NodeType : std::uint8_t { Dir, Attr, Link };

class Dir;
class Tree;

/// The writer's side of a store that may block (an mdev `remove` whose device is in use blocks
/// its writer until user space releases the device). A store that cannot finish now calls
/// block(), arranges for the returned Completion to be completed later (under the machine
/// lock), and returns Error(kEIocbQueued). The writer then waits for the completion: the FUSE
/// adapter keeps the request and replies when it completes; an interrupted writer cancels it.
class Blocker {
public:
  /// Called by the store. Locking: machine lock held.
  std::shared_ptr<Completion> block() {
    if (!m_completion) m_completion = std::make_shared<Completion>();
    return m_completion;
  }
  /// The completion a blocked store handed out, or null.
  const std::shared_ptr<Completion>& completion() const { return m_completion; }

private:
  std::shared_ptr<Completion> m_completion;
};

/// The callbacks of an attribute. Subsystems keep these in static tables (one row per attribute
/// name, like DEVICE_ATTR_RW) and every attribute node points at its row plus a context pointer,
/// so a million attribute nodes cost no per-node closures.
class AttrOps {
public:
  virtual ~AttrOps() = default;
  virtual bool can_show() const = 0;
  virtual bool can_store() const = 0;
  /// True when store() may block its writer (see Blocker).
  virtual bool can_block() const { return false; }
  /// Renders the value. Returns: the errno that read(2) reports.
  virtual Result<std::string> show(void* ctx) const = 0;
  /// Consumes one write(2) worth of text. `blocker` is null when the writer cannot wait; a
  /// store that would block then fails with EAGAIN. Returns: the errno that write(2) reports,
  /// or kEIocbQueued after blocker->block().
  virtual Result<void> store(void* ctx, std::string_view text, Blocker* blocker) const = 0;
};

/// How kernfs reads a subsystem's static attribute table (an array of core::Attribute<Obj> rows)
/// without knowing the row type: each function returns a part of row `i` of the array `rows`.
/// One constant instance per row type; used by lazily created attributes (Tree::add_lazy_attrs).
struct AttrRowType {
  const AttrOps& (*ops)(const void* rows, std::size_t i);
  std::string_view (*name)(const void* rows, std::size_t i);
  mode_t (*mode)(const void* rows, std::size_t i);
};

/// A static attribute table as kernfs keeps it for lazy attributes: interned once per table
/// (Tree::add_lazy_attrs) with its names sorted, so that name checks need no walk over the rows.
struct AttrTable {
  const AttrRowType* type;
  const void* rows;
  std::size_t count;
  /// (name, row index), sorted by name.
  std::vector<std::pair<std::string_view, std::uint32_t>> sorted_names;
  /// False when a name occurs twice (such a table is always created eagerly, which reports it).
  bool unique_names;
  /// One bit per name (first byte and length): most names are ruled out without a search.
  std::uint64_t bloom;
  /// The first row's name, to catch a table that is not static (its address reused).
  const char* rows_first_name;
};

/// Attribute rows a directory holds without having created their nodes yet: one table, the
/// context pointer every row gets, and the ids reserved for the visible rows (first_id, then
/// consecutive in row order, exactly the ids eager creation would have given them).
struct LazyAttrs {
  const AttrTable* table;
  void* ctx;
  NodeId first_id;
  std::uint64_t visible; ///< bit i: row i exists
};

/// AttrOps from two std::function objects, owned by the node (for one-off attributes whose
/// behaviour depends on captured state, e.g. a bus's drivers_probe).
class FunctionAttrOps final : public AttrOps {
public:
  using Show = std::function<Result<std::string>()>;
  using Store = std::function<Result<void>(std::string_view)>;
  FunctionAttrOps(Show show, Store store) : m_show(std::move(show)), m_store(std::move(store)) {}
  bool can_show() const override { return static_cast<bool>(m_show); }
  bool can_store() const override { return static_cast<bool>(m_store); }
  Result<std::string> show(void*) const override {
    if (!m_show) return Error(EIO);
    return m_show();
  }
  Result<void> store(void*, std::string_view text, Blocker*) const override {
    if (!m_store) return Error(EIO);
    return m_store(text);
  }

private:
  Show m_show;
  Store m_store;
};

/// A node of the tree. Lifetime: shared_ptr, so a FUSE handle or an open file can outlive the
/// node's removal; a removed node is inactive and every operation on it fails with ENOENT/ENODEV
/// without calling back into the (possibly dead) object that created it.
class Node {
public:
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  NodeId id() const { return m_id; }
  const std::string& name() const { return m_name; }
  NodeType type() const { return m_type; }
  /// Permission bits (e.g. 0644); the file type is implied by type().
  mode_t mode() const { return m_mode; }
  /// Parent directory; null for the root and for removed nodes. Locking: model lock.
  Dir* parent() const { return m_parent; }
  bool active() const { return m_active; }
  /// Absolute path below the tree root ("/devices/ap/card05"); "/" for the root.
  std::string path() const;
  /// path().size(), without building the string.
  std::size_t path_length() const;
  /// True when `this` is `other` or one of its ancestors.
  bool is_ancestor_or_self_of(const Node& other) const;

protected:
  Node(NodeId id, std::string name, NodeType type, mode_t mode)
      : m_id(id), m_name(std::move(name)), m_mode(mode), m_type(type) {}

private:
  friend class Tree;
  friend class Dir;
  friend class Attr;
  // Layout: a million nodes in a max.toml tree, so the members are packed (no padding).
  NodeId m_id;
  std::string m_name;
  Dir* m_parent = nullptr;
  std::uint32_t m_mode;
  NodeType m_type;
  bool m_active = true;
  bool m_owns_ops = false; ///< an Attr owning its ops (FunctionAttrOps); uses the padding
};

/// A directory. Some of its attributes may be lazy (Tree::add_lazy_attrs): they exist, have
/// their ids and count in Tree::node_count(), but their nodes are created only when someone
/// looks at them: a find() of one of their names, children() (listings, dumps, exports), or a
/// removal through Tree::remove_lazy_attrs. Every observer therefore sees the same tree as if
/// they had been created at once. Locking: every method needs the model lock (the lazy nodes
/// are created under it, even by the const accessors).
class Dir final : public Node {
public:
  Dir(NodeId id, std::string name, mode_t mode) : Node(id, std::move(name), NodeType::Dir, mode) {}
  /// Children sorted by name; creates lazy attributes first.
  const std::vector<std::shared_ptr<Node>>& children() const {
    if (!m_lazy.empty()) materialize();
    return m_children;
  }
  /// Child by exact name, or null. Creates the lazy attributes when `name` is one of them.
  std::shared_ptr<Node> find(std::string_view name) const;
  /// True when a child (created or lazy) has this name; creates nothing.
  bool has_child(std::string_view name) const;
  /// Lazy attributes not created yet (for tests and memory accounting).
  std::size_t lazy_count() const;

private:
  friend class Tree;
  /// Index of the first created child whose name is not less than `name`.
  std::size_t lower_bound(std::string_view name) const;
  void insert_at(std::size_t i, std::shared_ptr<Node> child);
  void erase_at(std::size_t i);
  /// True when a lazy row of this directory is named `name`.
  bool lazy_has(std::string_view name) const;
  /// Creates the nodes of every lazy row (with their reserved ids) and merges them in.
  void materialize() const;
  /// Lazy rows not created yet. mutable: created on demand by the const accessors.
  mutable std::vector<LazyAttrs> m_lazy;
  mutable std::vector<std::shared_ptr<Node>> m_children;
  /// The first 8 bytes of each child's name, big-endian, zero-padded: a binary search compares
  /// these without touching the nodes (a directory such as /sys/bus/ap/devices holds 65,792
  /// entries and every device add searches it several times).
  mutable std::vector<std::uint64_t> m_keys;
};

class Attr final : public Node {
public:
  /// `owned` (may be null) must be the same object as `ops` when given; the node deletes it.
  Attr(NodeId id, std::string name, mode_t mode, const AttrOps* ops, void* ctx,
       std::unique_ptr<AttrOps> owned)
      : Node(id, std::move(name), NodeType::Attr, mode), m_ops(ops), m_ctx(ctx) {
    if (owned) {
      m_owns_ops = true;
      m_ops = owned.release();
    }
  }
  ~Attr() override {
    if (m_owns_ops) delete m_ops;
  }
  bool readable() const { return (mode() & 0444) && m_ops->can_show(); }
  bool writable() const { return (mode() & 0222) && m_ops->can_store(); }
  /// Calls show(). Returns ENODEV on a removed node (kernfs active-reference semantics), EIO
  /// without show. Locking: machine lock held.
  Result<std::string> show() const;
  bool can_block() const { return m_ops->can_block(); }
  /// Calls store() with the text up to its first NUL. Same errors as show(); kEIocbQueued when
  /// it blocked (see Blocker). Locking: machine lock held.
  Result<void> store(std::string_view text, Blocker* blocker = nullptr) const;

private:
  const AttrOps* m_ops;
  void* m_ctx;
};

class Link final : public Node {
public:
  Link(NodeId id, std::string name, std::shared_ptr<Node> target)
      : Node(id, std::move(name), NodeType::Link, 0777), m_target(std::move(target)) {}
  /// The target, or null if it was removed (a dangling link).
  std::shared_ptr<Node> target() const { return m_target.lock(); }
  /// The kernel's relative target text (driver-core.md §2.7), e.g. "../../../bus/ap".
  /// Returns: ENOENT when the target is gone.
  Result<std::string> target_text() const;

private:
  std::weak_ptr<Node> m_target;
};

} // namespace apemu::kernfs
