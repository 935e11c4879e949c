// The VM object: configuration, CRYCB mask updates (kvm_arch_crypto_set_masks / _clear_masks;
// vfio-ap.md §4.6, guest-ap.md §3) and the guest's memory slots.
#include "apemu/kvm/kvm.h"

#include <algorithm>
#include <cstring>

namespace apemu::kvm {

Kvm::Kvm(std::string name, KvmConfig cfg, ap::ApFirmware* machine,
         const profile::KernelProfile& profile)
    : m_name(std::move(name)), m_cfg(cfg), m_machine(machine), m_profile(&profile) {
  if (m_cfg.memory) m_memory.add_slot(0, m_cfg.memory);
}

Kvm::Kvm(std::string name, CrycbFormat format, bool has_crycb)
    : Kvm(std::move(name), KvmConfig{.format = format, .has_crycb = has_crycb, .memory = 0},
          nullptr) {}

Kvm::~Kvm() = default;

void Kvm::crypto_set_masks(const ApidMask& apm, const ApqiMask& aqm, const ApqiMask& adm) {
  if (m_cfg.format == CrycbFormat::Format2) {
    m_apm = apm;
    m_aqm = aqm;
    m_adm = adm;
  } else {
    // APCB0: 64-bit apm, 16-bit aqm and adm; higher ids are silently dropped (§10.13).
    m_apm = apm.up_to(63);
    m_aqm = aqm.up_to(15);
    m_adm = adm.up_to(15);
  }
  ++m_apcb_writes;
}

void Kvm::crypto_clear_masks() {
  m_apm = ApidMask{};
  m_aqm = m_adm = ApqiMask{};
  ++m_apcb_writes;
}

// ---- guest memory -------------------------------------------------------------------------------

void GuestMemory::add_slot(std::uint64_t base, std::size_t size, bool dma_mapped) {
  m_slots.push_back(Slot{base, std::vector<std::uint8_t>(size, 0), dma_mapped});
}

GuestMemory::Slot* GuestMemory::slot(std::uint64_t gpa, std::size_t len) {
  return const_cast<Slot*>(std::as_const(*this).slot(gpa, len));
}

const GuestMemory::Slot* GuestMemory::slot(std::uint64_t gpa, std::size_t len) const {
  for (const Slot& s : m_slots)
    if (gpa >= s.base && gpa - s.base < s.bytes.size() && len <= s.bytes.size() - (gpa - s.base))
      return &s;
  return nullptr;
}

bool GuestMemory::contains(std::uint64_t gpa, std::size_t len) const {
  return slot(gpa, len) != nullptr;
}

std::uint8_t* GuestMemory::host(std::uint64_t gpa, std::size_t len) {
  Slot* s = slot(gpa, len);
  return s ? s->bytes.data() + (gpa - s->base) : nullptr;
}

Result<void> GuestMemory::read(std::uint64_t gpa, std::span<std::uint8_t> out) const {
  const Slot* s = slot(gpa, out.size());
  if (!s) return Error(EFAULT, "guest address outside memory");
  std::memcpy(out.data(), s->bytes.data() + (gpa - s->base), out.size());
  return {};
}

Result<void> GuestMemory::write(std::uint64_t gpa, std::span<const std::uint8_t> in) {
  Slot* s = slot(gpa, in.size());
  if (!s) return Error(EFAULT, "guest address outside memory");
  std::memcpy(s->bytes.data() + (gpa - s->base), in.data(), in.size());
  return {};
}

Result<std::uint8_t*> GuestMemory::pin(std::uint64_t gpa) {
  Slot* s = slot(gpa, 1);
  if (!s) return Error(EFAULT, "guest address outside memory");
  if (!s->dma_mapped) return Error(EINVAL, "guest memory not mapped for DMA");
  ++m_pins[gpa / kPageSize];
  return s->bytes.data() + (gpa - s->base);
}

void GuestMemory::unpin(std::uint64_t gpa) {
  auto it = m_pins.find(gpa / kPageSize);
  if (it == m_pins.end()) return;
  if (--it->second == 0) m_pins.erase(it);
}

unsigned GuestMemory::pins(std::uint64_t gpa) const {
  auto it = m_pins.find(gpa / kPageSize);
  return it == m_pins.end() ? 0 : it->second;
}

void GuestMemory::set_dma_mapped(std::uint64_t gpa, bool mapped) {
  if (Slot* s = slot(gpa, 1)) s->dma_mapped = mapped;
}

void GuestMemory::set_shared(std::uint64_t gpa, bool shared) { m_shared[gpa / kPageSize] = shared; }

bool GuestMemory::shared(std::uint64_t gpa) const {
  auto it = m_shared.find(gpa / kPageSize);
  return it != m_shared.end() && it->second;
}

} // namespace apemu::kvm
