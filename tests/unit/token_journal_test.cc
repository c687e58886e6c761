#include "lockd/token_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fence::lockd {
namespace {

std::string FileWith(const Slot* a, const Slot* b) {
  std::string contents(kTokenFileBytes, '\0');
  if (a != nullptr) {
    const auto h = EncodeSlot(*a);
    contents.replace(0, h.size(), h.data(), h.size());
  }
  if (b != nullptr) {
    const auto h = EncodeSlot(*b);
    contents.replace(kSlotBytes, h.size(), h.data(), h.size());
  }
  return contents;
}

TEST(TokenJournalTest, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
}

// A version-1 header built from the format description, independently of
// the code under test: magic, seq, reserved_upto, crc32 of those 24 bytes.
std::string VersionOneHeader(std::uint64_t seq, std::uint64_t reserved_upto) {
  std::string out = "FLKTOKN1";
  for (std::uint64_t v : {seq, reserved_upto}) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  const std::uint32_t crc = Crc32(out);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xFF));
  out.append(4, '\0');
  return out;
}

std::string VersionOneFile(std::uint64_t seq_a, std::uint64_t upto_a) {
  std::string contents(kTokenFileBytes, '\0');
  const std::string h = VersionOneHeader(seq_a, upto_a);
  contents.replace(0, h.size(), h);
  return contents;
}

TEST(TokenJournalTest, SlotRoundTrips) {
  const Slot slot{41, 123456789012345ull, Millis(86400000)};
  const auto header = EncodeSlot(slot);
  EXPECT_EQ(std::string(header.data(), 8), "FLKTOKN2");
  const DecodedSlot decoded = DecodeSlot(std::string_view(header.data(), header.size()));
  ASSERT_EQ(decoded.state, SlotState::kValid);
  EXPECT_EQ(decoded.slot.seq, 41u);
  EXPECT_EQ(decoded.slot.reserved_upto, 123456789012345ull);
  EXPECT_EQ(decoded.slot.max_ttl, Millis(86400000));
}

TEST(TokenJournalTest, VersionOneSlotIsReadWithAnUnknownMaxTtl) {
  const std::string header = VersionOneHeader(7, 7000);
  const DecodedSlot decoded = DecodeSlot(header);
  ASSERT_EQ(decoded.state, SlotState::kValid);
  EXPECT_EQ(decoded.slot.seq, 7u);
  EXPECT_EQ(decoded.slot.reserved_upto, 7000u);
  EXPECT_FALSE(decoded.slot.max_ttl.has_value());
}

TEST(TokenJournalTest, EveryFlippedBitIsDetected) {
  const auto v2 = EncodeSlot(Slot{3, 3000, Millis(60000)});
  const std::string v1 = VersionOneHeader(3, 3000);
  for (const std::string& header : {std::string(v2.data(), v2.size()), v1}) {
    for (std::size_t bit = 0; bit < header.size() * 8; ++bit) {
      std::string damaged = header;
      damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
      EXPECT_EQ(DecodeSlot(damaged).state, SlotState::kCorrupt)
          << header.substr(0, 8) << " bit " << bit;
    }
  }
}

// A torn write leaves a prefix of the new header over the old one (or over
// zeros): it decodes as the old slot, the new one, or corrupt, never as a
// mixture.
TEST(TokenJournalTest, TornSlotWriteIsNeverAMixture) {
  const auto old_header = EncodeSlot(Slot{1, 1000, Millis(100)});
  const auto new_header = EncodeSlot(Slot{3, 3000, Millis(60000)});
  for (bool over_zeros : {false, true}) {
    for (std::size_t kept = 0; kept <= kSlotHeaderBytes; ++kept) {
      std::string torn = over_zeros ? std::string(kSlotHeaderBytes, '\0')
                                    : std::string(old_header.data(), old_header.size());
      torn.replace(0, kept, new_header.data(), kept);
      const DecodedSlot d = DecodeSlot(torn);
      const bool is_old = d.state == SlotState::kValid && d.slot.seq == 1 &&
                          d.slot.reserved_upto == 1000 && d.slot.max_ttl == Millis(100);
      const bool is_new = d.state == SlotState::kValid && d.slot.seq == 3 &&
                          d.slot.reserved_upto == 3000 && d.slot.max_ttl == Millis(60000);
      const bool is_gone = d.state != SlotState::kValid;
      EXPECT_TRUE(is_old || is_new || is_gone) << "kept " << kept;
      if (kept == kSlotHeaderBytes) {
        EXPECT_TRUE(is_new);
      }
      if (kept > 8 && kept < 36) {
        EXPECT_TRUE(is_gone) << "kept " << kept;
      }
    }
  }
}

