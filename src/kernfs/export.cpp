#include "apemu/kernfs/export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace apemu::kernfs {

static std::string escape_value(std::string_view v) {
  if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else out += c;
  }
  return out;
}

static void dump_node(const Node& n, std::string& out, const DumpOptions& opt) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(n.mode()));
  switch (n.type()) {
  case NodeType::Dir: {
    out += "D ";
    out += mode;
    out += ' ';
    out += n.path();
    out += '\n';
    for (auto& c : static_cast<const Dir&>(n).children()) dump_node(*c, out, opt);
    break;
  }
  case NodeType::Attr: {
    const auto& a = static_cast<const Attr&>(n);
    out += "A ";
    out += mode;
    out += ' ';
    out += n.path();
    if (opt.values && a.readable()) {
      auto v = read_attr(a);
      out += v ? " = " + escape_value(*v) : " !" + v.error().errno_value().name();
    }
    out += '\n';
    break;
  }
  case NodeType::Link: {
    auto t = static_cast<const Link&>(n).target_text();
    out += "L ";
    out += n.path();
    out += " -> ";
    out += t ? *t : "(dangling)";
    out += '\n';
    break;
  }
  }
}

std::string dump_tree(const Tree& tree, const std::string& below, DumpOptions opt) {
  tree.assert_locked();
  auto start = tree.resolve(below);
  std::string out;
  if (start) dump_node(*start, out, opt);
  return out;
}

static Result<void> export_node(const Node& n, const std::filesystem::path& p) {
  switch (n.type()) {
  case NodeType::Dir: {
    if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return Error(errno, "mkdir " + p.string());
    for (auto& c : static_cast<const Dir&>(n).children())
      APEMU_TRY_VOID(export_node(*c, p / c->name()));
    if (::chmod(p.c_str(), n.mode()) != 0) return Error(errno, "chmod " + p.string());
    return {};
  }
  case NodeType::Attr: {
    const auto& a = static_cast<const Attr&>(n);
    std::string text;
    if (a.readable()) {
      auto v = read_attr(a);
      if (v) text = std::move(*v);
    }
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Error(errno, "open " + p.string());
    std::size_t done = 0;
    while (done < text.size()) {
      ssize_t w = ::write(fd, text.data() + done, text.size() - done);
      if (w < 0) {
        int e = errno;
        ::close(fd);
        return Error(e, "write " + p.string());
      }
      done += static_cast<std::size_t>(w);
    }
    ::fchmod(fd, n.mode());
    ::close(fd);
    return {};
  }
  case NodeType::Link: {
    auto t = static_cast<const Link&>(n).target_text();
    if (!t) return {}; // a dangling link is not exported
    ::unlink(p.c_str());
    if (::symlink(t->c_str(), p.c_str()) != 0) return Error(errno, "symlink " + p.string());
    return {};
  }
  }
  return {};
}

Result<void> export_tree(const Tree& tree, const std::filesystem::path& dir) {
  tree.assert_locked();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ec.value(), "create " + dir.string());
  for (auto& c : tree.root()->children()) APEMU_TRY_VOID(export_node(*c, dir / c->name()));
  return {};
}

} // namespace apemu::kernfs
