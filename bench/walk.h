// The whole-tree read of the benchmarks: readdir, then open + read to EOF + close of every
// regular file, as `find -type f | xargs cat` does (cat's 128 KiB buffer), without processes.
// Shared by fuse_bench and tree_walk.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

namespace apemu::bench {

using Clock = std::chrono::steady_clock;

struct WalkStats {
  long files = 0;
  long denied = 0; ///< open(O_RDONLY) refused (write-only attributes on the FUSE side)
  long dirs = 0;
  long long bytes = 0;
  long errors = 0;
};

inline void walk(int dirfd, WalkStats &ws) {
  DIR *d = fdopendir(dirfd);
  if (!d) {
    ::close(dirfd);
    ++ws.errors;
    return;
  }
  ++ws.dirs;
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        ++ws.errors;
        continue;
      }
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
    }
    if (type == DT_DIR) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (sub < 0) {
        ++ws.errors;
        continue;
      }
      walk(sub, ws);
    } else if (type == DT_REG) {
      int fd = openat(dirfd, e->d_name, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        if (errno == EACCES)
          ++ws.denied;
        else
          ++ws.errors;
        continue;
      }
      // cat's buffer: 128 KiB.
      static char buf[128 * 1024];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0)
        ws.bytes += n;
      if (n < 0) ++ws.errors;
      ::close(fd);
      ++ws.files;
    }
  }
  closedir(d); // closes dirfd
}

inline double time_walk(const std::string &root, WalkStats &ws) {
  ws = {};
  const auto t0 = Clock::now();
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "open %s: %s\n", root.c_str(), std::strerror(errno));
    ++ws.errors;
    return 0;
  }
  walk(fd, ws);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

} // namespace apemu::bench
