// RFC 4648 test vectors, both ways, and what the decoder refuses.
#include "core/base64.h"

#include <gtest/gtest.h>

namespace fence {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    EXPECT_EQ(Base64Decode(encoded), std::string(plain));
  }
  EXPECT_EQ(Base64Encode("xxx"), "eHh4");  // the bench's etcd values rely on it
}

TEST(Base64Test, CharactersOutsideTheAlphabetAreRefused) {
  EXPECT_FALSE(Base64Decode("Zm9v!").has_value());
  EXPECT_FALSE(Base64Decode("Zm 9v").has_value());
}

}  // namespace
}  // namespace fence
