// kernfs tree semantics: ids, names, removal, links, per-open snapshots, mode checks
// (driver-core.md §2.7, §2.8).
#include "apemu/kernfs/tree.h"

#include <gtest/gtest.h>

#include "matchers.h"

using namespace apemu;
using namespace apemu::kernfs;
using apemu::testing::FailsWith;
using apemu::testing::IsOk;
using apemu::testing::IsOkAndHolds;

namespace {

struct Counter {
  int shows = 0;
  std::vector<std::string> stores;
};

std::unique_ptr<AttrOps> counter_ops(Counter& c, bool show = true, bool store = true) {
  FunctionAttrOps::Show s;
  FunctionAttrOps::Store st;
  if (show) s = [&c] { return Result<std::string>(std::to_string(++c.shows) + "\n"); };
  if (store)
    st = [&c](std::string_view t) {
      c.stores.emplace_back(t);
      if (t == "bad") return Result<void>(Error(EINVAL));
      return Result<void>();
    };
  return std::make_unique<FunctionAttrOps>(s, st);
}

} // namespace

TEST(KernfsTree, IdsIncreaseAndAreNeverReused) {
  Tree t;
  auto lk = t.lock();
  auto a = *t.create_dir(*t.root(), "a");
  auto b = *t.create_dir(*t.root(), "b");
  EXPECT_GT(b->id(), a->id());
  const NodeId old = b->id();
  t.remove(*b);
  auto c = *t.create_dir(*t.root(), "b");
  EXPECT_GT(c->id(), old);
  EXPECT_EQ(t.root()->id(), kRootId);
}

TEST(KernfsTree, DuplicateNamesFailWithEexistAndBadNamesWithEinval) {
  Tree t;
  auto lk = t.lock();
  ASSERT_THAT(t.create_dir(*t.root(), "x"), IsOk());
  EXPECT_THAT(t.create_dir(*t.root(), "x"), FailsWith(EEXIST));
  Counter c;
  EXPECT_THAT(t.create_attr(*t.root(), "x", 0644, counter_ops(c)), FailsWith(EEXIST));
  EXPECT_THAT(t.create_dir(*t.root(), ""), FailsWith(EINVAL));
  EXPECT_THAT(t.create_dir(*t.root(), "a/b"), FailsWith(EINVAL));
}

TEST(KernfsTree, ChildrenAreSortedAndPathsAbsolute) {
  Tree t;
  auto lk = t.lock();
  auto d = *t.create_dir(*t.root(), "devices");
  (void)t.create_dir(*d, "z");
  (void)t.create_dir(*d, "a");
  (void)t.create_dir(*d, "m");
  std::vector<std::string> names;
  for (auto& c : d->children()) names.push_back(c->name());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "m", "z"}));
  EXPECT_EQ(d->find("m")->path(), "/devices/m");
  EXPECT_EQ(t.resolve("/devices/m"), d->find("m"));
  EXPECT_EQ(t.resolve("devices/m/"), d->find("m"));
  EXPECT_EQ(t.resolve("/devices/nope"), nullptr);
}

TEST(KernfsTree, RemovalDeactivatesTheSubtreeAndKeepsHandlesSafe) {
  Tree t;
  auto lk = t.lock();
  auto d = *t.create_dir(*t.root(), "dev");
  Counter c;
  auto a = *t.create_attr(*d, "val", 0644, counter_ops(c));
  const auto before = t.node_count();
  t.remove(*d);
  EXPECT_FALSE(d->active());
  EXPECT_FALSE(a->active());
  EXPECT_EQ(t.node_count(), before - 2);
  // A handle kept by an open file no longer calls into the owner.
  EXPECT_THAT(a->show(), FailsWith(ENODEV));
  EXPECT_THAT(a->store("1"), FailsWith(ENODEV));
  EXPECT_EQ(c.shows, 0);
  t.remove(*d); // idempotent
}

