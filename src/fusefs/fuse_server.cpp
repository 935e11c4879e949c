// FUSE low-level adapter over kernfs (see fuse_server.h). Request handlers follow libfuse's
// passthrough_hp.cc at fuse-3.14.0 (inode table with lookup counts, reply exactly once,
// invalidations from a separate thread) and give the errnos of fs/sysfs and fs/kernfs.
#include "apemu/fusefs/fuse_server.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "apemu/base/assert.h"
#include "fuse_api.h"
#include "inode_table.h"
#include "reply.h"

namespace apemu::fusefs {

using kernfs::Change;
using kernfs::Dir;
using kernfs::Node;
using kernfs::NodeId;
using kernfs::NodeType;

namespace {

/// An open attribute (fi->fh of open/create): the kernfs per-open snapshot and store channel.
/// A `cached` handle (read-only, rendered at open) is read through the kernel's page cache;
/// its READs serve the inode's kept text (see op_read).
struct FileHandle {
  explicit FileHandle(kernfs::OpenFile f) : file(std::move(f)) {}
  kernfs::OpenFile file;
  bool cached = false;
  std::string text; ///< cached: the text rendered at open
};

/// An open directory (fi->fh of opendir). Entries are served in name order; an entry's offset
/// is its node id + kFirstChildOffset, so a READDIR at that offset resumes after that entry's
/// *name*: entries removed in between neither shift nor skip the others (kernfs resumes by name
/// hash for the same reason). The offset means the same on every handle: the kernel's readdir
/// cache (FOPEN_CACHE_DIR) may continue a listing that another open filled partly.
/// `emitted` holds (id, name) of the entries this handle returned, to resume after an entry that
/// is gone by now.
struct DirHandle {
  explicit DirHandle(std::shared_ptr<Node> d) : dir(std::move(d)) {}
  std::shared_ptr<Node> dir;
  std::vector<std::pair<NodeId, std::string>> emitted;
};

/// Operations counted by FuseServer::request_counts().
constexpr std::array<std::string_view, 24> kOpNames = {
    "lookup",     "forget", "forget_multi", "getattr", "setattr", "readlink", "mknod",
    "mkdir",      "unlink", "rmdir",        "symlink", "rename",  "link",     "open",
    "create",     "read",   "write",        "release", "opendir", "readdir",  "readdirplus",
    "releasedir", "statfs", "access"};

constexpr off_t kDotOffset = 1;
constexpr off_t kDotDotOffset = 2;
constexpr off_t kFirstChildOffset = 3;

/// generic_permission() for a node owned by the machine's root (Options::owner_uid, 0 unless an
/// ordinary user serves the tree), as the VFS applies it before sysfs sees an open or access(2).
/// Root passes read/write checks (CAP_DAC_OVERRIDE; sysfs then refuses modes without the bit at
/// open), and needs some x bit to execute a non-directory.
bool may_access(const Node& n, const fuse_ctx& ctx, int mask, const Options& opt) {
  const mode_t mode = n.mode();
  const bool dir = n.type() == NodeType::Dir;
  if (ctx.uid == 0 || ctx.uid == opt.owner_uid) {
    if (!(mask & X_OK)) return true;
    return dir || (mode & 0111);
  }
  const mode_t bits = (ctx.gid == 0 || ctx.gid == opt.owner_gid ? (mode >> 3) : mode) & 07;
  return (bits & static_cast<mode_t>(mask)) == static_cast<mode_t>(mask);
}

} // namespace

struct FuseServer::Impl {
  Impl(kernfs::Tree& t, std::string mp, Options o)
      : tree(t), mountpoint(std::move(mp)), opt(std::move(o)) {
    clock_gettime(CLOCK_REALTIME, &start_time);
  }

  kernfs::Tree& tree;
  const std::string mountpoint;
  const Options opt;
  timespec start_time{};

  fuse_session* se = nullptr;
  std::thread loop_thread;
  int wake_signal = 0; ///< signal that interrupts the loop thread's sem_wait (0: none)
  std::mutex loop_mutex;
  std::condition_variable loop_cv;
  bool loop_done = false; ///< fuse_session_loop_mt returned (loop_mutex)
  std::atomic<bool> mounted{false};
  std::mutex unmount_mutex; ///< serializes unmount(); never held with any other lock

  InodeTable inodes;

  // Requests served per operation (for benchmarks and debugging); indexed like kOpNames.
  std::array<std::atomic<std::uint64_t>, kOpNames.size()> counts{};
  void count(std::string_view op) {
    for (std::size_t i = 0; i < kOpNames.size(); ++i)
      if (kOpNames[i] == op) {
        counts[i].fetch_add(1, std::memory_order_relaxed);
        return;
      }
  }

  // Open handles. Protected by the model lock (handlers hold it anyway while they use a handle).
  std::unordered_map<std::uint64_t, std::unique_ptr<FileHandle>> files;
  std::unordered_map<std::uint64_t, std::unique_ptr<DirHandle>> dirs;
  std::uint64_t next_fh = 1;
  std::atomic<std::size_t> handle_count{0};

  /// unmount() has begun: no page may enter the kernel's cache any more (machine lock).
  bool closing = false;
  /// The node of the last Removed change (machine lock): an Added of it means a rename.
  NodeId last_removed = 0;

  // Notifier queue: tree changes to push to the kernel as invalidations, and the replies of
  // writes and opens that must not be seen before those changes (a write(2) returns only after
  // its effect is visible, as in kernel sysfs; an open returns only after stale pages of its
  // attribute are gone). Items are delivered in order. Lock order: machine lock -> q_mutex
  // (items are queued under the machine lock); the notifier thread holds q_mutex only to take a
  // batch, never while talking to the kernel.
  struct Item {
    enum class Kind : std::uint8_t {
      Change,     ///< `change`: a name appeared, went or moved
      InvalInode, ///< `ino`: drop the inode's pages and attributes
      InvalLinks, ///< every symlink inode: their texts may have changed
      WriteReply, ///< answer WRITE `req` with `outcome`
      OpenReply,  ///< answer OPEN `req` with `fi`
    };
    Kind kind;
    Change change{};
    NodeId ino = 0;
    fuse_req_t req = nullptr;
    Result<std::size_t> outcome = std::size_t{0};
    fuse_file_info fi{};
  };
  std::mutex q_mutex;
  std::condition_variable q_cv;    ///< work arrived or stop
  std::condition_variable done_cv; ///< a batch was delivered
  std::vector<Item> queue;
  std::uint64_t enqueued = 0;
  std::uint64_t delivered = 0;
  bool stop = false;
  std::thread notifier;

