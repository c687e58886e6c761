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

TEST(TokenJournalTest, SlotRoundTrips) {
  const Slot slot{41, 123456789012345ull};
  const auto header = EncodeSlot(slot);
  const DecodedSlot decoded = DecodeSlot(std::string_view(header.data(), header.size()));
  ASSERT_EQ(decoded.state, SlotState::kValid);
  EXPECT_EQ(decoded.slot.seq, 41u);
  EXPECT_EQ(decoded.slot.reserved_upto, 123456789012345ull);
}

TEST(TokenJournalTest, EveryFlippedBitIsDetected) {
  const auto header = EncodeSlot(Slot{3, 3000});
  for (std::size_t bit = 0; bit < header.size() * 8; ++bit) {
    auto damaged = header;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_EQ(DecodeSlot(std::string_view(damaged.data(), damaged.size())).state,
              SlotState::kCorrupt)
        << "bit " << bit;
  }
}

TEST(TokenJournalTest, AllZeroSlotIsEmpty) {
  const std::string zeros(kSlotHeaderBytes, '\0');
  EXPECT_EQ(DecodeSlot(zeros).state, SlotState::kEmpty);
}

TEST(TokenJournalTest, RecoveryTakesTheNewerSlot) {
  const Slot a{4, 4000};
  const Slot b{5, 5000};
  auto r = RecoverFromFile(FileWith(&a, &b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->newest.seq, 5u);
  EXPECT_EQ(r->floor, 5000u);
  EXPECT_FALSE(r->one_slot_unreadable);
  auto swapped = RecoverFromFile(FileWith(&b, &a));
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->floor, 5000u);
}

TEST(TokenJournalTest, NeverWrittenSecondSlotIsNormal) {
  const Slot a{0, 0};
  auto r = RecoverFromFile(FileWith(&a, nullptr));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->floor, 0u);
  EXPECT_FALSE(r->one_slot_unreadable);
}

TEST(TokenJournalTest, OneUnreadableSlotSkipsAMaximumBlock) {
  const Slot a{4, 4000};
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

  std::filesystem::path dir_;
};

TEST_F(TokenJournalFileTest, TokensIncreaseAcrossReopens) {
  std::uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    auto journal = TokenJournal::Open(dir_.string(), 10);
    ASSERT_TRUE(journal.ok()) << journal.error().message;
    EXPECT_EQ((*journal)->existed(), run > 0);
    for (int i = 0; i < 3; ++i) {
      auto token = (*journal)->Next();
      ASSERT_TRUE(token.ok());
      EXPECT_GT(token->value(), last);
      last = token->value();
    }
  }
  // Each run reserved one block of 10 and used 3: runs start at 1, 11, 21.
  EXPECT_EQ(last, 23u);
}

TEST_F(TokenJournalFileTest, SecondOpenIsRefusedWhileTheFirstHoldsTheLock) {
  auto first = TokenJournal::Open(dir_.string(), 1);
  ASSERT_TRUE(first.ok());
  auto second = TokenJournal::Open(dir_.string(), 1);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("locked by another"), std::string::npos)
      << second.error().message;
}

TEST_F(TokenJournalFileTest, CorruptFileRefusesToOpen) {
  {
    auto journal = TokenJournal::Open(dir_.string(), 1);
    ASSERT_TRUE(journal.ok());
    ASSERT_TRUE((*journal)->Next().ok());
    ASSERT_TRUE((*journal)->Next().ok());
  }
  {
    std::fstream f(dir_ / "tokens", std::ios::in | std::ios::out | std::ios::binary);
    for (std::size_t offset : {std::size_t{0}, kSlotBytes}) {
      f.seekp(static_cast<std::streamoff>(offset) + 9);
      f.put('\x7f');
    }
  }
  auto journal = TokenJournal::Open(dir_.string(), 1);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.error().code, "corrupt_token_file");
  EXPECT_NE(journal.error().message.find("refusing to start"), std::string::npos);
}

}  // namespace
}  // namespace fence::lockd
