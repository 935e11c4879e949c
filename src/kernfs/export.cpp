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

namespace {

/// The process's umask, read without changing it (umask(2) would race with other threads
/// creating files). Linux >= 4.7 shows it in /proc/self/status; 022 otherwise.
mode_t current_umask() {
  mode_t mask = 022;
  if (FILE* f = std::fopen("/proc/self/status", "re")) {
    char line[256];
    unsigned m = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "Umask: %o", &m) == 1) {
        mask = static_cast<mode_t>(m);
        break;
      }
    std::fclose(f);
  }
  return mask;
}

/// Writes one tree below an open directory. Everything is relative to directory descriptors
/// (no path walks), a new file gets its mode at creation and its text in one write(2), and
/// only what the umask changed is chmod-ed: a max.toml tree has 1.25 million nodes.
class Exporter {
public:
  explicit Exporter(mode_t umask) : m_umask(umask) {}

  /// `path` (for messages only) names `dfd`.
  Result<void> children(const Dir& dir, int dfd, const std::string& path) {
    for (const auto& c : dir.children()) APEMU_TRY_VOID(node(*c, dfd, path));
    return {};
  }

private:
  Result<void> node(const Node& n, int dfd, const std::string& parent_path) {
    const char* name = n.name().c_str();
    auto where = [&] { return parent_path + "/" + n.name(); };
    switch (n.type()) {
    case NodeType::Dir: {
      // Filled while writable (0755), given its own mode at the end.
      bool fresh = true;
      if (::mkdirat(dfd, name, 0755) != 0) {
        if (errno != EEXIST) return Error(errno, "mkdir " + where());
        fresh = false;
      }
      const int sub = ::openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (sub < 0) return Error(errno, "open " + where());
      auto r = children(static_cast<const Dir&>(n), sub, where());
      ::close(sub);
      APEMU_TRY_VOID(std::move(r));
      if ((!fresh || (0755 & ~m_umask) != n.mode()) && ::fchmodat(dfd, name, n.mode(), 0) != 0)
        return Error(errno, "chmod " + where());
      return {};
    }
    case NodeType::Attr: {
      const auto& a = static_cast<const Attr&>(n);
      std::string text;
      if (a.readable()) {
        auto v = read_attr(a);
        if (v) text = std::move(*v);
      }
      bool fresh = true;
      int fd = ::openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, n.mode());
      if (fd < 0 && errno == EEXIST) { // exporting over an earlier export
        fresh = false;
        fd = ::openat(dfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
      }
      if (fd < 0) return Error(errno, "open " + where());
      std::size_t done = 0;
      while (done < text.size()) {
        const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
        if (w < 0) {
          const int e = errno;
          ::close(fd);
          return Error(e, "write " + where());
        }
        done += static_cast<std::size_t>(w);
      }
      if (!fresh || (n.mode() & m_umask) != 0) ::fchmod(fd, n.mode());
      ::close(fd);
      return {};
    }
    case NodeType::Link: {
      auto t = static_cast<const Link&>(n).target_text();
      if (!t) return {}; // a dangling link is not exported
      if (::symlinkat(t->c_str(), dfd, name) == 0) return {};
      if (errno == EEXIST && ::unlinkat(dfd, name, 0) == 0 &&
          ::symlinkat(t->c_str(), dfd, name) == 0)
        return {};
      return Error(errno, "symlink " + where());
    }
    }
    return {};
  }

  mode_t m_umask;
};

} // namespace

Result<void> export_tree(const Tree& tree, const std::filesystem::path& dir) {
  tree.assert_locked();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ec.value(), "create " + dir.string());
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Error(errno, "open " + dir.string());
  Exporter ex(current_umask());
  auto r = ex.children(*tree.root(), dfd, dir.string());
  ::close(dfd);
  return r;
}

} // namespace apemu::kernfs
