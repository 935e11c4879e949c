// The parsers of AP masks: the apmask/aqmask grammar (ap_parse_bitmap_str), its absolute hex
// form (hex2bitmap, shared with vfio_ap's ap_config) and the id lists of topologies
// (ap-bus.md §2.2; vfio-ap.md §3.8). The mask type itself is apemu::IdMask (base/ap_ids.h).
#pragma once

#include <string_view>

#include "apemu/base/ap_ids.h"
#include "apemu/base/result.h"

namespace apemu::ap {

/// hex2bitmap: an optional "0x" or "x" prefix (lower case only), then up to 64 hex digits that
/// set 4 ids each, MSB-first from id 0; then one optional '\n' and the end. Zero digits give
/// an empty mask. Returns: EINVAL for anything else (more digits, other characters).
template <class Id> Result<IdMask<Id>> hex2bitmap(std::string_view text);

/// An apmask/aqmask write. Relative input (first char '+' or '-') edits `current` term by term;
/// anything else is absolute (hex2bitmap). Returns: EINVAL for any syntax or range error;
/// nothing is applied then.
template <class Id> Result<IdMask<Id>> parse_ap_mask(std::string_view text, const IdMask<Id>& current);

/// A topology id list such as "4-7,0x10" (decimal/hex/octal numbers, ranges, commas or blanks).
/// Returns: EINVAL on syntax errors, ERANGE for ids above `max_id`.
template <class Id> Result<IdMask<Id>> parse_id_list(std::string_view text, unsigned max_id = kMaxApIds - 1);

} // namespace apemu::ap
