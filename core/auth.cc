#include "core/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>

namespace fence::auth {
namespace {

constexpr std::size_t kMaxNameBytes = 64;
constexpr std::size_t kMaxTokenBytes = 4096;

struct RoleSpelling {
  std::string_view name;
  Role role;
  bool store;
  bool lockd;
};
constexpr std::array<RoleSpelling, 4> kRoles = {{
    {"reader", Role::kReader, true, false},
    {"writer", Role::kWriter, true, false},
    {"client", Role::kClient, false, true},
    {"admin", Role::kAdmin, true, true},
}};

Error BadLine(int line, const std::string& what) {
  return MakeError("bad_auth_file", "line " + std::to_string(line) + ": " + what,
                   {{"line", line}});
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Sha256> ParseHash(std::string_view hex) {
  Sha256 out{};
  if (hex.size() != out.size() * 2) return std::nullopt;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = HexDigit(hex[2 * i]);
    const int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return out;
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' ||
         c == '@' || c == '-';
}

// RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool IsBearerToken(std::string_view token) {
  std::size_t end = token.size();
  while (end > 0 && token[end - 1] == '=') --end;
  if (end == 0 || token.size() > kMaxTokenBytes) return false;
  return std::all_of(token.begin(), token.begin() + static_cast<std::ptrdiff_t>(end),
                     [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
                              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
                              c == '/';
                     });
}

std::string RoleList(Daemon daemon) {
  std::string out;
  for (const auto& r : kRoles) {
    if (daemon == Daemon::kStore ? !r.store : !r.lockd) continue;
    out += (out.empty() ? "" : ", ") + std::string(r.name);
  }
  return out;
}

Result<Role> ParseRole(std::string_view name, Daemon daemon, int line) {
  for (const auto& r : kRoles) {
    if (r.name != name) continue;
    if (daemon == Daemon::kStore ? r.store : r.lockd) return r.role;
  }
  return BadLine(line, "unknown role '" + std::string(name) + "' for " +
                           (daemon == Daemon::kStore ? "fence-store" : "fence-lockd") +
                           "; expected one of " + RoleList(daemon));
}

Result<Credential> ParseLine(std::string_view text, Daemon daemon, int line) {
  const auto fields = Fields(text);
  if (fields.size() < 2 || fields.size() > 3) {
    return BadLine(line, "expected 'ROLE SHA256HEX [NAME]', found " +
                             std::to_string(fields.size()) + " field(s)");
  }
  auto role = ParseRole(fields[0], daemon, line);
  if (!role.ok()) return role.error();
  auto hash = ParseHash(fields[1]);
  if (!hash) {
    return BadLine(line, "the second field is not a SHA-256 in hex (64 hex digits); "
                         "store the hash of the token, e.g. printf %s \"$TOKEN\" | "
                         "sha256sum, never the token itself");
  }
  Credential c{*role, *hash, {}, line};
  if (fields.size() == 3) {
    const std::string_view name = fields[2];
    if (name.size() > kMaxNameBytes || !std::all_of(name.begin(), name.end(), IsNameChar)) {
      return BadLine(line, "the name must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -");
    }
    c.name = std::string(name);
  } else {
    c.name = std::string(RoleName(*role)) + ":" + HexOf(*hash).substr(0, 8);
  }
  return c;
}

}  // namespace

std::string_view RoleName(Role role) {
  for (const auto& r : kRoles) {
    if (r.role == role) return r.name;
  }
  return "unknown";
}

std::string_view RefusalName(Refusal refusal) {
  switch (refusal) {
    case Refusal::kMissing:
      return "missing";
    case Refusal::kMalformed:
      return "malformed";
    case Refusal::kUnknown:
      return "unknown_token";
    case Refusal::kForbidden:
      return "forbidden";
  }
  return "unknown";
}

Sha256 HashToken(std::string_view bytes) {
  Sha256 out{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out.data());
  return out;
}

std::string HexOf(const Sha256& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(hash.size() * 2);
  for (std::uint8_t b : hash) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

Result<Credentials> ParseAuthFile(std::string_view text, Daemon daemon) {
  Credentials out;
  int line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto fields = Fields(line);
    if (fields.empty() || fields[0].front() == '#') continue;
    auto credential = ParseLine(line, daemon, line_no);
    if (!credential.ok()) return credential.error();
    for (const Credential& earlier : out.entries) {
      if (earlier.hash == credential->hash) {
        return BadLine(line_no, "the same token hash is already on line " +
                                    std::to_string(earlier.line) +
                                    "; one token has one role");
      }
    }
    out.entries.push_back(std::move(*credential));
  }
  if (out.entries.empty()) {
    return MakeError("bad_auth_file",
                     "the auth file holds no credential; expected lines 'ROLE "
                     "SHA256HEX [NAME]' with ROLE one of " + RoleList(daemon));
  }
  return out;
}

bool Grants(Role held, Role needed) {
  if (held == needed || held == Role::kAdmin) return true;
  return held == Role::kWriter && needed == Role::kReader;
}

Decision Authorize(const Credentials& credentials,
                   const std::vector<std::string_view>& authorization, Role needed) {
  if (authorization.empty()) return {Refusal::kMissing, {}, {}};
  if (authorization.size() > 1) return {Refusal::kMalformed, {}, {}};
  std::string_view value = authorization.front();
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), value.begin(),
                  [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
    return {Refusal::kMalformed, {}, {}};
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (!IsBearerToken(value)) return {Refusal::kMalformed, {}, {}};
  const Sha256 presented = HashToken(value);
  // Every credential is compared, each in constant time: neither which one
  // matched nor how close a guess came shows in the time taken.
  const Credential* match = nullptr;
  for (const Credential& c : credentials.entries) {
    if (CRYPTO_memcmp(c.hash.data(), presented.data(), presented.size()) == 0) match = &c;
  }
  if (match == nullptr) return {Refusal::kUnknown, {}, {}};
  if (!Grants(match->role, needed)) return {Refusal::kForbidden, match->name, match->role};
  return {std::nullopt, match->name, match->role};
}

Result<std::string> ParseTokenFileText(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.empty()) {
    return MakeError("bad_token_file", "the token file is empty; expected the bearer "
                                       "token on one line");
  }
  if (!IsBearerToken(text)) {
    return MakeError("bad_token_file",
                     "the token file holds more than one line or characters a bearer "
                     "token cannot have; expected one line of A-Z a-z 0-9 - . _ ~ + / "
                     "(then optional '=' padding), at most 4096 characters");
  }
  return std::string(text);
}

}  // namespace fence::auth

namespace fence::auth {

bool IsFenceRepair(std::string_view tail, bool has_fencing_token) {
  constexpr std::string_view kSuffix = "/repair";
  return !has_fencing_token && tail.size() > kSuffix.size() && tail.ends_with(kSuffix);
}

std::optional<Role> StoreRoleFor(std::string_view route, std::string_view method,
                                 std::string_view tail, bool has_fencing_token) {
  if (route == "metrics" || route == "healthz" || route == "readyz") return std::nullopt;
  if (route != "objects" && route != "fences" && route != "scopes") return Role::kAdmin;
  if (method == "GET" || method == "HEAD") return Role::kReader;
  if (route == "fences" && method == "POST" && IsFenceRepair(tail, has_fencing_token)) {
    return Role::kAdmin;
  }
  return Role::kWriter;
}

std::optional<Role> LockdRoleFor(std::string_view route, std::string_view method,
                                 std::string_view tail) {
  if (route == "metrics" || route == "healthz" || route == "readyz") return std::nullopt;
  if (route != "locks" && route != "leases") return Role::kAdmin;
  if (route == "locks" && method == "POST" && tail.ends_with("/break")) return Role::kAdmin;
  return Role::kClient;
}

}  // namespace fence::auth
