#include "golden.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace apemu::testing {

namespace fs = std::filesystem;

static std::string escape(std::string v) {
  if (!v.empty() && v.back() == '\n') v.pop_back();
  std::string out;
  for (char c : v) {
    if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else out += c;
  }
  return out;
}

static void walk(const fs::path& p, const std::string& rel, std::string& out) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  const std::string shown = rel.empty() ? "/" : rel;
  if (S_ISLNK(st.st_mode)) {
    out += "L " + shown + " -> " + fs::read_symlink(p).string() + "\n";
  } else if (S_ISDIR(st.st_mode)) {
    out += std::string("D ") + mode + " " + shown + "\n";
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(p)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (auto& n : names) walk(p / n, rel + "/" + n, out);
  } else {
    out += std::string("A ") + mode + " " + shown;
    if (st.st_mode & 0444) {
      std::ifstream in(p);
      std::stringstream ss;
      ss << in.rdbuf();
      out += " = " + escape(ss.str());
    }
    out += "\n";
  }
}

std::string dump_directory(const std::string& root) {
  std::string out;
  walk(root, "", out);
  return out;
}

} // namespace apemu::testing
