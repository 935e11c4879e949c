// Core-private helpers (drivers/base/base.h).
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

namespace apemu::core::internal {

template <class T> bool owns(const std::vector<std::unique_ptr<T>>& v, const T* p) {
  return std::any_of(v.begin(), v.end(), [&](const auto& u) { return u.get() == p; });
}

/// Removes `p`, searching from the back: teardown is LIFO (children and the last-added devices
/// go first), which keeps removal from large lists cheap.
template <class T> void erase_one(std::vector<T*>& v, T* p) {
  auto it = std::find(v.rbegin(), v.rend(), p);
  if (it != v.rend()) v.erase(std::next(it).base());
}

} // namespace apemu::core::internal