  // Writes whose store blocked (kernfs::Blocker), by request; machine lock. `registered`: the
  // interrupt callback is in place, so the request may be answered (see op_write).
  struct BlockedWrite {
    std::shared_ptr<Completion> completion;
    std::size_t count = 0;
    bool registered = false;
    std::optional<Result<std::size_t>> early; ///< finished before it was registered
  };
  std::map<fuse_req_t, BlockedWrite> blocked;

  // ---- helpers (model lock held) ----------------------------------------------------------------

  /// The active node behind `ino`, or null (ENOENT).
  std::shared_ptr<Node> node_locked(fuse_ino_t ino) const {
    std::shared_ptr<Node> n =
        ino == FUSE_ROOT_ID ? std::static_pointer_cast<Node>(tree.root()) : inodes.get(ino);
    if (!n || !n->active()) return nullptr;
    return n;
  }

  /// The child `name` of directory inode `parent`. Only the parent's own children are looked at:
  /// "." and ".." are never children, so no name can lead outside the tree (the kernel resolves
  /// ".." itself). Returns: ENOENT (parent gone), ENOTDIR; a null child when absent.
  Result<std::shared_ptr<Node>> child_locked(fuse_ino_t parent, const char* name) const {
    auto p = node_locked(parent);
    if (!p) return Error(ENOENT);
    if (p->type() != NodeType::Dir) return Error(ENOTDIR);
    return static_cast<Dir&>(*p).find(name);
  }

  /// Attributes of `n`; an attribute's size is `attr_size` (InodeTable::ref()) when given.
  struct stat stat_locked(const Node& n, std::optional<off_t> attr_size = std::nullopt) const {
    struct stat st {};
    st.st_ino = n.id();
    st.st_uid = opt.owner_uid;
    st.st_gid = opt.owner_gid;
    st.st_blksize = static_cast<blksize_t>(kernfs::kPageSize);
    st.st_atim = st.st_mtim = st.st_ctim = start_time;
    switch (n.type()) {
    case NodeType::Dir:
      st.st_mode = S_IFDIR | n.mode();
      st.st_nlink = 2;
      break;
    case NodeType::Attr:
      st.st_mode = S_IFREG | n.mode();
      st.st_nlink = 1;
      // fs/sysfs/file.c: PAGE_SIZE; once read through the page cache, the kept text's length
      // (a size that differs from what the kernel believes drops its pages).
      st.st_size = attr_size ? *attr_size : inodes.attr_size(n.id());
      break;
    case NodeType::Link: {
      st.st_mode = S_IFLNK | 0777;
      st.st_nlink = 1;
      auto text = static_cast<const kernfs::Link&>(n).target_text();
      st.st_size = text ? static_cast<off_t>(text->size()) : 0;
      break;
    }
    }
    return st;
  }

  /// The entry of a node handed out with InodeTable::ref(), which gave `attr_size`.
  fuse_entry_param entry_locked(const Node& n, off_t attr_size) const {
    fuse_entry_param e{};
    e.ino = n.id();
    e.generation = 0; // node ids are never reused
    e.attr = stat_locked(n, attr_size);
    e.attr_timeout = opt.attr_timeout;
    e.entry_timeout = opt.entry_timeout;
    return e;
  }

  std::uint64_t add_file_locked(std::unique_ptr<FileHandle> h) {
    const std::uint64_t fh = next_fh++;
    files.emplace(fh, std::move(h));
    ++handle_count;
    return fh;
  }
  void drop_file_locked(std::uint64_t fh) {
    if (files.erase(fh)) --handle_count;
  }
  FileHandle* file_locked(std::uint64_t fh) const {
    auto it = files.find(fh);
    return it == files.end() ? nullptr : it->second.get();
  }

  /// sysfs open: credentials (generic_permission), then kernfs's mode and show/store check
  /// (EACCES even for root), then a per-open handle, and fills fi. A read-only open (when
  /// `may_cache`) renders the text now and is read through the page cache: the kernel keeps
  /// its pages when they hold this very text, otherwise they are dropped by an InvalInode item
  /// that goes out before the open's reply (reply_open_after_changes). Everything else, and a
  /// render that fails (its errno then comes from read(2), as in sysfs), is direct I/O: every
  /// read(2)/write(2) reaches show()/store().
  Result<void> open_locked(const std::shared_ptr<Node>& n, const fuse_ctx& ctx,
                           fuse_file_info& fi, bool may_cache) {
    const int acc = fi.flags & O_ACCMODE;
    const bool rd = acc == O_RDONLY || acc == O_RDWR;
    const bool wr = acc == O_WRONLY || acc == O_RDWR;
    if (n->type() == NodeType::Dir) return Error(EISDIR);
    if (!may_access(*n, ctx, (rd ? R_OK : 0) | (wr ? W_OK : 0), opt)) return Error(EACCES);
    // O_CREAT/O_EXCL never reach open; O_TRUNC (atomic_o_trunc) is accepted and ignored: an
    // attribute has no stored content to truncate, as in sysfs.
    APEMU_TRY(kernfs::OpenFile f, kernfs::OpenFile::open(n, rd, wr));
    auto h = std::make_unique<FileHandle>(std::move(f));
    fi.direct_io = 1;
    fi.keep_cache = 0;
    fi.nonseekable = 0; // pread at offset 0 re-renders (direct I/O), as in sysfs
    fi.noflush = 1;     // close(2) has nothing to flush
    if (may_cache && opt.page_cache && !wr && !closing) {
      auto text = kernfs::read_attr(*h->file.attr());
      if (text) {
        const InodeTable::Kept kept = inodes.keep_text(n->id(), *text);
        if (kept == InodeTable::Kept::Changed) {
          // The kernel may hold the old text (and its length as i_size): drop both before
          // this open returns, and before any open that renders the same new text.
          Item inval{Item::Kind::InvalInode};
          inval.ino = n->id();
          enqueue(std::move(inval));
        }
        h->cached = true;
        h->text = std::move(*text);
        fi.direct_io = 0;
        fi.keep_cache = kept == InodeTable::Kept::Same;
      }
    }
    fi.fh = add_file_locked(std::move(h));
    return {};
  }

