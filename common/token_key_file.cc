#include "common/token_key_file.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/logging.h"

namespace fence {

namespace {

constexpr char kBadKeyFile[] = "bad_token_key_file";

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(kBadKeyFile, "cannot read token key file " + path +
                                      "; expected a readable file of lines "
                                      "'<key id> <secret as hex>'");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > kMaxTokenKeyFileBytes) {
    return MakeError(kBadKeyFile, "token key file " + path + " is larger than " +
                                      std::to_string(kMaxTokenKeyFileBytes) +
                                      " bytes; expected a few lines");
  }
  return text.str();
}

}  // namespace

Result<TokenKeyRing> LoadTokenKeyFile(const std::string& path) {
  auto text = ReadSmallFile(path);
  if (!text.ok()) return text.error();
  auto keys = ParseTokenKeys(*text);
  // The file's name leads every sentence; the line and the reason follow.
  if (!keys.ok()) {
    Error e = keys.error();
    e.message = path + ": " + e.message;
    return e;
  }
  auto ring = TokenKeyRing::Make(std::move(*keys));
  if (!ring.ok()) {
    Error e = ring.error();
    e.message = path + ": " + e.message;
    return e;
  }
  return ring;
}

void LogTokenKeys(const std::string& path, const TokenKeyRing& ring, std::string_view role) {
  struct stat st {};
  // Anyone who can read the file can sign tokens: say so when others can.
  const bool readable_by_others = ::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0;
  nlohmann::json fields = {{"path", path},
                           {"role", role},
                           {"current_key_id", ring.current_key_id()},
                           {"key_ids", ring.KeyIds()}};
  if (readable_by_others) {
    std::ostringstream mode;
    mode << std::oct << (st.st_mode & 0777);
    fields["mode"] = mode.str();
    fields["message"] = "the token key file is readable by group or others; anyone "
                        "who reads it can forge tokens: chmod 600 it";
    log::Warn("token_keys_loaded", fields);
    return;
  }
  log::Info("token_keys_loaded", fields);
}

}  // namespace fence
