// Declarative machine topologies (TOML): the LPAR's AP configuration, its adapters and the AP
// bus kernel parameters. Every error names the file, the line and the key.
//
// @code
//   auto topo = topology::load_file("topologies/default.toml");
//   if (!topo) { print(topo.error().context); return; }
//   // topo->hw is an ap::ApHardware, topo->bus the ap.* kernel parameters
// @endcode
#pragma once

#include <string>
#include <vector>

#include "apemu/ap/ap_bus.h"
#include "apemu/ap/ap_hw.h"
#include "apemu/base/result.h"

namespace apemu::topology {

struct Topology {
  std::string source;       ///< file name (or "<string>")
  ap::ApHardware hw;        ///< QCI and adapters
  ap::ApBusOptions bus;     ///< ap.domain=, ap.apmask=, ap.aqmask=
  std::vector<Apid> offline_cards; ///< adapters with `online = false` (zcrypt soft state)
};

/// Parses TOML text. Returns: EINVAL with "source:line: key 'k': reason" for any invalid or
/// unknown key, ERANGE for ids above the configured maximum.
Result<Topology> parse(std::string_view text, const std::string& source = "<string>");
/// Reads and parses a file. Returns: the errno of the failed open/read, or parse()'s errors.
Result<Topology> load_file(const std::string& path);

} // namespace apemu::topology
