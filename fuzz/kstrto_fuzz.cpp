// Differential fuzzing of the kernel parsers in include/apemu/base/parse.h against reference
// models written here, independently, from the semantics that header documents (lib/kstrtox.c,
// lib/vsprintf.c vsscanf, lib/uuid.c). The models decide the accepted syntax with explicit rules
// and leave the arithmetic to the C library (strtoull), so a divergence of either kind is a crash.
//
// Input: byte 0 picks the function and its base, the rest is the text given to it.
//
// Modelled as the header documents, not as the kernel's C strings: an embedded NUL is a stray
// character (EINVAL), where the kernel's parsers would stop at it (see fuzz/README.md).
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "apemu/base/parse.h"
#include "fuzz_util.h"
#include "kernel_ref.h"

using namespace apemu;
using apemu::fuzz::quote;

namespace {

/// The outcome of a model: a value or an errno.
template <class T> struct Expect {
  int err = 0; ///< 0: success with `value`
  T value{};
};

namespace ref = apemu::fuzz::ref;
using ref::fixup_radix;
using ref::is_digit_in;
using ref::is_hex;
using ref::value_of;

/// _kstrtoull: no sign; digits, then at most one '\n'.
Expect<std::uint64_t> ref_kstrtoull_nosign(std::string_view s, unsigned base) {
  s = fixup_radix(s, base);
  std::size_t n = 0;
  while (n < s.size() && is_digit_in(s[n], base)) ++n;
  if (n == 0) return {EINVAL};
  const auto v = value_of(s.substr(0, n), base);
  if (!v) return {ERANGE}; // the kernel reports overflow before looking at what follows
  const std::string_view rest = s.substr(n);
  if (!rest.empty() && rest != "\n") return {EINVAL};
  return {0, *v};
}

Expect<std::uint64_t> ref_kstrtoull(std::string_view s, unsigned base) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  return ref_kstrtoull_nosign(s, base);
}

/// kstrtoll: '-' then the unsigned parse without its '+' (so "-+1" is EINVAL), range-checked.
Expect<std::int64_t> ref_kstrtoll(std::string_view s, unsigned base) {
  if (!s.empty() && s[0] == '-') {
    const auto u = ref_kstrtoull_nosign(s.substr(1), base);
    if (u.err) return {u.err};
    if (u.value > (std::uint64_t{1} << 63)) return {ERANGE};
    return {0, u.value == (std::uint64_t{1} << 63) ? INT64_MIN : -static_cast<std::int64_t>(u.value)};
  }
  const auto u = ref_kstrtoull(s, base);
  if (u.err) return {u.err};
  if (u.value > static_cast<std::uint64_t>(INT64_MAX)) return {ERANGE};
  return {0, static_cast<std::int64_t>(u.value)};
}

Expect<bool> ref_kstrtobool(std::string_view s) {
  const std::string_view yes = "yYtT1", no = "nNfF0";
  if (s.empty()) return {EINVAL};
  if (yes.find(s[0]) != std::string_view::npos) return {0, true};
  if (no.find(s[0]) != std::string_view::npos) return {0, false};
  if ((s[0] == 'o' || s[0] == 'O') && s.size() >= 2) {
    if (s[1] == 'n' || s[1] == 'N') return {0, true};
    if (s[1] == 'f' || s[1] == 'F') return {0, false};
  }
  return {EINVAL};
}

/// sscanf("%i"/"%d") on a prefix. Values of 2^40 and above are outside every attribute's range;
/// parse.cpp saturates there instead of wrapping like the kernel (`saturated` tells the caller).
Expect<long long> ref_sscanf_int(std::string_view s, unsigned base, bool& saturated) {
  saturated = false;
  std::size_t i = 0;
  while (i < s.size() && std::string_view(" \t\n\v\f\r").find(s[i]) != std::string_view::npos) ++i;
  bool neg = false;
  if (i < s.size() && s[i] == '-') {
    neg = true;
    ++i;
  }
  s.remove_prefix(i);
  if (s.empty() || !(s[0] >= '0' && s[0] <= '9')) return {EINVAL}; // vsscanf's first-digit check
  s = fixup_radix(s, base);
  std::size_t n = 0;
  while (n < s.size() && is_digit_in(s[n], base)) ++n;
  FUZZ_CHECK(n > 0, "reference: no digit after the first-digit check in " + quote(s));
  const auto v = value_of(s.substr(0, n), base);
  if (!v || *v >= (std::uint64_t{1} << 40)) {
    saturated = true;
    return {0, neg ? -1 : 1};
  }
  const auto sv = static_cast<long long>(*v);
  return {0, neg ? -sv : sv};
}

