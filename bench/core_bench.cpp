// Driver-core micro benchmarks: device add/del and attribute show/store through kernfs.
#include <benchmark/benchmark.h>

#include "apemu/core/core.h"

using namespace apemu;

BENCHMARK_MAIN();
