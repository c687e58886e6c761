// The parts of the report that run programs or read the system: the plot
// (gnuplot) and the machine's facts.
#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/process.h"
#include "tools/bench/report.h"

namespace fence::tools::bench {
namespace {

// The series of one panel: "workload peer" -> (connections, rate) points.
using Series = std::map<std::string, std::map<int, double>>;

Series SeriesFor(const std::vector<Row>& rows, std::size_t body) {
  Series series;
  int widest = 1;
  for (const Row& r : rows) widest = std::max(widest, r.connections);
  for (const Row& r : rows) {
    if (!r.measured.ok() || r.measured->rate <= 0) continue;
    // The disk's ceiling is one figure: drawn as a level across every panel.
    const bool level = r.workload == "fsync";
    if (r.body != body && !level) continue;
    auto& points = series[r.workload + " " + r.peer];
    points[r.connections] = r.measured->rate;
    if (level) points[widest] = r.measured->rate;
  }
  return series;
}

// Each series keeps its colour, point and dash in every panel.
std::map<std::string, std::size_t> StyleIndex(const std::vector<Row>& rows) {
  std::map<std::string, std::size_t> index;
  for (const Row& r : rows) index.emplace(r.workload + " " + r.peer, 0);
  std::size_t next = 0;
  for (auto& [name, i] : index) i = next++;
  return index;
}

std::string GnuplotScript(const std::vector<Row>& rows, const std::vector<std::size_t>& bodies,
                          const std::string& png) {
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1200," << 420 * bodies.size() << " font ',9'\n"
     << "set output '" << png << "'\n"
     << "set multiplot layout " << bodies.size() << ",1 title "
     << "'fence-bench-peers: requests/s by connections, one run'\n"
     << "set logscale x 2\nset logscale y 10\nset xrange [0.7:200]\nset xtics (1, 32, 128)\n"
     << "set xlabel 'connections'\nset ylabel 'requests/s'\nset grid\n"
     << "set key outside right top\n";
  const auto style = StyleIndex(rows);
  for (std::size_t b = 0; b < bodies.size(); ++b) {
    const Series series = SeriesFor(rows, bodies[b]);
    std::size_t index = 0;
    for (const auto& [name, points] : series) {
      gp << "$s" << b << "_" << index++ << " << EOD\n";
      for (const auto& [c, rate] : points) gp << c << ' ' << rate << '\n';
      gp << "EOD\n";
    }
    gp << "set title '" << SizeLabel(bodies[b]) << " bodies'\nplot ";
    if (series.empty()) gp << "1/0 notitle";
    index = 0;
    for (const auto& [name, points] : series) {
      if (index > 0) gp << ", ";
      const std::size_t k = style.at(name);
      gp << "$s" << b << "_" << index << " using 1:2 with linespoints lw 2 lc " << k % 8 + 1
         << " pt " << k % 13 + 1 << " dt " << k / 8 + 1 << " title '" << name << "'";
      ++index;
    }
    gp << "\n";
  }
  gp << "unset multiplot\n";
  return gp.str();
}

std::string FirstWord(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "unknown";
}

}  // namespace

Status WritePlot(const std::vector<Row>& rows, const std::vector<std::size_t>& bodies,
                 const std::string& dir) {
  const auto gnuplot = FindProgram("gnuplot");
  if (!gnuplot) return MakeError("peer_unavailable", "gnuplot is not installed (gnuplot-nox)");
  const std::string script = dir + "/bench.gp";
  std::ofstream(script) << GnuplotScript(rows, bodies, dir + "/bench.png");
  auto ran = RunToCompletion({{*gnuplot, script}, "", {}}, Millis(60000));
  if (!ran.ok()) return ran.error();
  if (ran->exit_code != 0) return MakeError("command_failed", "gnuplot: " + ran->Output());
  return OkStatus();
}

std::string MachineFacts(const std::string& dir) {
  std::ostringstream facts;
  utsname uts{};
  uname(&uts);
  facts << "machine: cpu " << FirstWord("/proc/cpuinfo", "model name") << ", "
        << std::thread::hardware_concurrency() << " cores, memory "
        << FirstWord("/proc/meminfo", "MemTotal") << ", kernel " << uts.sysname << ' '
        << uts.release << "\n";
  std::string mount = "unknown";
  if (const auto findmnt = FindProgram("findmnt")) {
    auto ran = RunToCompletion(
        {{*findmnt, "-no", "SOURCE,FSTYPE,TARGET,OPTIONS", "-T", dir}, "", {}}, Millis(5000));
    if (ran.ok() && ran->exit_code == 0 && !ran->lines.empty()) mount = ran->lines.front();
  }
  facts << "data dirs: " << dir << " on " << mount << "\n";
  return facts.str();
}

}  // namespace fence::tools::bench
