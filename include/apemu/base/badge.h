// Badge<T>: a passkey that only T can create (SerenityOS idiom). A constructor taking
// Badge<Core> can be called publicly but only Core can produce the key.
#pragma once

namespace apemu {

template <class T> class Badge {
  friend T;
  constexpr Badge() = default;

public:
  Badge(const Badge&) = default;
};

} // namespace apemu