TEST(KernfsLink, RelativeTargetsFollowTheKernelAlgorithm) {
  // driver-core.md §2.7 examples.
  Tree t;
  auto lk = t.lock();
  auto& root = *t.root();
  auto devices = *t.create_dir(root, "devices");
  auto pci = *t.create_dir(*devices, "pci0000:00");
  auto dev = *t.create_dir(*pci, "0000:00:1f.2");
  auto nic = *t.create_dir(*pci, "0000:00:19.0");
  auto net = *t.create_dir(*nic, "net");
  auto eth0 = *t.create_dir(*net, "eth0");
  auto bus = *t.create_dir(root, "bus");
  auto buspci = *t.create_dir(*bus, "pci");
  auto busdevs = *t.create_dir(*buspci, "devices");
  auto drivers = *t.create_dir(*buspci, "drivers");
  auto ahci = *t.create_dir(*drivers, "ahci");
  auto cls = *t.create_dir(root, "class");
  auto clsnet = *t.create_dir(*cls, "net");

  EXPECT_THAT((*t.create_link(*busdevs, "0000:00:1f.2", dev))->target_text(),
              IsOkAndHolds("../../../devices/pci0000:00/0000:00:1f.2"));
  EXPECT_THAT((*t.create_link(*dev, "subsystem", buspci))->target_text(),
              IsOkAndHolds("../../../bus/pci"));
  EXPECT_THAT((*t.create_link(*dev, "driver", ahci))->target_text(),
              IsOkAndHolds("../../../bus/pci/drivers/ahci"));
  EXPECT_THAT((*t.create_link(*ahci, "0000:00:1f.2", dev))->target_text(),
              IsOkAndHolds("../../../../devices/pci0000:00/0000:00:1f.2"));
  EXPECT_THAT((*t.create_link(*clsnet, "eth0", eth0))->target_text(),
              IsOkAndHolds("../../devices/pci0000:00/0000:00:19.0/net/eth0"));
  EXPECT_THAT((*t.create_link(*eth0, "subsystem", clsnet))->target_text(),
              IsOkAndHolds("../../../../../class/net"));
  EXPECT_THAT((*t.create_link(*eth0, "device", nic))->target_text(),
              IsOkAndHolds("../../../0000:00:19.0"));
}

TEST(KernfsLink, DanglingAfterTargetRemovalAndFollowsRenames) {
  Tree t;
  auto lk = t.lock();
  auto a = *t.create_dir(*t.root(), "a");
  auto b = *t.create_dir(*t.root(), "b");
  auto l = *t.create_link(*b, "to_a", a);
  ASSERT_THAT(t.rename(*a, "a2"), IsOk());
  EXPECT_THAT(l->target_text(), IsOkAndHolds("../a2"));
  t.remove(*a);
  EXPECT_THAT(l->target_text(), FailsWith(ENOENT));
}

TEST(KernfsTree, MoveReparentsAndRejectsCycles) {
  Tree t;
  auto lk = t.lock();
  auto a = *t.create_dir(*t.root(), "a");
  auto b = *t.create_dir(*t.root(), "b");
  auto c = *t.create_dir(*a, "c");
  ASSERT_THAT(t.move(*c, *b), IsOk());
  EXPECT_EQ(c->path(), "/b/c");
  EXPECT_THAT(t.move(*b, *c), FailsWith(EINVAL));
  auto c2 = *t.create_dir(*a, "c");
  EXPECT_THAT(t.move(*c2, *b), FailsWith(EEXIST));
}

TEST(KernfsOpenFile, ModeIsEnforcedEvenForRootWithEacces) {
  Tree t;
  auto lk = t.lock();
  Counter c;
  auto ro = *t.create_attr(*t.root(), "ro", 0444, counter_ops(c));
  auto wo = *t.create_attr(*t.root(), "wo", 0200, counter_ops(c));
  auto noshow = *t.create_attr(*t.root(), "noshow", 0644, counter_ops(c, false, true));
  EXPECT_THAT(OpenFile::open(ro, false, true), FailsWith(EACCES));
  EXPECT_THAT(OpenFile::open(wo, true, false), FailsWith(EACCES));
  EXPECT_THAT(OpenFile::open(noshow, true, false), FailsWith(EACCES));
  EXPECT_THAT(OpenFile::open(t.root(), true, false), FailsWith(EISDIR));
  EXPECT_THAT(OpenFile::open(ro, true, false), IsOk());
  EXPECT_THAT(OpenFile::open(wo, false, true), IsOk());
}

