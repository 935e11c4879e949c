// Ref<T>: an intrusive counted reference (get_device/put_device as RAII).
//
// T provides `void ref_get()` and `void ref_put()`. Copying a Ref takes a reference, destroying
// it drops one; the object's release runs when the last reference goes.
#pragma once

#include <type_traits>
#include <utility>

namespace apemu::core {

template <class T> class Ref {
public:
  Ref() = default;
  Ref(std::nullptr_t) {} // NOLINT
  /// Takes a new reference on `p` (get_device).
  explicit Ref(T* p) : m_p(p) {
    if (m_p) m_p->ref_get();
  }
  /// Wraps a reference the caller already owns (no increment).
  static Ref adopt(T* p) {
    Ref r;
    r.m_p = p;
    return r;
  }
  Ref(const Ref& o) : Ref(o.m_p) {}
  Ref(Ref&& o) noexcept : m_p(std::exchange(o.m_p, nullptr)) {}
  template <class U, std::enable_if_t<std::is_convertible_v<U*, T*>, int> = 0>
  Ref(const Ref<U>& o) : Ref(static_cast<T*>(o.get())) {} // NOLINT
  template <class U, std::enable_if_t<std::is_convertible_v<U*, T*>, int> = 0>
  Ref(Ref<U>&& o) noexcept : m_p(o.leak()) {} // NOLINT
  Ref& operator=(Ref o) noexcept {
    std::swap(m_p, o.m_p);
    return *this;
  }
  ~Ref() { reset(); }

  void reset() {
    if (T* p = std::exchange(m_p, nullptr)) p->ref_put();
  }
  /// Gives up ownership without dropping the reference.
  T* leak() { return std::exchange(m_p, nullptr); }

  T* get() const { return m_p; }
  T* operator->() const { return m_p; }
  T& operator*() const { return *m_p; }
  explicit operator bool() const { return m_p != nullptr; }
  friend bool operator==(const Ref& a, const Ref& b) { return a.m_p == b.m_p; }

private:
  T* m_p = nullptr;
};

} // namespace apemu::core
