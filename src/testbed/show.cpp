// `apemu show` rendering.
#include "apemu/testbed/show.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "apemu/ap/zcrypt.h"
#include "apemu/kernfs/tree.h"

namespace apemu::testbed {

namespace {

struct Row {
  std::string id, type, mode, status, requests, driver;
};

std::string pad(const std::string& s, std::size_t w, bool right = false) {
  if (s.size() >= w) return s;
  return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

std::string mode_text(const ap::ApCard& c) {
  // lszcrypt's MODE column: D → CCA-Coproc, A → Accelerator, X → EP11-Coproc.
  const auto f = c.functions();
  if (f & ap::fac::kCca) return "CCA-Coproc";
  if (f & ap::fac::kAccel) return "Accelerator";
  if (f & ap::fac::kEp11) return "EP11-Coproc";
  return "Unknown";
}

template <class D> std::string status_of(const D& d, bool has_online, bool online) {
  if (!d.config()) return "deconfig";
  if (d.chkstop()) return "chkstop";
  if (!has_online) return "-";
  return online ? "online" : "offline";
}

const char* kReset = "\033[0m";

} // namespace

std::string render_show(Testbed& tb, const ShowOptions& opt) {
  tb.core().held();
  ap::ApBus* bus = tb.ap_bus();
  if (!bus) return "no AP bus (no topology loaded)\n";
  std::string out;
  if (opt.table) {
    std::vector<Row> rows;
    for (ap::ApCard* c : bus->cards()) {
      const bool zc = c->driver() && ap::ApBus::ops_of(*c->driver()).default_driver;
      const std::string type = zc ? ap::zcrypt_type_name(*c) : "-";
      rows.push_back({c->name().substr(4), type, mode_text(*c), status_of(*c, zc, c->online()),
                      c->config() ? std::to_string(c->request_count()) : "-",
                      c->driver() ? c->driver()->name() : "-no-driver-"});
      for (unsigned d = 0; d < kMaxApIds; ++d) {
        ap::ApQueue* q = c->queue(to_apqi(d));
        if (!q) continue;
        const bool zq = q->driver() && ap::ApBus::ops_of(*q->driver()).default_driver;
        std::string status = status_of(*q, zq, q->online());
        // As lszcrypt: without a zcrypt `online`, the queue's `status` file (vfio_ap) if any.
        if (!zq && q->config() && !q->chkstop()) {
          status = "-";
          if (auto n = q->dir() ? q->dir()->find("status") : nullptr;
              n && n->type() == kernfs::NodeType::Attr)
            if (auto v = kernfs::read_attr(static_cast<const kernfs::Attr&>(*n)); v && !v->empty())
              status = v->substr(0, v->find('\n'));
        }
        std::string req = "-";
        if (q->config())
          req = q->dev_state() == ap::DevState::Uninitiated ? "-" : std::to_string(q->request_count());
        rows.push_back({q->name(), type, mode_text(*c), status, req,
                        q->driver() ? q->driver()->name() : "-no-driver-"});
      }
    }
    const std::string header = pad("CARD.DOM", 8) + " " + pad("TYPE", 5) + " " + pad("MODE", 11) +
                               " " + pad("STATUS", 10) + " " + pad("REQUESTS", 8, true) + " " +
                               pad("DRIVER", 11);
    out += header + "\n" + std::string(header.size(), '-') + "\n";
    for (const auto& r : rows) {
      std::string status = pad(r.status, 10);
      if (opt.color) {
        const char* col = r.status == "online" ? "\033[32m"
                          : r.status == "offline" || r.status == "deconfig" || r.status == "chkstop"
                              ? "\033[31m"
                              : "\033[33m";
        status = col + status + kReset;
      }
      out += pad(r.id, 8) + " " + pad(r.type, 5) + " " + pad(r.mode, 11) + " " + status + " " +
             pad(r.requests, 8, true) + " " + pad(r.driver, 11) + "\n";
    }
  }
  if (opt.matrix) {
    const ap::Qci& qci = bus->hw().qci();
    std::vector<Apqi> doms;
    qci.aqm.up_to(bus->max_domain_id()).for_each([&](Apqi d) { doms.push_back(d); });
    if (!out.empty()) out += "\n";
    // One letter per vfio_ap mdev (oldest first) for the APQNs assigned to it.
    std::vector<vfio_ap::MatrixMdev*> mdevs;
    if (tb.vfio_ap()) {
      mdevs = tb.vfio_ap()->mdevs();
      std::reverse(mdevs.begin(), mdevs.end());
    }
    auto letter = [](std::size_t i) -> char {
      if (i < 26) return static_cast<char>('A' + i);
      if (i < 52) return static_cast<char>('a' + (i - 26));
      return '*';
    };
    auto assigned_to = [&](Apqn apqn) -> int {
      for (std::size_t i = 0; i < mdevs.size(); ++i)
        if (mdevs[i]->matrix().contains(apqn)) return static_cast<int>(i);
      return -1;
    };
    out += "APQN matrix (rows: adapters, columns: usage domains)\n";
    out += "  H = host (cex4queue)  F = free for vfio_ap  V = bound to vfio_ap  . = no queue\n";
    for (std::size_t i = 0; i < mdevs.size(); ++i) {
      const auto* g = mdevs[i]->kvm();
      out += std::string("  ") + letter(i) + " = assigned to mdev " + mdevs[i]->name() +
             (g ? " (guest " + g->name() + ")" : std::string()) + "\n";
    }
    std::string head = "      ";
    for (Apqi d : doms) {
      char b[8];
      std::snprintf(b, sizeof b, "%02x ", id(d));
      head += b;
    }
    out += head + "\n";
    for (ap::ApCard* c : bus->cards()) {
      char b[16];
      std::snprintf(b, sizeof b, "  %02x  ", id(c->id()));
      std::string line = b;
      for (Apqi d : doms) {
        ap::ApQueue* q = c->queue(d);
        std::string cell = ".";
        const char* col = "";
        if (const int who = q ? assigned_to({c->id(), d}) : -1; who >= 0) {
          cell = std::string(1, letter(static_cast<std::size_t>(who)));
          col = "\033[36m";
        } else if (q) {
          const std::string drv = q->driver() ? q->driver()->name() : "";
          if (q->driver() && ap::ApBus::ops_of(*q->driver()).default_driver)
            cell = "H", col = "\033[34m";
          else if (drv == "vfio_ap") cell = "V", col = "\033[35m";
          else if (!bus->apqn_owned_by_default({c->id(), d})) cell = "F", col = "\033[32m";
          else cell = "-";
        }
        line += (opt.color && *col ? std::string(col) + cell + kReset : cell) + "  ";
      }
      out += line + "\n";
    }
  }
  return out;
}

} // namespace apemu::testbed
