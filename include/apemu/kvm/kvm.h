// The part of KVM that AP passthrough touches (arch/s390/kvm: kvm-s390.c crypto setup,
// kvm_arch_crypto_set_masks / kvm_arch_crypto_clear_masks, priv.c handle_pqap, interrupt.c
// GISA and kvm_s390_gisc_register; guest-ap.md §1–§3, §5; vfio-ap.md §4.6, §5.2, §6.1).
// vfio_ap sits above this library and calls it, as in the kernel.
//
// A Kvm is one guest's `struct kvm`: its crypto control block (CRYCB) with the AP control block
// (APCB) the guest's AP instructions are checked against, the PQAP hook that routes an
// intercepted PQAP(AQIC) to the vfio_ap mdev that owns the guest, the guest's memory slots (what
// QEMU registered; the VFIO container maps them for DMA) and its GISA (guest interruption state
// area) through which AP adapter interruptions reach the guest.
//
// A Vcpu executes the guest's AP instructions with the architecture's register conventions
// (guest-ap.md §2, §5): under SIE with AP interpretation (ECA_APIE) the machine interprets
// PQAP/NQAP/DQAP against the guest's APCB on the real APQN (ap::ApFirmware); only PQAP(AQIC)
// is intercepted and handled by handle_pqap in KVM's order (vfio-ap.md §6.1). Without APIE every
// AP instruction goes to user space, where QEMU injects an operation exception.
//
// Divergences: one vCPU per VM, always running (no GIB alert list: a pending interruption is
// delivered as soon as the guest enables its ISC); no vSIE; an APCB write is a copy and a
// counter. The 20 ms waits of the PQAP hook do not advance machine time.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "apemu/ap/ap_arch.h"
#include "apemu/base/ap_ids.h"
#include "apemu/base/result.h"
#include "apemu/profile/kernel_profile.h"

namespace apemu {
class Runtime;
namespace ap {
class ApFirmware;
}
} // namespace apemu

