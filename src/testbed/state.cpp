// Persistent machine state: snapshot, restore, file framing and durable saving (see state.h).
#include "apemu/testbed/state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <utility>
#include <nlohmann/json.hpp>

#include "apemu/ap/ap_mask.h"
#include "apemu/base/parse.h"
#include "apemu/testbed/testbed.h"

namespace apemu::testbed {

using nlohmann::json;

namespace {

constexpr std::string_view kMagic = "apemu-state";
constexpr int kFormat = 1;

std::uint32_t crc32(std::string_view data) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---- snapshot -------------------------------------------------------------------------------------

json adapter_json(const ap::Adapter& a) {
  return json{{"id", id(a.id)},
              {"type", std::string(ap::type_name(a.raw_type))},
              {"mode", std::string(ap::mode_name(a.mode))},
              {"domains", a.domains.hex()},
              {"depth", a.depth},
              {"ml", a.ml},
              {"serialnr", a.serialnr},
              {"configured", a.configured},
              {"chkstop", a.chkstop}};
}

} // namespace

std::string state_snapshot(Testbed& tb) {
  tb.core().held();
  json j;
  j["kernel"] = std::string(tb.core().profile().name);
  if (ap::ApHardware* hw = tb.hw()) {
    const ap::Qci& q = hw->qci();
    json adapters = json::array();
    for (const auto& [apid, a] : hw->adapters()) adapters.push_back(adapter_json(a));
    j["hardware"] = {{"qci", q.available},     {"apsc", q.apsc}, {"apxa", q.apxa},
                     {"qact", q.qact},         {"rc8a", q.rc8a}, {"apsb", q.apsb},
                     {"na", q.na},             {"nd", q.nd},     {"aqm", q.aqm.hex()},
                     {"adm", q.adm.hex()},     {"interrupts", hw->interrupts()},
                     {"adapters", adapters}};
  }
  if (ap::ApBus* bus = tb.ap_bus()) {
    j["bus"] = {{"apmask", bus->apmask().hex()},
                {"aqmask", bus->aqmask().hex()},
                {"ap_domain", bus->ap_domain()},
                {"config_time", bus->knobs().config_time},
                {"poll_thread", bus->knobs().poll_thread},
                {"poll_timeout", bus->knobs().poll_timeout}};
    json offline_cards = json::array(), offline_queues = json::array(),
         overrides = json::array();
    for (ap::ApCard* c : bus->cards()) {
      const bool zcrypt = c->driver() && ap::ApBus::ops_of(*c->driver()).default_driver;
      if (zcrypt && !c->soft_online()) offline_cards.push_back(id(c->id()));
      for (unsigned d = 0; d < kMaxApIds; ++d) {
        ap::ApQueue* q = c->queue(to_apqi(d));
        if (!q) continue;
        const bool zq = q->driver() && ap::ApBus::ops_of(*q->driver()).default_driver;
        if (zq && !q->soft_online()) offline_queues.push_back(q->name());
        if (const std::string* o = q->driver_override())
          overrides.push_back({{"queue", q->name()},
                               {"override", *o},
                               {"driver", q->driver() ? q->driver()->name() : std::string()}});
      }
    }
    j["offline_cards"] = offline_cards;
    j["offline_queues"] = offline_queues;
    j["overrides"] = overrides;
  }
  if (vfio_ap::VfioAp* v = tb.vfio_ap()) {
    json mdevs = json::array();
    auto list = v->mdevs();
    for (auto it = list.rbegin(); it != list.rend(); ++it) { // creation order
      const vfio_ap::MatrixMdev& m = **it;
      mdevs.push_back({{"uuid", m.name()},
                       {"type", m.mdev().type().dir_name()},
                       {"apm", m.matrix().apm.hex()},
                       {"aqm", m.matrix().aqm.hex()},
                       {"adm", m.matrix().adm.hex()}});
    }
    j["mdevs"] = mdevs;
  }
  return j.dump(1);
}

// ---- restore ---------------------------------------------------------------------------------------

namespace {

/// Reading a payload: every failure names the file and the JSON path of the value.
struct Reader {
  const std::string& source;
  Error bad(const std::string& path, const std::string& why) const {
    return Error(EINVAL, source + ": " + path + ": " + why);
  }
  template <class T> Result<T> get(const json& j, const std::string& key, const std::string& at) const {
    auto it = j.find(key);
    if (it == j.end()) return bad(at + "/" + key, "missing");
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // Integers only, in T's range: nlohmann would convert 1e300 or -1 without a word.
      if (!it->is_number_integer()) return bad(at + "/" + key, "wrong type");
      const bool fits = it->is_number_unsigned()
                            ? it->template get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<T>::max())
                            : std::in_range<T>(it->template get<std::int64_t>());
      if (!fits) return bad(at + "/" + key, "out of range");
      return it->template get<T>();
    }
    try {
      return it->get<T>();
    } catch (const json::exception&) {
      return bad(at + "/" + key, "wrong type");
    }
  }
  template <class Id> Result<IdMask<Id>> mask(const json& j, const std::string& key, const std::string& at) const {
    APEMU_TRY(std::string s, get<std::string>(j, key, at));
    auto m = ap::hex2bitmap<Id>(s);
    if (!m) return bad(at + "/" + key, "not a mask");
    return *m;
  }
  /// A restore step that failed with an errno.
  static Error step(const std::string& source, const std::string& what, const Error& e) {
    return Error(e.code, source + ": restoring " + what + ": " +
                             (e.context.empty() ? Errno(e.code).message() : e.context));
  }
};

