// Uevent value messages, limits and SEQNUM (driver-core.md §3.2–3.4).
#include "apemu/uevent/event.h"

#include <gtest/gtest.h>

#include "matchers.h"

using namespace apemu;
using namespace apemu::uevent;
using apemu::testing::FailsWith;
using apemu::testing::IsOk;
using apemu::testing::IsOkAndHolds;

TEST(UeventAction, TableOrderAndExactNames) {
  EXPECT_EQ(action_name(Action::Add), "add");
  EXPECT_EQ(action_name(Action::Unbind), "unbind");
  EXPECT_THAT(parse_action("offline"), IsOkAndHolds(Action::Offline));
  EXPECT_THAT(parse_action("Add"), FailsWith(EINVAL));
  EXPECT_THAT(parse_action("ad"), FailsWith(EINVAL));
  EXPECT_THAT(parse_action(""), FailsWith(EINVAL));
}

TEST(UeventEnv, SixtyFourVariablesAtMost) {
  Env env;
  for (int i = 0; i < 64; ++i) ASSERT_THAT(env.add("K" + std::to_string(i), "v"), IsOk());
  EXPECT_THAT(env.add("K64", "v"), FailsWith(ENOMEM));
  EXPECT_EQ(env.vars().size(), 64u);
}

TEST(UeventEnv, TwoKilobytesAtMost) {
  Env env;
  ASSERT_THAT(env.add("A", std::string(2044, 'x')), IsOk()); // 1+1+2044+1 = 2047
  EXPECT_THAT(env.add("B", ""), FailsWith(ENOMEM));          // would be 2050
  Env env2;
  ASSERT_THAT(env2.add("A", std::string(2045, 'x')), IsOk()); // exactly 2048
  EXPECT_EQ(env2.bytes(), 2048u);
}

TEST(UeventBroadcaster, SeqnumIncreasesOnlyForSentEventsAndComesLast) {
  Broadcaster b;
  std::vector<Event> got;
  b.subscribe([&](const Event& e) { got.push_back(e); });
  Env env;
  ASSERT_THAT(env.add("ACTION", "add"), IsOk());
  ASSERT_THAT(env.add("DEVPATH", "/devices/x"), IsOk());
  ASSERT_THAT(env.add("SUBSYSTEM", "foo"), IsOk());
  EXPECT_THAT(b.send(Action::Add, "/devices/x", env), IsOkAndHolds(1u));
  EXPECT_THAT(b.send(Action::Add, "/devices/x", env), IsOkAndHolds(2u));
  // An event whose SEQNUM does not fit is not sent and consumes no number.
  Env full;
  for (int i = 0; i < 64; ++i) ASSERT_THAT(full.add("K" + std::to_string(i), "v"), IsOk());
  EXPECT_THAT(b.send(Action::Change, "/devices/x", full), FailsWith(ENOMEM));
  EXPECT_EQ(b.seqnum(), 2u);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].env.back(), (std::pair<std::string, std::string>{"SEQNUM", "2"}));
  EXPECT_EQ(got[0].kernel_wire(),
            std::string("add@/devices/x\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=foo\0SEQNUM=1\0",
                        68));
}

TEST(UeventBroadcaster, NoListenerStillCountsAndUnsubscribeStopsDelivery) {
  Broadcaster b;
  Env env;
  ASSERT_THAT(b.send(Action::Change, "/devices/x", env), IsOkAndHolds(1u));
  int n = 0;
  int id = b.subscribe([&](const Event&) { ++n; });
  ASSERT_THAT(b.send(Action::Change, "/devices/x", env), IsOk());
  b.unsubscribe(id);
  ASSERT_THAT(b.send(Action::Change, "/devices/x", env), IsOk());
  EXPECT_EQ(n, 1);
  EXPECT_EQ(b.seqnum(), 3u);
}

