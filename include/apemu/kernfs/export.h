// Snapshots of the tree: a text dump for golden files and `apemu tree`, and an export as plain
// files, directories and symlinks (usable with umockdev, a bind mount, or as a test baseline).
#pragma once

#include <filesystem>
#include <string>

#include "apemu/base/result.h"
#include "apemu/kernfs/tree.h"

namespace apemu::kernfs {

struct DumpOptions {
  bool values = true; ///< include attribute values (show output) for readable attributes
};

/// One line per node, depth first in name order, in the spirit of umockdev's P:/A:/L: records:
///   `D 0755 /bus/ap`
///   `A 0644 /bus/ap/drivers_autoprobe = 1`   (value with the trailing newline dropped and
///                                              other newlines escaped as \n; no value when
///                                              write-only or show failed: `!EIO`)
///   `L /bus/ap/devices/card05 -> ../../../devices/ap/card05`
/// Locking: takes the model lock.
std::string dump_tree(const Tree& tree, const std::string& below = "/", DumpOptions opt = {});

/// Writes the tree below `dir` (which must exist or be creatable): directories, regular files
/// holding the show() text (empty for write-only attributes) with the attribute's mode, and
/// symlinks with the kernel's relative targets. Returns: the errno of the first failing
/// filesystem call. Locking: takes the model lock.
Result<void> export_tree(const Tree& tree, const std::filesystem::path& dir);

} // namespace apemu::kernfs
