// build/apemu: thin subcommands over the Testbed. The only code allowed to exit.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>
#include <cstdio>

#include "apemu/profile/kernel_profile.h"
#include "apemu/testbed/control.h"
#include "apemu/testbed/run.h"
#include "apemu/testbed/show.h"
#include "apemu/testbed/testbed.h"

using namespace apemu;

namespace {

/// "apemu: WHAT: CONTEXT: ENAME (strerror)": every failure names its errno.
int fail(const Error& e, const std::string& what) {
  const Errno code(e.code);
  if (e.context.empty())
    fmt::print(stderr, "apemu: {}: {} ({})\n", what, code.name(), code.message());
  else
    fmt::print(stderr, "apemu: {}: {}: {} ({})\n", what, e.context, code.name(), code.message());
  return 1;
}

struct Common {
  std::string topology;
  bool verbose = false;
  std::string kernel; // empty: the newest profile
  std::string clock = "real";
};

/// --clock for the live commands (run, serve).
void add_state(CLI::App* cmd, std::string& dir) {
  cmd->add_option("--state", dir,
                  "keep the machine's state (runtime changes, masks, mdevs ...) in DIR across "
                  "restarts; every change is durable before its write or ctl command returns");
}

void add_clock(CLI::App* cmd, Common& c) {
  cmd->add_option("--clock", c.clock,
                  "machine time: real (default) or virtual (moves only with `apemu ctl clock "
                  "advance`, for deterministic scripts)")
      ->check(CLI::IsMember({"real", "virtual"}));
}

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--topology,-t", c.topology,
                  "machine topology (TOML); default: default.toml of the presets");
  cmd->add_flag("--verbose,-v", c.verbose, "echo the emulated kernel log to stderr");
  std::vector<std::string> names;
  for (const auto& p : profile::all_profiles()) names.emplace_back(p.name);
  cmd->add_option("--kernel", c.kernel,
                  "the kernel the machine behaves like (see `apemu kernels`); default: " +
                      std::string(profile::default_profile().name))
      ->check(CLI::IsMember(names));
}

