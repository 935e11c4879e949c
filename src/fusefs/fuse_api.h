// The one place that selects the libfuse API level: 3.12 (libfuse 3.14 at build time, as
// passthrough_hp.cc at fuse-3.14.0). Every fusefs source includes <fuse_lowlevel.h> through this
// header so that FUSE_USE_VERSION is always defined first. Private to src/fusefs (STYLE.md §1:
// fusefs is the only code that includes FUSE headers).
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif

#include <fuse_lowlevel.h>
