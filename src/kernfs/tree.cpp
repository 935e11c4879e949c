// kernfs tree operations (fs/kernfs/dir.c, symlink.c, file.c semantics).
#include "apemu/kernfs/tree.h"

#include <algorithm>
#include <bit>
#include <map>
#include <mutex>
#include <vector>

#include "apemu/base/assert.h"
#include "slab.h"

namespace apemu::kernfs {

// ---- Node -------------------------------------------------------------------------------------

std::size_t Node::path_length() const {
  if (!m_parent) return m_id == kRootId ? 1 : 1 + m_name.size();
  std::size_t n = 0;
  for (const Node* p = this; p && p->m_parent; p = p->m_parent) n += 1 + p->m_name.size();
  return n == 0 ? 1 : n;
}

std::string Node::path() const {
  if (!m_parent) return m_id == kRootId ? "/" : "/" + m_name;
  std::vector<const Node*> chain;
  for (const Node* n = this; n && n->m_parent; n = n->m_parent) chain.push_back(n);
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    out += '/';
    out += (*it)->m_name;
  }
  return out.empty() ? "/" : out;
}

bool Node::is_ancestor_or_self_of(const Node& other) const {
  for (const Node* n = &other; n; n = n->m_parent)
    if (n == this) return true;
  return false;
}

static std::uint64_t name_key(std::string_view name) {
  std::uint64_t k = 0;
  for (std::size_t i = 0; i < 8; ++i)
    k = (k << 8) | (i < name.size() ? static_cast<unsigned char>(name[i]) : 0u);
  return k;
}

