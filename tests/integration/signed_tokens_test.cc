// Signed fencing tokens with real processes: fence-lockd signs its grants,
// fence-store --require-signed-tokens verifies them before the fence rule.
// Every refusal is a 403 bad_token_signature, logged, counted, and leaves
// the key's fence where it was (read back with GET /v1/fences/{key}).
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <sstream>

#include "client/store_client.h"
#include "tests/harness/daemon.h"

namespace fence::testing {
namespace {

using net::http::status;
using net::http::verb;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kOldSecret[] = "1111111111111111111111111111111111111111111111111111111111111111";
constexpr char kNewSecret[] = "2222222222222222222222222222222222222222222222222222222222222222";
constexpr char kMaxToken[] = "18446744073709551615";

nlohmann::json Json(const net::Response& res) {
  auto j = nlohmann::json::parse(res.body(), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << res.body();
  return j;
}

std::string WriteFile(const TempDir& dir, const std::string& name, const std::string& text) {
  std::string path = dir.Sub(name);
  std::ofstream(path) << text;
  return path;
}

ChildProcess::Options Command(std::vector<std::string> argv) {
  ChildProcess::Options options;
  options.argv = std::move(argv);
  return options;
}

struct Grant {
  std::string lock;
  std::string token;
  std::string signature;
};

// Acquires `lock` on lockd; fails the test unless the grant is signed.
Grant Acquire(const Daemon& lockd, const std::string& lock) {
  auto res = Request(verb::post, lockd.Url("/v1/locks/" + lock + "/acquire"), {},
                     R"({"owner":"test","ttl_ms":10000,"wait_ms":0})");
  EXPECT_EQ(res.result(), status::ok) << res.body();
  auto j = Json(res);
  EXPECT_TRUE(j.contains("token_signature")) << res.body();
  return {lock, std::to_string(j.value("token", 0ull)), j.value("token_signature", "")};
}

Headers Signed(const Grant& g) {
  return {{"Fencing-Token", g.token},
          {"Fencing-Token-Signature", g.signature},
          {"Fencing-Lock", g.lock}};
}

class SignedTokensTest : public ::testing::Test {
 protected:
  void StartLockd(const std::string& keys, const std::string& data = "lockd") {
    lockd_ = StartDaemon("fence-lockd", {"--data-dir", dir_.Sub(data), "--token-key-file",
                                         WriteFile(dir_, "lockd.keys", keys)});
    ASSERT_GT(lockd_.port, 0);
  }
  void StartStore(const std::string& keys) {
    store_ = StartDaemon("fence-store",
                         {"--data-dir", dir_.Sub("store"), "--require-signed-tokens",
                          "--token-key-file", WriteFile(dir_, "store.keys", keys)});
    ASSERT_GT(store_.port, 0);
  }
  void SetUp() override {
    StartLockd(std::string("k1 ") + kOldSecret);
    StartStore(std::string("k1 ") + kOldSecret);
  }

  net::Response Put(const std::string& key, Headers h) {
    return Request(verb::put, store_.Url("/v1/objects/" + key), std::move(h), "x");
  }
  std::string Fence(const std::string& key) {
    auto res = Request(verb::get, store_.Url("/v1/fences/" + key));
    if (res.result() == status::not_found) return "none";
    return std::to_string(Json(res).value("highest_token", 0ull));
  }
  // The refusal, its reason, and the fence left unchanged.
  void ExpectRefused(const net::Response& res, const std::string& reason,
                     const std::string& key, const std::string& fence_before) {
    EXPECT_EQ(res.result(), status::forbidden) << res.body();
    auto j = Json(res);
    EXPECT_EQ(j.value("error", ""), "bad_token_signature") << res.body();
    EXPECT_EQ(j.value("reason", ""), reason) << res.body();
    EXPECT_FALSE(j.value("expected", "").empty()) << res.body();
    EXPECT_EQ(Fence(key), fence_before) << "the refused write moved the fence";
  }
  double Refusals(const std::string& reason) {
    auto res = Request(verb::get, store_.Url("/metrics"));
    const std::string series =
        "fence_store_token_signature_refusals_total{reason=\"" + reason + "\"} ";
    const auto at = res.body().find(series);
    if (at == std::string::npos) return -1;
    return std::stod(res.body().substr(at + series.size()));
  }

  TempDir dir_{"fence-signed-test"};
  Daemon lockd_;
  Daemon store_;
};

TEST_F(SignedTokensTest, SignedGrantIsAcceptedOnEveryWriteRoute) {
  const Grant g = Acquire(lockd_, "job");
  EXPECT_EQ(g.signature.substr(0, 3), "k1.");
  EXPECT_EQ(Put("a", Signed(g)).result(), status::ok);
  EXPECT_EQ(Fence("a"), g.token);
  EXPECT_EQ(Request(verb::post, store_.Url("/v1/fences/b"), Signed(g)).result(), status::ok);
  EXPECT_EQ(Request(verb::delete_, store_.Url("/v1/objects/a"), Signed(g)).result(),
            status::ok);
  // A scoped write's scope is its lock: no Fencing-Lock needed.
  Headers scoped = {{"Fencing-Token", g.token},
                    {"Fencing-Token-Signature", g.signature},
                    {"Fencing-Scope", g.lock}};
  EXPECT_EQ(Put("c", scoped).result(), status::ok);
  scoped.pop_back();
  EXPECT_EQ(Request(verb::post, store_.Url("/v1/scopes/job/fence"), scoped).result(),
            status::ok);
}

// The attack of issue 19 and its variants: none moves the fence.
TEST_F(SignedTokensTest, ForgedAlteredAndUnsignedTokensAre403AndTheFenceStays) {
  const Grant g = Acquire(lockd_, "job");
  ASSERT_EQ(Put("k", Signed(g)).result(), status::ok);
  const std::string mac = g.signature.substr(3);
  std::string flipped = g.signature;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  const std::string next = std::to_string(std::stoull(g.token) + 1);
  struct Row {
    std::string name;
    Headers headers;
    std::string reason;
  };
  const std::vector<Row> rows = {
      {"forged future token", {{"Fencing-Token", kMaxToken}, {"Fencing-Token-Signature", g.signature}, {"Fencing-Lock", "job"}}, "mismatch"},
      {"altered token", {{"Fencing-Token", next}, {"Fencing-Token-Signature", g.signature}, {"Fencing-Lock", "job"}}, "mismatch"},
      {"forged signature", {{"Fencing-Token", g.token}, {"Fencing-Token-Signature", flipped}, {"Fencing-Lock", "job"}}, "mismatch"},
      {"another lock", {{"Fencing-Token", g.token}, {"Fencing-Token-Signature", g.signature}, {"Fencing-Lock", "other"}}, "mismatch"},
      {"wrong key id", {{"Fencing-Token", g.token}, {"Fencing-Token-Signature", "k9." + mac}, {"Fencing-Lock", "job"}}, "unknown_key_id"},
      {"missing signature", {{"Fencing-Token", kMaxToken}, {"Fencing-Lock", "job"}}, "missing"},
      {"malformed signature", {{"Fencing-Token", g.token}, {"Fencing-Token-Signature", mac}, {"Fencing-Lock", "job"}}, "malformed"},
      {"no lock named", {{"Fencing-Token", g.token}, {"Fencing-Token-Signature", g.signature}}, "missing_lock"},
      {"lock is not the scope", {{"Fencing-Token", g.token}, {"Fencing-Token-Signature", g.signature}, {"Fencing-Lock", "job"}, {"Fencing-Scope", "other"}}, "lock_mismatch"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    ExpectRefused(Put("k", row.headers), row.reason, "k", g.token);
  }
  // The other write routes check before the rule too.
  const Headers forged = rows[0].headers;
  ExpectRefused(Request(verb::post, store_.Url("/v1/fences/k"), forged), "mismatch", "k",
                g.token);
  ExpectRefused(Request(verb::delete_, store_.Url("/v1/objects/k"), forged), "mismatch", "k",
                g.token);
  auto scope = Request(verb::post, store_.Url("/v1/scopes/job/fence"),
                       {{"Fencing-Token", kMaxToken}, {"Fencing-Token-Signature", g.signature}});
  EXPECT_EQ(scope.result(), status::forbidden) << scope.body();
  EXPECT_EQ(Request(verb::get, store_.Url("/v1/scopes/job")).result(), status::not_found);
  // The honest leader's next grant still writes: nothing was fenced away.
  EXPECT_EQ(Put("k", Signed(Acquire(lockd_, "job2"))).result(), status::ok);
  EXPECT_EQ(Refusals("mismatch"), 7);
  EXPECT_EQ(Refusals("unknown_key_id"), 1);
  EXPECT_EQ(Refusals("missing"), 1);
  // One log line per refusal, with the reason and without a secret.
  std::size_t logged = 0;
  for (const std::string& line : store_.process->Lines()) {
    if (line.find("\"token_signature_refused\"") != std::string::npos) ++logged;
    EXPECT_EQ(line.find(kOldSecret), std::string::npos) << line;
  }
  EXPECT_EQ(logged, rows.size() + 3);
}

// Rotation: the store lists new and old; an old lockd's grants and a new
// lockd's grants are both accepted; a store that dropped the old key refuses
// the old grants by key id.
TEST_F(SignedTokensTest, RotationAcceptsOldAndNewKeys) {
  const Grant old_grant = Acquire(lockd_, "job");
  store_.process->Stop();
  StartStore(std::string("k2 ") + kNewSecret + "\nk1 " + kOldSecret + "\n");
  EXPECT_EQ(Put("old", Signed(old_grant)).result(), status::ok);
  lockd_.process->Stop();
  // A fresh data directory: a restarted one would grant nothing for a TTL.
  StartLockd(std::string("k2 ") + kNewSecret + "\nk1 " + kOldSecret + "\n", "lockd2");
  const Grant new_grant = Acquire(lockd_, "job2");
  EXPECT_EQ(new_grant.signature.substr(0, 3), "k2.");
  EXPECT_EQ(Put("new", Signed(new_grant)).result(), status::ok);
  store_.process->Stop();
  StartStore(std::string("k2 ") + kNewSecret);
  ExpectRefused(Put("old", Signed(old_grant)), "unknown_key_id", "old", old_grant.token);
  EXPECT_EQ(Put("new", Signed(new_grant)).result(), status::ok);
}

// fence-worker with the lockd backend passes the grant's signature on: it
// fences its key and its scope first and writes, all under
// --require-signed-tokens, and the store refuses nothing.
TEST_F(SignedTokensTest, WorkerSendsTheSignatureWithEveryWrite) {
  auto worker = RunToCompletion(
      Command({SiblingBinary("fence-worker"), "--id", "A", "--backend", "lockd",
               "--lock-endpoints", lockd_.Url(""), "--lock", "job", "--store", store_.Url(""),
               "--key", "out/result", "--terms", "1", "--ttl-ms", "5000",
               "--acquire-timeout-ms", "20000"}),
      Millis(30000));
  ASSERT_TRUE(worker.ok());
  EXPECT_EQ(worker->exit_code, 0) << worker->Output();
  std::size_t wrote = 0;
  for (const std::string& line : worker->lines) {
    wrote += line.find("\"write_done\"") != std::string::npos;
  }
  EXPECT_GE(wrote, 1u) << worker->Output();
  EXPECT_NE(Fence("out/result"), "none");
  EXPECT_EQ(Request(verb::get, store_.Url("/v1/scopes/job")).result(), status::ok);
  for (const char* reason : {"missing", "malformed", "unknown_key_id", "mismatch",
                             "missing_lock", "lock_mismatch"}) {
    EXPECT_EQ(Refusals(reason), 0) << reason;
  }
}

// The client library sends a signature only with the token it proves: a
// write with another token goes without one (nor its Fencing-Lock, so the
// store refuses it as missing_lock), never with a signature that cannot
// match.
TEST_F(SignedTokensTest, StoreClientSendsTheSignatureOnlyWithItsToken) {
  const Grant g = Acquire(lockd_, "job");
  const Token token(std::stoull(g.token));
  client::StoreClient store(store_.Url(""));
  store.UseSignedToken(client::SignedToken{g.lock, token, g.signature});
  auto put = store.Put("a", "{}", token);
  ASSERT_TRUE(put.ok()) << put.error().message;
  EXPECT_TRUE(put->accepted());
  auto raised = store.RaiseFence("b", token);
  ASSERT_TRUE(raised.ok()) << raised.error().message;
  EXPECT_TRUE(raised->accepted());
  auto other = store.Put("a", "{}", Token(token.value() + 1));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, "bad_token_signature");
  EXPECT_EQ(other.error().details["server_body"]["reason"], "missing_lock");
  store.UseSignedToken(std::nullopt);
  auto unsigned_put = store.Put("a", "{}", token);
  ASSERT_FALSE(unsigned_put.ok());
  EXPECT_EQ(unsigned_put.error().details["server_body"]["reason"], "missing_lock");
  EXPECT_EQ(Fence("a"), g.token);
}

// Bad key files stop both daemons at start with a sentence that names the
// problem and never the secret.
TEST(SignedTokensStartTest, BadKeyFilesStopTheDaemons) {
  TempDir dir("fence-signed-start");
  const std::string good = std::string("k1 ") + kOldSecret;
  struct Row {
    std::string file;
    std::string message_part;
  };
  const Row rows[] = {
      {"k1 " + std::string(kOldSecret).substr(2), "is 31 bytes; expected 32"},
      {good + "\nk1 " + kNewSecret, "'k1' is listed twice"},
      {good + "\nk2 " + kOldSecret, "repeats the secret"},
      {"k1", "line 1: expected '<key id> <secret as hex>'"},
      {"", "lists no key"},
  };
  for (const Row& row : rows) {
    for (const std::string binary : {"fence-lockd", "fence-store"}) {
      SCOPED_TRACE(binary + ": " + row.file);
      std::vector<std::string> argv = {SiblingBinary(binary), "--listen", "127.0.0.1:0",
                                       "--data-dir", dir.Sub(binary), "--token-key-file",
                                       WriteFile(dir, "keys", row.file)};
      if (binary == "fence-store") argv.emplace_back("--require-signed-tokens");
      auto run = RunToCompletion(Command(argv), Millis(20000));
      ASSERT_TRUE(run.ok());
      EXPECT_NE(run->exit_code, 0);
      EXPECT_NE(run->Output().find(row.message_part), std::string::npos) << run->Output();
      EXPECT_EQ(run->Output().find(kNewSecret), std::string::npos) << run->Output();
      EXPECT_EQ(run->Output().find("1111111111"), std::string::npos) << run->Output();
    }
  }
  auto alone = RunToCompletion(
      Command({SiblingBinary("fence-store"), "--data-dir", dir.Sub("s"), "--require-signed-tokens"}),
      Millis(20000));
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->exit_code, 2);
  EXPECT_NE(alone->Output().find("go together"), std::string::npos) << alone->Output();
}

TEST(SignedTokensStartTest, HelpNamesTheFlags) {
  for (const std::string binary : {"fence-lockd", "fence-store"}) {
    auto help = RunToCompletion(Command({SiblingBinary(binary), "--help"}), Millis(20000));
    ASSERT_TRUE(help.ok());
    EXPECT_EQ(help->exit_code, 0);
    EXPECT_NE(help->Output().find("--token-key-file"), std::string::npos) << binary;
    if (binary == "fence-store") {
      EXPECT_NE(help->Output().find("--require-signed-tokens"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace fence::testing
