// build/apemu: thin subcommands over the Testbed. The only code allowed to exit.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>

#include "apemu/testbed/testbed.h"

using namespace apemu;

namespace {

int fail(const Error& e, const std::string& what) {
  fmt::print(stderr, "apemu: {}: {}\n", what, e.describe());
  return 1;
}

std::unique_ptr<testbed::Testbed> boot_or_exit(const testbed::Options& opt) {
  auto tb = testbed::Testbed::create(opt);
  if (!tb) {
    fail(tb.error(), "boot");
    std::exit(1);
  }
  return std::move(*tb);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"apemu: an emulator of IBM Z AP crypto passthrough (AP bus, zcrypt, vfio_ap)"};
  app.require_subcommand(1);
  testbed::Options opt;

  std::string export_dir;
  auto* export_cmd = app.add_subcommand("export", "write the emulated /sys tree as plain files");
  export_cmd->add_option("DIR", export_dir, "target directory (created if missing)")->required();

  std::string tree_path = "/";
  auto* tree_cmd = app.add_subcommand("tree", "print the emulated /sys tree (D/A/L lines)");
  tree_cmd->add_option("PATH", tree_path, "subtree below /sys, e.g. /bus");

  CLI11_PARSE(app, argc, argv);

  if (*export_cmd) {
    auto tb = boot_or_exit(opt);
    if (auto r = tb->export_to(export_dir); !r) return fail(r.error(), "export");
    return 0;
  }
  if (*tree_cmd) {
    auto tb = boot_or_exit(opt);
    std::fputs(tb->dump(tree_path).c_str(), stdout);
    return 0;
  }
  return 0;
}
