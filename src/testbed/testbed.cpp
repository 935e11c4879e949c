#include "apemu/testbed/testbed.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "apemu/kernfs/export.h"

#ifndef APEMU_SOURCE_DIR
#define APEMU_SOURCE_DIR "."
#endif

namespace apemu::testbed {

namespace {

/// Whether this process's executable lies below the CMake build tree (build/apemu, the tests,
/// the benchmarks) rather than in an installed location.
bool running_from_build_tree() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return false;
  const fs::path build = fs::weakly_canonical(APEMU_BINARY_DIR, ec);
  if (ec) return false;
  return std::mismatch(build.begin(), build.end(), exe.begin(), exe.end()).first == build.end();
}

} // namespace

std::string default_topology_path() {
  if (const char* d = std::getenv("APEMU_TOPOLOGY_DIR")) return std::string(d) + "/default.toml";
  if (running_from_build_tree()) return std::string(APEMU_SOURCE_DIR) + "/topologies/default.toml";
  return std::string(APEMU_INSTALL_TOPOLOGY_DIR) + "/default.toml";
}

Result<std::unique_ptr<Testbed>> Testbed::create(Options opt) {
  const profile::KernelProfile* prof = &profile::default_profile();
  if (!opt.kernel_profile.empty()) {
    APEMU_TRY(prof, profile::find_profile(opt.kernel_profile));
  }
  std::unique_ptr<Testbed> tb(new Testbed());
  tb->m_rt = std::make_unique<Runtime>(opt.clock);
  tb->m_core = std::make_unique<core::Core>(*tb->m_rt, *prof);
  tb->m_core->log().set_echo(opt.echo_log);
  if (const char* d = std::getenv("APEMU_DEBUG"); d && *d == '1') tb->m_core->log().set_debug(true);
  if (opt.topology) {
    auto lk = tb->lock();
    tb->m_hw = std::make_unique<ap::ApHardware>(std::move(opt.topology->hw));
    APEMU_TRY(tb->m_ap, ap::ApBus::create(*tb->m_core, *tb->m_hw, opt.topology->bus));
    APEMU_TRY(tb->m_zcrypt, ap::Zcrypt::create(*tb->m_ap));
    for (Apid id : opt.topology->offline_cards)
      if (auto* card = tb->m_ap->card(id)) (void)ap::Zcrypt::set_card_online(*card, false);
    if (opt.vfio_ap) {
      APEMU_TRY(tb->m_mdev, mdev::MdevBus::create(*tb->m_core));
      APEMU_TRY(tb->m_vfio_ap, vfio_ap::VfioAp::create(*tb->m_ap, *tb->m_mdev));
      tb->m_qemu = std::make_unique<Qemu>(*tb->m_vfio_ap);
    }
  }
  return tb;
}

Result<std::unique_ptr<Testbed>> Testbed::from_file(const std::string& path, Options opt) {
  APEMU_TRY(auto topo, topology::load_file(path));
  opt.topology = std::move(topo);
  return create(std::move(opt));
}

Testbed::~Testbed() {
  if (!m_rt) return;
  m_rt->stop(); // no executor thread may run into what is torn down below
  // Teardown in reverse: vfio_ap and the mdev core, the drivers, then the bus, then the core.
  auto lk = lock();
  m_qemu.reset(); // the guests' QEMU processes exit first: their devices close
  m_vfio_ap.reset();
  m_mdev.reset();
  m_zcrypt.reset();
  m_ap.reset();
  m_core.reset();
}

std::string Testbed::dump(const std::string& path) const {
  return kernfs::dump_tree(m_core->tree(), path);
}

Result<void> Testbed::enable_state(const std::string& dir) {
  core().held();
  APEMU_TRY(StateDir d, StateDir::open(dir));
  APEMU_TRY(auto saved, d.load());
  if (saved) APEMU_TRY_VOID(state_restore(*this, *saved, d.path()));
  m_state = std::make_unique<StateDir>(std::move(d));
  return persist();
}

Result<void> Testbed::persist() {
  if (!m_state) return {};
  core().held();
  return m_state->save(state_snapshot(*this));
}

Result<void> Testbed::export_to(const std::filesystem::path& dir) const {
  return kernfs::export_tree(m_core->tree(), dir);
}

} // namespace apemu::testbed
