// `apemu record` (see record.h): sysfs in, topology TOML out. Every value comes from a file a
// real /sys has (ap-bus.md §2.1, §4; vfio-ap.md §3; ap-bus.md §8.1), read as tools read them:
// the first line, or the whole text for the multi-line vfio_ap attributes.
#include "apemu/testbed/record.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "apemu/ap/ap_hw.h"
#include "apemu/ap/ap_mask.h"
#include "apemu/base/parse.h"

namespace apemu::testbed {

namespace {

namespace fs = std::filesystem;

/// A sysfs directory being read; every error names the file.
struct Sysfs {
  std::string root;

  std::string path(const std::string& rel) const { return root + "/" + rel; }

  /// The whole text of a file; nullopt when it does not exist.
  Result<std::optional<std::string>> text(const std::string& rel) const {
    const std::string p = path(rel);
    std::ifstream in(p);
    if (!in) {
      const int e = errno;
      if (e == ENOENT || e == ENOTDIR) return std::optional<std::string>();
      return Error(e ? e : EIO, p);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return Error(EIO, p);
    return std::optional<std::string>(ss.str());
  }
  /// The first line without its newline; nullopt when the file does not exist.
  Result<std::optional<std::string>> line(const std::string& rel) const {
    APEMU_TRY(auto t, text(rel));
    if (!t) return t;
    return std::optional<std::string>(t->substr(0, t->find('\n')));
  }
  /// A decimal or 0x-prefixed number; nullopt when the file does not exist.
  Result<std::optional<long long>> number(const std::string& rel, int base = 0) const {
    APEMU_TRY(auto l, line(rel));
    if (!l) return std::optional<long long>();
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(l->c_str(), &end, base);
    if (errno || end == l->c_str() || *end)
      return Error(EINVAL, path(rel) + ": not a number: '" + *l + "'");
    return std::optional<long long>(v);
  }
  template <class Id> Result<std::optional<IdMask<Id>>> mask(const std::string& rel) const {
    APEMU_TRY(auto l, line(rel));
    if (!l || *l == "not supported") return std::optional<IdMask<Id>>();
    auto m = ap::hex2bitmap<Id>(*l);
    if (!m) return Error(EINVAL, path(rel) + ": not a mask: '" + *l + "'");
    return std::optional<IdMask<Id>>(*m);
  }
  /// Entry names of a directory, sorted; empty when it does not exist.
  std::vector<std::string> list(const std::string& rel) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path(rel), ec))
      out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string link_basename(const std::string& rel) const {
    std::error_code ec;
    const fs::path t = fs::read_symlink(path(rel), ec);
    return ec ? std::string() : t.filename().string();
  }
};

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// An id list as topologies write it: "4-7,16", or [] when empty.
template <class Id> std::string id_list(const IdMask<Id>& m) {
  return m.none() ? "[]" : toml_string(m.list());
}

bool is_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c));
  });
}

/// The matrix attribute (vfio-ap.md §3.6): "aa.dddd", "aa." (no domains) or ".dddd" (no
/// adapters) per line.
void parse_matrix(const std::string& text, ApidMask& apm, ApqiMask& aqm) {
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    const auto dot = l.find('.');
    if (dot == std::string::npos) continue;
    const std::string a = l.substr(0, dot), d = l.substr(dot + 1);
    if (is_hex(a)) apm.set(to_apid(static_cast<unsigned>(std::stoul(a, nullptr, 16))));
    if (is_hex(d)) aqm.set(to_apqi(static_cast<unsigned>(std::stoul(d, nullptr, 16))));
  }
}

struct Card {
  unsigned id = 0;
  std::string body;
};

