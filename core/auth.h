// Bearer-token authentication and roles: the auth file's format, and the
// decision for one request's Authorization header. Pure: the daemons read
// the file and the header; this decides.
//
// The auth file holds one credential a line: `ROLE SHA256HEX [NAME]`, where
// SHA256HEX is the SHA-256 of the bearer token (lower- or upper-case hex, as
// `printf %s "$TOKEN" | sha256sum` prints it) and NAME, optional, is who the
// credential belongs to, for audit logs ([A-Za-z0-9._@-], at most 64). Blank
// lines and lines starting with '#' are ignored. Only hashes are stored, so
// the file does not hand out the tokens to whoever can read it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace fence::auth {

// Roles grow in power: a store writer may read, and an admin may do what a
// writer (store) or a client (lockd) may.
enum class Role { kReader, kWriter, kClient, kAdmin };

// Which daemon a file is for: each accepts only its own roles, so a
// credential meant for the other daemon is a mistake caught at load.
enum class Daemon { kStore, kLockd };

std::string_view RoleName(Role role);

using Sha256 = std::array<std::uint8_t, 32>;

// SHA-256 of `bytes` (OpenSSL's libcrypto: a computation, no I/O).
Sha256 HashToken(std::string_view bytes);
std::string HexOf(const Sha256& hash);

struct Credential {
  Role role = Role::kReader;
  Sha256 hash{};
  std::string name;  // from the file, or "ROLE:" and the hash's first 8 hex digits
  int line = 0;      // where it was read, for messages
};

struct Credentials {
  std::vector<Credential> entries;
};

// Parses an auth file's text. Errors have code "bad_auth_file" and a
// message naming the line ("line 3: ...") and what was expected.
Result<Credentials> ParseAuthFile(std::string_view text, Daemon daemon);

// Why a request was refused; the names are the refusal metric's labels.
enum class Refusal {
  kMissing,    // no Authorization header (401)
  kMalformed,  // not "Bearer <token>", or sent twice (401)
  kUnknown,    // a well-formed token matching no credential (401)
  kForbidden,  // a known credential whose role is not enough (403)
};
std::string_view RefusalName(Refusal refusal);
inline constexpr std::array<Refusal, 4> kAllRefusals = {
    Refusal::kMissing, Refusal::kMalformed, Refusal::kUnknown, Refusal::kForbidden};

struct Decision {
  std::optional<Refusal> refusal;  // nullopt: allowed
  // The matched credential's name and role (allowed or forbidden).
  std::string who;
  std::optional<Role> role;
  bool allowed() const { return !refusal; }
};

// True when a credential of role `held` may do what `needed` guards.
bool Grants(Role held, Role needed);

// Decides one request: `authorization` holds the values of its
// Authorization header fields (none, one, or several). The token's hash is
// compared with every credential, each in constant time (CRYPTO_memcmp), so
// the time taken does not tell how much of a guess was right.
Decision Authorize(const Credentials& credentials,
                   const std::vector<std::string_view>& authorization, Role needed);

// The bearer token from a client's token file: the file's text without a
// trailing newline. Errors (code "bad_token_file") when it is empty, holds
// more than one line, or has characters a bearer token cannot have.
Result<std::string> ParseTokenFileText(std::string_view text);

}  // namespace fence::auth

namespace fence::auth {

// What each daemon's routes need (route names as the daemons register
// them); nullopt: open to anyone who can connect (/metrics, /healthz,
// /readyz: scrapers and probes, which reveal no keys or tokens). A route
// this table does not know needs admin, so a new route is closed until
// someone decides.
//
// fence-store: GET/HEAD need reader; PUT, DELETE and fence raises need
// writer; a fence repair (POST /v1/fences/{key}/repair with no
// Fencing-Token) needs admin.
std::optional<Role> StoreRoleFor(std::string_view route, std::string_view method,
                                 std::string_view tail, bool has_fencing_token);
// fence-lockd: a lock break (POST /v1/locks/{name}/break) needs admin;
// everything else under /v1 needs client.
std::optional<Role> LockdRoleFor(std::string_view route, std::string_view method,
                                 std::string_view tail);

// A POST to /v1/fences/{tail} is a repair when its path ends in "/repair"
// and it carries no Fencing-Token: a raise always carries one, so a key
// whose last segment is "repair" can still have its fence raised.
bool IsFenceRepair(std::string_view tail, bool has_fencing_token);

}  // namespace fence::auth
