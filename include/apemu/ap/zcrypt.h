// The zcrypt default drivers `cex4card` and `cex4queue` (zcrypt_cex4.c, zcrypt_card.c,
// zcrypt_queue.c; ap-bus.md §4.2, §4.4, §7) and, up to 6.4, the CEX2/CEX3 drivers of
// zcrypt_cex2a.c and zcrypt_cex2c.c: they bind every card and the queues in apmask × aqmask,
// and add the zcrypt attributes (type, online, load, serialnr, mkvps ...) while bound.
#pragma once

#include <memory>
#include <vector>

#include "apemu/ap/ap_bus.h"

namespace apemu::ap {

class Zcrypt {
public:
  /// Registers cex4card then cex4queue (module zcrypt_cex4) and, in profiles that still have
  /// CEX2/CEX3 support (≤6.4), cex2acard/cex2aqueue and cex2card/cex2cqueue. Emits: their
  /// bind events.
  static Result<std::unique_ptr<Zcrypt>> create(ApBus& bus);
  ~Zcrypt();
  Zcrypt(const Zcrypt&) = delete;
  Zcrypt& operator=(const Zcrypt&) = delete;

  /// The card `online` store (also `chzcrypt -e/-d`). Returns: EINVAL (not 0/1), ENODEV
  /// (going online while deconfigured or check-stopped).
  static Result<void> set_card_online(ApCard& card, bool on);
  /// The queue `online` store. Returns: ENODEV (queue or card deconfigured/check-stopped),
  /// EINVAL (going online while the card is soft-offline).
  static Result<void> set_queue_online(ApQueue& q, bool on);

private:
  explicit Zcrypt(ApBus& bus) : m_bus(&bus) {}
  ApBus* m_bus;
  std::vector<core::Driver*> m_drivers; ///< registration order
};

/// The zcrypt type string, e.g. "CEX8C" (type number from hwtype, suffix from the mode).
std::string zcrypt_type_name(const ApCard& card);

} // namespace apemu::ap