Result<std::string> record_adapter(const Sysfs& s, const std::string& card_dir,
                                   const profile::KernelProfile& profile, ApqiMask& queue_domains) {
  const std::string d = "devices/ap/" + card_dir;
  const unsigned apid = static_cast<unsigned>(std::stoul(card_dir.substr(4), nullptr, 16));
  std::string out = "\n[[adapter]]\n";
  char b[32];
  std::snprintf(b, sizeof b, "0x%02x", apid);
  out += "id = " + std::string(b) + "\n";
  APEMU_TRY(auto raw, s.number(d + "/raw_hwtype"));
  if (!raw) return Error(EINVAL, s.path(d) + ": no raw_hwtype");
  out += "type = " + toml_string(std::string(ap::type_name(static_cast<int>(*raw)))) + "\n";
  APEMU_TRY(auto fn, s.number(d + "/ap_functions", 16));
  const auto f = static_cast<std::uint32_t>(fn.value_or(0));
  // The kernel's order (ap-bus.md §3.2): accelerator, CCA, EP11.
  const char* mode = f & ap::fac::kAccel  ? "accel"
                     : f & ap::fac::kCca  ? "cca"
                     : f & ap::fac::kEp11 ? "ep11"
                                          : nullptr;
  if (mode && *raw >= ap::kApTypeCex4) out += "mode = \"" + std::string(mode) + "\"\n";
  // `depth` is qd, or qd + 1 where the profile says so (ap-bus.md §4.1); topologies give slots.
  APEMU_TRY(auto depth, s.number(d + "/depth"));
  if (depth)
    out += "depth = " + std::to_string(*depth + (profile.ap_card_depth_qd_plus_one ? 0 : 1)) + "\n";
  // max_msg_size: ml × 4096, or 12288 whatever a small ml (≤ 3 or 0) was: the same tree.
  APEMU_TRY(auto mms, s.number(d + "/max_msg_size"));
  if (mms && *mms != 12288) out += "max_msg_units = " + std::to_string(*mms / 4096) + "\n";
  APEMU_TRY(auto serial, s.line(d + "/serialnr"));
  if (serial) {
    const auto first = serial->find_first_not_of(' ');
    if (first != std::string::npos)
      out += "serialnr = " + toml_string(serial->substr(first)) + "\n";
  }
  APEMU_TRY(auto config, s.number(d + "/config"));
  APEMU_TRY(auto chkstop, s.number(d + "/chkstop"));
  const bool cfg = !config || *config != 0, cs = chkstop && *chkstop != 0;
  if (!cfg) out += "config = false\n";
  if (cs) out += "chkstop = true\n";
  // The zcrypt online flags: online also needs config and no checkstop, so a 0 only says
  // "soft offline" when the card is usable (ap-bus.md §7).
  APEMU_TRY(auto online, s.number(d + "/online"));
  const bool card_soft_offline = cfg && !cs && online && *online == 0;
  if (card_soft_offline) out += "online = false\n";
  ApqiMask domains, offline, uninitiated, error;
  for (const auto& q : s.list(d)) {
    if (q.size() != 7 || q[2] != '.' || !is_hex(q.substr(0, 2)) || !is_hex(q.substr(3))) continue;
    const Apqi dom = to_apqi(static_cast<unsigned>(std::stoul(q.substr(3), nullptr, 16)));
    const std::string qd = d + "/" + q;
    domains.set(dom);
    APEMU_TRY(auto qon, s.number(qd + "/online"));
    if (cfg && !cs && online && *online == 1 && qon && *qon == 0) offline.set(dom);
    // The queue's state as its files show it (ap-bus.md §4.2, §5.2): a pending reset is a
    // queue a driver released (UNINITIATED); a deconfigured or checkstopped queue without one
    // was reset before (ERROR). Anything else is what a boot gives.
    APEMU_TRY(auto reset, s.line(qd + "/reset"));
    APEMU_TRY(auto qcfg, s.number(qd + "/config"));
    APEMU_TRY(auto qcs, s.number(qd + "/chkstop"));
    const bool usable = (!qcfg || *qcfg != 0) && (!qcs || *qcs == 0);
    if (reset && *reset == "Reset in progress.")
      uninitiated.set(dom);
    else if (reset && !usable)
      error.set(dom);
  }
  queue_domains = queue_domains | domains;
  out += "domains = " + id_list(domains) + "\n";
  if (offline.any()) out += "offline_domains = " + id_list(offline) + "\n";
  if (uninitiated.any()) out += "uninitiated_domains = " + id_list(uninitiated) + "\n";
  if (error.any()) out += "error_domains = " + id_list(error) + "\n";
  return out;
}

