// ParseUrl: the schemes the client speaks (http://, https://), their default
// ports, and the sentence for a URL it cannot use.
#include <gtest/gtest.h>

#include <string>

#include "common/http_client.h"

namespace fence::net {
namespace {

struct UrlCase {
  std::string url;
  bool tls;
  std::string host;
  std::string port;
  std::string target;
};

TEST(ParseUrlTest, SchemesPortsAndTargets) {
  const UrlCase cases[] = {
      {"http://127.0.0.1:8080/v1/objects/k", false, "127.0.0.1", "8080", "/v1/objects/k"},
      {"http://store.internal", false, "store.internal", "80", "/"},
      {"https://127.0.0.1:8443/metrics", true, "127.0.0.1", "8443", "/metrics"},
      {"https://store.internal", true, "store.internal", "443", "/"},
      {"https://[::1]:8443/healthz", true, "::1", "8443", "/healthz"},
      {"https://[::1]/healthz", true, "::1", "443", "/healthz"},
  };
  for (const auto& c : cases) {
    auto url = ParseUrl(c.url);
    ASSERT_TRUE(url.ok()) << c.url << ": " << url.error().message;
    EXPECT_EQ(url->tls, c.tls) << c.url;
    EXPECT_EQ(url->host, c.host) << c.url;
    EXPECT_EQ(url->port, c.port) << c.url;
    EXPECT_EQ(url->target, c.target) << c.url;
  }
}

TEST(ParseUrlTest, RefusesOtherSchemesNamingBoth) {
  for (const std::string url : {"ftp://h:1/", "HTTPS//h:1/", "h:1/", "httpss://h:1/"}) {
    auto parsed = ParseUrl(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_EQ(parsed.error().code, "bad_url");
    EXPECT_NE(parsed.error().message.find("http:// or https://"), std::string::npos)
        << parsed.error().message;
  }
}

TEST(ParseUrlTest, RefusesAMissingHostOverTlsToo) {
  auto parsed = ParseUrl("https://:8443/");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, "bad_url");
}

}  // namespace
}  // namespace fence::net
