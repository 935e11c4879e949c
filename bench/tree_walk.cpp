// tree_walk: the whole-tree read of fuse_bench (walk.h) over two directories, interleaved round
// by round (WALKS reads of A, then WALKS of B), for bench/read_bench.sh, which runs it inside
// `apemu run` so that any apemu build can be compared with tmpfs. Prints one line per round,
// "A-nanoseconds B-nanoseconds" per read (the round's mean), after one untimed read of each;
// and on stderr what a read saw (files, denied, errors).
//
// Usage: tree_walk ROUNDS WALKS DIR_A DIR_B
#include <cstdio>
#include <cstdlib>

#include "walk.h"

using namespace apemu::bench;

int main(int argc, char **argv) {
  if (argc != 5 || std::atoi(argv[1]) < 1 || std::atoi(argv[2]) < 1) {
    std::fprintf(stderr, "usage: %s ROUNDS WALKS DIR_A DIR_B\n", argv[0]);
    return 2;
  }
  const int rounds = std::atoi(argv[1]), walks = std::atoi(argv[2]);
  argv += 1;
  WalkStats a, b;
  (void)time_walk(argv[2], a);
  (void)time_walk(argv[3], b);
  std::fprintf(stderr,
               "%s: %ld files read, %ld denied, %ld errors; %s: %ld files read, %ld errors\n",
               argv[2], a.files, a.denied, a.errors, argv[3], b.files, b.errors);
  if (a.errors || b.errors) return 1;
  for (int i = 0; i < rounds; ++i) {
    double ta = 0, tb = 0;
    for (int w = 0; w < walks; ++w)
      ta += time_walk(argv[2], a);
    for (int w = 0; w < walks; ++w)
      tb += time_walk(argv[3], b);
    std::printf("%.0f %.0f\n", ta / walks * 1e9, tb / walks * 1e9);
  }
  return 0;
}