Result<std::string> record_mdevs(const Sysfs& s, const profile::KernelProfile& profile) {
  struct Mdev {
    long long group = LLONG_MAX;
    std::string uuid, body;
  };
  std::vector<Mdev> mdevs;
  const std::string m = "devices/vfio_ap/matrix";
  for (const auto& name : s.list(m)) {
    if (!is_uuid(name)) continue;
    const std::string d = m + "/" + name;
    Mdev md;
    md.uuid = name;
    const std::string group = s.link_basename(d + "/iommu_group");
    if (!group.empty() && std::all_of(group.begin(), group.end(), ::isdigit))
      md.group = std::stoll(group);
    ApidMask apm;
    ApqiMask aqm, adm;
    APEMU_TRY(auto cfg, s.line(d + "/ap_config"));
    if (cfg && profile.vfio_ap_ap_config) {
      // "apm,aqm,adm" (vfio-ap.md §3.8).
      std::istringstream in(*cfg);
      std::string a, q, c;
      std::getline(in, a, ',');
      std::getline(in, q, ',');
      std::getline(in, c, ',');
      auto pa = ap::hex2bitmap<Apid>(a);
      auto pq = ap::hex2bitmap<Apqi>(q);
      auto pc = ap::hex2bitmap<Apqi>(c);
      if (!pa || !pq || !pc) return Error(EINVAL, s.path(d + "/ap_config") + ": not three masks");
      apm = *pa, aqm = *pq, adm = *pc;
    } else {
      APEMU_TRY(auto matrix, s.text(d + "/matrix"));
      if (matrix) parse_matrix(*matrix, apm, aqm);
      APEMU_TRY(auto ctrl, s.text(d + "/control_domains"));
      if (ctrl) {
        std::istringstream in(*ctrl);
        std::string l;
        while (std::getline(in, l))
          if (is_hex(l)) adm.set(to_apqi(static_cast<unsigned>(std::stoul(l, nullptr, 16))));
      }
    }
    md.body = "\n[[mdev]]\nuuid = " + toml_string(name) +
              "\ntype = " + toml_string(s.link_basename(d + "/mdev_type")) +
              "\nadapters = " + id_list(apm) + "\ndomains = " + id_list(aqm) +
              "\ncontrol_domains = " + id_list(adm) + "\n";
    mdevs.push_back(std::move(md));
  }
  // Creation order decides the IOMMU group numbers (the lowest free one each time).
  std::stable_sort(mdevs.begin(), mdevs.end(),
                   [](const Mdev& a, const Mdev& b) { return a.group < b.group; });
  std::string out;
  for (const auto& md : mdevs)
    out += md.body;
  return out;
}

Result<std::string> record_zcrypt_nodes(const Sysfs& s) {
  std::vector<std::pair<long long, std::string>> nodes;
  for (const auto& name : s.list("class/zcrypt")) {
    if (name == "create" || name == "destroy") continue;
    const std::string d = "class/zcrypt/" + name;
    APEMU_TRY(auto dev, s.line(d + "/dev"));
    if (!dev) continue;
    const auto colon = dev->find(':');
    const long long minor = colon == std::string::npos ? 0 : std::atoll(dev->c_str() + colon + 1);
    std::string body = "\n[[zcrypt_node]]\nname = " + toml_string(name) + "\n";
    for (const char* m : {"apmask", "aqmask", "admask", "ioctlmask"}) {
      APEMU_TRY(auto v, s.line(d + "/" + m));
      if (v) body += std::string(m) + " = " + toml_string(*v) + "\n";
    }
    nodes.emplace_back(minor, std::move(body));
  }
  // The lowest free minor each time: creating them in minor order keeps the numbers.
  std::stable_sort(nodes.begin(), nodes.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (const auto& n : nodes)
    out += n.second;
  return out;
}

} // namespace

