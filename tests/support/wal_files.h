// Test helpers that damage a RocksDB write-ahead log the way a bad disk or
// a crash would: find the WAL files of a data directory, flip bytes in the
// middle, cut or pad the tail.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fence::testing {

// The data directory's WAL files (NNNNNN.log; RocksDB's own text log is
// "LOG"), oldest first.
std::vector<std::string> WalFiles(const std::string& data_dir);

std::uint64_t FileSize(const std::string& path);
// XORs `count` bytes at `offset` with 0xFF (bit rot in a record).
void FlipBytes(const std::string& path, std::uint64_t offset, std::size_t count);
// Shortens the file to `size` bytes (a write torn by a crash).
void TruncateFile(const std::string& path, std::uint64_t size);
// Appends `count` zero bytes (an extent allocated but never written).
void AppendZeros(const std::string& path, std::size_t count);

}  // namespace fence::testing
