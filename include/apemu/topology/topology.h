// Declarative machine topologies (TOML): the LPAR's AP configuration, its adapters and the AP
// bus kernel parameters. Every error names the file, the line and the key.
//
// @code
//   auto topo = topology::load_file("topologies/default.toml");
//   if (!topo) { print(topo.error().context); return; }
//   // topo->hw is an ap::ApHardware, topo->bus the ap.* kernel parameters
// @endcode
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apemu/ap/ap_bus.h"
#include "apemu/ap/ap_hw.h"
#include "apemu/ap/zcrypt.h"
#include "apemu/base/result.h"

namespace apemu::topology {

/// An mdev to create at boot ([[mdev]]), with its assignment made through the attributes.
struct MdevSpec {
  std::string uuid;
  std::string type = "vfio_ap-passthrough"; ///< the mdev type's directory name
  ApidMask adapters;
  ApqiMask domains, control_domains;
};

/// A zcrypt multi-node device to create at boot ([[zcrypt_node]]).
struct ZcryptNodeSpec {
  std::string name;
  ApidMask apmask;
  ApqiMask aqmask, admask;
  ap::IoctlMask ioctlmask;
};

struct Topology {
  std::string source;       ///< file name (or "<string>")
  ap::ApHardware hw;        ///< QCI and adapters
  ap::ApBusOptions bus;     ///< ap.domain=, ap.apmask=, ap.aqmask=
  std::vector<Apid> offline_cards; ///< adapters with `online = false` (zcrypt soft state)
  std::vector<Apqn> offline_queues; ///< `offline_domains` of the adapters (zcrypt soft state)
  /// `uninitiated_domains` / `error_domains` of the adapters: queue states a recording saw
  /// (a driver released the queue; deconfigured or checkstopped after its reset).
  std::vector<Apqn> uninitiated_queues, error_queues;
  /// The bus knobs config_time, poll_thread, poll_timeout (unset: the kernel's defaults).
  std::optional<int> config_time;
  std::optional<bool> poll_thread;
  std::optional<std::uint64_t> poll_timeout;
  std::vector<MdevSpec> mdevs;            ///< in creation order
  std::vector<ZcryptNodeSpec> zcrypt_nodes; ///< in creation order
};

/// Parses TOML text. Returns: EINVAL with "source:line: key 'k': reason" for any invalid or
/// unknown key, ERANGE for ids above the configured maximum.
Result<Topology> parse(std::string_view text, const std::string& source = "<string>");
/// Reads and parses a file. Returns: the errno of the failed open/read, or parse()'s errors.
Result<Topology> load_file(const std::string& path);

} // namespace apemu::topology
