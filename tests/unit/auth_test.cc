#include "core/auth.h"

#include <gtest/gtest.h>

#include <string>

namespace fence::auth {
namespace {

std::string HashHex(std::string_view token) { return HexOf(HashToken(token)); }

TEST(AuthTest, HashIsSha256OfTheTokenBytes) {
  // The value `printf %s abc | sha256sum` prints (FIPS 180-2 test vector).
  EXPECT_EQ(HashHex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AuthTest, AuthFileErrorsNameTheLine) {
  const std::string h = HashHex("t1");
  struct Row {
    std::string text;
    Daemon daemon;
    std::string expected;  // "" = parses; else a part of the message
  };
  const Row kRows[] = {
      {"writer " + h + "\n", Daemon::kStore, ""},
      {"# comment\n\n  \nreader " + h + " ci-bot\n", Daemon::kStore, ""},
      {"admin " + h + "\r\n", Daemon::kLockd, ""},
      {"client " + h, Daemon::kLockd, ""},
      {"", Daemon::kStore, "holds no credential"},
      {"# only a comment\n", Daemon::kStore, "holds no credential"},
      {"\nwriter\n", Daemon::kStore, "line 2: expected 'ROLE SHA256HEX [NAME]', found 1"},
      {"writer " + h + " a b\n", Daemon::kStore, "line 1: expected 'ROLE SHA256HEX [NAME]', found 4"},
      {"client " + h, Daemon::kStore, "line 1: unknown role 'client' for fence-store; expected one of reader, writer, admin"},
      {"writer " + h, Daemon::kLockd, "line 1: unknown role 'writer' for fence-lockd; expected one of client, admin"},
      {"Writer " + h, Daemon::kStore, "unknown role 'Writer'"},
      {"writer secret-token\n", Daemon::kStore, "line 1: the second field is not a SHA-256"},
      {"writer " + h.substr(1) + "\n", Daemon::kStore, "not a SHA-256"},
      {"writer " + h.substr(1) + "g\n", Daemon::kStore, "not a SHA-256"},
      {"writer " + h + " bad/name\n", Daemon::kStore, "line 1: the name must be"},
      {"writer " + h + " " + std::string(65, 'a'), Daemon::kStore, "the name must be"},
      {"writer " + h + "\n#x\nadmin " + h + "\n", Daemon::kStore,
       "line 3: the same token hash is already on line 1"},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.text);
    auto parsed = ParseAuthFile(row.text, row.daemon);
    if (row.expected.empty()) {
      ASSERT_TRUE(parsed.ok()) << parsed.error().message;
      EXPECT_EQ(parsed->entries.size(), 1u);
    } else {
      ASSERT_FALSE(parsed.ok());
      EXPECT_EQ(parsed.error().code, "bad_auth_file");
      EXPECT_NE(parsed.error().message.find(row.expected), std::string::npos)
          << parsed.error().message;
    }
  }
}

TEST(AuthTest, NamesDefaultToRoleAndHashPrefixAndNeverHoldTheToken) {
  auto parsed = ParseAuthFile("writer " + HashHex("sekrit") + "\nadmin " +
                                  HashHex("other") + " ops@example\n",
                              Daemon::kStore);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->entries[0].name, "writer:" + HashHex("sekrit").substr(0, 8));
  EXPECT_EQ(parsed->entries[1].name, "ops@example");
  EXPECT_EQ(parsed->entries[1].line, 2);
}

TEST(AuthTest, RoleTable) {
  struct Row {
    Role held, needed;
    bool granted;
  };
  const Row kRows[] = {
      {Role::kReader, Role::kReader, true},  {Role::kReader, Role::kWriter, false},
      {Role::kReader, Role::kAdmin, false},  {Role::kWriter, Role::kReader, true},
      {Role::kWriter, Role::kWriter, true},  {Role::kWriter, Role::kAdmin, false},
      {Role::kAdmin, Role::kReader, true},   {Role::kAdmin, Role::kWriter, true},
      {Role::kAdmin, Role::kAdmin, true},    {Role::kClient, Role::kClient, true},
      {Role::kClient, Role::kAdmin, false},  {Role::kAdmin, Role::kClient, true},
  };
  for (const Row& row : kRows) {
    EXPECT_EQ(Grants(row.held, row.needed), row.granted)
        << RoleName(row.held) << " for " << RoleName(row.needed);
  }
}

TEST(AuthTest, AuthorizeTable) {
  auto creds = ParseAuthFile("reader " + HashHex("r-token") + " r\nwriter " +
                                 HashHex("w-token") + " w\nadmin " + HashHex("a+/=") +
                                 " a\n",
                             Daemon::kStore);
  ASSERT_TRUE(creds.ok());
  using V = std::vector<std::string_view>;
  struct Row {
    V header;
    Role needed;
    std::optional<Refusal> refusal;
    std::string who;
  };
  const Row kRows[] = {
      {V{}, Role::kReader, Refusal::kMissing, ""},
      {V{"Bearer w-token", "Bearer w-token"}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Basic dTpw"}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Bearer"}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Bearer "}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Bearer a b"}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Bearer =="}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Bearer w\"token"}, Role::kReader, Refusal::kMalformed, ""},
      {V{"Bearer nope"}, Role::kReader, Refusal::kUnknown, ""},
      {V{"Bearer w-tokeN"}, Role::kReader, Refusal::kUnknown, ""},
      {V{"Bearer r-token"}, Role::kReader, std::nullopt, "r"},
      {V{"bearer   r-token  "}, Role::kReader, std::nullopt, "r"},
      {V{"BEARER r-token"}, Role::kReader, std::nullopt, "r"},
      {V{"Bearer r-token"}, Role::kWriter, Refusal::kForbidden, "r"},
      {V{"Bearer w-token"}, Role::kWriter, std::nullopt, "w"},
      {V{"Bearer w-token"}, Role::kAdmin, Refusal::kForbidden, "w"},
      {V{"Bearer a+/="}, Role::kAdmin, std::nullopt, "a"},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.header.empty() ? "(none)" : std::string(row.header.front()));
    const Decision d = Authorize(*creds, row.header, row.needed);
    EXPECT_EQ(d.refusal, row.refusal);
    EXPECT_EQ(d.who, row.who);
  }
}

