#include "apemu/testbed/testbed.h"

#include "apemu/kernfs/export.h"

namespace apemu::testbed {

Result<std::unique_ptr<Testbed>> Testbed::create(const Options& opt) {
  std::unique_ptr<Testbed> tb(new Testbed());
  tb->m_core = std::make_unique<core::Core>();
  tb->m_core->log().set_echo(opt.echo_log);
  return tb;
}

Testbed::~Testbed() = default;

std::string Testbed::dump(const std::string& path) const {
  return kernfs::dump_tree(m_core->tree(), path);
}

Result<void> Testbed::export_to(const std::filesystem::path& dir) const {
  return kernfs::export_tree(m_core->tree(), dir);
}

} // namespace apemu::testbed
