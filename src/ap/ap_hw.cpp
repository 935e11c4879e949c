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

std::string_view type_name(int raw_type) {
  static constexpr std::string_view kNames[] = {"CEX2A", "CEX2C", "CEX3A", "CEX3C", "CEX4",
                                                "CEX5",  "CEX6",  "CEX7",  "CEX8"};
  if (raw_type < kApTypeCex2a || raw_type > kApTypeCex8) return "";
  return kNames[raw_type - kApTypeCex2a];
}

Result<int> parse_type_name(std::string_view name) {
  for (int t = kApTypeCex2a; t <= kApTypeCex8; ++t)
    if (type_name(t) == name) return t;
  return Error(EINVAL, "unknown adapter type '" + std::string(name) + "' (CEX2A, CEX2C, CEX3A, "
                       "CEX3C, CEX4 .. CEX8)");
}

Result<ApMode> parse_mode_name(std::string_view name) {
  for (ApMode m : {ApMode::Accel, ApMode::Cca, ApMode::Ep11})
    if (mode_name(m) == name) return m;
  return Error(EINVAL, "unknown mode '" + std::string(name) + "' (accel, cca, ep11)");
}

bool type_allows_mode(int raw_type, ApMode mode) {
  if (raw_type >= kApTypeCex4) return true;
  const bool accel = raw_type == kApTypeCex2a || raw_type == kApTypeCex3a;
  return accel ? mode == ApMode::Accel : mode == ApMode::Cca;
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
  if (id(a.id) > m_qci.na) return Error(ERANGE, "adapter id above the maximum");
  if (type_name(a.raw_type).empty()) return Error(EINVAL, "unsupported adapter type");
  if (!type_allows_mode(a.raw_type, a.mode))
    return Error(EINVAL, std::string(type_name(a.raw_type)) + " cannot run in " +
                             std::string(mode_name(a.mode)) + " mode");
  a.apxa = m_qci.apxa;
  m_qci.apm.set(a.id);
  const Apid id = a.id;
  Adapter& slot = m_adapters[id] = std::move(a);
  m_index.at[apemu::id(id)] = &slot;
  return {};
}

Result<void> ApHardware::remove_adapter(Apid a) {
  if (!m_adapters.erase(a)) return Error(ENODEV);
  m_index.at[id(a)] = nullptr;
  m_qci.apm.clear(a);
  return {};
}

Adapter* ApHardware::adapter(Apid a) {
  if (Adapter* p = m_index.at[id(a)]) return p;
  auto it = m_adapters.find(a);
  return it == m_adapters.end() ? nullptr : &it->second;
}

const Adapter* ApHardware::adapter(Apid a) const {
  if (const Adapter* p = m_index.at[id(a)]) return p;
  auto it = m_adapters.find(a);
  return it == m_adapters.end() ? nullptr : &it->second;
}

TapqResult ApHardware::tapq(Apqn q) const {
  TapqResult r;
  const Adapter* a = adapter(q.apid);
  const bool in_config = m_qci.configured(q.apid) && m_qci.usage(q.apqi);
  if (!a || !in_config || !a->domains.test(q.apqi)) return r; // Q_NOT_AVAIL
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