std::size_t Dir::lower_bound(std::string_view name) const {
  const std::uint64_t key = name_key(name);
  std::size_t lo = 0, hi = m_keys.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    // Equal keys (a shared 8-byte prefix) fall back to the full names.
    const bool less = m_keys[mid] != key ? m_keys[mid] < key : m_children[mid]->name() < name;
    if (less) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

void Dir::insert_at(std::size_t i, std::shared_ptr<Node> child) {
  m_keys.insert(m_keys.begin() + static_cast<std::ptrdiff_t>(i), name_key(child->name()));
  m_children.insert(m_children.begin() + static_cast<std::ptrdiff_t>(i), std::move(child));
}

void Dir::erase_at(std::size_t i) {
  m_keys.erase(m_keys.begin() + static_cast<std::ptrdiff_t>(i));
  m_children.erase(m_children.begin() + static_cast<std::ptrdiff_t>(i));
}

std::shared_ptr<Node> Dir::find(std::string_view name) const {
  std::size_t i = lower_bound(name);
  if (i < m_children.size() && m_children[i]->name() == name) return m_children[i];
  if (m_lazy.empty() || !lazy_has(name)) return nullptr;
  materialize();
  i = lower_bound(name);
  return m_children[i];
}

bool Dir::has_child(std::string_view name) const {
  const std::size_t i = lower_bound(name);
  if (i < m_children.size() && m_children[i]->name() == name) return true;
  return lazy_has(name);
}

std::size_t Dir::lazy_count() const {
  std::size_t n = 0;
  for (const LazyAttrs& l : m_lazy) n += static_cast<std::size_t>(std::popcount(l.visible));
  return n;
}

/// A bit of AttrTable::bloom for a name: its first byte and length, which already tell most
/// names of a directory apart.
static std::uint64_t name_bloom(std::string_view name) {
  const unsigned first = name.empty() ? 0u : static_cast<unsigned char>(name[0]);
  return std::uint64_t{1} << ((first * 7u + static_cast<unsigned>(name.size())) & 63u);
}

/// The row of `table` named `name`, or -1.
static long table_row(const AttrTable& table, std::string_view name) {
  if (!(table.bloom & name_bloom(name))) return -1;
  auto it = std::lower_bound(table.sorted_names.begin(), table.sorted_names.end(), name,
                             [](const auto& e, std::string_view n) { return e.first < n; });
  if (it == table.sorted_names.end() || it->first != name) return -1;
  return static_cast<long>(it->second);
}

bool Dir::lazy_has(std::string_view name) const {
  for (const LazyAttrs& l : m_lazy) {
    const long row = table_row(*l.table, name);
    if (row >= 0 && (l.visible >> row) & 1) return true;
  }
  return false;
}

void Dir::materialize() const {
  // The nodes are created in row order with the ids reserved by add_lazy_attrs, then merged
  // into the sorted children; nothing is reported to the change listener (they were reported
  // as added when they were reserved).
  std::vector<std::shared_ptr<Node>> made;
  for (const LazyAttrs& l : m_lazy) {
    const AttrTable& t = *l.table;
    NodeId id = l.first_id;
    for (std::size_t i = 0; i < t.count; ++i) {
      if (!((l.visible >> i) & 1)) continue;
      auto a = std::allocate_shared<Attr>(detail::SlabAllocator<Attr>{}, id++,
                                          std::string(t.type->name(t.rows, i)),
                                          t.type->mode(t.rows, i), &t.type->ops(t.rows, i),
                                          l.ctx, nullptr);
      a->m_parent = const_cast<Dir*>(this);
      made.push_back(std::move(a));
    }
  }
  m_lazy.clear();
  m_lazy.shrink_to_fit();
  std::sort(made.begin(), made.end(),
            [](const auto& a, const auto& b) { return a->name() < b->name(); });
  std::vector<std::shared_ptr<Node>> merged;
  merged.reserve(m_children.size() + made.size());
  std::merge(std::make_move_iterator(m_children.begin()),
             std::make_move_iterator(m_children.end()), std::make_move_iterator(made.begin()),
             std::make_move_iterator(made.end()), std::back_inserter(merged),
             [](const auto& a, const auto& b) { return a->name() < b->name(); });
  m_children = std::move(merged);
  m_keys.clear();
  m_keys.reserve(m_children.size());
  for (const auto& c : m_children) m_keys.push_back(name_key(c->name()));
}

// ---- interned attribute tables (lazy attributes) ---------------------------------------------

namespace {

/// Every table ever used lazily, and which pairs of tables share no name. Process-wide: the
/// tables are static data shared by all machines; the mutex is a leaf lock.
struct TableRegistry {
  std::mutex mutex;
  std::map<std::pair<const void*, std::size_t>, std::unique_ptr<AttrTable>> tables;
  std::map<std::pair<const AttrTable*, const AttrTable*>, bool> disjoint;
};

TableRegistry& registry() {
  static auto* r = new TableRegistry; // never destroyed: machines may outlive static teardown
  return *r;
}

const AttrTable& intern_table(const AttrRowType& type, const void* rows, std::size_t count) {
  TableRegistry& reg = registry();
  std::lock_guard g(reg.mutex);
  auto& slot = reg.tables[{rows, count}];
  if (!slot) {
    auto t = std::make_unique<AttrTable>();
    t->type = &type;
    t->rows = rows;
    t->count = count;
    t->bloom = 0;
    t->rows_first_name = count ? type.name(rows, 0).data() : nullptr;
    for (std::size_t i = 0; i < count; ++i) {
      t->sorted_names.emplace_back(type.name(rows, i), static_cast<std::uint32_t>(i));
      t->bloom |= name_bloom(type.name(rows, i));
    }
    std::sort(t->sorted_names.begin(), t->sorted_names.end());
    t->unique_names = std::adjacent_find(t->sorted_names.begin(), t->sorted_names.end(),
                                         [](const auto& a, const auto& b) {
                                           return a.first == b.first;
                                         }) == t->sorted_names.end();
    slot = std::move(t);
  }
  // Tables are static: an address seen before holds the same rows (see cached_table).
  APEMU_ASSERT(count == 0 || type.name(rows, 0).data() == slot->rows_first_name);
  return *slot;
}

/// True when no name occurs in both tables (whatever their visible rows).
bool tables_disjoint(const AttrTable& a, const AttrTable& b) {
  TableRegistry& reg = registry();
  std::lock_guard g(reg.mutex);
  auto [it, fresh] = reg.disjoint.try_emplace({&a, &b}, true);
  if (fresh) {
    auto i = a.sorted_names.begin(), j = b.sorted_names.begin();
    while (i != a.sorted_names.end() && j != b.sorted_names.end()) {
      if (i->first == j->first) {
        it->second = false;
        break;
      }
      if (i->first < j->first) ++i;
      else ++j;
    }
  }
  return it->second;
}

} // namespace

Result<std::string> Attr::show() const {
  if (!active()) return Error(ENODEV);
  if (!m_ops->can_show()) return Error(EIO);
  return m_ops->show(m_ctx);
}

Result<void> Attr::store(std::string_view text, Blocker* blocker) const {
  if (!active()) return Error(ENODEV);
  if (!m_ops->can_store()) return Error(EIO);
  // kernfs hands store() a NUL-terminated copy of the written bytes and every parser reads it as
  // a C string, so an embedded NUL ends the value (the write still reports its full count).
  // (Short values, the usual case, are scanned inline: a memchr call costs more than the loop.)
  std::size_t len = 0;
  if (text.size() <= 64) {
    while (len < text.size() && text[len] != '\0') ++len;
  } else {
    len = std::min(text.find('\0'), text.size());
  }
  return m_ops->store(m_ctx, text.substr(0, len), blocker);
}

Result<std::string> Link::target_text() const {
  auto target = m_target.lock();
  if (!target || !target->active() || !parent()) return Error(ENOENT);
  // driver-core.md §2.7: climb from the link's directory until it is an ancestor-or-self of the
  // target's parent, then descend.
  const Node* base = parent();
  const Node* target_parent = target->parent();
  if (!target_parent) return Error(ENOENT);
  std::string up;
  while (base->parent() && !base->is_ancestor_or_self_of(*target_parent)) {
    up += "../";
    base = base->parent();
  }
  std::vector<const Node*> chain;
  for (const Node* n = target.get(); n != base; n = n->parent()) {
    if (!n) return Error(ENOENT);
    chain.push_back(n);
  }
  std::string out = up;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (it != chain.rbegin()) out += '/';
    out += (*it)->name();
  }
  return out;
}