Result<void> restore_hardware(Testbed& tb, const Reader& r, const json& h) {
  ap::ApHardware& hw = *tb.hw();
  ap::Qci q;
  APEMU_TRY(q.available, r.get<bool>(h, "qci", "/hardware"));
  APEMU_TRY(q.apsc, r.get<bool>(h, "apsc", "/hardware"));
  APEMU_TRY(q.apxa, r.get<bool>(h, "apxa", "/hardware"));
  APEMU_TRY(q.qact, r.get<bool>(h, "qact", "/hardware"));
  APEMU_TRY(q.rc8a, r.get<bool>(h, "rc8a", "/hardware"));
  APEMU_TRY(q.apsb, r.get<bool>(h, "apsb", "/hardware"));
  APEMU_TRY(q.na, r.get<unsigned>(h, "na", "/hardware"));
  APEMU_TRY(q.nd, r.get<unsigned>(h, "nd", "/hardware"));
  if (q.na > 255 || q.nd > 255) return r.bad("/hardware/na", "above 255");
  APEMU_TRY(q.aqm, r.mask<Apqi>(h, "aqm", "/hardware"));
  APEMU_TRY(q.adm, r.mask<Apqi>(h, "adm", "/hardware"));
  APEMU_TRY(bool irq, r.get<bool>(h, "interrupts", "/hardware"));
  auto ads = h.find("adapters");
  if (ads == h.end() || !ads->is_array()) return r.bad("/hardware/adapters", "missing");
  std::vector<ap::Adapter> adapters;
  for (std::size_t i = 0; i < ads->size(); ++i) {
    const json& a = (*ads)[i];
    const std::string at = "/hardware/adapters/" + std::to_string(i);
    if (!a.is_object()) return r.bad(at, "not an object");
    ap::Adapter ad;
    APEMU_TRY(unsigned idn, r.get<unsigned>(a, "id", at));
    if (idn > q.na) return r.bad(at + "/id", "above na");
    ad.id = to_apid(idn);
    APEMU_TRY(std::string type, r.get<std::string>(a, "type", at));
    auto t = ap::parse_type_name(type);
    if (!t) return r.bad(at + "/type", "unknown adapter type");
    ad.raw_type = *t;
    APEMU_TRY(std::string mode, r.get<std::string>(a, "mode", at));
    auto md = ap::parse_mode_name(mode);
    if (!md) return r.bad(at + "/mode", "unknown mode");
    ad.mode = *md;
    APEMU_TRY(ad.domains, r.mask<Apqi>(a, "domains", at));
    APEMU_TRY(ad.depth, r.get<int>(a, "depth", at));
    APEMU_TRY(ad.ml, r.get<int>(a, "ml", at));
    APEMU_TRY(ad.serialnr, r.get<std::string>(a, "serialnr", at));
    APEMU_TRY(ad.configured, r.get<bool>(a, "configured", at));
    APEMU_TRY(ad.chkstop, r.get<bool>(a, "chkstop", at));
    if (ad.depth < 1 || ad.depth > 16 || ad.ml < 0 || ad.ml > 15)
      return r.bad(at, "depth or ml out of range");
    adapters.push_back(std::move(ad));
  }
  // The whole firmware view is replaced, then one scan brings the devices in line.
  std::vector<Apid> present;
  for (const auto& [apid, a] : hw.adapters()) present.push_back(apid);
  for (Apid a : present) (void)hw.remove_adapter(a);
  hw.qci() = q;
  hw.set_interrupts(irq);
  for (auto& ad : adapters) {
    const std::string what = "adapter " + std::to_string(id(ad.id));
    if (auto res = hw.add_adapter(std::move(ad)); !res) return Reader::step(r.source, what, res.error());
  }
  tb.ap_bus()->scan();
  return {};
}

