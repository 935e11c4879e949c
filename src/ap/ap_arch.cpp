// Names and encodings of the AP instruction architecture (see ap_arch.h).
#include "apemu/ap/ap_arch.h"

#include <cstdio>

namespace apemu::ap {

std::string_view pgm::name(int code) {
  switch (code) {
  case kOperation: return "operation";
  case kPrivileged: return "privileged-operation";
  case kAddressing: return "addressing";
  case kSpecification: return "specification";
  default: return "unknown";
  }
}

std::string_view rc::name(int code, ApOpcode op) {
  switch (code) {
  case kNormal: return "NORMAL";
  case kQNotAvail: return "Q_NOT_AVAIL";
  case kResetInProgress: return "RESET_IN_PROGRESS";
  case kDeconfigured: return "DECONFIGURED";
  case kCheckstopped: return "CHECKSTOPPED";
  case kBusy: return "BUSY";
  case kInvalidAddress: return "INVALID_ADDRESS";
  case kOtherwiseChanged: return "OTHERWISE_CHANGED";
  case kInvalidGisa: return "INVALID_GISA";
  case kQBoundToAnother: return "Q_BOUND_TO_ANOTHER";
  case kStateChangeInProgress: return "STATE_CHANGE_IN_PROGRESS";
  case kQNotBound: return "Q_NOT_BOUND";
  case 0x10:
    // One value, two meanings (guest-ap.md §2.3).
    return op == ApOpcode::Nqap   ? "Q_FULL"
           : op == ApOpcode::Dqap ? "NO_PENDING_REPLY"
                                  : "Q_FULL/NO_PENDING_REPLY";
  case kIndexTooBig: return "INDEX_TOO_BIG";
  case kNoFirstPart: return "NO_FIRST_PART";
  case kMessageTooBig: return "MESSAGE_TOO_BIG";
  case kReqFacNotInst: return "REQ_FAC_NOT_INST";
  case 0x30: return "Q_BIND_ERROR";
  case 0x31: return "Q_NOT_AVAIL_FOR_ASSOC";
  case 0x32: return "Q_NOT_EMPTY";
  case 0x33: return "BIND_LIMIT_EXCEEDED";
  case 0x34: return "INVALID_ASSOC_SECRET";
  case kAssocSecretNotUnique: return "ASSOC_SECRET_NOT_UNIQUE";
  case kAssocFailed: return "ASSOC_FAILED";
  case kInvalidDomain: return "INVALID_DOMAIN";
  default: return "UNKNOWN";
  }
}

std::string QueueStatus::describe(ApOpcode op) const {
  char b[96];
  std::snprintf(b, sizeof b, "E=%d R=%d F=%d A=%d I=%d RC=0x%02X (%s)", queue_empty ? 1 : 0,
                replies_waiting ? 1 : 0, queue_full ? 1 : 0, async ? 1 : 0, irq_enabled ? 1 : 0,
                response_code, std::string(rc::name(response_code, op)).c_str());
  return b;
}

template <class Id> std::array<std::uint8_t, 32> mask_bytes(const IdMask<Id>& m) {
  std::array<std::uint8_t, 32> out{};
  m.for_each([&](Id i) { out[id(i) / 8] |= static_cast<std::uint8_t>(0x80u >> (id(i) % 8)); });
  return out;
}

template <class Id> IdMask<Id> mask_from_bytes(const std::uint8_t* bytes) {
  IdMask<Id> m;
  for (unsigned n = 0; n < kMaxApIds; ++n)
    if (bytes[n / 8] & (0x80u >> (n % 8))) m.set(Id{static_cast<std::uint8_t>(n)});
  return m;
}

template std::array<std::uint8_t, 32> mask_bytes(const ApidMask&);
template std::array<std::uint8_t, 32> mask_bytes(const ApqiMask&);
template ApidMask mask_from_bytes<Apid>(const std::uint8_t*);
template ApqiMask mask_from_bytes<Apqi>(const std::uint8_t*);

QciBlock encode_qci(const QciFields& f) {
  QciBlock b{};
  b[0] = static_cast<std::uint8_t>((f.apsc ? 0x80 : 0) | (f.apxa ? 0x40 : 0) |
                                   (f.qact ? 0x20 : 0) | (f.rc8a ? 0x10 : 0));
  b[1] = f.apsb ? 0x80 : 0;
  b[4] = static_cast<std::uint8_t>(f.na);
  b[5] = static_cast<std::uint8_t>(f.nd);
  const auto apm = mask_bytes(f.apm), aqm = mask_bytes(f.aqm), adm = mask_bytes(f.adm);
  std::copy(apm.begin(), apm.end(), b.begin() + 0x10);
  std::copy(aqm.begin(), aqm.end(), b.begin() + 0x30);
  std::copy(adm.begin(), adm.end(), b.begin() + 0x50);
  return b;
}

QciFields decode_qci(const QciBlock& b) {
  QciFields f;
  f.apsc = b[0] & 0x80;
  f.apxa = b[0] & 0x40;
  f.qact = b[0] & 0x20;
  f.rc8a = b[0] & 0x10;
  f.apsb = b[1] & 0x80;
  f.na = b[4];
  f.nd = b[5];
  f.apm = mask_from_bytes<Apid>(b.data() + 0x10);
  f.aqm = mask_from_bytes<Apqi>(b.data() + 0x30);
  f.adm = mask_from_bytes<Apqi>(b.data() + 0x50);
  return f;
}

} // namespace apemu::ap
