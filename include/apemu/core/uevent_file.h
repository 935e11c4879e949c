// The grammar of writes to `uevent` files (lib/kobject_uevent.c, kobject_synth_uevent;
// driver-core.md §3.5), kept apart so it can be unit-tested and fuzzed on its own.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apemu/base/result.h"
#include "apemu/uevent/event.h"

namespace apemu::core {

struct SyntheticUevent {
  uevent::Action action;
  /// SYNTH_UUID=... then SYNTH_ARG_KEY=VALUE..., in input order.
  std::vector<std::pair<std::string, std::string>> vars;
};

/// Parses `ACTION [UUID [KEY=VALUE ...]]` (one trailing '\n' or '\0' ignored).
/// Returns: EINVAL for an empty input, an unknown action, an invalid UUID, any argument that is
/// not ` KEY=VALUE` with alphanumeric key and value, or arguments beyond the uevent limits
/// (64 variables, 2048 bytes, SYNTH_UUID included; kobject_action_args).
Result<SyntheticUevent> parse_synthetic_uevent(std::string_view text);

} // namespace apemu::core