namespace apemu::kvm {

/// CRYCB formats (CRYCB_FORMAT0/1/2). Format 2 (APXA + MSAX3) holds APCB1 with 256-bit masks;
/// formats 0 and 1 hold APCB0: apm 64 bits (ids 0-63), aqm and adm 16 bits (ids 0-15).
enum class CrycbFormat { Format0, Format1, Format2 };

/// The VM's CPU model and SIE controls as far as AP is concerned (guest-ap.md §1.1, §3.4, §7.2).
struct KvmConfig {
  CrycbFormat format = CrycbFormat::Format2;
  /// crycbd != 0: a guest with AP support (false: open_device succeeds without attaching).
  bool has_crycb = true;
  bool apie = true;  ///< ECA_APIE: AP instructions interpreted (QEMU's `ap` feature)
  bool apqci = true; ///< facility 12: PQAP(QCI)
  bool apft = true;  ///< facility 15: TAPQ's T bit
  bool aqic = true;  ///< facility 65: PQAP(AQIC)
  bool aiv = true;   ///< ECA_AIV on the vCPU: adapter-interruption virtualisation
  bool gisa = true;  ///< the VM has a GISA (kvm_s390_gisc_register fails with ENODEV without)
  bool protected_vm = false; ///< a Secure Execution (PV) guest
  std::size_t memory = 2u << 20; ///< one memory slot at guest address 0
};

/// Guest memory: QEMU's RAM as KVM memory slots. The VFIO container (the emulated IOMMU of a
/// vfio_ap device) maps a slot for DMA; only mapped memory can be pinned (vfio_pin_pages).
/// Pages of a protected guest are private unless the guest shared them.
class GuestMemory {
public:
  static constexpr std::uint64_t kPageSize = 4096;
  /// Adds a slot of `size` zero bytes at `base` (page aligned).
  void add_slot(std::uint64_t base, std::size_t size, bool dma_mapped = true);
  /// True when [gpa, gpa + len) lies in one slot.
  bool contains(std::uint64_t gpa, std::size_t len = 1) const;
  /// The host address of guest memory, or null when [gpa, gpa + len) is not in one slot.
  std::uint8_t* host(std::uint64_t gpa, std::size_t len = 1);
  /// Returns: EFAULT outside the guest's memory.
  Result<void> read(std::uint64_t gpa, std::span<std::uint8_t> out) const;
  Result<void> write(std::uint64_t gpa, std::span<const std::uint8_t> in);
  /// vfio_pin_pages of the page holding `gpa`: the host address of `gpa`. Returns: EFAULT
  /// outside memory, EINVAL when the slot is not DMA-mapped.
  Result<std::uint8_t*> pin(std::uint64_t gpa);
  void unpin(std::uint64_t gpa);
  unsigned pins(std::uint64_t gpa) const;
  /// VFIO_IOMMU_MAP_DMA / UNMAP_DMA of a slot.
  void set_dma_mapped(std::uint64_t gpa, bool mapped);
  /// A protected guest's page shared with the host (UV "set shared access").
  void set_shared(std::uint64_t gpa, bool shared);
  bool shared(std::uint64_t gpa) const;

private:
  struct Slot {
    std::uint64_t base;
    std::vector<std::uint8_t> bytes;
    bool dma_mapped;
  };
  Slot* slot(std::uint64_t gpa, std::size_t len);
  const Slot* slot(std::uint64_t gpa, std::size_t len) const;
  std::vector<Slot> m_slots;
  std::map<std::uint64_t, unsigned> m_pins; ///< by page
  std::map<std::uint64_t, bool> m_shared;   ///< by page
};

class Kvm;
class Vcpu;

/// The GISA and the ISC registrations of kvm_s390_gisc_register (guest-ap.md §3.6). The machine
/// makes an adapter interruption pending for a guest ISC in the interruption-pending mask (IPM);
/// the VM delivers it to the vCPU when the guest enables that ISC.
class Gisa {
public:
  /// GAL_ISC: the host ISC of GISA alerts (what gisc_register returns).
  static constexpr unsigned kNisc = 5;
  /// Returns: the host's alert ISC; ENODEV without a GISA, ERANGE for gisc > 7.
  Result<unsigned> gisc_register(unsigned gisc);
  /// Returns: EINVAL when `gisc` is not registered (or no GISA).
  Result<void> gisc_unregister(unsigned gisc);
  unsigned refs(unsigned gisc) const { return gisc < 8 ? m_refs[gisc] : 0; }
  /// The interruption-alert and interruption-pending masks (bit 0x80 >> isc).
  std::uint8_t iam() const { return m_iam; }
  std::uint8_t ipm() const { return m_ipm; }
  /// The machine sets the pending bit of `gisc` (an AP reply for a queue routed here).
  void set_pending(unsigned gisc);

private:
  friend class Kvm;
  explicit Gisa(Kvm& kvm) : m_kvm(&kvm) {}
  Kvm* m_kvm;
  std::array<unsigned, 8> m_refs{};
  std::uint8_t m_iam = 0, m_ipm = 0;
};

/// kvm->arch.crypto.pqap_hook: the function vfio_ap installs (vfio_ap_mdev's pqap_hook) and its
/// owner. The function returns 0 (GR1 holds the answer) or EOPNOTSUPP (to user space).
struct PqapHook {
  std::string owner;
  std::function<int(Vcpu&)> fn;
};

/// The outcome of one instruction: a program interruption, or completion with the condition
/// code in the PSW.
struct ExecResult {
  std::optional<int> program_interruption; ///< ap::pgm code
  bool ok() const { return !program_interruption; }
};

/// One vCPU: the registers the AP instructions use, the PSW bits that matter, CR6.
class Vcpu {
public:
  std::array<std::uint64_t, 16> gr{};
  bool problem_state = false; ///< PSW bit 15
  bool io_enabled = true;     ///< PSW I/O mask
  int cc = 0;                 ///< PSW condition code
  Kvm& kvm() const { return *m_kvm; }
  /// Executes an AP instruction (R1/R2 are the register numbers of NQAP/DQAP; 0 for PQAP).
  ExecResult execute(ap::ApOpcode op, unsigned r1 = 0, unsigned r2 = 0);
  /// CR6's ISC mask (bit 0x80 >> isc). Enabling an ISC delivers what is pending for it.
  void set_cr6(std::uint8_t isc_mask);
  std::uint8_t cr6() const { return m_cr6; }
  void set_io_enabled(bool on);

private:
  friend class Kvm;
  explicit Vcpu(Kvm& kvm) : m_kvm(&kvm) {}
  ExecResult interpret_pqap();
  ExecResult interpret_nqap(unsigned r1, unsigned r2);
  ExecResult interpret_dqap(unsigned r1, unsigned r2);
  /// The APQN checks of SIE interpretation: a specification exception for an APID/APQI beyond
  /// the guest's addressing, RC 01 (cc 3) when the APQN is not in the guest's APCB.
  std::optional<ExecResult> check_apqn(Apqn q);
  void set_status(const ap::QueueStatus& s);
  Kvm* m_kvm;
  std::uint8_t m_cr6 = 0;
};

/// struct kvm as far as AP passthrough sees it.
class Kvm {
public:
  /// `machine` is the AP firmware SIE interpretation runs on (null: no AP instructions can
  /// complete; a guest without a machine is only a holder of CRYCB masks).
  Kvm(std::string name, KvmConfig cfg, ap::ApFirmware* machine,
      const profile::KernelProfile& profile = profile::default_profile());
  /// A mask holder without a machine.
  explicit Kvm(std::string name, CrycbFormat format = CrycbFormat::Format2, bool has_crycb = true);
  ~Kvm();
  Kvm(const Kvm&) = delete;
  Kvm& operator=(const Kvm&) = delete;

