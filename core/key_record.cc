#include "core/key_record.h"

#include <nlohmann/json.hpp>

#include "core/json_text.h"

namespace fence {
namespace {
constexpr int kFormatVersion = 1;
}

// JSON keeps the on-disk record self-describing and inspectable with
// `ldb`; records are small, the object bytes are stored separately. Written
// by hand on the committer's path, in the order nlohmann's dump of the same
// members writes them (sorted keys), and never throws: the content type is
// validated at the door, and any byte that slipped through is replaced.
std::string EncodeKeyRecord(const KeyRecord& record) {
  std::string text;
  text.reserve(160 + record.etag.size() + record.content_type.size());
  text += "{\"content_type\":";
  AppendJsonString(text, record.content_type);
  text += record.deleted ? ",\"deleted\":true" : ",\"deleted\":false";
  text += ",\"etag\":";
  AppendJsonString(text, record.etag);
  text += record.has_object ? ",\"has_object\":true" : ",\"has_object\":false";
  if (record.highest_token) {
    text += ",\"highest_token\":";
    AppendJsonNumber(text, record.highest_token->value());
  }
  if (record.object_token) {
    text += ",\"object_token\":";
    AppendJsonNumber(text, record.object_token->value());
  }
  text += ",\"size\":";
  AppendJsonNumber(text, record.size);
  text += ",\"v\":";
  AppendJsonNumber(text, kFormatVersion);
  text += ",\"version\":";
  AppendJsonNumber(text, record.version);
  text += '}';
  return text;
}

Result<KeyRecord> DecodeKeyRecord(std::string_view bytes) {
  auto corrupt = [&](const std::string& why) {
    return MakeError("corrupt_record",
                     "a stored key record cannot be read: " + why);
  };
  const nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  // Every number is one the encoder writes: an unsigned integer (a negative
  // would wrap, a fraction truncate, and a huge float convert with undefined
  // behaviour), and a token is never 0.
  auto is_count = [&](const char* field) { return j[field].is_number_unsigned(); };
  auto is_token = [&](const char* field) {
    return is_count(field) && j[field].get<std::uint64_t>() != 0;
  };
  try {
    if (!j.contains("v") || !is_count("v") ||
        j["v"].get<std::uint64_t>() != static_cast<std::uint64_t>(kFormatVersion)) {
      return corrupt("unknown format version");
    }
    KeyRecord r;
    r.has_object = j.at("has_object").get<bool>();
    if (!j.contains("size") || !is_count("size")) return corrupt("size is not a count");
    r.size = j["size"].get<std::uint64_t>();
    r.etag = j.at("etag").get<std::string>();
    r.content_type = j.at("content_type").get<std::string>();
    r.deleted = j.at("deleted").get<bool>();
    // Absent in records written before versions existed: they read as 0.
    if (j.contains("version")) {
      if (!is_count("version")) return corrupt("version is not a count");
      r.version = j["version"].get<std::uint64_t>();
    }
    if (j.contains("highest_token")) {
      if (!is_token("highest_token")) return corrupt("highest_token is not a token");
      r.highest_token = Token(j["highest_token"].get<std::uint64_t>());
    }
    if (j.contains("object_token")) {
      if (!is_token("object_token")) return corrupt("object_token is not a token");
      r.object_token = Token(j["object_token"].get<std::uint64_t>());
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return corrupt(e.what());
  }
}

}  // namespace fence
