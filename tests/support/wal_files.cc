#include "tests/support/wal_files.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace fence::testing {

std::vector<std::string> WalFiles(const std::string& data_dir) {
  std::vector<std::string> wals;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.size() > 4 &&
        name.substr(name.size() - 4) == ".log") {
      wals.push_back(entry.path().string());
    }
  }
  // Same-width zero-padded numbers: name order is creation order.
  std::sort(wals.begin(), wals.end());
  return wals;
}

std::uint64_t FileSize(const std::string& path) {
  return std::filesystem::file_size(path);
}

void FlipBytes(const std::string& path, std::uint64_t offset, std::size_t count) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.good()) << "cannot open " << path;
  std::string bytes(count, '\0');
  file.seekg(static_cast<std::streamoff>(offset));
  file.read(bytes.data(), static_cast<std::streamsize>(count));
  ASSERT_EQ(file.gcount(), static_cast<std::streamsize>(count)) << path;
  for (char& c : bytes) c = static_cast<char>(c ^ 0xFF);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(bytes.data(), static_cast<std::streamsize>(count));
  ASSERT_TRUE(file.good()) << "cannot write " << path;
}

void TruncateFile(const std::string& path, std::uint64_t size) {
  std::filesystem::resize_file(path, size);
}

void AppendZeros(const std::string& path, std::size_t count) {
  std::ofstream file(path, std::ios::binary | std::ios::app);
  const std::string zeros(count, '\0');
  file.write(zeros.data(), static_cast<std::streamsize>(count));
  ASSERT_TRUE(file.good()) << "cannot append to " << path;
}

}  // namespace fence::testing