  const std::string& name() const { return m_name; }
  const KvmConfig& config() const { return m_cfg; }
  CrycbFormat format() const { return m_cfg.format; }
  bool has_crycb() const { return m_cfg.has_crycb; }
  ap::ApFirmware* machine() const { return m_machine; }
  const profile::KernelProfile& profile() const { return *m_profile; }
  GuestMemory& memory() { return m_memory; }
  Gisa& gisa() { return m_gisa; }
  Vcpu& vcpu() { return m_vcpu; }

  /// The masks the guest sees (APCB1, or APCB0 widened back to 256-bit masks).
  const ApidMask& apm() const { return m_apm; }
  const ApqiMask& aqm() const { return m_aqm; }
  const ApqiMask& adm() const { return m_adm; }
  /// Number of APCB writes (set or clear), i.e. vCPU-blocking CRYCB updates.
  std::uint64_t apcb_writes() const { return m_apcb_writes; }

  /// kvm_arch_crypto_set_masks: copies the masks into the CRYCB; APCB0 formats silently drop
  /// adapters above 63 and domains above 15. Locking: machine lock (kvm->lock).
  void crypto_set_masks(const ApidMask& apm, const ApqiMask& aqm, const ApqiMask& adm);
  /// kvm_arch_crypto_clear_masks: zeroes APCB0 and APCB1.
  void crypto_clear_masks();

  /// kvm->arch.crypto.pqap_hook: the owner (an mdev's name) whose hook is installed, "" = none.
  const std::string& pqap_hook() const { return m_pqap_hook.owner; }
  void set_pqap_hook(PqapHook hook) { m_pqap_hook = std::move(hook); }
  void clear_pqap_hook() { m_pqap_hook = {}; }

  /// handle_pqap: the intercepted PQAP(AQIC) in KVM's order (vfio-ap.md §6.1).
  ExecResult handle_pqap(Vcpu& v);

  /// Where the guest OS takes its I/O adapter interruptions: the interruption code
  /// (ap::adapter_interruption_code). Runs as posted work on `rt` (the guest runs on its own),
  /// never inside the machine path that raised the interruption.
  void set_io_interruption_handler(Runtime& rt, std::function<void(std::uint32_t)> fn);
  /// Adapter interruptions delivered to the guest so far.
  std::uint64_t interruptions() const { return m_interruptions; }

private:
  friend class Gisa;
  friend class Vcpu;
  /// Delivers every pending ISC the vCPU has enabled.
  void deliver_pending();

  std::string m_name;
  KvmConfig m_cfg;
  ap::ApFirmware* m_machine = nullptr;
  const profile::KernelProfile* m_profile;
  GuestMemory m_memory;
  Gisa m_gisa{*this};
  Vcpu m_vcpu{*this};
  ApidMask m_apm;
  ApqiMask m_aqm, m_adm;
  std::uint64_t m_apcb_writes = 0;
  PqapHook m_pqap_hook;
  Runtime* m_rt = nullptr;
  std::function<void(std::uint32_t)> m_io_handler;
  std::uint64_t m_interruptions = 0;
  std::shared_ptr<int> m_alive = std::make_shared<int>(0);
};

} // namespace apemu::kvm