// Nobody subscribed: the environment is only counted (issue 11), with the same limits.
TEST(UeventEnv, ACountingEnvFailsExactlyWhereAStoringOneDoes) {
  for (bool by_bytes : {false, true}) {
    Env store, count = Env::counting();
    EXPECT_TRUE(store.stores());
    EXPECT_FALSE(count.stores());
    for (int i = 0;; ++i) {
      const std::string key = "K" + std::to_string(i);
      const std::string value(by_bytes ? 100 : 1, 'v');
      auto a = store.add(key, value);
      auto b = count.add(key, value);
      ASSERT_EQ(a.has_value(), b.has_value()) << i;
      if (!a) {
        EXPECT_THAT(b, FailsWith(ENOMEM));
        break;
      }
    }
    EXPECT_EQ(count.size(), store.size());
    EXPECT_EQ(count.bytes(), store.bytes());
    EXPECT_TRUE(count.vars().empty());
  }
}

// UEVENT_NUM_ENVP was 32 before 5.8 (the kernel profiles): both kinds stop at the 33rd variable,
// copies keep the limit, and SEQNUM does not fit a full environment.
TEST(UeventEnv, TheVariableLimitOfTheProfileHoldsForCountingAndStoringEnvs) {
  Broadcaster b;
  for (Env env : {Env(32), Env::counting(32), b.new_env(32)}) {
    for (int i = 0; i < 31; ++i) ASSERT_THAT(env.add("K" + std::to_string(i), "v"), IsOk()) << i;
    Env copy = env;
    ASSERT_THAT(env.add("K31", "v"), IsOk());
    EXPECT_THAT(env.add("K32", "v"), FailsWith(ENOMEM));
    EXPECT_EQ(env.size(), 32u);
    ASSERT_THAT(copy.add("K31", "v"), IsOk());
    EXPECT_THAT(copy.add("K32", "v"), FailsWith(ENOMEM));
    if (!env.stores()) {
      EXPECT_THAT(env.add_counted("DEVPATH", 8), FailsWith(ENOMEM));
    }
    const std::uint64_t before = b.seqnum();
    EXPECT_THAT(b.send(Action::Add, "/devices/x", env), FailsWith(ENOMEM));
    EXPECT_EQ(b.seqnum(), before); // no number consumed
  }
}

TEST(UeventEnv, ACountingEnvGivesBackTheBytesOfRemovedVariables) {
  Env store, count = Env::counting();
  for (Env* e : {&store, &count}) {
    ASSERT_THAT(e->add("ACTION", "unbind"), IsOk());
    ASSERT_THAT(e->add("MODALIAS", "ap:t0E"), IsOk());
    ASSERT_THAT(e->add("DEVPATH", "/devices/ap/card00"), IsOk());
    ASSERT_THAT(e->add("MODALIAS", "x"), IsOk());
    e->remove_all("MODALIAS");
  }
  EXPECT_EQ(count.size(), 2u);
  EXPECT_EQ(count.bytes(), store.bytes());
  Env copy = count; // copies keep the counts
  EXPECT_EQ(copy.bytes(), store.bytes());
  EXPECT_FALSE(copy.stores());
}

TEST(UeventBroadcaster, BuildsCountingEnvsOnlyWhileNobodySubscribes) {
  Broadcaster b;
  EXPECT_FALSE(b.new_env().stores());
  Env counted = b.new_env();
  ASSERT_THAT(counted.add("ACTION", "add"), IsOk());
  EXPECT_THAT(b.send(Action::Add, "/devices/x", std::move(counted)), IsOkAndHolds(1u));
  std::vector<Event> got;
  const int id = b.subscribe([&](const Event& e) { got.push_back(e); });
  Env stored = b.new_env();
  EXPECT_TRUE(stored.stores());
  ASSERT_THAT(stored.add("ACTION", "add"), IsOk());
  EXPECT_THAT(b.send(Action::Add, "/devices/x", std::move(stored)), IsOkAndHolds(2u));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].get("SEQNUM"), "2");
  b.unsubscribe(id);
}
