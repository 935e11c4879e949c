// The FUSE front end: serves a kernfs::Tree as a mounted filesystem with sysfs semantics
// (fs/sysfs/file.c, fs/kernfs/{dir,file,symlink}.c seen from user space).
//
// FuseServer is the only adapter between the model and the kernel's FUSE protocol (libfuse 3.14
// low-level API, multi-threaded session loop). It mirrors what a process sees in the real /sys:
// attributes are regular files of size 4096 whose text is rendered once per open (pread at offset
// 0 re-renders), each write(2) is one store() whose errno reaches the caller unchanged, the mode
// is enforced at open even for root (EACCES), and nothing can be created (EACCES), removed,
// renamed or chmod-ed (EPERM). Inode numbers are kernfs node ids.
//
// Divergences from the real sysfs: the filesystem type is "fuse.apemu" (FUSE cannot report
// SYSFS_MAGIC in statfs.f_type); timestamps are the mount time; chmod/chown are refused with
// EPERM (real kernfs lets root change them); poll() on attributes is not supported; removals and
// additions reach the kernel's caches through an invalidation thread, so a path that was just
// looked up may stay visible for the short time that thread needs (use flush_invalidations() to
// wait for it).
//
// @code
//   core::Core core;
//   ... register buses, drivers and devices ...
//   auto srv = fusefs::FuseServer::mount(core.tree(), "/tmp/sys");
//   if (!srv) return srv.error();              // errno of the failed mount step
//   // any process can now `cat /tmp/sys/bus/ap/drivers_autoprobe`
//   (*srv)->unmount();                          // also done by the destructor
// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "apemu/base/result.h"
#include "apemu/kernfs/tree.h"

namespace apemu::fusefs {

/// Mount options. The defaults give a sysfs look-alike that every user can read.
struct Options {
  /// `-o allow_other`: other users may access the mount (the caller must be root or
  /// /etc/fuse.conf must have user_allow_other). Permissions are still enforced by FuseServer
  /// itself: `default_permissions` is never used, because it would let root open a 0444
  /// attribute for writing, which sysfs refuses.
  bool allow_other = true;
  /// `-o fsname=`: the source column of /proc/mounts.
  std::string fsname = "sysfs";
  /// `-o subtype=`: the filesystem type becomes "fuse.<subtype>".
  std::string subtype = "apemu";
  /// Seconds the kernel may cache names and attributes. Changes of the tree are pushed as
  /// invalidations, so this only bounds staleness if an invalidation is lost.
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  /// Worker threads of the session loop (fuse_loop_cfg_set_max_threads).
  unsigned max_threads = 4;
  /// Offer READDIRPLUS (entries come with attributes, saving one LOOKUP per name).
  bool readdirplus = true;
  /// libfuse request tracing on stderr (`-d`).
  bool debug = false;
  /// The commit point of a store: runs under the machine lock after every successful store (at
  /// once, or when a blocked store completes) and before its reply. An error turns the reply
  /// into that errno (e.g. EIO when the change could not be made durable).
  std::function<Result<void>()> after_store;
  /// Called once, on the session thread, when the kernel ends the session without unmount()
  /// (`umount DIR` from outside, or the connection aborted). The server should then be
  /// unmounted and destroyed by its owner; requests are no longer served.
  std::function<void()> on_lost;
  /// Requests made by the server's own process (any of its threads) fail with ENOENT at once,
  /// without the model lock. Needed where the mount is the process's own /sys (`apemu run`):
  /// glibc reads /sys/devices/system/cpu/online on its own (get_nprocs, from malloc's arena
  /// setup, sysconf), possibly while the thread holds a lock that a request handler needs; an
  /// answer that takes no lock cannot deadlock, and glibc then falls back to /proc.
  bool refuse_own_process = false;
};

/// A mounted, running FUSE filesystem over one kernfs::Tree.
///
/// The session loop runs on a background thread (with up to Options::max_threads workers); an
/// invalidation thread drains the queue that the tree's change listener fills.
///
/// Locking: every request handler takes the model lock (tree.lock()) for its whole access to
/// nodes, so show()/store() run exactly as they do for in-process callers. Internal locks (the
/// inode table, the invalidation queue) are leaves taken after the model lock. The invalidation
/// thread never holds the model lock while it talks to the kernel (libfuse's deadlock rule for
/// fuse_lowlevel_notify_inval_*). Consequently no thread may hold the model lock while it makes
/// a syscall on the mount, calls unmount() or calls flush_invalidations(): the FUSE handler
/// serving that syscall would wait for the lock forever.
///
/// Lifetime: keeps a reference to `tree`, which must outlive the server (destroy the server
/// before the Core/Tree). Registers itself as the tree's single change listener from mount()
/// until unmount(), so one tree is served by at most one FuseServer at a time. Inode numbers
/// are node ids; the server keeps only weak references to nodes (in its inode table) and
/// strong ones only while a file or directory is open, like an open file in sysfs.
///
/// Threads: the session loop and its workers are named "apemu-fuse", the invalidation thread
/// "apemu-fuse-inv"; all of them are joined by unmount().
///
/// Signals: the first mount() installs a no-op handler for SIGRTMAX-3 if that signal still has
/// its default disposition; unmount() sends it to the loop thread to end the session loop
/// without needing a path to the mount. If the application uses that signal itself, unmount()
/// wakes the loop with a lookup through the mount point instead.
class FuseServer {
public:
  /// Mounts `tree` on the existing directory `mountpoint` and starts serving it.
  ///
  /// Returns: ENOENT/ENOTDIR/EACCES when `mountpoint` is not a usable directory; ENOENT or
  /// EACCES from /dev/fuse (FUSE unavailable); EINVAL for an empty fsname/subtype, one with a
  /// ',' or a backslash, or options libfuse rejects; the errno of mount(2) (e.g. EPERM without
  /// privileges) when mounting fails. On failure nothing is left mounted and no listener stays
  /// registered.
  ///
  /// Locking: takes the model lock briefly (to register the change listener); must not be called
  /// with it held by another thread that waits for this one.
  static Result<std::unique_ptr<FuseServer>> mount(kernfs::Tree& tree,
                                                   const std::string& mountpoint,
                                                   const Options& opt = {});

  /// Calls unmount().
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  /// Stops serving and unmounts: unregisters the change listener, stops the invalidation thread,
  /// ends the session loop, detaches the mount (lazily, so it also works while some process
  /// still has a file open in it; such files then fail with ENOTCONN) and frees every handle.
  /// Idempotent. Locking: must not be called with the model lock held.
  void unmount();

  /// True between a successful mount() and unmount().
  bool mounted() const;
  const std::string& mountpoint() const;
  const Options& options() const;
  /// The /dev/fuse descriptor of the session; -1 after unmount().
  int session_fd() const;

  /// Blocks until every tree change reported before this call has been pushed to the kernel as
  /// an invalidation (so a following stat() of a removed path gives ENOENT).
  /// Locking: must not be called with the model lock held.
  void flush_invalidations();

  /// Inodes the kernel currently holds a lookup count for (the root excluded).
  std::size_t inode_count() const;
  /// Open file and directory handles (released asynchronously by the kernel after close(2)).
  std::size_t handle_count() const;
  /// Requests served so far, by operation ("lookup", "open", "read", "readdirplus", ...).
  std::map<std::string, std::uint64_t> request_counts() const;

  struct Impl; ///< private; public only so that the C callbacks in the .cpp can name it

private:
  explicit FuseServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

} // namespace apemu::fusefs
