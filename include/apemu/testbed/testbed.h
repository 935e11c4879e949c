// Testbed: the one façade that tests, the CLI and the daemon drive (umockdev's Testbed).
//
// A Testbed is one emulated machine: the driver core plus the subsystems a topology asks for
// (the AP bus with its simulated firmware, the zcrypt default drivers, then the mdev core and
// vfio_ap in the chosen kernel profile). Everything that changes the machine goes through it or
// through the objects it exposes.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "apemu/ap/ap_bus.h"
#include "apemu/ap/zcrypt.h"
#include "apemu/base/result.h"
#include "apemu/core/core.h"
#include "apemu/mdev/mdev.h"
#include "apemu/testbed/qemu.h"
#include "apemu/testbed/state.h"
#include "apemu/topology/topology.h"
#include "apemu/vfio_ap/vfio_ap.h"

namespace apemu::testbed {

struct Options {
  /// The machine; without one the testbed has only the driver core (no AP bus).
  std::optional<topology::Topology> topology;
  /// Echo kernel log lines to stderr.
  bool echo_log = false;
  /// Load the mdev core and vfio_ap after zcrypt (only with a topology).
  bool vfio_ap = true;
  /// The kernel the machine behaves like (profile::KernelProfile name, e.g. "6.1"); empty: the
  /// newest profile.
  std::string kernel_profile;
  /// Machine time: virtual (moves only with advance(); tests) or real (daemons).
  Runtime::ClockKind clock = Runtime::ClockKind::Virtual;
};

/// The default topology file, default.toml in the first of: $APEMU_TOPOLOGY_DIR; the source
/// tree's topologies/ when the executable lies below the build tree (build/apemu, tests); the
/// installed presets (<datadir>/apemu/topologies, e.g. /usr/share/apemu/topologies).
std::string default_topology_path();

class Testbed {
public:
  /// Builds a machine: core, then (with a topology) the AP bus, its initial scan and zcrypt.
  /// Returns: the errno of the first failing registration.
  static Result<std::unique_ptr<Testbed>> create(Options opt = {});
  /// create() with the topology read from `path` (opt.topology is replaced). Returns: the
  /// topology's errors, or create()'s.
  static Result<std::unique_ptr<Testbed>> from_file(const std::string& path, Options opt = {});
  /// Takes the machine lock (destruction takes it itself: release it first).
  ~Testbed();

  /// The machine's lock, clock and executor.
  Runtime& runtime() { return *m_rt; }
  /// Takes the machine lock: the C++ entry point. Every call below that touches the machine,
  /// and every call into the objects it exposes, must be made with it held.
  [[nodiscard]] MachineGuard lock() { return m_rt->lock().guard(); }
  core::Core& core() { return *m_core; }
  /// Null without a topology.
  ap::ApBus* ap_bus() { return m_ap.get(); }
  ap::ApHardware* hw() { return m_hw.get(); }
  /// Null without a topology or with Options::vfio_ap off.
  mdev::MdevBus* mdev_bus() { return m_mdev.get(); }
  vfio_ap::VfioAp* vfio_ap() { return m_vfio_ap.get(); }
  /// The QEMU processes that run guests on the mdevs (null without vfio_ap).
  Qemu* qemu() { return m_qemu.get(); }
  /// The tree as text (kernfs::dump_tree) below `path`. Locking: machine lock held.
  std::string dump(const std::string& path = "/") const;
  /// Writes the tree as plain files below `dir`. Locking: machine lock held.
  Result<void> export_to(const std::filesystem::path& dir) const;

  /// Keeps the machine's state in `dir` (state.h): restores what it holds (before anything is
  /// served), then saves after every change (persist()). Returns: StateDir's and
  /// state_restore's errors; nothing is restored partially (the machine should be discarded
  /// after an error). Locking: machine lock held.
  Result<void> enable_state(const std::string& dir);
  /// The commit point of an entry point that may have changed the machine (a store, a control
  /// command, executor work): makes the state durable. No-op without enable_state. Returns: the
  /// errno of the failed save. Locking: machine lock held.
  Result<void> persist();

private:
  Testbed() = default;
  std::unique_ptr<Runtime> m_rt; ///< first in, last out: everything below uses it
  std::unique_ptr<core::Core> m_core;
  std::unique_ptr<ap::ApHardware> m_hw;
  std::unique_ptr<ap::ApBus> m_ap;
  std::unique_ptr<ap::Zcrypt> m_zcrypt;
  std::unique_ptr<mdev::MdevBus> m_mdev;
  std::unique_ptr<vfio_ap::VfioAp> m_vfio_ap;
  std::unique_ptr<Qemu> m_qemu;
  std::unique_ptr<StateDir> m_state;
};

} // namespace apemu::testbed
