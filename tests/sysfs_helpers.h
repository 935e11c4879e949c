// Test helpers that use the kernfs tree the way a sysfs client would: open with the access
// mode, one write per value, readlink text. The test is the entry point: it holds the machine
// lock (the fixtures take it in SetUp), and these helpers assert that.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "apemu/core/core.h"
#include "apemu/kernfs/tree.h"

namespace apemu::testing {

inline Result<std::size_t> sysfs_write(core::Core& core, std::string_view path,
                                       std::string_view text) {
  core.held();
  auto node = core.tree().resolve(path);
  if (!node) return Error(ENOENT);
  APEMU_TRY(auto f, kernfs::OpenFile::open(node, false, true));
  return f.write(text);
}

/// A write that may block, as the FUSE adapter makes it: the write's result, and the completion
/// to wait on when the store blocked (result kEIocbQueued).
struct BlockingWrite {
  Result<std::size_t> result = std::size_t{0};
  std::shared_ptr<Completion> completion;
};

inline BlockingWrite sysfs_write_blocking(core::Core& core, std::string_view path,
                                          std::string_view text) {
  core.held();
  auto node = core.tree().resolve(path);
  if (!node) return {Error(ENOENT), nullptr};
  auto f = kernfs::OpenFile::open(node, false, true);
  if (!f) return {f.error(), nullptr};
  kernfs::Blocker b;
  auto r = f->write(text, &b);
  return {std::move(r), b.completion()};
}

inline Result<std::string> sysfs_read(core::Core& core, std::string_view path) {
  core.held();
  auto node = core.tree().resolve(path);
  if (!node) return Error(ENOENT);
  APEMU_TRY(auto f, kernfs::OpenFile::open(node, true, false));
  return f.read(0, kernfs::kPageSize);
}

inline Result<std::string> sysfs_readlink(core::Core& core, std::string_view path) {
  core.held();
  auto node = core.tree().resolve(std::string(path).substr(0, path.rfind('/')));
  if (!node || node->type() != kernfs::NodeType::Dir) return Error(ENOENT);
  auto l = static_cast<kernfs::Dir&>(*node).find(path.substr(path.rfind('/') + 1));
  if (!l) return Error(ENOENT);
  if (l->type() != kernfs::NodeType::Link) return Error(EINVAL);
  return static_cast<kernfs::Link&>(*l).target_text();
}

inline bool sysfs_exists(core::Core& core, std::string_view path) {
  core.held();
  auto dir = core.tree().resolve(std::string(path).substr(0, path.rfind('/')));
  if (!dir || dir->type() != kernfs::NodeType::Dir) return false;
  return static_cast<kernfs::Dir&>(*dir).find(path.substr(path.rfind('/') + 1)) != nullptr;
}

/// Records every uevent as "action devpath" plus the full event.
struct EventLog {
  explicit EventLog(core::Core& core) : m_core(core) {
    m_id = core.uevents().subscribe([this](const uevent::Event& e) { events.push_back(e); });
  }
  ~EventLog() { m_core.uevents().unsubscribe(m_id); }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& e : events)
      out.push_back(std::string(uevent::action_name(e.action)) + " " + e.devpath);
    return out;
  }
  void clear() { events.clear(); }
  std::vector<uevent::Event> events;

private:
  core::Core& m_core;
  int m_id;
};

} // namespace apemu::testing