TEST(KernfsOpenFile, ShowRendersOncePerOpenAndAgainAtOffsetZero) {
  Tree t;
  auto lk = t.lock();
  Counter c;
  auto a = *t.create_attr(*t.root(), "v", 0644, counter_ops(c));
  auto f = *OpenFile::open(a, true, false);
  EXPECT_THAT(f.read(0, 1), IsOkAndHolds("1"));
  EXPECT_THAT(f.read(1, 10), IsOkAndHolds("\n"));
  EXPECT_THAT(f.read(2, 10), IsOkAndHolds(""));
  EXPECT_EQ(c.shows, 1);
  EXPECT_THAT(f.read(0, 10), IsOkAndHolds("2\n"));
  EXPECT_EQ(c.shows, 2);
}

TEST(KernfsOpenFile, ShowIsTruncatedBelowPageSize) {
  Tree t;
  auto lk = t.lock();
  auto a = *t.create_attr(
      *t.root(), "big", 0444,
      std::make_unique<FunctionAttrOps>(
          [] { return Result<std::string>(std::string(10000, 'x')); }, nullptr));
  auto f = *OpenFile::open(a, true, false);
  auto all = f.read(0, 100000);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), kPageSize - 1);
}

TEST(KernfsOpenFile, EachWriteIsOneStoreAndErrnoPassesThrough) {
  Tree t;
  auto lk = t.lock();
  Counter c;
  auto a = *t.create_attr(*t.root(), "v", 0200, counter_ops(c));
  auto f = *OpenFile::open(a, false, true);
  EXPECT_THAT(f.write("abc\n"), IsOkAndHolds(4u));
  EXPECT_THAT(f.write("bad"), FailsWith(EINVAL));
  EXPECT_THAT(f.write(""), IsOkAndHolds(0u)); // no store for an empty write
  EXPECT_THAT(f.write(std::string(5000, 'y')), IsOkAndHolds(kPageSize));
  ASSERT_EQ(c.stores.size(), 3u);
  EXPECT_EQ(c.stores[0], "abc\n");
  EXPECT_EQ(c.stores[2].size(), kPageSize);
}

// The kernel's store gets a C string: an embedded NUL ends the value, the write still consumes
// every byte (issue 9 item 6).
TEST(KernfsOpenFile, EmbeddedNulEndsTheStoredValue) {
  Tree t;
  auto lk = t.lock();
  Counter c;
  auto a = *t.create_attr(*t.root(), "v", 0200, counter_ops(c));
  auto f = *OpenFile::open(a, false, true);
  EXPECT_THAT(f.write(std::string_view("1\0junk", 6)), IsOkAndHolds(6u));
  EXPECT_THAT(f.write(std::string_view("\0abc", 4)), IsOkAndHolds(4u));
  ASSERT_EQ(c.stores.size(), 2u);
  EXPECT_EQ(c.stores[0], "1");
  EXPECT_EQ(c.stores[1], "");
}

TEST(KernfsTree, ListenerSeesAddsRemovesAndRenames) {
  Tree t;
  std::vector<std::string> seen;
  t.set_change_listener([&](const Change& ch) {
    seen.push_back(std::to_string(static_cast<int>(ch.kind)) + ":" + ch.name);
  });
  auto lk = t.lock();
  auto a = *t.create_dir(*t.root(), "a");
  ASSERT_THAT(t.rename(*a, "b"), IsOk());
  t.remove(*a);
  EXPECT_EQ(seen, (std::vector<std::string>{"0:a", "1:a", "0:b", "1:b"}));
}

// ---- lazy attributes (Tree::add_lazy_attrs) ----------------------------------------------------