Expect<Uuid> ref_parse_uuid(std::string_view s) {
  if (s.size() != 36) return {EINVAL};
  Uuid u;
  std::string hex;
  for (std::size_t i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return {EINVAL};
    } else if (!is_hex(s[i])) {
      return {EINVAL};
    } else {
      hex += s[i];
    }
  }
  for (std::size_t b = 0; b < 16; ++b)
    u.bytes[b] = static_cast<std::uint8_t>(std::strtoul(hex.substr(2 * b, 2).c_str(), nullptr, 16));
  return {0, u};
}

/// parse_duration: [digits][.digits] (at least one digit) and a unit ns|us|ms|s|m|h or none.
/// Returns the exact value in ns as a long double (rounding only in the last bits), or an errno.
struct DurationModel {
  int err = 0;
  long double ns = 0;
  long double ns_per = 0;
};
DurationModel ref_parse_duration(std::string_view s) {
  std::size_t i = 0;
  std::string whole, frac;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') whole += s[i++];
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') frac += s[i++];
  }
  if (whole.empty() && frac.empty()) return {EINVAL};
  const std::string_view unit = s.substr(i);
  long double per;
  if (unit.empty() || unit == "s") per = 1e9L;
  else if (unit == "ms") per = 1e6L;
  else if (unit == "us") per = 1e3L;
  else if (unit == "ns") per = 1;
  else if (unit == "m") per = 60e9L;
  else if (unit == "h") per = 3600e9L;
  else return {EINVAL};
  const std::string num = (whole.empty() ? "0" : whole) + "." + (frac.empty() ? "0" : frac);
  return {0, std::strtold(num.c_str(), nullptr) * per, per};
}

constexpr long double kHundredDaysNs = 100.0L * 86400 * 1e9;

void check_kstrtoull(std::string_view text, unsigned base) {
  const auto want = ref_kstrtoull(text, base);
  const auto got = kstrtoull(text, base);
  const std::string what = "kstrtoull(" + quote(text) + ", " + std::to_string(base) + ")";
  if (want.err) {
    FUZZ_CHECK(!got && got.error().code == want.err,
               what + ": want errno " + std::to_string(want.err) + ", got " +
                   (got ? "value " + std::to_string(*got) : got.error().describe()));
  } else {
    FUZZ_CHECK(got && *got == want.value,
               what + ": want " + std::to_string(want.value) + ", got " +
                   (got ? std::to_string(*got) : got.error().describe()));
    FUZZ_CHECK(kstrtoul(text, base) && *kstrtoul(text, base) == want.value, what + ": kstrtoul differs");
  }
}

void check_kstrtoll(std::string_view text, unsigned base) {
  const auto want = ref_kstrtoll(text, base);
  const auto got = kstrtoll(text, base);
  const std::string what = "kstrtoll(" + quote(text) + ", " + std::to_string(base) + ")";
  if (want.err)
    FUZZ_CHECK(!got && got.error().code == want.err,
               what + ": want errno " + std::to_string(want.err) + ", got " +
                   (got ? "value " + std::to_string(*got) : got.error().describe()));
  else
    FUZZ_CHECK(got && *got == want.value,
               what + ": want " + std::to_string(want.value) + ", got " +
                   (got ? std::to_string(*got) : got.error().describe()));
}

void check_kstrtobool(std::string_view text) {
  const auto want = ref_kstrtobool(text);
  const auto got = kstrtobool(text);
  const std::string what = "kstrtobool(" + quote(text) + ")";
  if (want.err) FUZZ_CHECK(!got && got.error().code == EINVAL, what + ": want EINVAL");
  else FUZZ_CHECK(got && *got == want.value, what + ": want " + (want.value ? "true" : "false"));
}

