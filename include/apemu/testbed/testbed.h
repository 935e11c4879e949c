// Testbed: the one façade that tests, the CLI and the daemon drive (umockdev's Testbed).
//
// A Testbed is one emulated machine: the driver core plus the subsystems a topology asks for.
// Everything that changes the machine goes through it or through the Core it exposes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "apemu/base/result.h"
#include "apemu/core/core.h"

namespace apemu::testbed {

struct Options {
  /// Echo kernel log lines to stderr.
  bool echo_log = false;
};

class Testbed {
public:
  /// Builds a machine. Returns: the errno of the first failing registration.
  static Result<std::unique_ptr<Testbed>> create(const Options& opt = {});
  ~Testbed();

  core::Core& core() { return *m_core; }
  /// The tree as text (kernfs::dump_tree) below `path`.
  std::string dump(const std::string& path = "/") const;
  /// Writes the tree as plain files below `dir`.
  Result<void> export_to(const std::filesystem::path& dir) const;

private:
  Testbed() = default;
  std::unique_ptr<core::Core> m_core;
};

} // namespace apemu::testbed
