// Object keys: the part of the URL path after /v1/objects/ or /v1/fences/.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"

namespace fence {

inline constexpr std::size_t kMaxKeyBytes = 512;

// Percent-decodes `encoded` and validates the result: 1..512 bytes of UTF-8,
// no control characters, '/'-separated segments that are neither empty nor
// "." nor "..". A decoded "%2F" is a separator like '/', so "a%2Fb" and "a/b"
// name the same key. Errors have code "bad_key".
Result<std::string> ParseKey(std::string_view encoded);

// Encodes a key for use in a URL path (keeps '/' and unreserved bytes).
std::string EncodeKeyForPath(std::string_view key);

inline constexpr std::size_t kMaxContentTypeBytes = 256;

// A PUT's Content-Type, kept in the key's record and sent back on GET: at
// most 256 bytes of visible ASCII, spaces and tabs (RFC 9110's field value
// without obs-text), or empty (application/octet-stream). Errors have code
// "bad_content_type".
Status ValidateContentType(std::string_view content_type);

}  // namespace fence
