// JSON lines of the control socket (see control_protocol.h).
#include "apemu/testbed/control_protocol.h"

#include <nlohmann/json.hpp>

namespace apemu::testbed {

using nlohmann::json;

namespace {

/// parse without exceptions: a discarded value on any syntax error.
json parse_json(std::string_view line) {
  return json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
}

int errno_by_name(const std::string& name) {
  for (int e = 1; e < 200; ++e)
    if (Errno(e).name() == name) return e;
  return 0;
}

} // namespace

Result<ControlRequest> parse_request(std::string_view line) {
  if (line.size() > kMaxRequestBytes) return Error(EMSGSIZE, "request longer than 64 KiB");
  const json j = parse_json(line);
  if (j.is_discarded() || !j.is_object()) return Error(EINVAL, "request is not a JSON object");
  const auto argv = j.find("argv");
  if (argv == j.end() || !argv->is_array()) return Error(EINVAL, "request without \"argv\" array");
  ControlRequest req;
  for (const auto& a : *argv) {
    if (!a.is_string()) return Error(EINVAL, "\"argv\" holds a non-string");
    req.argv.push_back(a.get<std::string>());
  }
  if (const auto js = j.find("json"); js != j.end()) {
    if (!js->is_boolean()) return Error(EINVAL, "\"json\" is not a boolean");
    req.json = js->get<bool>();
  }
  for (const auto& [key, value] : j.items())
    if (key != "argv" && key != "json") return Error(EINVAL, "unknown request key \"" + key + "\"");
  return req;
}

std::string encode_request(const ControlRequest& req) {
  json j;
  j["argv"] = req.argv;
  j["json"] = req.json;
  // Invalid UTF-8 in an argument is replaced rather than thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string encode_reply(const Result<CommandOutput>& outcome, bool want_json) {
  json j;
  if (outcome) {
    j["ok"] = true;
    j["output"] = outcome->text;
    if (want_json) {
      json result = outcome->json.empty() ? json::object() : parse_json(outcome->json);
      // A verb's JSON is produced by us; a broken one is a bug worth seeing, not hiding.
      if (result.is_discarded()) result = json{{"error", "malformed result"}};
      j["result"] = std::move(result);
    }
  } else {
    const Error& e = outcome.error();
    j["ok"] = false;
    j["errno"] = Errno(e.code).name();
    j["code"] = e.code;
    j["message"] = e.context.empty() ? Errno(e.code).message() : e.context;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ControlReply> parse_reply(std::string_view line) {
  const json j = parse_json(line);
  if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j["ok"].is_boolean())
    return Error(EPROTO, "malformed reply");
  ControlReply r;
  r.raw = std::string(line);
  r.ok = j["ok"].get<bool>();
  if (r.ok) {
    if (const auto o = j.find("output"); o != j.end() && o->is_string()) r.output = o->get<std::string>();
    if (const auto res = j.find("result"); res != j.end()) r.result = res->dump();
    return r;
  }
  const auto name = j.find("errno");
  const auto code = j.find("code");
  if (code != j.end() && code->is_number_integer()) r.code = code->get<int>();
  if (r.code <= 0 && name != j.end() && name->is_string()) r.code = errno_by_name(name->get<std::string>());
  if (r.code <= 0) r.code = EIO;
  if (const auto m = j.find("message"); m != j.end() && m->is_string()) r.message = m->get<std::string>();
  return r;
}

} // namespace apemu::testbed
