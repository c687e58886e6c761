// How the client library reads the store's and lockd's answers: accepted,
// stale (with the store's figures), and errors that keep the server's words.
#include <gtest/gtest.h>

#include "client/lockd_backend.h"
#include "client/store_client.h"

namespace fence::client {
namespace {

TEST(InterpretWriteResponseTest, AcceptedCarriesTokenHighestAndEtag) {
  auto r = InterpretWriteResponse(
      200, false,
      R"({"key":"k","token":7,"highest_token":7,"size":3,"etag":"\"abc\"","version":4})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->accepted());
  EXPECT_EQ(r->token->value(), 7u);
  EXPECT_EQ(r->highest_token->value(), 7u);
  EXPECT_EQ(r->etag, "\"abc\"");
  EXPECT_EQ(r->version, 4u);
}

TEST(InterpretWriteResponseTest, StaleCarriesBothTokensAndTheServerBody) {
  auto r = InterpretWriteResponse(
      409, false,
      R"({"error":"stale_token","key":"k","token":5,"highest_token":7,"message":"lower"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stale());
  EXPECT_EQ(r->token->value(), 5u);
  EXPECT_EQ(r->highest_token->value(), 7u);
  EXPECT_EQ(r->server_body["message"], "lower");
  EXPECT_EQ(r->http_status, 409);
}

TEST(InterpretWriteResponseTest, FencingOffIsReported) {
  auto r = InterpretWriteResponse(200, true, R"({"key":"k","token":null,"highest_token":null})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->fencing_off);
  EXPECT_FALSE(r->token.has_value());
}

TEST(InterpretWriteResponseTest, ErrorsKeepTheServersCodeMessageAndBody) {
  auto r = InterpretWriteResponse(
      428, false, R"({"error":"missing_token","message":"no Fencing-Token header"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "missing_token");
  EXPECT_EQ(r.error().message, "no Fencing-Token header");
  EXPECT_EQ(r.error().details["http_status"], 428);
  EXPECT_EQ(r.error().details["server_body"]["error"], "missing_token");

  // A 409 that is not stale_token is not a fence.
  auto other = InterpretWriteResponse(409, false, R"({"error":"conflict","message":"x"})");
  EXPECT_FALSE(other.ok());

  auto opaque = InterpretWriteResponse(502, false, "Bad Gateway");
  ASSERT_FALSE(opaque.ok());
  EXPECT_EQ(opaque.error().code, "http_502");
  EXPECT_NE(opaque.error().message.find("Bad Gateway"), std::string::npos);
}

TEST(InterpretAcquireResponseTest, GrantIsALease) {
  auto r = InterpretAcquireResponse(
      200, R"({"name":"l","owner":"A","token":12,"lease_id":"00000000000000ab","ttl_ms":900})", "l",
      "A");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->token.value(), 12u);
  EXPECT_EQ(r->lease_id, "00000000000000ab");
  EXPECT_EQ(r->ttl, Millis(900));
}

TEST(InterpretAcquireResponseTest, HeldAndErrorsUseTheBackendCodes) {
  auto held = InterpretAcquireResponse(
      409, R"({"error":"held","holder":"B","expires_in_ms":300})", "l", "A");
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.error().code, "held");
  EXPECT_EQ(held.error().details["holder"], "B");
  EXPECT_EQ(held.error().details["expires_in_ms"], 300);

  auto bad = InterpretAcquireResponse(400, R"({"error":"bad_request","message":"ttl"})", "l", "A");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "bad_request");

  auto starting = InterpretAcquireResponse(503, R"({"error":"starting"})", "l", "A");
  ASSERT_FALSE(starting.ok());
  EXPECT_EQ(starting.error().code, "unavailable");

  auto no_token = InterpretAcquireResponse(200, R"({"lease_id":"x"})", "l", "A");
  EXPECT_FALSE(no_token.ok());
}

// Two lockds are two independent counters: a client that fails over
// between them gets tokens the store cannot order (fence-partition's naive
// scenario). One lockd endpoint only; etcd or ZooKeeper for availability.
TEST(MakeLockBackendTest, RefusesMoreThanOneLockdEndpoint) {
  auto pair = MakeLockBackend("lockd", {"http://127.0.0.1:8081", "http://127.0.0.1:8082"});
  ASSERT_FALSE(pair.ok()) << "a primary/standby lockd pair was accepted";
  EXPECT_EQ(pair.error().code, "bad_request");
  EXPECT_NE(pair.error().message.find("one lockd endpoint"), std::string::npos)
      << pair.error().message;
  EXPECT_NE(pair.error().message.find("etcd or ZooKeeper"), std::string::npos)
      << pair.error().message;
  EXPECT_TRUE(MakeLockBackend("lockd", {"http://127.0.0.1:8081"}).ok());
  EXPECT_TRUE(MakeLockBackend("etcd", {"http://127.0.0.1:2379", "http://127.0.0.1:2380"}).ok());
}

}  // namespace
}  // namespace fence::client