// ---- Tree -------------------------------------------------------------------------------------

Tree::Tree(MachineLock& lock) : m_lock(&lock), m_root(std::make_shared<Dir>(kRootId, "", 0755)) {}

Tree::Tree()
    : m_own_lock(std::make_unique<MachineLock>()), m_lock(m_own_lock.get()),
      m_root(std::make_shared<Dir>(kRootId, "", 0755)) {}

Result<std::size_t> Tree::check_new_child(Dir& parent, const std::string& name) const {
  m_lock->assert_held();
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return Error(EINVAL, "invalid node name '" + name + "'");
  if (!parent.active()) return Error(ENOENT);
  const std::size_t i = parent.lower_bound(name);
  if ((i < parent.m_children.size() && parent.m_children[i]->name() == name) ||
      parent.lazy_has(name))
    return Error(EEXIST, "duplicate name " + parent.path() + "/" + name);
  return i;
}

void Tree::insert(Dir& parent, std::size_t at, std::shared_ptr<Node> child) {
  child->m_parent = &parent;
  const NodeId id = child->id();
  parent.insert_at(at, std::move(child));
  ++m_node_count;
  if (m_listener) notify(Change::Kind::Added, parent, parent.m_children[at]->name(), id);
}

Result<std::shared_ptr<Dir>> Tree::create_dir(Dir& parent, std::string name, mode_t mode) {
  APEMU_TRY(std::size_t at, check_new_child(parent, name));
  auto d = std::allocate_shared<Dir>(detail::SlabAllocator<Dir>{}, m_next_id++, std::move(name), mode);
  insert(parent, at, d);
  return d;
}