  // ---- invalidation ------------------------------------------------------------------------------

  /// Queues one item for the notifier. Locking: machine lock held (so items keep the order of
  /// the model's changes).
  void enqueue(Item item) {
    std::lock_guard g(q_mutex);
    enqueue_q(std::move(item));
  }
  void enqueue_q(Item item) { // q_mutex held
    queue.push_back(std::move(item));
    ++enqueued;
    q_cv.notify_one();
  }

  /// The tree's change listener: runs under the machine lock, so it only queues.
  void on_change(const Change& c) {
    std::lock_guard g(q_mutex);
    Item item{Item::Kind::Change};
    item.change = c;
    enqueue_q(std::move(item));
    if (c.kind == Change::Kind::Removed) {
      // A removed directory takes its subtree with it, and files and directories opened before
      // keep their inodes (with pages and listings) in the kernel: drop those so that reads
      // reach op_read (ENODEV) and listings come out empty, as in sysfs. The tree is still
      // linked at this point (the listener runs before deactivation).
      auto below = [&](const Node* n) {
        for (; n; n = n->parent())
          if (n->id() == c.node) return true;
        return false;
      };
      auto inval = [&](NodeId id) {
        Item item{Item::Kind::InvalInode};
        item.ino = id;
        enqueue_q(std::move(item));
      };
      for (const auto& [fh, h] : files)
        if (h->cached && below(h->file.attr().get())) inval(h->file.attr()->id());
      if (opt.page_cache)
        for (const auto& [fh, h] : dirs)
          if (below(h->dir.get())) inval(h->dir->id());
      last_removed = c.node;
    } else if (c.kind == Change::Kind::Added && c.node == last_removed) {
      // The node was renamed or moved (Tree::rename/move report it so). Relative link texts
      // through it changed, and the kernel caches them (FUSE_CAP_CACHE_SYMLINKS) with their
      // size.
      enqueue_q(Item{Item::Kind::InvalLinks});
    }
  }

  /// The commit point of a successful store (Options::after_store). Locking: machine lock.
  Result<std::size_t> commit(std::size_t count) {
    if (!opt.after_store) return count;
    if (auto r = opt.after_store(); !r) return r.error();
    return count;
  }

  static void send_write_reply(fuse_req_t req, const Result<std::size_t>& outcome) {
    // The writer may be gone (interrupted, connection aborted): nothing to undo then.
    if (outcome) (void)fuse_reply_write(req, *outcome);
    else (void)fuse_reply_err(req, outcome.error().code);
  }

  /// Answers a WRITE after every change queued before it has reached the kernel: at once when
  /// nothing is pending, else through the notifier. Locking: machine lock held, so every change
  /// the store caused is already queued.
  void reply_after_changes(fuse_req_t req, Result<std::size_t> outcome) {
    {
      std::lock_guard g(q_mutex);
      // Not queue.empty(): the notifier may have taken the store's changes into its batch and
      // still be delivering them, with the queue already empty.
      if (delivered != enqueued && !stop) {
        Item item{Item::Kind::WriteReply};
        item.req = req;
        item.outcome = std::move(outcome);
        enqueue_q(std::move(item));
        return;
      }
    }
    send_write_reply(req, outcome);
  }

  /// Queues the reply of an OPEN behind the items queued before it (its own page invalidation,
  /// or another open's for the same inode) and returns true; false when nothing is pending and
  /// the caller answers itself. Locking: machine lock held.
  bool reply_open_after_changes(fuse_req_t req, const fuse_file_info& fi) {
    std::lock_guard g(q_mutex);
    // As for writes: an invalidation taken into the notifier's batch is not delivered yet.
    if (delivered == enqueued || stop) return false;
    Item item{Item::Kind::OpenReply};
    item.req = req;
    item.fi = fi;
    enqueue_q(std::move(item));
    return true;
  }

