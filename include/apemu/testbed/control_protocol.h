// The wire format of the control socket (docs/control.md): one JSON object per line in each
// direction, so that scripts and test frameworks in any language can drive a running instance.
//
//   request:  {"argv": ["card", "config", "1", "off"], "json": false}
//   reply:    {"ok": true, "output": "<text for people>"}                      (json false)
//             {"ok": true, "output": "...", "result": <structured value>}      (json true)
//             {"ok": false, "errno": "EBUSY", "code": 16, "message": "..."}
//
// Parsing never throws and never trusts its input: a malformed line is EINVAL with a reason, a
// line longer than kMaxRequestBytes is EMSGSIZE (the server enforces that before parsing).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "apemu/base/result.h"

namespace apemu::testbed {

/// The largest request line the server accepts (64 KiB; a command line is a few hundred bytes).
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;

struct ControlRequest {
  std::vector<std::string> argv;
  bool json = false; ///< ask for the structured result as well
};

/// What a verb produced: text for people and, for `--json`, the same as a serialized JSON value
/// (empty: the verb has no structured result; the reply then carries `{}`).
struct CommandOutput {
  std::string text;
  std::string json;
};

struct ControlReply {
  bool ok = false;
  std::string output;  ///< text (ok)
  std::string result;  ///< serialized JSON of "result" (ok with json), else ""
  int code = 0;        ///< errno (not ok)
  std::string message; ///< context of the error (not ok)
  std::string raw;     ///< the reply line as received (without the newline)
};

/// One request line (without the newline). Returns: EINVAL for anything but an object with an
/// "argv" array of strings and an optional boolean "json".
Result<ControlRequest> parse_request(std::string_view line);
/// The request as one line, newline included.
std::string encode_request(const ControlRequest& req);

/// The reply line (newline included) for a command's outcome.
std::string encode_reply(const Result<CommandOutput>& outcome, bool json);
/// Parses a reply line. Returns: EPROTO for a malformed reply.
Result<ControlReply> parse_reply(std::string_view line);

} // namespace apemu::testbed