Result<void> restore_bus(Testbed& tb, const Reader& r, const json& j) {
  ap::ApBus& bus = *tb.ap_bus();
  const json& b = j.at("bus");
  APEMU_TRY(int domain, r.get<int>(b, "ap_domain", "/bus"));
  APEMU_TRY(int config_time, r.get<int>(b, "config_time", "/bus"));
  APEMU_TRY(bool poll_thread, r.get<bool>(b, "poll_thread", "/bus"));
  APEMU_TRY(std::uint64_t poll_timeout, r.get<std::uint64_t>(b, "poll_timeout", "/bus"));
  if (config_time < 5 || config_time > 120) return r.bad("/bus/config_time", "out of range");
  bus.set_config_time(config_time);
  bus.knobs().poll_thread = poll_thread;
  bus.knobs().poll_timeout = poll_timeout;
  if (domain >= 0)
    if (auto res = bus.set_ap_domain(domain); !res) return Reader::step(r.source, "ap_domain", res.error());
  // Overrides (6.19) exclude non-default masks: they are set while the masks are all ones.
  for (std::size_t i = 0; i < j.at("overrides").size(); ++i) {
    const json& o = j.at("overrides")[i];
    const std::string at = "/overrides/" + std::to_string(i);
    if (!o.is_object()) return r.bad(at, "not an object");
    APEMU_TRY(std::string qname, r.get<std::string>(o, "queue", at));
    APEMU_TRY(std::string ov, r.get<std::string>(o, "override", at));
    APEMU_TRY(std::string drv, r.get<std::string>(o, "driver", at));
    core::Ref<core::Device> dev = tb.core().bus_find_device_by_name(bus.bus(), qname);
    if (!dev || dev->devtype() != "ap_queue") return r.bad(at + "/queue", "no such queue");
    auto& q = static_cast<ap::ApQueue&>(*dev);
    if (auto res = bus.set_queue_override(q, ov); !res)
      return Reader::step(r.source, "driver_override of " + qname, res.error());
    const std::string now = q.driver() ? q.driver()->name() : std::string();
    if (now != drv) { // the queue was rebound after the override was set
      tb.core().device_release_driver(q);
      if (!drv.empty()) (void)tb.core().device_attach(q);
    }
  }
  APEMU_TRY(ApidMask apmask, r.mask<Apid>(b, "apmask", "/bus"));
  APEMU_TRY(ApqiMask aqmask, r.mask<Apqi>(b, "aqmask", "/bus"));
  if (!(apmask == bus.apmask()))
    if (auto res = bus.store_apmask(apmask.hex()); !res) return Reader::step(r.source, "apmask", res.error());
  if (!(aqmask == bus.aqmask()))
    if (auto res = bus.store_aqmask(aqmask.hex()); !res) return Reader::step(r.source, "aqmask", res.error());
  // zcrypt's soft-offline flags.
  for (const auto& c : j.at("offline_cards")) {
    if (!c.is_number_unsigned() || c.get<std::uint64_t>() > 255) return r.bad("/offline_cards", "not an id");
    if (ap::ApCard* card = bus.card(to_apid(static_cast<unsigned>(c.get<std::uint64_t>()))))
      if (auto res = ap::Zcrypt::set_card_online(*card, false); !res)
        return Reader::step(r.source, "card online", res.error());
  }
  for (const auto& qn : j.at("offline_queues")) {
    if (!qn.is_string()) return r.bad("/offline_queues", "not a queue name");
    core::Ref<core::Device> dev = tb.core().bus_find_device_by_name(bus.bus(), qn.get<std::string>());
    if (dev && dev->devtype() == "ap_queue")
      if (auto res = ap::Zcrypt::set_queue_online(static_cast<ap::ApQueue&>(*dev), false); !res)
        return Reader::step(r.source, "queue online", res.error());
  }
  return {};
}

