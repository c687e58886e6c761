#include "tools/timeline/timeline_html.h"

#include <cstdio>
#include <sstream>

namespace fence::tools::timeline {

namespace {

// Colour-blind-safe hues; the shapes differ too, so colour is never the
// only difference between an accepted and a refused write.
constexpr const char* kAccepted = "#1a9850";
constexpr const char* kRefused = "#d73027";
constexpr const char* kFence = "#7b3294";
constexpr const char* kElected = "#2c7bb6";
constexpr const char* kLockdMark = "#8c510a";  // lockd's own marks: a break, a lock-delay
constexpr const char* kOwnerColours[] = {"#4c78a8", "#f58518", "#54a24b", "#b279a2",
                                         "#9d755d", "#e45756"};

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string TokenAttr(const std::optional<std::uint64_t>& v) {
  return v ? std::to_string(*v) : std::string();
}

// Each worker keeps one colour for its lane, its leases and its term.
std::string OwnerColour(const Layout& layout, const std::string& owner) {
  std::size_t worker = 0;
  for (const auto& lane : layout.lanes) {
    if (lane.id.rfind(kWorker, 0) != 0) continue;
    if (lane.id == std::string(kWorker) + " " + owner) {
      return kOwnerColours[worker % std::size(kOwnerColours)];
    }
    ++worker;
  }
  return "#888888";
}

const char* BarName(BarKind kind) {
  switch (kind) {
    case BarKind::kLease:
      return "lease";
    case BarKind::kTerm:
      return "term";
    case BarKind::kStaleBelief:
      return "stale";
    case BarKind::kPause:
      return "pause";
    case BarKind::kLockDelay:
      return "lock-delay";
  }
  return "bar";
}

// The shape of a mark, centred on (0, 0).
std::string Shape(MarkShape shape) {
  switch (shape) {
    case MarkShape::kCircle:
      return std::string("<circle r=\"6\" fill=\"") + kAccepted + "\" stroke=\"#fff\"/>";
    case MarkShape::kCross:
      return std::string("<circle r=\"7\" fill=\"#fff\" stroke=\"") + kRefused +
             "\" stroke-width=\"1.5\"/><path d=\"M-4,-4L4,4M4,-4L-4,4\" stroke=\"" + kRefused +
             "\" stroke-width=\"2.5\"/>";
    case MarkShape::kTriangle:
      return std::string("<path d=\"M0,-7L6.5,5H-6.5Z\" fill=\"") + kFence + "\"/>";
    case MarkShape::kDiamond:
      return std::string("<path d=\"M0,-7L6,0L0,7L-6,0Z\" fill=\"") + kElected + "\"/>";
    case MarkShape::kBreak:  // a lightning bolt: the lease was cut by hand
      return std::string("<path d=\"M2,-9L-5,1H0L-2,9L5,-1H0Z\" fill=\"") + kLockdMark +
             "\" stroke=\"#fff\" stroke-width=\"0.8\"/>";
    case MarkShape::kDelayStart:  // "[": the delay's left edge
      return std::string("<path d=\"M3,-8H-2V8H3\" fill=\"none\" stroke=\"") + kLockdMark +
             "\" stroke-width=\"2.5\"/>";
    case MarkShape::kDelayEnd:  // "]": its right edge
      return std::string("<path d=\"M-3,-8H2V8H-3\" fill=\"none\" stroke=\"") + kLockdMark +
             "\" stroke-width=\"2.5\"/>";
  }
  return "";
}

std::string Defs(const std::string& run) {
  return "<defs><pattern id=\"hatch-" + run +
         "\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" "
         "patternTransform=\"rotate(45)\"><rect width=\"8\" height=\"8\" fill=\"#f2f2f2\"/>"
         "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"8\" stroke=\"#9a9a9a\" stroke-width=\"3\"/>"
         "</pattern><pattern id=\"stale-" + run +
         "\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
         "patternTransform=\"rotate(-45)\"><rect width=\"6\" height=\"6\" fill=\"#fde0dd\"/>"
         "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"" + std::string(kRefused) +
         "\" stroke-width=\"2\"/></pattern><pattern id=\"delay-" + run +
         "\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\"><rect width=\"5\" "
         "height=\"5\" fill=\"#f6e8c3\"/><circle cx=\"2.5\" cy=\"2.5\" r=\"1\" fill=\"" +
         kLockdMark + "\"/></pattern></defs>";
}

void Lanes(const Layout& layout, std::ostringstream& svg) {
  bool shade = false;
  for (const auto& lane : layout.lanes) {
    svg << "<rect class=\"lane\" x=\"0\" y=\"" << Num(lane.top) << "\" width=\""
        << Num(layout.width) << "\" height=\"" << Num(lane.height) << "\" fill=\""
        << (shade ? "#f7f7f7" : "#ffffff") << "\"/>"
        << "<text class=\"lane-label\" x=\"8\" y=\"" << Num(lane.top + lane.height / 2 + 4)
        << "\">" << HtmlEscape(lane.id) << "</text>\n";
    shade = !shade;
  }
}

void Windows(const Layout& layout, const std::string& run, std::ostringstream& svg) {
  for (const auto& w : layout.windows) {
    const double top = layout.lanes.front().top;
    svg << "<rect data-run=\"" << HtmlEscape(run) << "\" data-window=\"both-led\" data-from-ms=\""
        << w.from_ms << "\" data-to-ms=\"" << w.to_ms << "\" x=\"" << Num(w.x0) << "\" y=\""
        << Num(top) << "\" width=\"" << Num(w.x1 - w.x0) << "\" height=\""
        << Num(layout.plot_bottom - top) << "\" fill=\"" << kRefused
        << "\" fill-opacity=\"0.16\" stroke=\"" << kRefused << "\" stroke-opacity=\"0.5\">"
        << "<title>" << HtmlEscape(w.older_owner + " and " + w.newer_owner + " both believed they led '" + w.lock + "' for " + std::to_string(w.to_ms - w.from_ms) + " ms") << "</title></rect>"
        << "<text class=\"window-label\" x=\"" << Num(w.x0) << "\" y=\"" << Num(top - 6)
        << "\">" << HtmlEscape(w.older_owner) << " and " << HtmlEscape(w.newer_owner)
        << " both believed they led: " << (w.to_ms - w.from_ms) << " ms</text>\n";
  }
}

std::string BarFill(const Layout& layout, const Bar& bar, const std::string& run) {
  switch (bar.kind) {
    case BarKind::kPause:
      return "url(#hatch-" + run + ")";
    case BarKind::kStaleBelief:
      return "url(#stale-" + run + ")";
    case BarKind::kLockDelay:
      return "url(#delay-" + run + ")";
    default:
      return OwnerColour(layout, bar.owner);
  }
}

// A lease's label ("A t7") is left out when the next bar in its row starts
// too close for it: two labels on top of each other read as neither (a
// break hands the lock over within a millisecond). The tooltip keeps it.
bool LabelFits(const Layout& layout, const Bar& bar) {
  constexpr double kLabelWidth = 34;
  for (const auto& other : layout.bars) {
    const bool lockd_row = other.kind == BarKind::kLease || other.kind == BarKind::kLockDelay;
    if (&other != &bar && lockd_row && other.y == bar.y && other.x0 > bar.x0 &&
        other.x0 < bar.x0 + kLabelWidth) {
      return false;
    }
  }
  return true;
}

void Bars(const Layout& layout, const std::string& run, std::ostringstream& svg) {
  for (const auto& bar : layout.bars) {
    svg << "<rect data-run=\"" << HtmlEscape(run) << "\" data-lane=\"" << HtmlEscape(bar.lane)
        << "\" data-bar=\"" << BarName(bar.kind) << "\" data-owner=\"" << HtmlEscape(bar.owner)
        << "\" data-token=\"" << TokenAttr(bar.token) << "\" data-start-event=\""
        << HtmlEscape(bar.start_event) << "\" data-end-event=\"" << HtmlEscape(bar.end_event)
        << "\" data-from-ms=\"" << bar.from_ms << "\" data-to-ms=\"" << bar.to_ms << "\" x=\""
        << Num(bar.x0) << "\" y=\"" << Num(bar.y) << "\" width=\"" << Num(bar.x1 - bar.x0)
        << "\" height=\"" << Num(bar.height) << "\" fill=\"" << BarFill(layout, bar, run)
        << "\"" << (bar.kind == BarKind::kTerm ? " fill-opacity=\"0.45\"" : "")
        << (bar.kind == BarKind::kPause ? " stroke=\"#777\"" : "")
        << (bar.kind == BarKind::kLockDelay ? std::string(" stroke=\"") + kLockdMark + "\"" : "")
        << " rx=\"2\"><title>"
        << HtmlEscape(bar.title + ": " + std::to_string(bar.from_ms) + " to " +
                      std::to_string(bar.to_ms) + " ms" +
                      (bar.end_event.empty() ? " (no end in the log)" : ", " + bar.end_event))
        << "</title></rect>";
    if (bar.kind == BarKind::kLease && LabelFits(layout, bar)) {
      svg << "<text class=\"bar-label\" x=\"" << Num(bar.x0 + 2) << "\" y=\"" << Num(bar.y - 2)
          << "\">" << HtmlEscape(bar.owner) << " t" << TokenAttr(bar.token) << "</text>";
    } else if (bar.kind == BarKind::kLockDelay) {
      svg << "<text class=\"bar-label\" x=\"" << Num(bar.x0 + 2) << "\" y=\"" << Num(bar.y - 2)
          << "\">lock-delay " << (bar.to_ms - bar.from_ms) << " ms</text>";
    } else if (bar.kind == BarKind::kPause && bar.x1 - bar.x0 > 120) {
      // A quarter in: marks crowd a pause's ends (the write before the
      // stop, the stale write after it) and often its middle (the demo's
      // pause is twice the TTL, so the lease expires half-way).
      svg << "<text class=\"bar-label\" text-anchor=\"middle\" x=\"" << Num(bar.x0 + (bar.x1 - bar.x0) / 4)
          << "\" y=\"" << Num(bar.y + bar.height - 5) << "\">stopped (SIGSTOP) "
          << (bar.to_ms - bar.from_ms) << " ms</text>";
    }
    svg << "\n";
  }
}

void Marks(const Layout& layout, const std::string& run, std::ostringstream& svg) {
  for (const auto& m : layout.marks) {
    const bool flip = m.label_left;
    svg << "<g class=\"mark\" data-run=\"" << HtmlEscape(run) << "\" data-lane=\""
        << HtmlEscape(m.lane) << "\" data-event=\"" << HtmlEscape(m.event) << "\" data-token=\""
        << TokenAttr(m.token) << "\" data-term=\"" << TokenAttr(m.term) << "\" data-ms=\""
        << m.at_ms << "\" transform=\"translate(" << Num(m.x) << "," << Num(m.y) << ")\"><title>"
        << HtmlEscape(m.title) << "</title>" << Shape(m.shape);
    if (!m.label.empty()) {
      svg << "<text class=\"mark-label\" x=\"" << (flip ? "-10" : "10") << "\" y=\"4\""
          << (flip ? " text-anchor=\"end\"" : "") << ">" << HtmlEscape(m.label) << "</text>";
    }
    svg << "</g>\n";
  }
}

void Axis(const Layout& layout, std::ostringstream& svg) {
  const double y = layout.plot_bottom;
  svg << "<line x1=\"" << Num(layout.plot_left) << "\" y1=\"" << Num(y) << "\" x2=\""
      << Num(layout.plot_right) << "\" y2=\"" << Num(y) << "\" stroke=\"#333\"/>";
  for (const auto& t : layout.ticks) {
    svg << "<line x1=\"" << Num(t.x) << "\" y1=\"" << Num(layout.lanes.front().top) << "\" x2=\""
        << Num(t.x) << "\" y2=\"" << Num(y + 4) << "\" stroke=\"#000\" stroke-opacity=\"0.08\"/>"
        << "<text class=\"tick\" x=\"" << Num(t.x) << "\" y=\"" << Num(y + 16)
        << "\" text-anchor=\"middle\">" << t.at_ms << "</text>";
  }
  svg << "<text class=\"tick\" x=\"" << Num(layout.plot_right) << "\" y=\"" << Num(y + 30)
      << "\" text-anchor=\"end\">ms from the first event</text>\n";
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string TimelineSvg(const Layout& layout, const std::string& run) {
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" data-run=\""
      << HtmlEscape(run) << "\" width=\"" << Num(layout.width) << "\" height=\""
      << Num(layout.height) << "\" viewBox=\"0 0 " << Num(layout.width) << " "
      << Num(layout.height) << "\">" << Defs(HtmlEscape(run)) << "\n";
  if (!layout.lanes.empty()) {
    Lanes(layout, svg);
    Windows(layout, run, svg);
    Bars(layout, HtmlEscape(run), svg);
    Marks(layout, run, svg);
    Axis(layout, svg);
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string LegendSvg() {
  struct Item {
    std::string shape;
    const char* text;
  };
  const std::vector<Item> items = {
      {Shape(MarkShape::kCircle), "write accepted"},
      {Shape(MarkShape::kCross), "write refused 409 (fenced)"},
      {Shape(MarkShape::kTriangle), "fence raised"},
      {Shape(MarkShape::kDiamond), "elected"},
      {std::string("<rect x=\"-9\" y=\"-5\" width=\"18\" height=\"10\" fill=\"") +
           kOwnerColours[0] + "\"/>",
       "lease at lockd (grant to expiry/release)"},
      {std::string("<rect x=\"-9\" y=\"-4\" width=\"18\" height=\"8\" fill=\"") +
           kOwnerColours[0] + "\" fill-opacity=\"0.45\"/>",
       "worker believes it leads"},
      {"<rect x=\"-9\" y=\"-4\" width=\"18\" height=\"8\" fill=\"url(#stale-legend)\"/>",
       "...after lockd ended its lease"},
      {"<rect x=\"-9\" y=\"-7\" width=\"18\" height=\"14\" fill=\"url(#hatch-legend)\" "
       "stroke=\"#777\"/>",
       "stopped (SIGSTOP to SIGCONT)"},
      {std::string("<rect x=\"-9\" y=\"-7\" width=\"18\" height=\"14\" fill=\"") + kRefused +
           "\" fill-opacity=\"0.16\" stroke=\"" + kRefused + "\" stroke-opacity=\"0.5\"/>",
       "both workers believed they led"},
      {std::string("<rect x=\"-9\" y=\"-6\" width=\"18\" height=\"12\" fill=\"url(#delay-legend)\" "
                   "stroke=\"") + kLockdMark + "\"/>",
       "lock-delay: lockd grants nobody"},
      {Shape(MarkShape::kDelayStart) + "<g transform=\"translate(9,0)\">" +
           Shape(MarkShape::kDelayEnd) + "</g>",
       "lock-delay started / ended"},
      {Shape(MarkShape::kBreak), "lease broken by an operator"},
  };
  std::ostringstream svg;
  const int per_row = 5, col_w = 250, row_h = 24;
  const int rows = static_cast<int>((items.size() + per_row - 1) / per_row);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"legend\" width=\"" << per_row * col_w
      << "\" height=\"" << rows * row_h + 6 << "\">" << Defs("legend");
  for (std::size_t i = 0; i < items.size(); ++i) {
    const int x = static_cast<int>(i % per_row) * col_w + 14;
    const int y = static_cast<int>(i / per_row) * row_h + 14;
    svg << "<g data-legend=\"" << i << "\" transform=\"translate(" << x << "," << y << ")\">"
        << items[i].shape << "<text x=\"16\" y=\"4\">" << items[i].text << "</text></g>";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string TimelineSection(const std::string& run, const std::string& heading,
                            const std::string& text, const Layout& layout) {
  // The id lets a link (or a screenshot) open the page at this run.
  std::string out = "<section class=\"run\" id=\"run-" + HtmlEscape(run) + "\" data-run=\"" +
                    HtmlEscape(run) + "\">\n<h2>" +
                    HtmlEscape(heading) + "</h2>\n<p>" + HtmlEscape(text) + "</p>\n";
  if (layout.lanes.empty()) {
    return out + "<p class=\"empty\">No events of a worker, lockd or the store in this run's "
                 "logs: nothing to draw.</p>\n</section>\n";
  }
  return out + "<div class=\"figure\">" + TimelineSvg(layout, run) + LegendSvg() +
         "</div>\n</section>\n";
}

std::string HtmlPage(const std::string& title, const std::string& body_html) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
         HtmlEscape(title) +
         "</title>\n<style>\n"
         "body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;margin:24px;color:#222;"
         "max-width:1320px}\n"
         "h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:26px 0 6px}"
         "p{margin:4px 0 10px;line-height:1.4}\n"
         ".figure{overflow-x:auto}svg text{font-size:11px;fill:#222}\n"
         "svg .lane-label{font-size:12px;font-weight:bold}svg .tick{fill:#555}\n"
         "svg .window-label{fill:#b2182b;font-weight:bold}svg .mark-label{fill:#222}\n"
         // A white halo keeps labels readable over the hatched pauses.
         "svg .mark-label,svg .bar-label{paint-order:stroke;stroke:#fff;stroke-width:3px;"
         "stroke-linejoin:round}\n"
         "table{border-collapse:collapse;margin:6px 0 12px}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}\n"
         "td.yes{color:#1a9850;font-weight:bold}td.no{color:#d73027;font-weight:bold}\n"
         "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}\n"
         "</style>\n</head>\n<body>\n" +
         body_html + "</body>\n</html>\n";
}

}  // namespace fence::tools::timeline