TEST(TokenJournalTest, ImpossiblyLargeMaxTtlIsCorrupt) {
  std::string header(kSlotHeaderBytes, '\0');
  const auto valid = EncodeSlot(Slot{1, 1, Millis(1)});
  header.assign(valid.data(), valid.size());
  header[24 + 6] = 1;  // max_ttl_ms = 2^48 + 1, with a matching checksum
  const std::uint32_t crc = Crc32(std::string_view(header).substr(0, 32));
  for (int i = 0; i < 4; ++i) header[32 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  EXPECT_EQ(DecodeSlot(header).state, SlotState::kCorrupt);
}

TEST(TokenJournalTest, AllZeroSlotIsEmpty) {
  const std::string zeros(kSlotHeaderBytes, '\0');
  EXPECT_EQ(DecodeSlot(zeros).state, SlotState::kEmpty);
}

TEST(TokenJournalTest, RecoveryTakesTheNewerSlot) {
  const Slot a{4, 4000, Millis(100)};
  const Slot b{5, 5000, Millis(200)};
  auto r = RecoverFromFile(FileWith(&a, &b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->newest.seq, 5u);
  EXPECT_EQ(r->floor, 5000u);
  EXPECT_EQ(r->newest.max_ttl, Millis(200));
  EXPECT_FALSE(r->one_slot_unreadable);
  auto swapped = RecoverFromFile(FileWith(&b, &a));
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->floor, 5000u);
}

TEST(TokenJournalTest, VersionOneFileRecoversWithAnUnknownMaxTtl) {
  auto r = RecoverFromFile(VersionOneFile(6, 6000));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->floor, 6000u);
  EXPECT_FALSE(r->newest.max_ttl.has_value());
  EXPECT_FALSE(r->one_slot_unreadable);
  // Upgraded: a version-2 slot written after it is the newer one.
  std::string mixed = VersionOneFile(6, 6000);
  const auto v2 = EncodeSlot(Slot{7, 7000, Millis(3000)});
  mixed.replace(kSlotBytes, v2.size(), v2.data(), v2.size());
  auto upgraded = RecoverFromFile(mixed);
  ASSERT_TRUE(upgraded.ok());
  EXPECT_EQ(upgraded->floor, 7000u);
  EXPECT_EQ(upgraded->newest.max_ttl, Millis(3000));
}

TEST(TokenJournalTest, NeverWrittenSecondSlotIsNormal) {
  const Slot a{0, 0};
  auto r = RecoverFromFile(FileWith(&a, nullptr));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->floor, 0u);
  EXPECT_FALSE(r->one_slot_unreadable);
}

TEST(TokenJournalTest, OneUnreadableSlotSkipsAMaximumBlock) {
  const Slot a{4, 4000, Millis(100)};
  std::string contents = FileWith(&a, nullptr);
  std::fill_n(contents.begin() + kSlotBytes, 20, '\x5a');  // a torn write
  auto r = RecoverFromFile(contents);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->one_slot_unreadable);
  EXPECT_EQ(r->floor, 4000u + kMaxTokenBlock);
}

TEST(TokenJournalTest, BothSlotsUnreadableIsAnError) {
  std::string contents(kTokenFileBytes, '\x5a');
  auto r = RecoverFromFile(contents);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "corrupt_token_file");
  EXPECT_FALSE(RecoverFromFile(std::string(kTokenFileBytes, '\0')).ok())
      << "an all-zero file has no valid slot";
}

TEST(TokenJournalTest, WrongSizeIsAnError) {
  const Slot a{4, 4000};
  const std::string contents = FileWith(&a, nullptr);
  EXPECT_FALSE(RecoverFromFile(contents.substr(0, 100)).ok());
  EXPECT_FALSE(RecoverFromFile(contents + "x").ok());
  EXPECT_FALSE(RecoverFromFile("").ok());
}

TEST(TokenJournalTest, TokenFloorFlagIsATokenBelowTheLast) {
  const struct {
    const char* text;
    std::optional<std::uint64_t> value;
  } rows[] = {
      {"1", 1},
      {"5000", 5000},
      {"18446744073709551614", 18446744073709551614ull},
      {"18446744073709551615", std::nullopt},  // nothing can be issued above it
      {"18446744073709551616", std::nullopt},
      {"0", std::nullopt},
      {"", std::nullopt},
      {"-1", std::nullopt},
      {"+1", std::nullopt},
      {"01", std::nullopt},
      {"1 ", std::nullopt},
      {"0x10", std::nullopt},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.text);
    auto floor = ParseTokenFloor(row.text);
    ASSERT_EQ(floor.ok(), row.value.has_value());
    if (floor.ok()) {
      EXPECT_EQ(*floor, *row.value);
    } else {
      EXPECT_EQ(floor.error().code, "bad_token_floor");
      EXPECT_NE(floor.error().message.find("from 1 to 18446744073709551614"), std::string::npos);
    }
  }
}

class TokenJournalFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lockd-journal-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  PosixEnv env_;
  std::filesystem::path dir_;
};

TEST_F(TokenJournalFileTest, TokensIncreaseAcrossReopens) {
  std::uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 10});
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    EXPECT_EQ((*journal)->existed(), run > 0);
    for (int i = 0; i < 3; ++i) {
      auto token = (*journal)->Issue(Millis(100));
      ASSERT_TRUE(token.ok());
      EXPECT_GT(token->value(), last);
      last = token->value();
    }
  }
  // Each run reserved one block of 10 and used 3: runs start at 1, 11, 21.
  EXPECT_EQ(last, 23u);
}

TEST_F(TokenJournalFileTest, SecondOpenIsRefusedWhileTheFirstHoldsTheLock) {
  auto first = TokenJournal::Open(env_, dir_.string(), {.block = 1});
  ASSERT_TRUE(first.ok());
  auto second = TokenJournal::Open(env_, dir_.string(), {.block = 1});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("locked by another"), std::string::npos)
      << second.error().message;
}

TEST_F(TokenJournalFileTest, LockIsASeparateFileReleasedOnClose) {
  {
    auto first = TokenJournal::Open(env_, dir_.string(), {.block = 1});
    ASSERT_TRUE(first.ok());
    EXPECT_TRUE(std::filesystem::exists(dir_ / "LOCK"));
  }
  EXPECT_TRUE(TokenJournal::Open(env_, dir_.string(), {.block = 1}).ok());
}

TEST_F(TokenJournalFileTest, CreatesMissingDirectoriesAndReplacesALeftoverTempFile) {
  const std::filesystem::path nested = dir_ / "a" / "b";
  std::filesystem::create_directories(nested);
  {
    std::ofstream tmp(nested / "tokens.tmp", std::ios::binary);
    tmp << "half a file from a crash";
  }
  auto journal = TokenJournal::Open(env_, nested.string(), {.block = 1});
  ASSERT_TRUE(journal.ok()) << journal.error().message;
  EXPECT_FALSE(std::filesystem::exists(nested / "tokens.tmp"));
  EXPECT_EQ(std::filesystem::file_size(nested / "tokens"), kTokenFileBytes);
  auto deeper = TokenJournal::Open(env_, (dir_ / "c" / "d").string(), {.block = 1});
  ASSERT_TRUE(deeper.ok()) << deeper.error().message;
  EXPECT_FALSE((*deeper)->existed());
}

TEST_F(TokenJournalFileTest, CorruptFileRefusesToOpen) {
  {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1});
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->Issue(Millis(100)).ok());
    ASSERT_TRUE((*journal)->Issue(Millis(100)).ok());
  }
  {
    std::fstream f(dir_ / "tokens", std::ios::in | std::ios::out | std::ios::binary);
    for (std::size_t offset : {std::size_t{0}, kSlotBytes}) {
      f.seekp(static_cast<std::streamoff>(offset) + 9);
      f.put('\x7f');
    }
  }
  auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1});
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.error().code, "corrupt_token_file");
  EXPECT_NE(journal.error().message.find("refusing to start"), std::string::npos);
}

TEST_F(TokenJournalFileTest, GraceIsTheLargestTtlEverGranted) {
  {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1000, .assumed_max_ttl = Millis(1000)});
    ASSERT_TRUE(journal.ok());
    EXPECT_EQ((*journal)->grace().duration, Millis(0));
    EXPECT_EQ((*journal)->grace().source, "new_token_file");
    for (Millis ttl : {Millis(500), Millis(60000), Millis(2000)}) {
      ASSERT_TRUE((*journal)->Issue(ttl).ok());
    }
    EXPECT_EQ((*journal)->max_ttl(), Millis(60000));
  }
  // Whatever --max-ttl-ms the restart uses.
  auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1000, .assumed_max_ttl = Millis(1000)});
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ((*journal)->grace().duration, Millis(60000));
  EXPECT_EQ((*journal)->grace().source, "recorded_max_ttl");
}

TEST_F(TokenJournalFileTest, ReopenedWithoutGrantsHasNoGrace) {
  ASSERT_TRUE(TokenJournal::Open(env_, dir_.string(), {.block = 1}).ok());
  auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1});
  ASSERT_TRUE(journal.ok());
  EXPECT_TRUE((*journal)->existed());
  EXPECT_EQ((*journal)->grace().duration, Millis(0));
  EXPECT_EQ((*journal)->grace().source, "recorded_max_ttl");
}