  void notifier_main() {
    std::unique_lock lk(q_mutex);
    for (;;) {
      q_cv.wait(lk, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return; // stop requested and nothing left
      std::vector<Item> batch;
      batch.swap(queue);
      lk.unlock();
      bool links_done = false; // one pass over the links serves the whole batch
      std::vector<NodeId> listings;
      for (const Item& item : batch) {
        // A reply goes out only after every listing that changed before it was dropped.
        if (item.kind == Item::Kind::WriteReply || item.kind == Item::Kind::OpenReply)
          flush_listings(listings);
        switch (item.kind) {
        case Item::Kind::Change:
          deliver(item.change, listings);
          break;
        case Item::Kind::InvalInode:
          // Waits for pages under READ; those READs are answered by the session workers.
          (void)fuse_lowlevel_notify_inval_inode(se, item.ino, 0, 0);
          // The kernel holds nothing of the old text now (a GETATTR answered before is
          // discarded: the invalidation bumped the inode's attribute version).
          inodes.announce(item.ino);
          break;
        case Item::Kind::InvalLinks:
          if (!links_done)
            for (NodeId id : inodes.links()) (void)fuse_lowlevel_notify_inval_inode(se, id, 0, 0);
          links_done = true;
          break;
        case Item::Kind::WriteReply:
          send_write_reply(item.req, item.outcome);
          break;
        case Item::Kind::OpenReply:
          if (fuse_reply_open(item.req, &item.fi) != 0) { // the opener is gone
            auto g = tree.lock();
            drop_file_locked(item.fi.fh);
          }
          break;
        }
      }
      flush_listings(listings);
      const std::size_t n = batch.size();
      batch = {}; // freed without q_mutex: no allocator call under a lock the handlers take
      lk.lock();
      delivered += n;
      done_cv.notify_all();
    }
  }

  /// Pushes one change to the kernel. No lock is held: fuse_lowlevel_notify_inval_entry takes
  /// the parent directory's inode lock and may wait for a LOOKUP in that directory, which one of
  /// our handlers answers after taking the model lock.
  /// `listings` collects the directories whose cached listing must go (see flush_listings).
  void deliver(const Change& c, std::vector<NodeId>& listings) {
    // The kernel can only have cached parent/name if it holds the parent inode; skipping the
    // others avoids a syscall per attribute while a new device directory is being filled.
    if (c.parent == FUSE_ROOT_ID || inodes.contains(c.parent)) {
      // Errors are expected and harmless: ENOENT when nothing was cached.
      (void)fuse_lowlevel_notify_inval_entry(se, c.parent, c.name.data(), c.name.size());
      if (opt.page_cache && (listings.empty() || listings.back() != c.parent))
        listings.push_back(c.parent);
    }
    if (c.kind != Change::Kind::Added && inodes.contains(c.node)) {
      // The node itself went away or changed its name: drop its cached attributes, pages and
      // listing.
      (void)fuse_lowlevel_notify_inval_inode(se, c.node, 0, 0);
    }
  }

  /// Drops the kernel's cached listing (FOPEN_CACHE_DIR pages) of each directory in
  /// `listings`, once per directory however many of its entries changed in a batch.
  void flush_listings(std::vector<NodeId>& listings) {
    std::sort(listings.begin(), listings.end());
    listings.erase(std::unique(listings.begin(), listings.end()), listings.end());
    for (NodeId d : listings) (void)fuse_lowlevel_notify_inval_inode(se, d, 0, 0);
    listings.clear();
  }

  void flush_invalidations() {
    std::unique_lock lk(q_mutex);
    const std::uint64_t target = enqueued;
    done_cv.wait(lk, [&] { return delivered >= target || (stop && queue.empty()); });
  }

  void unmount();
};

namespace {

using Impl = FuseServer::Impl;

/// No-op: delivering it is what interrupts sem_wait() in fuse_session_loop_mt.
extern "C" void on_wake_signal(int) {}

/// The real-time signal used to wake session loops (SIGRTMAX-3), with the no-op handler
/// installed once; 0 when the application already uses that signal for something else.
int wake_signal() {
  static const int sig = [] {
    const int s = SIGRTMAX - 3;
    struct sigaction old {};
    if (sigaction(s, nullptr, &old) != 0) return 0;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == on_wake_signal) return s;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) return 0;
    struct sigaction sa {};
    sa.sa_handler = on_wake_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART (sem_wait is never restarted anyway)
    return sigaction(s, &sa, nullptr) == 0 ? s : 0;
  }();
  return sig;
}

Impl& impl_of(fuse_req_t req) { return *static_cast<Impl*>(fuse_req_userdata(req)); }

/// Runs a request body with exactly one reply guaranteed: C callbacks must not throw, so an
/// exception becomes ENOMEM/EIO if nothing was sent yet.
/// True when the request comes from a thread of this process (see Options::refuse_own_process).
/// FUSE gives the caller's thread id; tgkill with signal 0 only checks that the thread is ours.
bool from_own_process(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return ctx && ctx->pid > 0 && ::syscall(SYS_tgkill, ::getpid(), ctx->pid, 0) == 0;
}

/// Requests on an open file or directory handle (see serve()).
bool acts_on_a_handle(std::string_view op) {
  return op == "read" || op == "write" || op == "release" || op == "readdir" ||
         op == "readdirplus" || op == "releasedir";
}

template <class Body> void serve(const char* op, fuse_req_t req, Body&& body) {
  Reply r(req);
  try {
    Impl& s = impl_of(req);
    s.count(op);
    // Only requests that name a path or an inode need the check: reads, writes and releases act
    // on handles that a refused LOOKUP or OPEN never gave this process, so they skip the syscall.
    if (s.opt.refuse_own_process && !acts_on_a_handle(op) && from_own_process(req)) {
      (void)r.error(ENOENT);
      return;
    }
    (void)body(r, s);
  } catch (const std::bad_alloc&) {
    if (!r.done()) r.error(ENOMEM);
  } catch (...) {
    if (!r.done()) r.error(EIO);
  }
}

// ---- session -------------------------------------------------------------------------------------

void op_init(void* userdata, fuse_conn_info* conn) {
  auto& s = *static_cast<Impl*>(userdata);
  // `echo x > attr` opens with O_TRUNC: take it in OPEN instead of a separate SETATTR(size=0).
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // Writes must reach store() one by one.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Cached pages are dropped exactly when a text changes (op_open); mtimes say nothing.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // A size that differs from the kernel's must drop its pages (it means another text).
  conn->want &= ~FUSE_CAP_EXPLICIT_INVAL_DATA;
  // Link texts change only when a node is renamed or moved, which invalidates them.
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  else conn->want &= ~FUSE_CAP_CACHE_SYMLINKS;
  if (s.opt.readdirplus && (conn->capable & FUSE_CAP_READDIRPLUS)) {
    conn->want |= FUSE_CAP_READDIRPLUS;
    if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
  } else {
    conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  }
  if (s.opt.max_read) conn->max_read = s.opt.max_read;
}

// ---- names -------------------------------------------------------------------------------------------

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  serve("lookup", req, [&](Reply& r, Impl& s) {
    fuse_entry_param e;
    {
      auto lk = s.tree.lock();
      auto found = s.child_locked(parent, name);
      if (!found) return r.error(found.error());
      auto child = std::move(*found);
      if (!child) return r.error(ENOENT); // not cached (no negative entry timeout)
      e = s.entry_locked(*child, s.inodes.ref(child));
    }
    const int rc = r.entry(e);
    if (rc != 0) s.inodes.forget(e.ino, 1); // the kernel never saw this reference
    return rc;
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  serve("forget", req, [&](Reply& r, Impl& s) {
    s.inodes.forget(ino, nlookup);
    return r.none();
  });
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  serve("forget_multi", req, [&](Reply& r, Impl& s) {
    for (size_t i = 0; i < count; ++i) s.inodes.forget(forgets[i].ino, forgets[i].nlookup);
    return r.none();
  });
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  serve("getattr", req, [&](Reply& r, Impl& s) {
    struct stat st;
    {
      auto lk = s.tree.lock();
      // A removed node that is still alive (an open file or directory holds it) keeps its
      // attributes, as a kernfs inode does: fstat(2) works, and the size check before a read
      // on such an fd does not turn the read's ENODEV into ENOENT. The handle answers when
      // the inode table has let go of the node already.
      std::shared_ptr<Node> n =
          ino == FUSE_ROOT_ID ? std::static_pointer_cast<Node>(s.tree.root()) : s.inodes.get(ino);
      if (!n) {
        FileHandle* h = fi ? s.file_locked(fi->fh) : nullptr;
        if (!h) return r.error(ENOENT);
        n = h->file.attr();
      }
      st = s.stat_locked(*n);
    }
    return r.attr(st, s.opt.attr_timeout);
  });
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  serve("setattr", req, [&](Reply& r, Impl& s) {
    struct stat st;
    {
      auto lk = s.tree.lock();
      auto n = s.node_locked(ino);
      if (!n) return r.error(ENOENT);
      // sysfs modes and owners are kernel-internal (driver-core.md §2.8).
      if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        return r.error(EPERM);
      // truncate(2) or O_TRUNC without atomic_o_trunc: an attribute has nothing to truncate;
      // the time bits that come along with it are ignored.
      if (!(to_set & FUSE_SET_ATTR_SIZE)) return r.error(EPERM);
      if (n->type() != NodeType::Attr) return r.error(EISDIR);
      // vfs_truncate's inode_permission(MAY_WRITE): without default_permissions the kernel
      // leaves that check to us.
      if (!may_access(*n, r.ctx(), W_OK, s.opt)) return r.error(EACCES);
      if (attr->st_size != 0) return r.error(EPERM);
      st = s.stat_locked(*n);
    }
    return r.attr(st, s.opt.attr_timeout);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  serve("readlink", req, [&](Reply& r, Impl& s) {
    std::string text;
    {
      auto lk = s.tree.lock();
      auto n = s.node_locked(ino);
      if (!n) return r.error(ENOENT);
      if (n->type() != NodeType::Link) return r.error(EINVAL);
      auto t = static_cast<kernfs::Link&>(*n).target_text();
      if (!t) return r.error(t.error());
      text = std::move(*t);
    }
    return r.readlink(text);
  });
}

// Nothing can be created, removed or renamed by user space (kernfs has no syscall ops for sysfs).
void op_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) {
  serve("mknod", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}
void op_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) {
  serve("mkdir", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}
void op_unlink(fuse_req_t req, fuse_ino_t, const char*) {
  serve("unlink", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}
void op_rmdir(fuse_req_t req, fuse_ino_t, const char*) {
  serve("rmdir", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}
void op_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) {
  serve("symlink", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}
void op_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  serve("rename", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
  serve("link", req, [](Reply& r, Impl&) { return r.error(EPERM); });
}

// ---- files ---------------------------------------------------------------------------------------

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  serve("open", req, [&](Reply& r, Impl& s) {
    {
      auto lk = s.tree.lock();
      auto n = s.node_locked(ino);
      if (!n) return r.error(ENOENT);
      auto res = s.open_locked(n, r.ctx(), *fi, true);
      if (!res) return r.error(res.error()); // EACCES/ELOOP/... exactly as kernfs says
      if (s.reply_open_after_changes(req, *fi)) {
        r.detach(); // the notifier answers (and drops the handle if the opener is gone)
        return 0;
      }
    }
    const int rc = r.open(*fi);
    if (rc != 0) { // interrupted: the kernel will never release this handle
      auto lk = s.tree.lock();
      s.drop_file_locked(fi->fh);
    }
    return rc;
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, fuse_file_info* fi) {
  serve("create", req, [&](Reply& r, Impl& s) {
    fuse_entry_param e;
    {
      auto lk = s.tree.lock();
      auto found = s.child_locked(parent, name);
      if (!found) return r.error(found.error());
      auto child = std::move(*found);
      // The VFS answers EACCES for O_CREAT in a directory without ->create (sysfs).
      if (!child) return r.error(EACCES);
      // The name appeared after the kernel's negative lookup: behave like an open of it.
      if (fi->flags & O_EXCL) return r.error(EEXIST);
      if (child->type() == NodeType::Link) return r.error(EACCES);
      // Direct I/O: the reply cannot wait behind the notifier, and O_CREAT is for writers.
      auto res = s.open_locked(child, r.ctx(), *fi, false);
      if (!res) return r.error(res.error());
      e = s.entry_locked(*child, s.inodes.ref(child));
    }
    const int rc = r.create(e, *fi);
    if (rc != 0) {
      s.inodes.forget(e.ino, 1);
      auto lk = s.tree.lock();
      s.drop_file_locked(fi->fh);
    }
    return rc;
  });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  serve("read", req, [&](Reply& r, Impl& s) {
    std::string data;
    {
      auto lk = s.tree.lock();
      FileHandle* h = s.file_locked(fi->fh);
      if (!h) return r.error(EBADF);
      const auto at = static_cast<std::size_t>(off < 0 ? 0 : off);
      if (h->cached) {
        // A page the kernel will keep: it must hold the inode's served text (the latest
        // rendered once the kernel was told of it, InodeTable::kept_text), whichever open's
        // request this is: a later open that found its text equal to the kept one must not
        // read another, and the text must match the size the kernel has. None once unmount
        // has begun: after it, reads of open files must fail (ENOTCONN), not come from the
        // cache.
        if (s.closing) return r.error(ENOTCONN);
        if (!h->file.attr()->active()) return r.error(ENODEV);
        std::optional<std::string> kept = s.inodes.kept_text(ino);
        const std::string& text = kept ? *kept : h->text;
        if (at < text.size()) data = text.substr(at, size);
      } else {
        auto res = h->file.read(at, size);
        if (!res) return r.error(res.error()); // show()'s errno (ENODEV once removed)
        data = std::move(*res);
      }
    }
    return r.buf(data.data(), data.size());
  });
}

/// INTERRUPT of a WRITE whose store blocked: the writer got a signal. The blocked operation is
/// undone and the write fails with EINTR. Runs on a session thread without the machine lock;
/// libfuse keeps `req` valid during the call even if it was answered meanwhile.
void on_write_interrupt(fuse_req_t req, void* data) {
  auto& s = *static_cast<Impl*>(data);
  auto lk = s.tree.lock();
  auto it = s.blocked.find(req);
  if (it == s.blocked.end()) return; // answered already
  std::shared_ptr<Completion> c = it->second.completion;
  c->cancel(EINTR); // its on_done answers (or records the answer, if not yet registered)
}

void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t,
              fuse_file_info* fi) {
  serve("write", req, [&](Reply& r, Impl& s) {
    {
      auto lk = s.tree.lock();
      FileHandle* h = s.file_locked(fi->fh);
      if (!h) return r.error(EBADF);
      // One write(2) is one store() of at most PAGE_SIZE bytes; the offset is irrelevant.
      kernfs::Blocker blocker;
      auto res = h->file.write(std::string_view(buf, size), &blocker);
      if (res || res.error().code != kEIocbQueued) {
        if (res) res = s.commit(*res);
        // The reply waits for the invalidations of what this store changed.
        r.detach();
        s.reply_after_changes(req, std::move(res)); // store()'s errno, unchanged
        return 0;
      }
      // The store blocks its writer (e.g. `remove` of an mdev in use): keep the request.
      const std::size_t count = std::min(size, kernfs::kPageSize);
      s.blocked[req] = Impl::BlockedWrite{blocker.completion(), count};
      blocker.completion()->on_done([&s, req, count](const Result<void>& done) {
        auto it = s.blocked.find(req);
        if (it == s.blocked.end()) return;
        Result<std::size_t> outcome =
            done ? s.commit(count) : Result<std::size_t>(done.error());
        if (!it->second.registered) {
          it->second.early = std::move(outcome);
          return;
        }
        s.blocked.erase(it);
        s.reply_after_changes(req, std::move(outcome));
      });
    }
    r.detach();
    // Without the machine lock: the callback may run right here if the writer was already
    // interrupted. Until `registered` is set, nobody answers the request.
    fuse_req_interrupt_func(req, on_write_interrupt, &s);
    auto lk = s.tree.lock();
    auto it = s.blocked.find(req);
    if (it == s.blocked.end()) return 0;
    it->second.registered = true;
    if (it->second.early) {
      Result<std::size_t> outcome = std::move(*it->second.early);
      s.blocked.erase(it);
      s.reply_after_changes(req, std::move(outcome));
    }
    return 0;
  });
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  serve("release", req, [&](Reply& r, Impl& s) {
    {
      auto lk = s.tree.lock(); // the handle may hold the last reference to a removed node
      s.drop_file_locked(fi->fh);
    }
    return r.ok();
  });
}

// ---- directories ---------------------------------------------------------------------------------

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  serve("opendir", req, [&](Reply& r, Impl& s) {
    {
      auto lk = s.tree.lock();
      auto n = s.node_locked(ino);
      if (!n) return r.error(ENOENT);
      if (n->type() != NodeType::Dir) return r.error(ENOTDIR);
      if (!may_access(*n, r.ctx(), R_OK, s.opt)) return r.error(EACCES);
      const std::uint64_t fh = s.next_fh++;
      s.dirs.emplace(fh, std::make_unique<DirHandle>(std::move(n)));
      ++s.handle_count;
      fi->fh = fh;
      // The kernel may cache listings: every change of a directory the kernel holds drops its
      // cached listing (deliver()) before a write that caused it returns.
      fi->cache_readdir = s.opt.page_cache && !s.closing;
      fi->keep_cache = fi->cache_readdir;
    }
    const int rc = r.open(*fi);
    if (rc != 0) {
      auto lk = s.tree.lock();
      if (s.dirs.erase(fi->fh)) --s.handle_count;
    }
    return rc;
  });
}

void do_readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  serve(plus ? "readdirplus" : "readdir", req, [&](Reply& r, Impl& s) {
    std::vector<char> buf(size);
    std::size_t used = 0;
    std::vector<NodeId> counted; // lookups handed out by this readdirplus reply
    {
      auto lk = s.tree.lock();
      auto it = s.dirs.find(fi->fh);
      if (it == s.dirs.end()) return r.error(EBADF);
      // Nothing more may enter the readdir cache once unmount has begun (see op_read).
      if (s.closing && s.opt.page_cache) return r.error(ENOTCONN);
      DirHandle& h = *it->second;
      const Node& dnode = *h.dir;
      const auto& dir = static_cast<const Dir&>(dnode);

      // Appends one entry; false when the reply buffer is full. A real entry of a
      // readdirplus reply hands its inode out: `child` is referenced (and released again when
      // it does not fit).
      auto add = [&](const char* name, const Node& n, const struct stat& st, off_t next,
                     const std::shared_ptr<Node>* child) {
        std::size_t need;
        if (plus) {
          fuse_entry_param e{};
          if (child) {
            e = s.entry_locked(n, s.inodes.ref(*child));
          } else {
            e.attr = st; // "." and "..": ino 0 tells the kernel not to instantiate them
          }
          need = fuse_add_direntry_plus(r.req(), buf.data() + used, size - used, name, &e, next);
          if (child && need > size - used) s.inodes.forget(n.id(), 1);
        } else {
          need = fuse_add_direntry(r.req(), buf.data() + used, size - used, name, &st, next);
        }
        if (need > size - used) return false;
        used += need;
        if (plus && child) counted.push_back(n.id());
        return true;
      };
      auto dot_stat = [](const Node& n) {
        struct stat st {};
        st.st_ino = n.id();
        st.st_mode = S_IFDIR;
        return st;
      };

      if (off < kDotOffset) {
        if (!add(".", dnode, dot_stat(dnode), kDotOffset, nullptr)) return r.buf(buf.data(), used);
      }
      if (off < kDotDotOffset) {
        const Node& up = dnode.parent() ? *dnode.parent() : dnode; // the root is its own ".."
        if (!add("..", up, dot_stat(up), kDotDotOffset, nullptr))
          return r.buf(buf.data(), used);
      }

      const auto& children = dir.children(); // empty once the directory was removed
      auto start = children.begin();
      if (off < kFirstChildOffset) {
        h.emitted.clear();
      } else {
        // Resume after the name of the entry returned at `off`, wherever it is now: this
        // handle's own entries first (from the end: the kernel continues near its last
        // reply), then the directory (an offset another open handed to the readdir cache).
        const auto id = static_cast<NodeId>(off - kFirstChildOffset);
        std::optional<std::string> last;
        for (auto e = h.emitted.rbegin(); e != h.emitted.rend() && !last; ++e)
          if (e->first == id) last = e->second;
        if (!last)
          for (const auto& c : children)
            if (c->id() == id) {
              last = c->name();
              break;
            }
        if (!last) return r.buf(buf.data(), used); // an entry gone before we saw it: end
        start = std::upper_bound(children.begin(), children.end(), *last,
                                 [](const std::string& key, const std::shared_ptr<Node>& c) {
                                   return key < c->name();
                                 });
      }
      for (auto c = start; c != children.end(); ++c) {
        const Node& child = **c;
        struct stat st {};
        st.st_ino = child.id();
        st.st_mode = child.type() == NodeType::Dir    ? S_IFDIR
                     : child.type() == NodeType::Attr ? S_IFREG
                                                      : S_IFLNK;
        const off_t next = kFirstChildOffset + static_cast<off_t>(child.id());
        if (!add(child.name().c_str(), child, st, next, &*c)) break;
        h.emitted.emplace_back(child.id(), child.name());
      }
    }
    const int rc = r.buf(buf.data(), used);
    if (rc != 0)
      for (NodeId id : counted) s.inodes.forget(id, 1);
    return rc;
  });
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  serve("releasedir", req, [&](Reply& r, Impl& s) {
    {
      auto lk = s.tree.lock();
      if (s.dirs.erase(fi->fh)) --s.handle_count;
    }
    return r.ok();
  });
}

// ---- misc ----------------------------------------------------------------------------------------

void op_statfs(fuse_req_t req, fuse_ino_t) {
  serve("statfs", req, [&](Reply& r, Impl& s) {
    struct statvfs st {};
    st.f_bsize = kernfs::kPageSize;
    st.f_frsize = kernfs::kPageSize;
    st.f_namemax = 255;
    {
      auto lk = s.tree.lock();
      st.f_files = s.tree.node_count();
    }
    return r.statfs(st);
  });
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  serve("access", req, [&](Reply& r, Impl& s) {
    auto lk = s.tree.lock();
    auto n = s.node_locked(ino);
    if (!n) return r.error(ENOENT);
    return r.error(may_access(*n, r.ctx(), mask & (R_OK | W_OK | X_OK), s.opt) ? 0 : EACCES);
  });
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.release = op_release;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.statfs = op_statfs;
  ops.access = op_access;
  ops.create = op_create;
  // flush and fsync stay unimplemented: ENOSYS makes the kernel stop sending them, and close(2)
  // on sysfs has nothing to report.
  return ops;
}();

} // namespace

// ---- Impl::unmount -----------------------------------------------------------------------------------

void FuseServer::Impl::unmount() {
  std::lock_guard g(unmount_mutex);
  if (!mounted.exchange(false)) return;

  // 1. No more changes get queued; writers blocked in a store give up (EINTR), their replies
  //    go out with the last invalidations. No page enters the kernel's cache any more
  //    (`closing`), and the pages of open files are dropped (in step 2, while the loop still
  //    answers the READs that hold pages locked): once the connection is gone, reads of
  //    those files must fail with ENOTCONN instead of being served from the cache.
  {
    auto lk = tree.lock();
    tree.set_change_listener({});
    closing = true;
    std::vector<NodeId> open_inodes;
    for (const auto& [fh, h] : files)
      if (h->cached) open_inodes.push_back(h->file.attr()->id());
    if (opt.page_cache)
      for (const auto& [fh, h] : dirs) open_inodes.push_back(h->dir->id());
    for (NodeId id : open_inodes) {
      Item inval{Item::Kind::InvalInode};
      inval.ino = id;
      enqueue(std::move(inval));
    }
    // A write whose handler has not registered its interrupt callback yet is answered by that
    // handler (the session loop is joined only in step 3).
    std::vector<std::shared_ptr<Completion>> pending;
    for (auto& [req, w] : blocked) pending.push_back(w.completion);
    for (auto& c : pending) c->cancel(EINTR);
  }
  // 2. Drain and stop the invalidation thread while the loop still answers the requests that a
  //    notify may wait for.
  {
    std::lock_guard q(q_mutex);
    stop = true;
  }
  q_cv.notify_all();
  if (notifier.joinable()) notifier.join();
  done_cv.notify_all();

  // 3. End the session loop. fuse_session_loop_mt waits in sem_wait() until a worker has seen
  //    the exit flag, which a worker only checks after a request, so the loop thread is woken
  //    directly: a thread-directed signal with a no-op handler interrupts sem_wait(), the loop
  //    sees the flag, cancels its idle workers (blocked in read(2), a cancellation point) and
  //    returns. Repeated because the signal may land just before sem_wait(). This needs no path
  //    to the mount, so it also works when the mount was detached behind our back while files
  //    stay open. Without the signal, a LOOKUP through the mount point (from a helper thread:
  //    it may stay queued until /dev/fuse is closed below) wakes a worker instead.
  fuse_session_exit(se);
  std::thread waker;
  if (loop_thread.joinable()) {
    if (wake_signal != 0) {
      std::unique_lock lk(loop_mutex);
      while (!loop_done) {
        pthread_kill(loop_thread.native_handle(), wake_signal);
        loop_cv.wait_for(lk, std::chrono::milliseconds(10));
      }
    } else {
      try {
        waker = std::thread([mp = mountpoint] {
          struct stat st;
          (void)::lstat((mp + "/.apemu-unmount-wakeup").c_str(), &st);
        });
      } catch (...) {
        // No thread: the loop can only end by itself now (when the connection goes away).
      }
    }
    loop_thread.join();
  }

  // 4. Close /dev/fuse (aborts the connection: pending requests and still-open files fail with
  //    ENOTCONN) and detach the mount (umount2 with MNT_DETACH, as root; nothing when someone
  //    already unmounted it).
  fuse_session_unmount(se);
  if (waker.joinable()) waker.join();
  fuse_session_destroy(se);
  se = nullptr;

  // 5. The kernel is gone: drop its handles and lookup counts.
  {
    auto lk = tree.lock();
    files.clear();
    dirs.clear();
    handle_count = 0;
  }
  inodes.clear();
}

// ---- FuseServer --------------------------------------------------------------------------------------

FuseServer::FuseServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

FuseServer::~FuseServer() { unmount(); }

void FuseServer::unmount() { m_impl->unmount(); }
bool FuseServer::mounted() const { return m_impl->mounted.load(); }
const std::string& FuseServer::mountpoint() const { return m_impl->mountpoint; }
const Options& FuseServer::options() const { return m_impl->opt; }
int FuseServer::session_fd() const {
  return m_impl->mounted.load() && m_impl->se ? fuse_session_fd(m_impl->se) : -1;
}
void FuseServer::flush_invalidations() { m_impl->flush_invalidations(); }
std::size_t FuseServer::inode_count() const { return m_impl->inodes.size(); }
std::size_t FuseServer::handle_count() const { return m_impl->handle_count.load(); }
std::map<std::string, std::uint64_t> FuseServer::request_counts() const {
  std::map<std::string, std::uint64_t> out;
  for (std::size_t i = 0; i < kOpNames.size(); ++i)
    if (auto n = m_impl->counts[i].load(std::memory_order_relaxed))
      out.emplace(std::string(kOpNames[i]), n);
  return out;
}

Result<std::unique_ptr<FuseServer>> FuseServer::mount(kernfs::Tree& tree,
                                                      const std::string& mountpoint,
                                                      const Options& opt) {
  struct stat st;
  if (::stat(mountpoint.c_str(), &st) != 0) return Error(errno, "mountpoint " + mountpoint);
  if (!S_ISDIR(st.st_mode)) return Error(ENOTDIR, "mountpoint " + mountpoint);
  for (const std::string* o : {&opt.fsname, &opt.subtype})
    if (o->empty() || o->find_first_of(",\\") != std::string::npos)
      return Error(EINVAL, "bad fsname/subtype '" + *o + "'");
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return Error(errno, "/dev/fuse");

  auto impl = std::make_unique<Impl>(tree, mountpoint, opt);
  Impl& s = *impl;

  std::string mount_opts = "fsname=" + opt.fsname + ",subtype=" + opt.subtype;
  if (opt.allow_other) mount_opts += ",allow_other";
  // Also set in op_init (conn->max_read): libfuse 3.14 wants both.
  if (opt.max_read) mount_opts += ",max_read=" + std::to_string(opt.max_read);
  std::vector<std::string> argv_s = {"apemu-fusefs", "-o", mount_opts};
  if (opt.debug) argv_s.emplace_back("-d");
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  s.se = fuse_session_new(&args, &kOps, sizeof(kOps), &s);
  fuse_opt_free_args(&args);
  if (!s.se) return Error(EINVAL, "fuse_session_new rejected -o " + mount_opts);

  errno = 0;
  if (fuse_session_mount(s.se, mountpoint.c_str()) != 0) {
    const int err = errno ? errno : EIO;
    fuse_session_destroy(s.se);
    s.se = nullptr;
    return Error(err, "mounting " + mountpoint);
  }

  {
    auto lk = tree.lock();
    tree.set_change_listener([&s](const Change& c) { s.on_change(c); });
  }
  s.mounted = true;
  try {
    s.notifier = std::thread([&s] {
      pthread_setname_np(pthread_self(), "apemu-fuse-inv");
      s.notifier_main();
    });
    s.wake_signal = wake_signal();
    s.loop_thread = std::thread([&s] {
      if (s.wake_signal != 0) { // the caller may block it (signalfd daemons): we must get it
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, s.wake_signal);
        pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      }
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, s.opt.max_threads ? s.opt.max_threads : 1);
      fuse_loop_cfg_set_clone_fd(cfg, 0);
      pthread_setname_np(pthread_self(), "apemu-fuse"); // inherited by the workers
      (void)fuse_session_loop_mt(s.se, cfg); // ends after fuse_session_exit or unmount
      fuse_loop_cfg_destroy(cfg);
      {
        std::lock_guard g(s.loop_mutex);
        s.loop_done = true;
        s.loop_cv.notify_all();
      }
      // Still "mounted" means unmount() did not end the loop: someone took the mount away.
      if (s.mounted.load() && s.opt.on_lost) s.opt.on_lost();
    });
  } catch (...) {
    s.unmount(); // stops whatever did start (a missing loop thread is skipped)
    return Error(EAGAIN, "cannot start the FUSE threads");
  }
  return std::unique_ptr<FuseServer>(new FuseServer(std::move(impl)));
}

} // namespace apemu::fusefs
