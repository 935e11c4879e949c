// kernfs tree operations (fs/kernfs/dir.c, symlink.c, file.c semantics).
#include "apemu/kernfs/tree.h"

#include <algorithm>
#include <vector>

#include "apemu/base/assert.h"

namespace apemu::kernfs {

// ---- Node -------------------------------------------------------------------------------------

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

std::vector<std::shared_ptr<Node>>::const_iterator Dir::lower_bound(std::string_view name) const {
  return std::lower_bound(
      m_children.begin(), m_children.end(), name,
      [](const std::shared_ptr<Node>& n, std::string_view key) { return n->name() < key; });
}

std::shared_ptr<Node> Dir::find(std::string_view name) const {
  auto it = lower_bound(name);
  if (it != m_children.end() && (*it)->name() == name) return *it;
  return nullptr;
}

Result<std::string> Attr::show() const {
  if (!active()) return Error(ENODEV);
  if (!m_ops->can_show()) return Error(EIO);
  return m_ops->show(m_ctx);
}

Result<void> Attr::store(std::string_view text) const {
  if (!active()) return Error(ENODEV);
  if (!m_ops->can_store()) return Error(EIO);
  return m_ops->store(m_ctx, text);
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

Tree::Tree() : m_root(std::make_shared<Dir>(kRootId, "", 0755)) {}

Result<void> Tree::check_new_child(Dir& parent, const std::string& name) const {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return Error(EINVAL, "invalid node name '" + name + "'");
  if (!parent.active()) return Error(ENOENT);
  if (parent.find(name)) return Error(EEXIST, "duplicate name " + parent.path() + "/" + name);
  return {};
}

void Tree::insert(Dir& parent, std::shared_ptr<Node> child) {
  child->m_parent = &parent;
  auto it = parent.lower_bound(child->name());
  auto& vec = parent.m_children;
  const std::string name = child->name();
  const NodeId id = child->id();
  vec.insert(vec.begin() + (it - vec.cbegin()), std::move(child));
  ++m_node_count;
  notify(Change::Kind::Added, parent, name, id);
}

Result<std::shared_ptr<Dir>> Tree::create_dir(Dir& parent, std::string name, mode_t mode) {
  APEMU_TRY_VOID(check_new_child(parent, name));
  auto d = std::make_shared<Dir>(m_next_id++, std::move(name), mode);
  insert(parent, d);
  return d;
}

Result<std::shared_ptr<Attr>> Tree::create_attr(Dir& parent, std::string name, mode_t mode,
                                                const AttrOps* ops, void* ctx) {
  APEMU_ASSERT(ops);
  APEMU_TRY_VOID(check_new_child(parent, name));
  auto a = std::make_shared<Attr>(m_next_id++, std::move(name), mode, ops, ctx, nullptr);
  insert(parent, a);
  return a;
}

Result<std::shared_ptr<Attr>> Tree::create_attr(Dir& parent, std::string name, mode_t mode,
                                                std::unique_ptr<AttrOps> ops) {
  APEMU_ASSERT(ops);
  APEMU_TRY_VOID(check_new_child(parent, name));
  const AttrOps* raw = ops.get();
  auto a = std::make_shared<Attr>(m_next_id++, std::move(name), mode, raw, nullptr, std::move(ops));
  insert(parent, a);
  return a;
}

Result<std::shared_ptr<Link>> Tree::create_link(Dir& parent, std::string name,
                                                const std::shared_ptr<Node>& target) {
  APEMU_ASSERT(target);
  APEMU_TRY_VOID(check_new_child(parent, name));
  auto l = std::make_shared<Link>(m_next_id++, std::move(name), target);
  insert(parent, l);
  return l;
}

void Tree::deactivate(Node& node) {
  node.m_active = false;
  --m_node_count;
  if (node.type() == NodeType::Dir) {
    auto& dir = static_cast<Dir&>(node);
    for (auto& c : dir.m_children) {
      deactivate(*c);
      c->m_parent = nullptr;
    }
    dir.m_children.clear();
  }
}

void Tree::remove(Node& node) {
  if (!node.m_active || node.id() == kRootId) return;
  Dir* parent = node.m_parent;
  auto keep = node.shared_from_this(); // the parent's reference goes away below
  if (parent) {
    auto& vec = parent->m_children;
    auto it = parent->lower_bound(node.name());
    APEMU_ASSERT(it != vec.cend() && it->get() == &node);
    vec.erase(vec.begin() + (it - vec.cbegin()));
    notify(Change::Kind::Removed, *parent, node.name(), node.id());
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
  if (!node.m_active || !node.m_parent) return Error(ENOENT);
  Dir& parent = *node.m_parent;
  if (new_name == node.name()) return {};
  APEMU_TRY_VOID(check_new_child(parent, new_name));
  auto keep = node.shared_from_this();
  auto& vec = parent.m_children;
  auto it = parent.lower_bound(node.name());
  vec.erase(vec.begin() + (it - vec.cbegin()));
  notify(Change::Kind::Removed, parent, node.name(), node.id());
  node.m_name = std::move(new_name);
  --m_node_count; // insert() counts it again
  insert(parent, keep);
  return {};
}

Result<void> Tree::move(Node& node, Dir& new_parent) {
  if (!node.m_active || !node.m_parent) return Error(ENOENT);
  if (node.is_ancestor_or_self_of(new_parent)) return Error(EINVAL);
  if (node.m_parent == &new_parent) return {};
  APEMU_TRY_VOID(check_new_child(new_parent, node.name()));
  auto keep = node.shared_from_this();
  Dir& old_parent = *node.m_parent;
  auto& vec = old_parent.m_children;
  auto it = old_parent.lower_bound(node.name());
  vec.erase(vec.begin() + (it - vec.cbegin()));
  notify(Change::Kind::Removed, old_parent, node.name(), node.id());
  --m_node_count;
  insert(new_parent, keep);
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
      if (cur->parent()) cur = cur->parent()->shared_from_this();
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

Result<std::size_t> OpenFile::write(std::string_view data) {
  if (!m_write) return Error(EBADF);
  if (data.empty()) return std::size_t{0};
  if (data.size() > kPageSize) data = data.substr(0, kPageSize);
  APEMU_TRY_VOID(m_attr->store(data));
  return data.size();
}

} // namespace apemu::kernfs
