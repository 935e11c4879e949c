// Core-private helpers (drivers/base/base.h).
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

namespace apemu::core::internal {

template <class T> bool owns(const std::vector<std::unique_ptr<T>>& v, const T* p) {
  return std::any_of(v.begin(), v.end(), [&](const auto& u) { return u.get() == p; });
}

template <class T> void erase_one(std::vector<T*>& v, T* p) {
  auto it = std::find(v.begin(), v.end(), p);
  if (it != v.end()) v.erase(it);
}

} // namespace apemu::core::internal
