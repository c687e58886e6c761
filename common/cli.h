// Command-line conventions shared by every binary: --help prints usage and
// exits 0; a bad flag prints one line naming the problem and exits 2.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace fence {

// Returns the exit code to use if the program must stop now.
inline std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", app.get_name().c_str(), e.what());
    return 2;
  }
  return std::nullopt;
}

// Prints a fatal startup problem as one line and returns the exit code.
inline int FailStartup(const std::string& program, const std::string& sentence) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), sentence.c_str());
  return 1;
}

// Splits a comma-separated flag value ("a,b,,c" -> a, b, c).
inline std::vector<std::string> SplitCommaList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace fence
