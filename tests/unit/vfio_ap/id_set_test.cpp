// IdSet: set operations, iteration order and the MSB-first text form (vfio-ap.md §2.2).
#include <gtest/gtest.h>

#include "apemu/vfio_ap/id_set.h"

using apemu::vfio_ap::IdSet;

TEST(IdSet, PrintsMsbFirstLikeTheKernelsInvertedBitmaps) {
  IdSet s;
  s.set(5);
  // Adapter 5 only: the first word is 0x0400000000000000 (§2.2).
  EXPECT_EQ(s.hex(), "0x04" + std::string(62, '0'));
  s.set(0);
  s.set(255);
  EXPECT_EQ(s.hex(), "0x84" + std::string(61, '0') + "1");
  EXPECT_EQ(s.list(), "0,5,255");
  EXPECT_EQ(IdSet::from_mask(s.to_mask()), s);
  EXPECT_EQ(s.to_mask().hex(), s.hex());
}

TEST(IdSet, IteratesInIncreasingOrderAndSupportsSetAlgebra) {
  IdSet a, b;
  for (unsigned id : {200u, 3u, 64u, 63u}) a.set(id);
  std::vector<unsigned> seen;
  a.for_each([&](unsigned id) { seen.push_back(id); });
  EXPECT_EQ(seen, (std::vector<unsigned>{3, 63, 64, 200}));
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.first(), 3u);
  b.set(64);
  EXPECT_TRUE(a.intersects(b));
  EXPECT_EQ(a.minus(b).list(), "3,63,200");
  EXPECT_EQ((a & b).list(), "64");
  EXPECT_EQ(a.up_to(63).list(), "3,63");
  EXPECT_EQ(a.up_to(255), a);
  EXPECT_EQ(IdSet{}.first(), 256u);
  EXPECT_EQ(IdSet{}.list(), "none");
  a.set(256); // out of range: ignored
  EXPECT_FALSE(a.test(256));
}