Result<std::string> record_topology(const std::string& sysfs_root,
                                    const profile::KernelProfile& profile) {
  const Sysfs s{sysfs_root};
  std::error_code ec;
  if (!fs::is_directory(s.path("bus/ap"), ec))
    return Error(ENODEV, s.path("bus/ap") + ": no AP bus");
  std::string out = "# Recorded by `apemu record` from " + sysfs_root + " (kernel profile " +
                    std::string(profile.name) + "; boot with --kernel " +
                    std::string(profile.name) + ").\n";
  APEMU_TRY(auto aqm, s.mask<Apqi>("bus/ap/ap_usage_domain_mask"));
  APEMU_TRY(auto adm, s.mask<Apqi>("bus/ap/ap_control_domain_mask"));
  APEMU_TRY(auto na, s.number("bus/ap/ap_max_adapter_id"));
  APEMU_TRY(auto nd, s.number("bus/ap/ap_max_domain_id"));
  APEMU_TRY(auto features, s.line("bus/ap/features"));
  const bool qci = aqm.has_value();
  out += std::string("qci = ") + (qci ? "true" : "false") + "\n";
  if (qci) {
    const bool apxa = features ? features->find("APXA") != std::string::npos
                               : na.value_or(63) > 63 || nd.value_or(15) > 15;
    out += std::string("apxa = ") + (apxa ? "true" : "false") + "\n";
    if (apxa) {
      out += "max_adapter_id = " + std::to_string(na.value_or(63)) + "\n";
      out += "max_domain_id = " + std::to_string(nd.value_or(15)) + "\n";
    }
  }
  // Adapters first: without QCI the usage domains are only known from the queues.
  ApqiMask queue_domains;
  std::string adapters;
  for (const auto& c : s.list("devices/ap")) {
    if (c.size() != 6 || c.rfind("card", 0) != 0 || !is_hex(c.substr(4))) continue;
    APEMU_TRY(std::string a, record_adapter(s, c, profile, queue_domains));
    adapters += a;
  }
  const ApqiMask usage = qci ? *aqm : queue_domains;
  out += "usage_domains = " + id_list(usage) + "\n";
  if (qci) out += "control_domains = " + id_list(*adm) + "\n";
  APEMU_TRY(auto dom, s.number("bus/ap/ap_domain"));
  if (dom && *dom >= 0 && *dom <= 255 && usage.test(to_apqi(static_cast<unsigned>(*dom))))
    out += "default_domain = " + std::to_string(*dom) + "\n";
  APEMU_TRY(auto irq, s.number("bus/ap/ap_interrupts"));
  if (irq) out += std::string("interrupts = ") + (*irq ? "true" : "false") + "\n";
  APEMU_TRY(auto apmask, s.mask<Apid>("bus/ap/apmask"));
  APEMU_TRY(auto aqmask, s.mask<Apqi>("bus/ap/aqmask"));
  if (apmask && !apmask->all_set()) out += "apmask = " + toml_string(apmask->hex()) + "\n";
  if (aqmask && !aqmask->all_set()) out += "aqmask = " + toml_string(aqmask->hex()) + "\n";
  APEMU_TRY(auto ct, s.number("bus/ap/config_time"));
  if (ct) out += "config_time = " + std::to_string(*ct) + "\n";
  APEMU_TRY(auto pt, s.number("bus/ap/poll_thread"));
  if (pt) out += std::string("poll_thread = ") + (*pt ? "true" : "false") + "\n";
  APEMU_TRY(auto po, s.number("bus/ap/poll_timeout"));
  if (po) out += "poll_timeout = " + std::to_string(*po) + "\n";
  out += adapters;
  APEMU_TRY(std::string mdevs, record_mdevs(s, profile));
  out += mdevs;
  APEMU_TRY(std::string nodes, record_zcrypt_nodes(s));
  out += nodes;
  return out;
}

} // namespace apemu::testbed
