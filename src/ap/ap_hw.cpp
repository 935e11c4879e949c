// Simulated AP firmware: QCI and TAPQ answers (ap-bus.md §6.3–6.5).
#include "apemu/ap/ap_hw.h"

namespace apemu::ap {

std::string_view mode_name(ApMode m) {
  switch (m) {
  case ApMode::Accel: return "accel";
  case ApMode::Cca: return "cca";
  case ApMode::Ep11: return "ep11";
  }
  return "";
}

std::uint32_t Adapter::functions() const {
  // Constructed from the bit definitions (ap-bus.md §6.3 examples): CCA S,D,N,F; accelerator
  // S,M,C,A,N; EP11 S,X,N. N only with APXA.
  std::uint32_t f = fac::kApsc;
  switch (mode) {
  case ApMode::Cca: f |= fac::kCca | fac::kFull; break;
  case ApMode::Accel: f |= fac::kMex4k | fac::kCrt4k | fac::kAccel; break;
  case ApMode::Ep11: f |= fac::kEp11; break;
  }
  if (apxa) f |= fac::kApxa;
  return f;
}

Result<void> ApHardware::add_adapter(Adapter a) {
  if (a.id > m_qci.na) return Error(ERANGE, "adapter id above the maximum");
  if (a.raw_type < kApTypeCex4 || a.raw_type > kApTypeCex8)
    return Error(EINVAL, "unsupported adapter type");
  a.apxa = m_qci.apxa;
  m_qci.apm.set(a.id);
  m_adapters[a.id] = std::move(a);
  return {};
}

Result<void> ApHardware::remove_adapter(unsigned id) {
  if (!m_adapters.erase(id)) return Error(ENODEV);
  m_qci.apm.clear(id);
  return {};
}

Adapter* ApHardware::adapter(unsigned id) {
  auto it = m_adapters.find(id);
  return it == m_adapters.end() ? nullptr : &it->second;
}

const Adapter* ApHardware::adapter(unsigned id) const {
  auto it = m_adapters.find(id);
  return it == m_adapters.end() ? nullptr : &it->second;
}

TapqResult ApHardware::tapq(unsigned apid, unsigned apqi) const {
  TapqResult r;
  const Adapter* a = adapter(apid);
  const bool in_config = !m_qci.available ? (apid <= 63 && apqi <= 15)
                                          : (m_qci.apm.test(apid) && m_qci.aqm.test(apqi));
  if (!a || !in_config || !a->domains.test(apqi)) return r; // Q_NOT_AVAIL
  r.functions = a->functions();
  r.at = a->raw_type;
  r.qd = a->depth > 0 ? a->depth - 1 : 0;
  r.ml = a->ml;
  if (a->chkstop) r.rc = rc::kCheckstopped;
  else if (!a->configured) r.rc = rc::kDeconfigured;
  else r.rc = rc::kNormal;
  return r;
}

} // namespace apemu::ap
