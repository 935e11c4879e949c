// Reply: the one-shot answer to a FUSE request (libfuse low-level "valid replies" discipline).
//
// libfuse requires exactly one fuse_reply_* call per request (FORGET and BATCH_FORGET take
// fuse_reply_none); a missing reply hangs the calling process forever, a second reply is a
// use-after-free of the request. Reply owns the fuse_req_t: every method marks it answered and
// asserts that it was not answered before; the destructor asserts that it was. Reply::error is
// the only place where an apemu Error becomes a FUSE errno, so the errno of a failing show() or
// store() reaches read(2)/write(2) unchanged.
//
// Return values: each method returns libfuse's result, 0 or -errno. A non-zero result means the
// kernel did not take the reply (the request was interrupted or the connection is gone); callers
// that counted a lookup or opened a handle for that reply must undo it.
//
// Argument lifetime: the request (and everything libfuse passed with it) is invalid once a
// method returned.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstddef>
#include <string>

#include "apemu/base/assert.h"
#include "apemu/base/result.h"
#include "fuse_api.h"

namespace apemu::fusefs {

class Reply {
public:
  explicit Reply(fuse_req_t req) noexcept : m_req(req) {}
  ~Reply() { APEMU_ASSERT(m_done); } // a request without reply would hang its caller
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;

  bool done() const { return m_done; }
  /// The request will be answered elsewhere, later (a write whose reply waits for invalidations
  /// or for a blocked store). After this, no method may be called; whoever took the request
  /// must answer it exactly once.
  void detach() { mark(); }
  /// Caller credentials (uid, gid, pid, umask). Valid until a reply was sent.
  const fuse_ctx& ctx() const { return *fuse_req_ctx(m_req); }
  fuse_req_t req() const { return m_req; }

  /// The errno of an apemu Error, unchanged (STYLE.md §3: exactly one place converts).
  int error(const Error& e) { return error(e.code); }
  /// fuse_reply_err: a positive errno, or 0 for success of requests without data
  /// (release, releasedir, access, ...).
  int error(int code) {
    mark();
    return fuse_reply_err(m_req, code);
  }
  int ok() { return error(0); }
  /// FORGET / BATCH_FORGET.
  int none() {
    mark();
    fuse_reply_none(m_req);
    return 0;
  }
  int entry(const fuse_entry_param& e) {
    mark();
    return fuse_reply_entry(m_req, &e);
  }
  int create(const fuse_entry_param& e, const fuse_file_info& fi) {
    mark();
    return fuse_reply_create(m_req, &e, &fi);
  }
  int attr(const struct stat& st, double timeout) {
    mark();
    return fuse_reply_attr(m_req, &st, timeout);
  }
  int readlink(const std::string& text) {
    mark();
    return fuse_reply_readlink(m_req, text.c_str());
  }
  int open(const fuse_file_info& fi) {
    mark();
    return fuse_reply_open(m_req, &fi);
  }
  int write(std::size_t count) {
    mark();
    return fuse_reply_write(m_req, count);
  }
  int buf(const char* data, std::size_t size) {
    mark();
    return fuse_reply_buf(m_req, data, size);
  }
  int statfs(const struct statvfs& st) {
    mark();
    return fuse_reply_statfs(m_req, &st);
  }

private:
  void mark() {
    APEMU_ASSERT(!m_done); // a second reply would touch a freed request
    m_done = true;
  }
  fuse_req_t m_req;
  bool m_done = false;
};

} // namespace apemu::fusefs