std::unique_ptr<testbed::Testbed> boot_or_exit(const Common& c) {
  const std::string path = c.topology.empty() ? testbed::default_topology_path() : c.topology;
  testbed::Options o;
  o.echo_log = c.verbose;
  o.kernel_profile = c.kernel;
  auto tb = testbed::Testbed::from_file(path, std::move(o));
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

  std::vector<std::string> run_argv;
  std::vector<std::string> run_private;
  auto* run_cmd = app.add_subcommand(
      "run", "run CMD with the emulated tree as /sys in private mount and network namespaces");
  run_cmd->footer(
      "Private writable places (nothing CMD writes there reaches the host): empty /run,\n"
      "/etc/mdevctl.d, /etc/udev/rules.d, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt;\n"
      "/etc/libvirt shows the host's files, changes stay private. A place missing on the host\n"
      "appears inside only (its parent is shadowed by a tmpfs holding the host's entries).");
  run_cmd->add_option("CMD", run_argv, "command and arguments (after --)");
  run_cmd->add_option("--private", run_private,
                      "repeatable: CMD sees an empty private tmpfs (PATH's mode and owner) at "
                      "PATH, an existing directory; not /, nor at or below /sys or /run")
      ->type_name("PATH")
      ->allow_extra_args(false);
  add_common(run_cmd, common);
  add_clock(run_cmd, common);
  std::string run_state;
  add_state(run_cmd, run_state);

  testbed::ServeOptions serve_opt;
  auto* serve_cmd = app.add_subcommand("serve", "serve the emulated tree on a mountpoint");
  serve_cmd->add_option("--mountpoint,-m", serve_opt.mountpoint, "an existing directory")->required();
  serve_cmd->add_option("--control", serve_opt.control_socket,
                        "control socket (default $APEMU_CTL or /run/apemu/ctl.sock)");
  serve_cmd->add_option("--udev-root", serve_opt.udev_root,
                        "also keep a udev database in this directory");
  add_common(serve_cmd, common);
  add_clock(serve_cmd, common);
  add_state(serve_cmd, serve_opt.state_dir);

  std::vector<std::string> ctl_argv;
  std::string ctl_verb;
  std::string ctl_socket;
  bool ctl_json = false;
  double ctl_timeout = 30;
  auto* ctl_cmd = app.add_subcommand("ctl", "send a command to a running instance (see README)");
  ctl_cmd->add_option("--socket,-s", ctl_socket, "control socket (default $APEMU_CTL)");
  ctl_cmd->add_flag("--json", ctl_json, "print the JSON reply line (docs/control.md)");
  ctl_cmd->add_option("--timeout", ctl_timeout, "seconds to wait for the reply (default 30)")
      ->check(CLI::PositiveNumber);
  ctl_cmd->add_option("VERB", ctl_verb,
                      "scan | show | tree [P] | dmesg | card ... | domain ... | guest ...")
      ->required();
  // Everything after the verb is the verb's, options included (`guest start --mdev UUID`).
  ctl_cmd->prefix_command(true);

  auto* kernels_cmd = app.add_subcommand("kernels", "list the kernel profiles (--kernel NAME)");

  CLI11_PARSE(app, argc, argv);

  if (*kernels_cmd) {
    for (const auto& p : profile::all_profiles())
      fmt::print("{:<5} {}{}\n      stands for: {}\n", p.name, p.summary,
                 &p == &profile::default_profile() ? " (default)" : "", p.stands_for);
    return 0;
  }

  if (*run_cmd) {
    testbed::RunOptions ro;
    ro.topology = common.topology;
    ro.argv = run_argv;
    ro.verbose = common.verbose;
    ro.kernel_profile = common.kernel;
    ro.virtual_clock = common.clock == "virtual";
    ro.state_dir = run_state;
    ro.private_dirs = run_private;
    auto r = testbed::run_isolated(ro);
    if (!r) return fail(r.error(), "run");
    return *r;
  }
  if (*serve_cmd) {
    serve_opt.topology = common.topology;
    serve_opt.verbose = common.verbose;
    serve_opt.kernel_profile = common.kernel;
    serve_opt.virtual_clock = common.clock == "virtual";
    auto r = testbed::serve(serve_opt);
    if (!r) return fail(r.error(), "serve");
    return *r;
  }
  if (*ctl_cmd) {
    ctl_argv.push_back(ctl_verb);
    for (const auto& extra : ctl_cmd->remaining()) ctl_argv.push_back(extra);
    const std::string path = ctl_socket.empty() ? testbed::default_control_socket() : ctl_socket;
    const auto timeout = std::chrono::milliseconds(static_cast<long long>(ctl_timeout * 1000));
    auto r = testbed::ctl_call(path, testbed::ControlRequest{ctl_argv, ctl_json}, timeout);
    if (!r) return fail(r.error(), "ctl");
    if (ctl_json) {
      std::fputs((r->raw + "\n").c_str(), stdout);
      return r->ok ? 0 : 1;
    }
    if (!r->ok) return fail(Error(r->code, r->message), "ctl");
    std::fputs(r->output.c_str(), stdout);
    return 0;
  }

  if (*export_cmd) {
    auto tb = boot_or_exit(common);
    auto g = tb->lock(); // each one-shot command is an entry point
    if (auto r = tb->export_to(export_dir); !r) return fail(r.error(), "export");
    return 0;
  }
  if (*tree_cmd) {
    auto tb = boot_or_exit(common);
    auto g = tb->lock();
    std::fputs(tb->dump(tree_path).c_str(), stdout);
    return 0;
  }
  if (*show_cmd) {
    auto tb = boot_or_exit(common);
    auto g = tb->lock();
    testbed::ShowOptions opt;
    opt.color = color == "always" || (color == "auto" && ::isatty(STDOUT_FILENO));
    opt.matrix = !no_matrix;
    opt.table = !no_table;
    std::fputs(testbed::render_show(*tb, opt).c_str(), stdout);
    return 0;
  }
  return 0;
}