Result<std::shared_ptr<Attr>> Tree::create_attr(Dir& parent, std::string name, mode_t mode,
                                                const AttrOps* ops, void* ctx) {
  APEMU_ASSERT(ops);
  APEMU_TRY(std::size_t at, check_new_child(parent, name));
  auto a = std::allocate_shared<Attr>(detail::SlabAllocator<Attr>{}, m_next_id++, std::move(name), mode, ops, ctx, nullptr);
  insert(parent, at, a);
  return a;
}

Result<std::shared_ptr<Attr>> Tree::create_attr(Dir& parent, std::string name, mode_t mode,
                                                std::unique_ptr<AttrOps> ops) {
  APEMU_ASSERT(ops);
  APEMU_TRY(std::size_t at, check_new_child(parent, name));
  const AttrOps* raw = ops.get();
  auto a = std::allocate_shared<Attr>(detail::SlabAllocator<Attr>{}, m_next_id++, std::move(name), mode, raw, nullptr, std::move(ops));
  insert(parent, at, a);
  return a;
}

bool Tree::add_lazy_attrs(Dir& parent, const AttrRowType& type, const void* rows,
                          std::size_t count, std::uint64_t visible, void* ctx) {
  m_lock->assert_held();
  if (!m_lazy_attrs || count > 64 || !parent.active()) return false;
  if (count < 64) visible &= (std::uint64_t{1} << count) - 1;
  const AttrTable& table = cached_table(type, rows, count);
  if (!table.unique_names) return false;
  for (const LazyAttrs& l : parent.m_lazy) {
    if (l.table == &table) return false; // the same table twice: every name clashes
    if (cached_disjoint(*l.table, table)) continue;
    for (std::size_t i = 0; i < count; ++i) {
      if (!((visible >> i) & 1)) continue;
      const long row = table_row(*l.table, type.name(rows, i));
      if (row >= 0 && (l.visible >> row) & 1) return false;
    }
  }
  // Against the created children: from whichever side is smaller (a new device directory has
  // a link or two when its groups arrive).
  if (parent.m_children.size() < count) {
    for (const auto& c : parent.m_children) {
      const long row = table_row(table, c->name());
      if (row >= 0 && (visible >> row) & 1) return false;
    }
  } else {
    for (std::size_t i = 0; i < count; ++i) {
      if (!((visible >> i) & 1)) continue;
      const std::string_view name = type.name(rows, i);
      const std::size_t at = parent.lower_bound(name);
      if (at < parent.m_children.size() && parent.m_children[at]->name() == name) return false;
    }
  }
  const auto n = static_cast<std::size_t>(std::popcount(visible));
  if (n == 0) return true;
  const NodeId first = m_next_id;
  m_next_id += n;
  m_node_count += n;
  // A device directory collects half a dozen tables (uevent, its groups, online, the bus's,
  // driver_override, the driver's): one allocation instead of four.
  if (parent.m_lazy.empty()) parent.m_lazy.reserve(4);
  parent.m_lazy.push_back(LazyAttrs{&table, ctx, first, visible});
  if (m_listener) {
    NodeId id = first;
    for (std::size_t i = 0; i < count; ++i)
      if ((visible >> i) & 1)
        notify(Change::Kind::Added, parent, std::string(type.name(rows, i)), id++);
  }
  return true;
}

// A machine uses a few dozen tables, each for thousands of directories: the process-wide
// registry (and its mutex) is asked once per table and pair, then this tree's own small caches
// answer (model lock held).
const AttrTable& Tree::cached_table(const AttrRowType& type, const void* rows, std::size_t count) {
  for (const auto& [key, n, table] : m_tables) {
    if (key != rows || n != count) continue;
    // Tables are static (core/attribute.h), so an address always holds the same rows: a table
    // that was freed and replaced would get the old names here.
    APEMU_ASSERT(count == 0 || type.name(rows, 0).data() == table->rows_first_name);
    return *table;
  }
  const AttrTable& t = intern_table(type, rows, count);
  m_tables.emplace_back(rows, count, &t);
  return t;
}