TEST(AuthTest, TokenFileText) {
  struct Row {
    std::string text;
    std::string token;  // "" = refused
  };
  const Row kRows[] = {
      {"abc\n", "abc"}, {"abc", "abc"}, {"abc\r\n", "abc"}, {"a.b_c~d+e/f==\n", "a.b_c~d+e/f=="},
      {"", ""},         {"\n", ""},      {"abc\ndef\n", ""}, {"ab c\n", ""},
      {"abc\n\n", ""},
  };
  for (const Row& row : kRows) {
    SCOPED_TRACE(row.text);
    auto token = ParseTokenFileText(row.text);
    if (row.token.empty()) {
      ASSERT_FALSE(token.ok());
      EXPECT_EQ(token.error().code, "bad_token_file");
    } else {
      ASSERT_TRUE(token.ok()) << token.error().message;
      EXPECT_EQ(*token, row.token);
    }
  }
}

}  // namespace
}  // namespace fence::auth

namespace fence::auth {
namespace {

TEST(AuthPolicyTest, StoreRoutes) {
  struct Row {
    std::string_view route, method, tail;
    bool has_token;
    std::optional<Role> needed;
  };
  const Row kRows[] = {
      {"metrics", "GET", "", false, std::nullopt},
      {"healthz", "GET", "", false, std::nullopt},
      {"readyz", "GET", "", false, std::nullopt},
      {"objects", "GET", "k", false, Role::kReader},
      {"objects", "HEAD", "k", false, Role::kReader},
      {"fences", "GET", "k", false, Role::kReader},
      {"scopes", "GET", "s", false, Role::kReader},
      {"objects", "PUT", "k", true, Role::kWriter},
      {"objects", "PUT", "k", false, Role::kWriter},
      {"objects", "DELETE", "k", true, Role::kWriter},
      {"fences", "POST", "k", true, Role::kWriter},
      {"scopes", "POST", "s/fence", true, Role::kWriter},
      {"fences", "POST", "k/repair", false, Role::kAdmin},
      {"fences", "POST", "a/b/repair", false, Role::kAdmin},
      // A raise of key "k/repair" carries its token: a writer's request.
      {"fences", "POST", "k/repair", true, Role::kWriter},
      {"fences", "POST", "repair", false, Role::kWriter},
      {"objects", "PUT", "k/repair", false, Role::kWriter},
      {"new-route", "GET", "", false, Role::kAdmin},
  };
  for (const Row& row : kRows) {
    EXPECT_EQ(StoreRoleFor(row.route, row.method, row.tail, row.has_token), row.needed)
        << row.route << " " << row.method << " " << row.tail;
  }
}

TEST(AuthPolicyTest, LockdRoutes) {
  struct Row {
    std::string_view route, method, tail;
    std::optional<Role> needed;
  };
  const Row kRows[] = {
      {"metrics", "GET", "", std::nullopt},
      {"healthz", "GET", "", std::nullopt},
      {"readyz", "GET", "", std::nullopt},
      {"locks", "POST", "job/acquire", Role::kClient},
      {"locks", "POST", "job/release", Role::kClient},
      {"leases", "POST", "17/keepalive", Role::kClient},
      {"locks", "GET", "job", Role::kClient},
      {"locks", "POST", "job/break", Role::kAdmin},
      {"other", "GET", "", Role::kAdmin},
  };
  for (const Row& row : kRows) {
    EXPECT_EQ(LockdRoleFor(row.route, row.method, row.tail), row.needed)
        << row.route << " " << row.method << " " << row.tail;
  }
}

}  // namespace
}  // namespace fence::auth