namespace {

/// A static attribute row as a subsystem's table has them (core::Attribute in miniature).
struct Row final : AttrOps {
  constexpr Row(std::string_view n, mode_t m) : name(n), mode(m) {}
  std::string_view name;
  mode_t mode;
  bool can_show() const override { return true; }
  bool can_store() const override { return false; }
  Result<std::string> show(void* ctx) const override {
    return std::string(name) + "@" + std::to_string(*static_cast<int*>(ctx)) + "\n";
  }
  Result<void> store(void*, std::string_view, Blocker*) const override { return Error(EIO); }
};

const Row kRows[] = {{"online", 0644}, {"type", 0444}, {"hidden", 0444}, {"depth", 0400}};
const Row kOtherRows[] = {{"load", 0444}, {"reset", 0644}};
const Row kClashingRows[] = {{"zeta", 0444}, {"type", 0444}};

const AttrRowType kRowType = {
    [](const void* rows, std::size_t i) -> const AttrOps& {
      return static_cast<const Row*>(rows)[i];
    },
    [](const void* rows, std::size_t i) { return static_cast<const Row*>(rows)[i].name; },
    [](const void* rows, std::size_t i) { return static_cast<const Row*>(rows)[i].mode; },
};

constexpr std::uint64_t kAllButHidden = 0b1011;

/// "name id mode" of every child, in listing order.
std::vector<std::string> listing(const Dir& d) {
  std::vector<std::string> out;
  for (const auto& c : d.children())
    out.push_back(c->name() + " " + std::to_string(c->id()) + " " + std::to_string(c->mode()));
  return out;
}

/// A device-like directory: attributes from two tables around a link and a subdirectory, made
/// lazily or eagerly (the same calls a driver core makes).
std::shared_ptr<Dir> build(Tree& t, int& ctx, bool lazy) {
  auto d = *t.create_dir(*t.root(), "dev");
  auto add = [&](const Row* rows, std::size_t n, std::uint64_t visible) {
    if (lazy) {
      ASSERT_TRUE(t.add_lazy_attrs(*d, kRowType, rows, n, visible, &ctx));
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!((visible >> i) & 1)) continue;
      ASSERT_THAT(t.create_attr(*d, std::string(rows[i].name), rows[i].mode, &rows[i], &ctx),
                  IsOk());
    }
  };
  add(kRows, 4, kAllButHidden);
  (void)*t.create_link(*d, "subsystem", t.root());
  add(kOtherRows, 2, 0b11);
  (void)*t.create_dir(*d, "power");
  return d;
}

} // namespace

TEST(KernfsLazyAttrs, LookLikeEagerOnesWithTheSameIdsModesAndTexts) {
  int ctx = 7;
  Tree eager, lazy;
  auto le = eager.lock();
  auto ll = lazy.lock();
  auto de = build(eager, ctx, false);
  auto dl = build(lazy, ctx, true);
  EXPECT_EQ(lazy.node_count(), eager.node_count());
  EXPECT_EQ(dl->lazy_count(), 5u);
  EXPECT_EQ(listing(*dl), listing(*de));
  EXPECT_EQ(dl->lazy_count(), 0u);
  auto a = std::static_pointer_cast<Attr>(dl->find("depth"));
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(read_attr(*a), IsOkAndHolds("depth@7\n"));
  EXPECT_EQ(dl->find("hidden"), nullptr);
  // Ids handed out afterwards continue where eager creation would.
  EXPECT_EQ((*lazy.create_dir(*lazy.root(), "next"))->id(),
            (*eager.create_dir(*eager.root(), "next"))->id());
}

TEST(KernfsLazyAttrs, AreCreatedOnlyWhenOneOfTheirNamesIsLookedUpOrTheDirectoryListed) {
  Tree t;
  auto lk = t.lock();
  int ctx = 1;
  auto d = build(t, ctx, true);
  EXPECT_EQ(d->lazy_count(), 5u);
  EXPECT_NE(d->find("subsystem"), nullptr); // created names do not create the lazy ones
  EXPECT_EQ(d->find("nosuch"), nullptr);
  EXPECT_TRUE(d->has_child("online"));
  EXPECT_FALSE(d->has_child("hidden"));
  EXPECT_EQ(d->lazy_count(), 5u);
  EXPECT_EQ(t.resolve("/dev/power")->type(), NodeType::Dir);
  EXPECT_EQ(d->lazy_count(), 5u);
  auto online = t.resolve("/dev/online");
  ASSERT_NE(online, nullptr);
  EXPECT_EQ(d->lazy_count(), 0u);
  EXPECT_EQ(online->parent(), d.get());
  EXPECT_EQ(online->path(), "/dev/online");
}