bool Tree::cached_disjoint(const AttrTable& a, const AttrTable& b) {
  for (const auto& [x, y, disjoint] : m_disjoint)
    if (x == &a && y == &b) return disjoint;
  const bool d = tables_disjoint(a, b);
  m_disjoint.emplace_back(&a, &b, d);
  return d;
}

bool Tree::remove_lazy_attrs(Dir& parent, const void* rows, void* ctx) {
  m_lock->assert_held();
  for (auto it = parent.m_lazy.begin(); it != parent.m_lazy.end(); ++it) {
    if (it->table->rows != rows || it->ctx != ctx) continue;
    const LazyAttrs l = *it;
    parent.m_lazy.erase(it);
    m_node_count -= static_cast<std::size_t>(std::popcount(l.visible));
    if (m_listener) {
      // Never created, so never handed out; reported for symmetry with the addition.
      NodeId id = l.first_id;
      for (std::size_t i = 0; i < l.table->count; ++i)
        if ((l.visible >> i) & 1)
          notify(Change::Kind::Removed, parent,
                 std::string(l.table->type->name(l.table->rows, i)), id++);
    }
    return true;
  }
  return false;
}

Result<std::shared_ptr<Link>> Tree::create_link(Dir& parent, std::string name,
                                                const std::shared_ptr<Node>& target) {
  APEMU_ASSERT(target);
  APEMU_TRY(std::size_t at, check_new_child(parent, name));
  auto l = std::allocate_shared<Link>(detail::SlabAllocator<Link>{}, m_next_id++, std::move(name), target);
  insert(parent, at, l);
  return l;
}

void Tree::deactivate(Node& node) {
  node.m_active = false;
  --m_node_count;
  if (node.type() == NodeType::Dir) {
    auto& dir = static_cast<Dir&>(node);
    // Lazy rows were never created, so nobody can hold them: they just stop counting.
    for (const LazyAttrs& l : dir.m_lazy)
      m_node_count -= static_cast<std::size_t>(std::popcount(l.visible));
    dir.m_lazy.clear();
    dir.m_lazy.shrink_to_fit();
    for (auto& c : dir.m_children) {
      deactivate(*c);
      c->m_parent = nullptr;
    }
    dir.m_children.clear();
    dir.m_keys.clear();
  }
}

void Tree::remove(Node& node) {
  m_lock->assert_held();
  if (!node.m_active || node.id() == kRootId) return;
  Dir* parent = node.m_parent;
  std::shared_ptr<Node> keep; // the parent's reference goes away below
  if (parent) {
    const std::size_t i = parent->lower_bound(node.name());
    APEMU_ASSERT(i < parent->m_children.size() && parent->m_children[i].get() == &node);
    keep = parent->m_children[i];
    parent->erase_at(i);
    if (m_listener) notify(Change::Kind::Removed, *parent, node.name(), node.id());
  }
  deactivate(node);
  node.m_parent = nullptr;
}

bool Tree::remove_child(Dir& parent, std::string_view name) {
  auto n = parent.find(name);
  if (!n) return false;
  remove(*n);
  return true;
}

Result<void> Tree::rename(Node& node, std::string new_name) {
  m_lock->assert_held();
  if (!node.m_active || !node.m_parent) return Error(ENOENT);
  Dir& parent = *node.m_parent;
  if (new_name == node.name()) return {};
  APEMU_TRY_VOID(check_new_child(parent, new_name));
  const std::size_t old_at = parent.lower_bound(node.name());
  auto keep = parent.m_children[old_at];
  parent.erase_at(old_at);
  notify(Change::Kind::Removed, parent, node.name(), node.id());
  node.m_name = std::move(new_name);
  --m_node_count; // insert() counts it again
  insert(parent, parent.lower_bound(node.name()), keep);
  return {};
}

