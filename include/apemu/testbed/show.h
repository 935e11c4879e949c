// `apemu show`: an lszcrypt-like table of cards and queues, and a matrix picture of who owns
// each APQN (host zcrypt driver, free for vfio_ap, or the mdev it is assigned to).
#pragma once

#include <functional>
#include <string>

#include "apemu/testbed/testbed.h"

namespace apemu::testbed {

struct ShowOptions {
  bool color = false; ///< ANSI colours (for a terminal)
  bool table = true;
  bool matrix = true;
};

/// Renders the current machine. Locking: takes the model lock.
std::string render_show(Testbed& tb, const ShowOptions& opt = {});

} // namespace apemu::testbed
