// Reading an HTTP answer in a test: its JSON body and a header.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/http_client.h"

namespace fence::testing {

// The body as JSON; a body that is not JSON fails the test (and is null).
inline nlohmann::json Json(const net::Response& res) {
  auto j = nlohmann::json::parse(res.body(), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << res.body();
  return j;
}

// The header's value, or "" when absent.
inline std::string Header(const net::Response& res, std::string_view name) {
  auto it = res.find(net::ToBeast(name));
  return it == res.end() ? "" : std::string(net::FromBeast(it->value()));
}

}  // namespace fence::testing