TEST_F(TokenJournalFileTest, VersionOneFileAssumesTheFlagAndIsUpgraded) {
  {
    std::ofstream f(dir_ / "tokens", std::ios::binary);
    f << VersionOneFile(3, 3000);
  }
  {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 10, .assumed_max_ttl = Millis(5000)});
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    EXPECT_EQ((*journal)->grace().duration, Millis(5000));
    EXPECT_EQ((*journal)->grace().source, "max_ttl_flag_version1_file");
    auto token = (*journal)->Issue(Millis(100));
    ASSERT_TRUE(token.ok());
    EXPECT_EQ(token->value(), 3001u);
  }
  // The assumption is now on record, even if the flag goes down.
  auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 10, .assumed_max_ttl = Millis(10)});
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ((*journal)->grace().duration, Millis(5000));
  EXPECT_EQ((*journal)->grace().source, "recorded_max_ttl");
}

TEST_F(TokenJournalFileTest, UnreadableSlotTakesTheLargerOfRecordAndFlag) {
  {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1});
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->Issue(Millis(3000)).ok());  // seq 1, at offset 4096
    ASSERT_TRUE((*journal)->Issue(Millis(100)).ok());   // seq 2, at offset 0
  }
  {
    std::fstream f(dir_ / "tokens", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(9);
    f.put('\x7f');
  }
  for (Millis flag : {Millis(1000), Millis(9000)}) {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 1, .assumed_max_ttl = flag});
    ASSERT_TRUE(journal.ok());
    EXPECT_TRUE((*journal)->one_slot_unreadable());
    EXPECT_EQ((*journal)->grace().duration, std::max(Millis(3000), flag));
    EXPECT_EQ((*journal)->grace().source, "max_ttl_flag_slot_unreadable");
  }
}

TEST_F(TokenJournalFileTest, TokenFloorOnANewFileIsDurableAndStartsAGrace) {
  {
    auto journal = TokenJournal::Open(
        env_, dir_.string(), {.block = 10, .assumed_max_ttl = Millis(700), .token_floor = 5000});
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    ASSERT_TRUE((*journal)->floor_applied().has_value());
    EXPECT_TRUE((*journal)->floor_applied()->raised);
    EXPECT_EQ((*journal)->floor_applied()->journal_floor, 0u);
    // The recorded max TTL was lost with the old file: assume the flag.
    EXPECT_EQ((*journal)->grace().duration, Millis(700));
    EXPECT_EQ((*journal)->grace().source, "max_ttl_flag_token_floor");
    // Nothing issued: the floor alone must already be on disk.
  }
  auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 10, .assumed_max_ttl = Millis(5)});
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ((*journal)->floor(), 5000u);
  EXPECT_EQ((*journal)->grace().duration, Millis(700));
  EXPECT_EQ((*journal)->Issue(Millis(1))->value(), 5001u);
}

TEST_F(TokenJournalFileTest, TokenFloorNeverLowersTheFile) {
  {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 100});
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->Issue(Millis(10)).ok());
  }
  for (std::uint64_t requested : {std::uint64_t{3}, std::uint64_t{100}}) {
    auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 100, .token_floor = requested});
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->floor_applied().has_value());
    EXPECT_FALSE((*journal)->floor_applied()->raised) << requested;
    EXPECT_EQ((*journal)->floor_applied()->journal_floor, (*journal)->floor());
    EXPECT_EQ((*journal)->grace().source, "recorded_max_ttl");
    EXPECT_GT((*journal)->Issue(Millis(10))->value(), (*journal)->floor_applied()->journal_floor);
  }
  auto journal = TokenJournal::Open(env_, dir_.string(), {.block = 100, .token_floor = 10000});
  ASSERT_TRUE(journal.ok());
  EXPECT_TRUE((*journal)->floor_applied()->raised);
  EXPECT_EQ((*journal)->grace().duration, Millis(10)) << "an existing file keeps its record";
  EXPECT_EQ((*journal)->Issue(Millis(10))->value(), 10001u);
}

TEST_F(TokenJournalFileTest, LastTokenIsIssuedThenTheCounterIsExhausted) {
  auto journal = TokenJournal::Open(
      env_, dir_.string(), {.block = 1000, .token_floor = 18446744073709551613ull});
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ((*journal)->Issue(Millis(1))->value(), 18446744073709551614ull);
  EXPECT_EQ((*journal)->Issue(Millis(1))->value(), 18446744073709551615ull);
  auto none = (*journal)->Issue(Millis(1));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("exhausted"), std::string::npos);
}

}  // namespace
}  // namespace fence::lockd
