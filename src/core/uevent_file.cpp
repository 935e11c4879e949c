// Synthetic uevent grammar (driver-core.md §3.5).
#include "apemu/core/uevent_file.h"

#include <cctype>

#include "apemu/base/parse.h"

namespace apemu::core {

static bool all_alnum(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  return true;
}

Result<SyntheticUevent> parse_synthetic_uevent(std::string_view text) {
  if (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.remove_suffix(1);
  if (text.empty()) return Error(EINVAL, "empty uevent action");
  const auto space = text.find(' ');
  std::string_view action = text.substr(0, space);
  auto act = uevent::parse_action(action);
  if (!act) return Error(EINVAL, "unknown uevent action string");
  SyntheticUevent out{*act, {}};
  if (space == std::string_view::npos) {
    out.vars.emplace_back("SYNTH_UUID", "0");
    return out;
  }
  std::string_view args = text.substr(space + 1);
  constexpr std::size_t kUuidLen = 36;
  if (args.size() < kUuidLen || !is_uuid(args.substr(0, kUuidLen)))
    return Error(EINVAL, "incorrect uevent action arguments");
  // kobject_action_args collects the arguments in an environment of their own, with the uevent
  // limits: an argument that does not fit is EINVAL there (before the event's ENOMEM).
  uevent::Env limits;
  auto add = [&](std::string key, std::string_view value) -> Result<void> {
    if (!limits.add(key, value)) return Error(EINVAL, "incorrect uevent action arguments");
    out.vars.emplace_back(std::move(key), std::string(value));
    return {};
  };
  APEMU_TRY_VOID(add("SYNTH_UUID", args.substr(0, kUuidLen)));
  args.remove_prefix(kUuidLen);
  while (!args.empty()) {
    // Each further argument is " KEY=VALUE", separated by exactly one space.
    if (args.front() != ' ') return Error(EINVAL, "incorrect uevent action arguments");
    args.remove_prefix(1);
    const auto end = args.find(' ');
    std::string_view pair = args.substr(0, end);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) return Error(EINVAL, "incorrect uevent action arguments");
    std::string_view key = pair.substr(0, eq), value = pair.substr(eq + 1);
    if (!all_alnum(key) || !all_alnum(value))
      return Error(EINVAL, "incorrect uevent action arguments");
    APEMU_TRY_VOID(add("SYNTH_ARG_" + std::string(key), value));
    args = end == std::string_view::npos ? std::string_view{} : args.substr(end);
  }
  return out;
}

} // namespace apemu::core