Result<void> Tree::move(Node& node, Dir& new_parent) {
  m_lock->assert_held();
  if (!node.m_active || !node.m_parent) return Error(ENOENT);
  if (node.is_ancestor_or_self_of(new_parent)) return Error(EINVAL);
  if (node.m_parent == &new_parent) return {};
  APEMU_TRY(std::size_t at, check_new_child(new_parent, node.name()));
  Dir& old_parent = *node.m_parent;
  const std::size_t old_at = old_parent.lower_bound(node.name());
  auto keep = old_parent.m_children[old_at];
  old_parent.erase_at(old_at);
  notify(Change::Kind::Removed, old_parent, node.name(), node.id());
  --m_node_count;
  insert(new_parent, at, keep);
  return {};
}

std::shared_ptr<Node> Tree::resolve(std::string_view path) const {
  std::shared_ptr<Node> cur = m_root;
  int link_budget = 40; // ELOOP limit of the VFS
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view comp = path.substr(pos, next - pos);
    pos = next + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (Dir* p = cur->parent()) cur = p->parent() ? p->parent()->find(p->name()) : m_root;
      continue;
    }
    // Follow a link in an intermediate position (its target must be a directory to go on).
    while (cur->type() == NodeType::Link) {
      if (--link_budget < 0) return nullptr;
      auto t = static_cast<Link&>(*cur).target();
      if (!t || !t->active()) return nullptr;
      cur = t;
    }
    if (cur->type() != NodeType::Dir) return nullptr;
    auto child = static_cast<Dir&>(*cur).find(comp);
    if (!child) return nullptr;
    cur = child;
    if (next == path.size()) break;
  }
  return cur;
}

std::shared_ptr<Node> Tree::find_by_id(NodeId id) const {
  std::vector<std::shared_ptr<Node>> stack{m_root};
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    if (n->id() == id) return n;
    if (n->type() == NodeType::Dir)
      for (auto& c : static_cast<Dir&>(*n).children()) stack.push_back(c);
  }
  return nullptr;
}

void Tree::notify(Change::Kind kind, const Dir& parent, const std::string& name, NodeId node) {
  if (m_listener) m_listener(Change{kind, parent.id(), name, node});
}

// ---- OpenFile ---------------------------------------------------------------------------------

Result<OpenFile> OpenFile::open(const std::shared_ptr<Node>& node, bool read, bool write) {
  if (!node || !node->active()) return Error(ENOENT);
  if (node->type() == NodeType::Dir) return Error(EISDIR);
  if (node->type() == NodeType::Link) return Error(ELOOP);
  auto attr = std::static_pointer_cast<Attr>(node);
  // fs/sysfs/file.c: the mode is enforced even for root (driver-core.md §2.8).
  if (read && !attr->readable()) return Error(EACCES);
  if (write && !attr->writable()) return Error(EACCES);
  return OpenFile(std::move(attr), read, write);
}

Result<std::string> read_attr(const Attr& attr) {
  APEMU_TRY(std::string text, attr.show());
  if (text.size() >= kPageSize) text.resize(kPageSize - 1);
  return text;
}

Result<std::string> OpenFile::read(std::size_t offset, std::size_t size) {
  if (!m_read) return Error(EBADF);
  if (offset == 0 || !m_rendered) {
    APEMU_TRY(std::string text, read_attr(*m_attr));
    m_snapshot = std::move(text);
    m_rendered = true;
  }
  if (offset >= m_snapshot.size()) return std::string();
  return m_snapshot.substr(offset, size);
}

Result<std::size_t> OpenFile::write(std::string_view data, Blocker* blocker) {
  if (!m_write) return Error(EBADF);
  if (data.empty()) return std::size_t{0};
  if (data.size() > kPageSize) data = data.substr(0, kPageSize);
  APEMU_TRY_VOID(m_attr->store(data, blocker));
  return data.size();
}

} // namespace apemu::kernfs