void check_sscanf_int(std::string_view text, unsigned base) {
  bool saturated = false;
  const auto want = ref_sscanf_int(text, base, saturated);
  const auto got = sscanf_int(text, base);
  const std::string what = "sscanf_int(" + quote(text) + ", " + std::to_string(base) + ")";
  if (want.err) {
    FUZZ_CHECK(!got && got.error().code == want.err, what + ": want EINVAL");
  } else if (saturated) {
    // Above every attribute's range: any value of at least 2^40 with the right sign will do.
    FUZZ_CHECK(got && (want.value < 0 ? *got <= -(1ll << 40) : *got >= (1ll << 40)),
               what + ": want a saturated value, got " +
                   (got ? std::to_string(*got) : got.error().describe()));
  } else {
    FUZZ_CHECK(got && *got == want.value,
               what + ": want " + std::to_string(want.value) + ", got " +
                   (got ? std::to_string(*got) : got.error().describe()));
  }
}

void check_parse_uuid(std::string_view text) {
  const auto want = ref_parse_uuid(text);
  const auto got = parse_uuid(text);
  const std::string what = "parse_uuid(" + quote(text) + ")";
  if (want.err) {
    FUZZ_CHECK(!got && got.error().code == EINVAL, what + ": want EINVAL");
    FUZZ_CHECK(!is_uuid(text), what + ": is_uuid disagrees");
    return;
  }
  FUZZ_CHECK(got && *got == want.value, what + ": wrong bytes or rejected");
  std::string lower(text);
  for (char& c : lower)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  FUZZ_CHECK(got->str() == lower, what + ": str() gives " + got->str());
  FUZZ_CHECK(parse_uuid(got->str()) && *parse_uuid(got->str()) == *got, what + ": no round trip");
}

void check_parse_duration(std::string_view text) {
  const auto want = ref_parse_duration(text);
  const auto got = parse_duration(text);
  const std::string what = "parse_duration(" + quote(text) + ")";
  if (want.err) {
    FUZZ_CHECK(!got && got.error().code == want.err, what + ": want EINVAL");
    return;
  }
  // parse.cpp keeps nine fraction digits: up to one unit * 1e-9 lost, plus rounding to 1 ns.
  const long double tol = want.ns_per * 1e-9L + 2;
  if (want.ns > kHundredDaysNs + tol) {
    FUZZ_CHECK(!got && got.error().code == ERANGE, what + ": above 100 days, want ERANGE");
    return;
  }
  if (want.ns < kHundredDaysNs - tol) {
    FUZZ_CHECK(got, what + ": " + std::to_string(static_cast<double>(want.ns)) +
                        " ns is within 100 days, got " + (got ? "" : got.error().describe()));
  }
  if (!got) {
    FUZZ_CHECK(got.error().code == ERANGE, what + ": at the limit only ERANGE may fail");
    return;
  }
  const long double diff = std::fabs(static_cast<long double>(got->count()) - want.ns);
  FUZZ_CHECK(diff <= tol, what + ": got " + std::to_string(got->count()) + " ns, want " +
                              std::to_string(static_cast<double>(want.ns)));
  // What format_duration prints for people parses back to nearly the same duration.
  const std::string shown = format_duration(*got);
  const auto again = parse_duration(shown);
  FUZZ_CHECK(again, what + ": format_duration gave " + quote(shown) + " which does not parse");
  const long double rel = std::fabs(static_cast<long double>(again->count() - got->count()));
  FUZZ_CHECK(rel <= 1e-8L * static_cast<long double>(got->count()) + 1,
             what + ": " + quote(shown) + " parses to " + std::to_string(again->count()));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text = apemu::fuzz::as_text(data + 1, size - 1);
  static const unsigned kBases[] = {0, 2, 8, 10, 16};
  const unsigned base = kBases[(data[0] >> 4) % 5];
  switch (data[0] % 7) {
  case 0: check_kstrtoull(text, base); break;
  case 1: check_kstrtoll(text, base); break;
  case 2: check_kstrtobool(text); break;
  case 3: check_sscanf_int(text, (data[0] >> 4) & 1 ? 10 : 0); break;
  case 4: check_parse_uuid(text); break;
  case 5: check_parse_duration(text); break;
  case 6: // the same text through every parser: none may crash, whatever it returns
    check_kstrtoull(text, 0);
    check_kstrtoll(text, 0);
    check_kstrtobool(text);
    check_sscanf_int(text, 0);
    check_parse_uuid(text);
    check_parse_duration(text);
    break;
  }
  return 0;
}
