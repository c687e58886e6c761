// The decisions of fence-crashloop, table-driven: what a restarted store or
// lockd may show, and the histories that MUST be flagged (a lost
// acknowledged write, a lowered fence, a stale write accepted, a repeated or
// lower token, a grant inside the restart grace), so the checker is shown
// able to fail.
#include "tools/crashloop/crashloop_check.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fence::crashloop {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

const std::string kKey = "crashloop/k0";

KeyOp Put(std::uint64_t token, std::string body, std::string etag = "") {
  return KeyOp{OpKind::kPut, token, std::move(body), std::move(etag)};
}
KeyOp Delete(std::uint64_t token) { return KeyOp{OpKind::kDelete, token, "", ""}; }
KeyOp Fence(std::uint64_t token) { return KeyOp{OpKind::kFence, token, "", ""}; }

ObjectState Object(std::uint64_t token, std::string body, std::string etag) {
  return ObjectState{true, std::move(body), token, std::move(etag)};
}

std::vector<std::string> Kinds(const std::vector<Violation>& found) {
  std::vector<std::string> kinds;
  for (const auto& v : found) kinds.push_back(v.kind);
  return kinds;
}

// A key with writes acknowledged at tokens 3 (PUT "a", etag "e3") and 5
// (PUT "b", etag "e5"), then `pending` sent and unanswered.
KeyModel History(std::optional<KeyOp> pending) {
  KeyModel model;
  RecordAcknowledged(model, Put(3, "a", "e3"));
  RecordAcknowledged(model, Put(5, "b", "e5"));
  if (pending) {
    model.max_token_sent = pending->token;
    model.pending = pending;
  }
  return model;
}

struct RestartCase {
  const char* name;
  std::optional<KeyOp> pending;
  Observed observed;
  std::vector<std::string> expected_kinds;
};

TEST(CrashloopCheckTest, AfterRestartAcceptsOnlyAcknowledgedOrPendingStates) {
  const ObjectState acked = Object(5, "b", "e5");
  const std::vector<RestartCase> cases = {
      {"last acknowledged write", std::nullopt, {acked, 5}, {}},
      {"pending PUT applied (etag unknown)", Put(7, "c"), {Object(7, "c", "any"), 7}, {}},
      {"pending PUT not applied", Put(7, "c"), {acked, 5}, {}},
      {"pending PUT's fence without its object", Put(7, "c"), {acked, 7}, {"torn_write"}},
      {"pending DELETE's fence without the delete", Delete(6), {acked, 6}, {"torn_write"}},
      {"pending DELETE applied", Delete(6), {ObjectState{}, 6}, {}},
      {"pending fence raise applied", Fence(9), {acked, 9}, {}},
      {"lost: older write came back", std::nullopt, {Object(3, "a", "e3"), 5},
       {"lost_acknowledged_write"}},
      {"lost: object gone", std::nullopt, {ObjectState{}, 5}, {"lost_acknowledged_write"}},
      {"lost: other etag", std::nullopt, {Object(5, "b", "e9"), 5}, {"lost_acknowledged_write"}},
      {"lost: other body", std::nullopt, {Object(5, "x", "e5"), 5}, {"lost_acknowledged_write"}},
      {"pending PUT with another body", Put(7, "c"), {Object(7, "d", "e7"), 7},
       {"lost_acknowledged_write"}},
      {"fence lowered", std::nullopt, {acked, 4}, {"fence_lowered", "object_above_fence"}},
      {"fence forgotten (404)", std::nullopt, {acked, std::nullopt},
       {"fence_lowered", "object_above_fence"}},
      {"fence above every token sent", std::nullopt, {acked, 6}, {"fence_above_every_token_sent"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Kinds(CheckAfterRestart(kKey, History(c.pending), c.observed)), c.expected_kinds);
  }
}

TEST(CrashloopCheckTest, DeletedKeyMustStayDeletedWithItsFence) {
  KeyModel model = History(std::nullopt);
  RecordAcknowledged(model, Delete(8));
  EXPECT_TRUE(CheckAfterRestart(kKey, model, {ObjectState{}, 8}).empty());
  EXPECT_EQ(Kinds(CheckAfterRestart(kKey, model, {Object(5, "b", "e5"), 8})),
            std::vector<std::string>{"lost_acknowledged_write"});
  EXPECT_EQ(Kinds(CheckAfterRestart(kKey, model, {ObjectState{}, 5})),
            std::vector<std::string>{"fence_lowered"});
}

TEST(CrashloopCheckTest, PendingAppliedIsToldByTheFence) {
  EXPECT_FALSE(PendingApplied(History(std::nullopt), {Object(5, "b", "e5"), 5}).has_value());
  EXPECT_EQ(PendingApplied(History(Put(7, "c")), {Object(7, "c", "e7"), 7}), true);
  EXPECT_EQ(PendingApplied(History(Fence(9)), {Object(5, "b", "e5"), 9}), true);
  EXPECT_EQ(PendingApplied(History(Delete(6)), {Object(5, "b", "e5"), 5}), false);
}

TEST(CrashloopCheckTest, ApplyFollowsTheStoreRules) {
  const ObjectState before = Object(5, "b", "e5");
  EXPECT_EQ(Apply(before, Put(7, "c", "e7")).body, "c");
  EXPECT_EQ(Apply(before, Put(7, "c", "e7")).token, 7U);
  EXPECT_FALSE(Apply(before, Delete(7)).exists);
  EXPECT_EQ(Apply(before, Fence(7)).token, 5U);  // a fence leaves the object
}

TEST(CrashloopCheckTest, AcknowledgementMustNameTheWritesOwnToken) {
  EXPECT_FALSE(CheckAcknowledged(kKey, Put(7, "c", "e7"), 7).has_value());
  auto v = CheckAcknowledged(kKey, Put(7, "c", "e7"), 9);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->kind, "acknowledged_below_fence");
  EXPECT_EQ(RefusedFreshToken(kKey, 5, 7, 9).kind, "fresh_token_refused");
}