Result<void> restore_mdevs(Testbed& tb, const Reader& r, const json& mdevs) {
  vfio_ap::VfioAp& v = *tb.vfio_ap();
  for (std::size_t i = 0; i < mdevs.size(); ++i) {
    const json& m = mdevs[i];
    const std::string at = "/mdevs/" + std::to_string(i);
    if (!m.is_object()) return r.bad(at, "not an object");
    APEMU_TRY(std::string uuid, r.get<std::string>(m, "uuid", at));
    APEMU_TRY(std::string type, r.get<std::string>(m, "type", at));
    if (type != v.mdev_type().dir_name()) return r.bad(at + "/type", "unknown mdev type");
    APEMU_TRY(ApidMask apm, r.mask<Apid>(m, "apm", at));
    APEMU_TRY(ApqiMask aqm, r.mask<Apqi>(m, "aqm", at));
    APEMU_TRY(ApqiMask adm, r.mask<Apqi>(m, "adm", at));
    auto made = v.create_mdev(uuid);
    if (!made) return Reader::step(r.source, "mdev " + uuid, made.error());
    vfio_ap::MatrixMdev& md = **made;
    // The assignment as the attributes make it, so every rule of the profile applies again.
    Result<void> res;
    apm.for_each([&](Apid a) {
      if (res) res = v.assign_adapter(md, std::to_string(id(a)));
    });
    aqm.for_each([&](Apqi d) {
      if (res) res = v.assign_domain(md, std::to_string(id(d)));
    });
    adm.for_each([&](Apqi d) {
      if (res) res = v.assign_control_domain(md, std::to_string(id(d)));
    });
    if (!res) return Reader::step(r.source, "the assignment of mdev " + uuid, res.error());
  }
  return {};
}

} // namespace

Result<void> state_restore(Testbed& tb, std::string_view payload, const std::string& source) {
  tb.core().held();
  const json j = json::parse(payload, nullptr, false);
  Reader r{source};
  if (j.is_discarded() || !j.is_object()) return r.bad("/", "not a JSON object");
  APEMU_TRY(std::string kernel, r.get<std::string>(j, "kernel", ""));
  if (kernel != tb.core().profile().name)
    return r.bad("/kernel", "saved with --kernel " + kernel + ", not " +
                                std::string(tb.core().profile().name));
  // The kind of every container is checked here, so the steps below never meet a JSON type
  // they do not expect (found by fuzz/state_file_fuzz.cpp: `"overrides": "x"` threw).
  for (const char* key : {"hardware", "bus"})
    if (tb.ap_bus() && (!j.contains(key) || !j.at(key).is_object()))
      return r.bad(std::string("/") + key, "missing or not an object");
  for (const char* key : {"offline_cards", "offline_queues", "overrides"})
    if (tb.ap_bus() && (!j.contains(key) || !j.at(key).is_array()))
      return r.bad(std::string("/") + key, "missing or not an array");
  if (tb.ap_bus()) {
    APEMU_TRY_VOID(restore_hardware(tb, r, j.at("hardware")));
    APEMU_TRY_VOID(restore_bus(tb, r, j));
  }
  if (tb.vfio_ap()) {
    if (!j.contains("mdevs") || !j.at("mdevs").is_array()) return r.bad("/mdevs", "missing");
    APEMU_TRY_VOID(restore_mdevs(tb, r, j.at("mdevs")));
  }
  return {};
}

