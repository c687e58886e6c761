// AppendJsonString/AppendJsonValue against nlohmann's own dump with the
// replace handler: a table of the cases that matter (escapes, every kind of
// invalid UTF-8), then seeded random bytes and random nested values.
#include "core/json_text.h"

#include <gtest/gtest.h>

#include <iostream>
#include <random>

namespace fence {
namespace {

std::string Dumped(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Appended(std::string_view text) {
  std::string out = "prefix";
  AppendJsonString(out, text);
  EXPECT_EQ(out.rfind("prefix", 0), 0u);
  return out.substr(6);
}

TEST(JsonTextTest, StringsAreWrittenAsDumpWritesThem) {
  const std::string cases[] = {
      "",
      "plain ascii",
      "quote \" backslash \\ slash /",
      std::string("\0\x01\x1f\x7f", 4),
      "\b\f\n\r\t",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",  // 2, 3 and 4 bytes
      "\xff",                                        // never a lead byte
      "\x80 stray continuation",
      "\xc0\xaf overlong",
      "\xe0\x80\xaf overlong",
      "\xed\xa0\x80 surrogate",
      "\xf4\x90\x80\x80 above U+10FFFF",
      "\xe2\x82 cut",
      "cut at the end \xe2\x82",
      "\xf0\x9f\x98",
      "\xc3\xc3\xa9",  // a lead byte breaks a sequence and starts its own
      "\xe2\x82\xe2\x82\xac",
  };
  for (const std::string& text : cases) {
    EXPECT_EQ(Appended(text), Dumped(text)) << nlohmann::json(text).dump(-1, ' ', true,
                                                   nlohmann::json::error_handler_t::replace);
  }
}

TEST(JsonTextTest, RandomBytesAreWrittenAsDumpWritesThem) {
  const auto seed = std::random_device{}();
  std::cout << "json-text seed " << seed << "\n";
  std::mt19937 rng(seed);
  // Mostly the bytes where UTF-8 and escaping decide something.
  const unsigned char interesting[] = {0x00, 0x09, 0x1f, 0x20, '"', '\\', 'a', 0x7f, 0x80,
                                       0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0,
                                       0xe1, 0xed, 0xef, 0xf0, 0xf3, 0xf4, 0xf5, 0xff};
  std::uniform_int_distribution<std::size_t> length(0, 12);
  std::uniform_int_distribution<std::size_t> pick(0, sizeof(interesting) - 1);
  std::uniform_int_distribution<int> any_byte(0, 255);
  for (int n = 0; n < 200000; ++n) {
    std::string text(length(rng), '\0');
    for (char& c : text) {
      c = static_cast<char>(n % 4 == 0 ? any_byte(rng) : interesting[pick(rng)]);
    }
    ASSERT_EQ(Appended(text), Dumped(text)) << "seed " << seed << ", case " << n;
  }
}

nlohmann::json RandomValue(std::mt19937& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 2 ? 5 : 7);
  switch (kind(rng)) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return static_cast<std::uint64_t>(rng()) << 32 | rng();
    case 3:
      return -static_cast<std::int64_t>(rng());
    case 4:
      return std::string(rng() % 5, static_cast<char>(rng() % 256));
    case 5:
      return 0.5 * static_cast<double>(rng() % 1000);
    case 6: {
      nlohmann::json object = nlohmann::json::object();
      for (unsigned i = rng() % 4; i > 0; --i) {
        object[std::string(1 + rng() % 3, static_cast<char>('a' + rng() % 26))] =
            RandomValue(rng, depth + 1);
      }
      return object;
    }
    default: {
      nlohmann::json array = nlohmann::json::array();
      for (unsigned i = rng() % 4; i > 0; --i) array.push_back(RandomValue(rng, depth + 1));
      return array;
    }
  }
}

TEST(JsonTextTest, RandomValuesAreWrittenAsDumpWritesThem) {
  const auto seed = std::random_device{}();
  std::cout << "json-value seed " << seed << "\n";
  std::mt19937 rng(seed);
  for (int n = 0; n < 20000; ++n) {
    const nlohmann::json value = RandomValue(rng, 0);
    std::string out;
    AppendJsonValue(out, value);
    ASSERT_EQ(out, Dumped(value)) << "seed " << seed << ", case " << n;
  }
}

TEST(JsonMembersTest, MembersAddedInSortedOrderAreWhatDumpWrites) {
  JsonMembers members;
  members.AddBool("deleted", true)
      .AddString("etag", "\"abc\"")
      .AddNull("highest_token")
      .AddString("key", "caf\xc3\xa9/\xff")
      .AddNumber("version", 18446744073709551615ULL);
  nlohmann::json expected = nlohmann::json::object();
  expected["deleted"] = true;
  expected["etag"] = "\"abc\"";
  expected["highest_token"] = nullptr;
  expected["key"] = "caf\xc3\xa9/\xff";
  expected["version"] = 18446744073709551615ULL;
  EXPECT_EQ(members.Object(), Dumped(expected));
  EXPECT_EQ(std::move(members).Object(), Dumped(expected));  // reuses the buffer
  EXPECT_EQ(JsonMembers().Object(), "{}");
}

}  // namespace
}  // namespace fence
