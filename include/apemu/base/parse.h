// Kernel-compatible parsing helpers for sysfs store() input: kstrtoul/kstrtobool semantics,
// sysfs_streq, UUIDs. Each function documents the errno the kernel helper returns, because
// attribute stores forward those errors unchanged.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "apemu/base/result.h"

namespace apemu {

/// Strips exactly one trailing '\n' if present (what most kernel parsers tolerate).
std::string_view strip_one_newline(std::string_view s);

/// kstrtoull semantics: optional leading '+', base 0 detects "0x"/"0X" (hex) and "0" (octal);
/// base 16 also accepts a "0x" prefix; exactly one trailing newline allowed; nothing else.
/// Returns: EINVAL for empty input or any stray character, ERANGE when the value overflows 64 bits.
Result<std::uint64_t> kstrtoull(std::string_view s, unsigned base);

/// kstrtoul into an unsigned long (64-bit on s390x and x86_64): same rules as kstrtoull.
inline Result<std::uint64_t> kstrtoul(std::string_view s, unsigned base) {
  return kstrtoull(s, base);
}

/// kstrtoint-like signed parse (optional '-'). Returns EINVAL / ERANGE as kstrtoint.
Result<std::int64_t> kstrtoll(std::string_view s, unsigned base);

/// kstrtobool: first char y/Y/1/t/T → true, n/N/0/f/F → false, "on"/"off" (case-insensitive
/// second letter). Returns: EINVAL for anything else or empty input.
Result<bool> kstrtobool(std::string_view s);

/// The kernel's sscanf("%i") (base 0) or sscanf("%d") (base 10) on a prefix: leading white
/// space, an optional '-' (lib/vsprintf.c vsscanf rejects '+') and at least one digit;
/// anything after the number is ignored, as sscanf does.
/// Returns: EINVAL when no number could be converted.
Result<long long> sscanf_int(std::string_view s, unsigned base);

/// sysfs_streq: equal, or equal apart from one trailing newline on either side.
bool sysfs_streq(std::string_view a, std::string_view b);

/// A duration for people: a decimal number with an optional fraction and a unit `ns`, `us`,
/// `ms`, `s` (the default), `m` or `h`, e.g. "30", "1.5s", "250ms". Returns: EINVAL for anything
/// else, ERANGE above 100 days.
Result<std::chrono::nanoseconds> parse_duration(std::string_view s);
/// The inverse for messages: "1.5s", "250ms", "30s".
std::string format_duration(std::chrono::nanoseconds d);

/// A 128-bit UUID in canonical 8-4-4-4-12 lower/upper hex form.
struct Uuid {
  std::array<std::uint8_t, 16> bytes{};
  /// Canonical lower-case text.
  std::string str() const;
  friend bool operator==(const Uuid&, const Uuid&) = default;
  friend auto operator<=>(const Uuid&, const Uuid&) = default;
};

/// Parses exactly "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex digits, either case).
/// Returns: EINVAL on any deviation (uuid_parse in the kernel).
Result<Uuid> parse_uuid(std::string_view s);

/// True when `s` is a valid canonical UUID.
inline bool is_uuid(std::string_view s) { return parse_uuid(s).has_value(); }

} // namespace apemu