// ---- framing ----------------------------------------------------------------------------------------

std::string state_encode(std::string_view payload) {
  char head[96];
  std::snprintf(head, sizeof head, "%s %d %zu %08x\n", std::string(kMagic).c_str(), kFormat,
                payload.size(), crc32(payload));
  return head + std::string(payload);
}

Result<std::string> state_decode(std::string_view file, const std::string& source) {
  auto bad = [&](std::size_t off, const std::string& why) {
    return Error(EINVAL, source + ": offset " + std::to_string(off) + ": " + why);
  };
  const auto nl = file.find('\n');
  if (nl == std::string_view::npos) return bad(file.size(), "torn: the header line is incomplete");
  const std::string head(file.substr(0, nl));
  char magic[32] = {};
  int format = 0;
  unsigned long long size = 0;
  unsigned crc = 0;
  int used = 0;
  if (std::sscanf(head.c_str(), "%31s %d %llu %8x%n", magic, &format, &size, &crc, &used) != 4 ||
      std::string_view(magic) != kMagic || static_cast<std::size_t>(used) != head.size())
    return bad(0, "not an apemu state file header");
  if (format != kFormat) return bad(0, "state format " + std::to_string(format) + " is not 1");
  const std::string_view payload = file.substr(nl + 1);
  if (payload.size() < size)
    return bad(file.size(), "torn: the header announces " + std::to_string(size) +
                                " payload bytes, the file ends after " +
                                std::to_string(payload.size()));
  if (payload.size() > size) return bad(nl + 1 + size, "unexpected bytes after the payload");
  if (crc32(payload) != crc) return bad(nl + 1, "checksum mismatch: the payload is corrupt");
  try {
    const json parsed = json::parse(payload);
    if (!parsed.is_object()) return bad(nl + 1, "the payload is not a JSON object");
  } catch (const json::parse_error& e) {
    return bad(nl + 1 + (e.byte > 0 ? e.byte - 1 : 0), "JSON syntax error");
  }
  return std::string(payload);
}

// ---- the directory ------------------------------------------------------------------------------------

Result<StateDir> StateDir::open(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Error(errno, "state directory " + dir);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Error(errno, "state directory " + dir);
  if (!S_ISDIR(st.st_mode)) return Error(ENOTDIR, "state directory " + dir);
  StateDir d;
  d.m_dir = dir;
  d.m_file = dir + "/state";
  return d;
}

Result<std::optional<std::string>> StateDir::load() const {
  const int fd = ::open(m_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Error(errno, m_file);
  }
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Error(e, m_file);
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  APEMU_TRY(std::string payload, state_decode(data, m_file));
  const_cast<StateDir*>(this)->m_last = payload;
  return std::optional<std::string>(std::move(payload));
}

Result<void> StateDir::save(const std::string& payload) {
  if (payload == m_last) return {};
  const std::string tmp = m_file + ".tmp";
  const std::string data = state_encode(payload);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Error(errno, tmp);
  auto fail = [&](int e) -> Result<void> {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Error(e, tmp);
  };
  for (std::size_t off = 0; off < data.size();) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno);
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(errno);
  ::close(fd);
  if (::rename(tmp.c_str(), m_file.c_str()) != 0) return Error(errno, m_file);
  // The rename itself must survive a crash too.
  const int dfd = ::open(m_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    if (rc != 0) return Error(e, m_dir);
  }
  m_last = payload;
  return {};
}

} // namespace apemu::testbed