TEST(CrashloopCheckTest, StaleProbeMustBeRefusedNamingTheFence) {
  struct Case {
    const char* name;
    int status;
    std::optional<std::uint64_t> highest;
    bool flagged;
  };
  const std::vector<Case> cases = {
      {"409 naming the fence", 409, 8, false},
      {"accepted", 200, 8, true},
      {"409 naming a lower fence", 409, 7, true},
      {"409 without figures", 409, std::nullopt, true},
      {"no answer", -1, std::nullopt, true},
      {"server error", 507, std::nullopt, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto v = CheckStaleProbe(kKey, 8, 7, c.status, c.highest);
    EXPECT_EQ(v.has_value(), c.flagged);
    if (v) {
      EXPECT_EQ(v->kind, "stale_write_accepted");
    }
  }
}

TEST(CrashloopCheckTest, SettleAdoptsWhatWasSeenAndNeverLowersTheFloor) {
  KeyModel model = History(Put(7, "c"));
  Settle(model, {Object(7, "c", "e7"), 7});
  EXPECT_FALSE(model.pending.has_value());
  EXPECT_EQ(model.settled.etag, "e7");
  EXPECT_EQ(model.fence_floor, 7U);
  // Seen once, it must stay: going back to the older write is a loss.
  EXPECT_EQ(Kinds(CheckAfterRestart(kKey, model, {Object(5, "b", "e5"), 7})),
            std::vector<std::string>{"lost_acknowledged_write"});
}

// --- lockd ---

constexpr nanoseconds kSpawn = milliseconds(10000);
constexpr nanoseconds kTolerance = milliseconds(1);

Grant At(int epoch, std::uint64_t token, nanoseconds completed_at, std::int64_t ttl_ms = 200) {
  return Grant{epoch, "l0", token, ttl_ms, completed_at};
}

struct GrantCase {
  const char* name;
  int epoch;
  std::vector<Grant> grants;
  std::vector<std::string> expected_kinds;
};

TEST(CrashloopCheckTest, GrantsMustIncreaseAcrossRestartsAndWaitOutTheGrace) {
  GrantHistory history;
  AddToHistory(history, {At(0, 10, kSpawn, 150), At(0, 12, kSpawn, 250)});
  ASSERT_EQ(history.max_token, 12U);
  ASSERT_EQ(history.max_ttl_ms, 250);
  const nanoseconds after_grace = kSpawn + milliseconds(260);
  const std::vector<GrantCase> cases = {
      {"above and after the grace", 1, {At(1, 13, after_grace), At(1, 1013, after_grace)}, {}},
      {"within lockd's clock resolution", 1,
       {At(1, 13, kSpawn + milliseconds(250) - std::chrono::microseconds(500))}, {}},
      {"the first instance has no grace", 0, {At(0, 13, kSpawn)}, {}},
      {"token equal to an earlier one", 1, {At(1, 12, after_grace)}, {"token_not_increasing"}},
      {"token lower", 1, {At(1, 3, after_grace)}, {"token_not_increasing"}},
      {"token repeated in one instance", 1, {At(1, 20, after_grace), At(1, 20, after_grace)},
       {"token_repeated"}},
      {"granted inside the grace", 1, {At(1, 13, kSpawn + milliseconds(100))},
       {"grant_inside_grace"}},
      {"granted 2 ms before the grace ends", 2, {At(2, 13, kSpawn + milliseconds(248))},
       {"grant_inside_grace"}},
      {"lower and inside the grace", 1, {At(1, 11, kSpawn)},
       {"token_not_increasing", "grant_inside_grace"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto found = CheckEpochGrants(history, c.epoch, kSpawn, c.grants, kTolerance);
    EXPECT_EQ(Kinds(found), c.expected_kinds);
    for (const auto& v : found) EXPECT_EQ(v.kill, c.epoch);
  }
}

TEST(CrashloopCheckTest, NoGraceBeforeAnyGrant) {
  const GrantHistory empty;
  EXPECT_TRUE(CheckEpochGrants(empty, 1, kSpawn, {At(1, 1, kSpawn)}, kTolerance).empty());
}

}  // namespace
}  // namespace fence::crashloop
