// build/apemu: thin subcommands over the Testbed. The only code allowed to exit.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>

#include "apemu/testbed/show.h"
#include "apemu/testbed/testbed.h"

using namespace apemu;

namespace {

int fail(const Error& e, const std::string& what) {
  fmt::print(stderr, "apemu: {}: {}\n", what, e.context.empty() ? e.describe() : e.context);
  return 1;
}

struct Common {
  std::string topology;
  bool verbose = false;
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--topology,-t", c.topology,
                  "machine topology (TOML); default: topologies/default.toml");
  cmd->add_flag("--verbose,-v", c.verbose, "echo the emulated kernel log to stderr");
}

std::unique_ptr<testbed::Testbed> boot_or_exit(const Common& c) {
  const std::string path = c.topology.empty() ? testbed::default_topology_path() : c.topology;
  auto tb = testbed::Testbed::from_file(path, c.verbose);
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
  Common common;

  std::string export_dir;
  auto* export_cmd = app.add_subcommand("export", "write the emulated /sys tree as plain files");
  export_cmd->add_option("DIR", export_dir, "target directory (created if missing)")->required();
  add_common(export_cmd, common);

  std::string tree_path = "/";
  auto* tree_cmd = app.add_subcommand("tree", "print the emulated /sys tree (D/A/L lines)");
  tree_cmd->add_option("PATH", tree_path, "subtree below /sys, e.g. /bus/ap");
  add_common(tree_cmd, common);

  bool no_matrix = false, no_table = false;
  std::string color = "auto";
  auto* show_cmd = app.add_subcommand("show", "lszcrypt-like table and APQN ownership matrix");
  show_cmd->add_flag("--no-matrix", no_matrix, "only the table");
  show_cmd->add_flag("--no-table", no_table, "only the matrix");
  show_cmd->add_option("--color", color, "auto|always|never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  add_common(show_cmd, common);

  CLI11_PARSE(app, argc, argv);

  if (*export_cmd) {
    auto tb = boot_or_exit(common);
    if (auto r = tb->export_to(export_dir); !r) return fail(r.error(), "export");
    return 0;
  }
  if (*tree_cmd) {
    auto tb = boot_or_exit(common);
    std::fputs(tb->dump(tree_path).c_str(), stdout);
    return 0;
  }
  if (*show_cmd) {
    auto tb = boot_or_exit(common);
    testbed::ShowOptions opt;
    opt.color = color == "always" || (color == "auto" && ::isatty(STDOUT_FILENO));
    opt.matrix = !no_matrix;
    opt.table = !no_table;
    std::fputs(testbed::render_show(*tb, opt).c_str(), stdout);
    return 0;
  }
  return 0;
}
