// Result<T>: an errno-exact result type with the surface of std::expected<T, Error>.
//
// The kernel ABI of sysfs is the errno, so apemu never maps codes to categories: an Error carries
// the positive errno the kernel would return, plus optional context text for humans that is never
// parsed. Result<T> is [[nodiscard]] and move-friendly; once GCC's C++23 mode is mature this can
// become an alias of std::expected.
//
// @code
//   Result<unsigned> parse_apid(std::string_view s) {
//     APEMU_TRY(auto v, kstrtoul(s, 0));
//     if (v > 255) return Error(ERANGE, "adapter id above 255");
//     return static_cast<unsigned>(v);
//   }
//   Result<void> assign(std::string_view s) {
//     APEMU_TRY(auto apid, parse_apid(s));
//     (void)apid;
//     return {};
//   }
// @endcode
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace apemu {

/// A positive errno value; the code is never remapped.
class Errno {
public:
  constexpr Errno() = default;
  constexpr explicit Errno(int code) : m_code(code) {}
  constexpr int code() const { return m_code; }
  /// Symbolic name such as "EADDRINUSE" (or "E<number>" for unknown codes).
  std::string name() const;
  /// strerror() text.
  std::string message() const;
  friend constexpr bool operator==(Errno a, Errno b) { return a.m_code == b.m_code; }

private:
  int m_code = 0;
};

/// Kernel-internal errno used by probe() to ask for a later retry (EPROBE_DEFER).
inline constexpr int kEProbeDefer = 517;

/// The error half of a Result: the exact errno plus optional human context.
struct Error {
  int code = EIO;
  std::string context;

  Error() = default;
  // Explicit so that `return EINVAL;` can never silently become a Result<int> value.
  explicit Error(int c) : code(c) {}
  Error(int c, std::string ctx) : code(c), context(std::move(ctx)) {}

  Errno errno_value() const { return Errno(code); }
  /// "EINVAL: context" or "EINVAL (Invalid argument)".
  std::string describe() const;
};

template <class T> class [[nodiscard]] Result {
public:
  using value_type = T;
  using error_type = Error;

  template <class U = T,
            std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                 !std::is_same_v<std::decay_t<U>, Result> &&
                                 !std::is_same_v<std::decay_t<U>, Error>,
                             int> = 0>
  Result(U&& v) : m_v(std::in_place_index<0>, std::forward<U>(v)) {} // NOLINT
  Result(Error e) : m_v(std::in_place_index<1>, std::move(e)) {}     // NOLINT

  bool has_value() const { return m_v.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(m_v); }
  const T& value() const& { return std::get<0>(m_v); }
  T&& value() && { return std::get<0>(std::move(m_v)); }
  const Error& error() const { return std::get<1>(m_v); }
  Error& error() { return std::get<1>(m_v); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <class U> T value_or(U&& alt) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(alt));
  }

private:
  std::variant<T, Error> m_v;
};

template <> class [[nodiscard]] Result<void> {
public:
  using value_type = void;
  using error_type = Error;

  Result() = default;
  Result(Error e) : m_ok(false), m_err(std::move(e)) {} // NOLINT

  bool has_value() const { return m_ok; }
  explicit operator bool() const { return m_ok; }
  void value() const {}
  const Error& error() const { return m_err; }
  Error& error() { return m_err; }

private:
  bool m_ok = true;
  Error m_err;
};

} // namespace apemu

#define APEMU_CONCAT_INNER(a, b) a##b
#define APEMU_CONCAT(a, b) APEMU_CONCAT_INNER(a, b)

/// APEMU_TRY(decl, expr): evaluates expr (a Result<T>); on error returns the error from the
/// enclosing function, otherwise declares `decl` initialised with the moved value.
#define APEMU_TRY(decl, expr)                                                                      \
  auto APEMU_CONCAT(apemu_try_, __LINE__) = (expr);                                                \
  if (!APEMU_CONCAT(apemu_try_, __LINE__).has_value())                                             \
    return std::move(APEMU_CONCAT(apemu_try_, __LINE__).error());                                  \
  decl = std::move(APEMU_CONCAT(apemu_try_, __LINE__)).value()

/// APEMU_TRY_VOID(expr): evaluates expr (any Result); on error returns it.
#define APEMU_TRY_VOID(expr)                                                                       \
  do {                                                                                             \
    auto apemu_try_void_ = (expr);                                                                 \
    if (!apemu_try_void_.has_value()) return std::move(apemu_try_void_.error());                  \
  } while (0)