TEST(KernfsLazyAttrs, NamesClashLikeCreatedOnes) {
  Tree t;
  auto lk = t.lock();
  int ctx = 1;
  auto d = build(t, ctx, true);
  const std::size_t nodes = t.node_count();
  // A created node may not take a lazy name...
  EXPECT_THAT(t.create_dir(*d, "online"), FailsWith(EEXIST));
  // ...and a table with a taken name is declined as a whole, with nothing reserved.
  EXPECT_FALSE(t.add_lazy_attrs(*d, kRowType, kClashingRows, 2, 0b11, &ctx));
  EXPECT_FALSE(t.add_lazy_attrs(*d, kRowType, kOtherRows, 2, 0b11, &ctx)); // the same twice
  EXPECT_FALSE(t.add_lazy_attrs(*d, kRowType, kOtherRows, 2, 0b1, &ctx));
  EXPECT_EQ(t.node_count(), nodes);
  // A row hidden in both does not clash.
  auto e = *t.create_dir(*t.root(), "e");
  EXPECT_TRUE(t.add_lazy_attrs(*e, kRowType, kClashingRows, 2, 0b01, &ctx));
  EXPECT_TRUE(t.add_lazy_attrs(*e, kRowType, kRows, 4, 0b0010, &ctx));
  EXPECT_EQ(e->lazy_count(), 2u);
  EXPECT_FALSE(t.add_lazy_attrs(*e, kRowType, kClashingRows, 2, 0b10, &ctx));
  auto named = listing(*e);
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].substr(0, 5), "type ");
  EXPECT_EQ(named[1].substr(0, 5), "zeta ");
}

TEST(KernfsLazyAttrs, RemovalDropsThemWithoutCreatingThem) {
  Tree t;
  std::vector<std::string> seen;
  t.set_change_listener([&](const Change& ch) {
    seen.push_back(std::to_string(static_cast<int>(ch.kind)) + ":" + ch.name + ":" +
                   std::to_string(ch.node));
  });
  auto lk = t.lock();
  int ctx = 1, other = 2;
  auto d = *t.create_dir(*t.root(), "dev");
  const std::size_t base = t.node_count();
  ASSERT_TRUE(t.add_lazy_attrs(*d, kRowType, kRows, 4, kAllButHidden, &ctx));
  const NodeId first = d->id() + 1;
  EXPECT_EQ(seen.back(), "0:depth:" + std::to_string(first + 2)); // reported, ids reserved
  EXPECT_EQ(t.node_count(), base + 3);
  EXPECT_FALSE(t.remove_lazy_attrs(*d, kRows, &other)); // another object's rows
  EXPECT_TRUE(t.remove_lazy_attrs(*d, kRows, &ctx));
  EXPECT_EQ(t.node_count(), base);
  EXPECT_EQ(d->lazy_count(), 0u);
  EXPECT_EQ(seen.back(), "1:depth:" + std::to_string(first + 2));
  EXPECT_TRUE(d->children().empty());
  // Once created, they are ordinary nodes.
  ASSERT_TRUE(t.add_lazy_attrs(*d, kRowType, kRows, 4, kAllButHidden, &ctx));
  ASSERT_NE(d->find("type"), nullptr);
  EXPECT_FALSE(t.remove_lazy_attrs(*d, kRows, &ctx));
  // Removing the directory takes lazy rows along in the count.
  ASSERT_TRUE(t.add_lazy_attrs(*d, kRowType, kOtherRows, 2, 0b11, &ctx));
  t.remove(*d);
  EXPECT_EQ(t.node_count(), 1u);
}

TEST(KernfsLazyAttrs, CanBeSwitchedOff) {
  Tree t;
  t.set_lazy_attrs(false);
  auto lk = t.lock();
  int ctx = 1;
  auto d = *t.create_dir(*t.root(), "dev");
  EXPECT_FALSE(t.add_lazy_attrs(*d, kRowType, kRows, 4, kAllButHidden, &ctx));
  EXPECT_EQ(t.node_count(), 2u);
}
