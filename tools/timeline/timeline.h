// The timeline of a run, as a person looks at it: one lane per process
// (each worker, lockd, the store), lockd's leases as bars by lockd's clock,
// each worker's leader term and its SIGSTOP pause, every write as a mark
// (accepted or refused 409), fence raises, and the windows where two
// workers both believed they led. Input is the events fence-logscan parses
// (logscan::ParseLine); the leader terms and overlaps are logscan::Analyze's.
//
// LayOut is pure: events in, shapes with coordinates out (no I/O). The
// renderers (timeline_html.h) only print shapes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/logscan/logscan.h"

namespace fence::tools::timeline {

using logscan::EpochMillis;

// Lanes of the components a timeline draws; any other component's events
// are left out.
inline constexpr const char* kWorker = "worker";
inline constexpr const char* kLockd = "lockd";
inline constexpr const char* kStore = "store";

struct Lane {
  std::string id;  // "worker A", "lockd", "store": also the data-lane attribute
  double top = 0;
  double height = 0;
};

enum class MarkShape {
  kCircle,    // an accepted write
  kCross,     // a write refused 409 (fenced)
  kTriangle,  // a fence raised
  kDiamond,   // an election
  kBreak,     // lockd: an operator broke a lease (lease_broken)
  kDelayStart,  // lockd: a lock-delay began (lock_delay_started)
  kDelayEnd,    // lockd: a lock-delay ended (lock_delay_ended)
};

// One log event drawn as one mark.
struct Mark {
  std::string lane;
  std::string event;  // the log line's event name (data-event)
  MarkShape shape = MarkShape::kCircle;
  std::optional<std::uint64_t> token;  // the line's token, when it has one
  std::optional<std::uint64_t> term;   // worker lines
  std::string key;
  EpochMillis at_ms = 0;  // from the timeline's start
  double x = 0;
  double y = 0;
  // Shown beside the mark: "ok t7", "409 t4", "fence t7". Marks closer than
  // LayoutOptions::min_mark_gap in one row are spread apart and share one
  // label ("409 t4 ×2"), on the last of them, or on the first one's left
  // (label_left) near the right edge.
  std::string label;
  bool label_left = false;
  std::string title;  // the facts, for a tooltip
};

enum class BarKind {
  kLease,         // lockd: granted -> expired/released (or the log's end)
  kTerm,          // a worker's leader term: elected -> its first term end
  kStaleBelief,   // the part of a term after lockd ended its lease
  kPause,         // a worker stopped: pause_injected -> resumed
  kLockDelay,     // lockd grants the lock to nobody: lock_delay_started -> ended
};

struct Bar {
  BarKind kind = BarKind::kLease;
  std::string lane;
  std::string owner;
  std::optional<std::uint64_t> token;
  std::string start_event;  // e.g. "granted", "elected", "pause_injected"
  std::string end_event;    // e.g. "expired"; "" when the log shows no end
  EpochMillis from_ms = 0;
  EpochMillis to_ms = 0;
  double x0 = 0, x1 = 0, y = 0, height = 0;
  std::string title;
};

// Both workers believed they led (logscan's overlapping terms).
struct Window {
  std::string lock;
  std::string older_owner, newer_owner;
  EpochMillis from_ms = 0, to_ms = 0;
  double x0 = 0, x1 = 0;
};

struct Tick {
  EpochMillis at_ms = 0;
  double x = 0;
};

struct LayoutOptions {
  double width = 1300;     // the whole picture
  double label_width = 90; // lane names on the left
  double right_margin = 30;
  double top = 24;         // above the first lane (window labels)
  double lane_height = 64;
  double lease_row_height = 26;  // one row of lease (and lock-delay) bars in lockd's lane
  double axis_height = 36;
  double min_bar_width = 3;  // so a 1 ms lease or overlap is still seen
  double min_mark_gap = 13;  // px between the centres of marks in one row
  double label_room = 80;    // px a label needs right of its mark
};

struct Layout {
  double width = 0, height = 0;
  double plot_left = 0, plot_right = 0, plot_bottom = 0;
  EpochMillis start = 0;     // epoch ms of the first drawn event: 0 on the axis
  EpochMillis span_ms = 0;   // the last drawn event's offset
  std::vector<Lane> lanes;
  std::vector<Bar> bars;
  std::vector<Mark> marks;
  std::vector<Window> windows;
  std::vector<Tick> ticks;
};

// The events that get a mark, and the mark's shape; nullopt for the rest.
std::optional<MarkShape> MarkShapeOf(const std::string& component, const std::string& event);
// "worker A", "lockd", "store", or "" for a component with no lane.
std::string LaneOf(const logscan::LogEvent& e);

// Events in any order (they are ordered by ts, stably); none -> an empty
// layout with no lanes.
Layout LayOut(std::vector<logscan::LogEvent> events, const LayoutOptions& options = {});

// Axis steps of 1, 2 or 5 x 10^k ms, at most about `max_ticks` of them.
std::int64_t TickStep(EpochMillis span_ms, int max_ticks);

}  // namespace fence::tools::timeline
