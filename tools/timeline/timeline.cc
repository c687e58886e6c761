#include "tools/timeline/timeline.h"

#include <algorithm>
#include <functional>
#include <map>
#include <utility>

#include "core/log_event.h"

namespace fence::tools::timeline {

namespace ev = fence::events;

namespace {

// Events that end a lease at lockd; lease_broken is the audited break.
bool EndsLease(const std::string& event) {
  return event == ev::kExpired || event == ev::kReleased || event == ev::kLeaseBroken;
}

std::optional<std::uint64_t> Uint(const nlohmann::json& fields, std::string_view name) {
  auto it = fields.find(name);
  if (it == fields.end() || !it->is_number_integer() || it->get<std::int64_t>() < 0) {
    return std::nullopt;
  }
  return it->get<std::uint64_t>();
}

std::string Str(const nlohmann::json& fields, std::string_view name) {
  auto it = fields.find(name);
  return it != fields.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Maps epoch ms to x: the first drawn event at plot_left, the last at
// plot_right (a zero span draws everything at plot_left).
class Scale {
 public:
  Scale(EpochMillis start, EpochMillis span, double left, double right)
      : start_(start), left_(left),
        px_per_ms_((right - left) / static_cast<double>(std::max<EpochMillis>(span, 1))) {}
  double X(EpochMillis epoch_ms) const { return XOffset(epoch_ms - start_); }
  double XOffset(EpochMillis offset_ms) const {
    return left_ + static_cast<double>(offset_ms) * px_per_ms_;
  }

 private:
  EpochMillis start_;
  double left_;
  double px_per_ms_;
};

// The lanes in reading order: workers as they first appear, then lockd,
// then the store.
std::vector<std::string> LaneOrder(const std::vector<logscan::LogEvent>& events) {
  std::vector<std::string> workers;
  bool lockd = false, store = false;
  for (const auto& e : events) {
    const std::string lane = LaneOf(e);
    if (e.component == kWorker) {
      if (std::find(workers.begin(), workers.end(), lane) == workers.end()) workers.push_back(lane);
    }
    lockd = lockd || e.component == kLockd;
    store = store || e.component == kStore;
  }
  if (lockd) workers.emplace_back(kLockd);
  if (store) workers.emplace_back(kStore);
  return workers;
}

// Spans that open on one event and close on the next matching end event
// with the same key, in ms from `start`; one with no end in the log lasts
// to `end`.
struct SpanRule {
  std::string component;
  std::function<bool(const std::string& event)> opens, closes;
  std::function<std::string(const logscan::LogEvent&)> key;
  // The bar of an opening event: kind, lane, owner, token and title.
  std::function<Bar(const logscan::LogEvent&)> make;
};

std::vector<Bar> Spans(const std::vector<logscan::LogEvent>& events, const SpanRule& rule,
                       EpochMillis start, EpochMillis end) {
  std::vector<Bar> bars;
  std::map<std::string, std::size_t> open;  // key -> index in bars
  for (const auto& e : events) {
    if (e.component != rule.component) continue;
    if (rule.opens(e.event)) {
      Bar bar = rule.make(e);
      bar.start_event = e.event;
      bar.from_ms = e.ts - start;
      bar.to_ms = end - start;
      open[rule.key(e)] = bars.size();
      bars.push_back(std::move(bar));
    } else if (rule.closes(e.event)) {
      auto it = open.find(rule.key(e));
      if (it == open.end()) continue;
      bars[it->second].to_ms = e.ts - start;
      bars[it->second].end_event = e.event;
      open.erase(it);
    }
  }
  return bars;
}

// A bar on lockd's lane for the lease a lockd line names (owner, token).
Bar LockdBar(BarKind kind, const logscan::LogEvent& e) {
  Bar bar;
  bar.kind = kind;
  bar.lane = kLockd;
  bar.owner = Str(e.fields, ev::kOwner);
  bar.token = Uint(e.fields, ev::kToken);
  return bar;
}

// lockd's leases: grant to expiry, release or break, by lease id.
std::vector<Bar> Leases(const std::vector<logscan::LogEvent>& events, EpochMillis start,
                        EpochMillis end) {
  SpanRule rule;
  rule.component = kLockd;
  rule.opens = [](const std::string& event) { return event == ev::kGranted; };
  rule.closes = EndsLease;
  rule.key = [](const logscan::LogEvent& e) {
    std::string id = Str(e.fields, ev::kLeaseId);
    if (!id.empty()) return id;
    const auto token = Uint(e.fields, ev::kToken);
    return Str(e.fields, "name") + "#" + (token ? std::to_string(*token) : std::string("?"));
  };
  rule.make = [](const logscan::LogEvent& e) {
    Bar bar = LockdBar(BarKind::kLease, e);
    bar.title = "lease of '" + Str(e.fields, "name") + "' to " + bar.owner;
    return bar;
  };
  return Spans(events, rule, start, end);
}

// lockd's lock-delays: lock_delay_started to lock_delay_ended, by lock name
// (a lock has at most one at a time).
std::vector<Bar> LockDelays(const std::vector<logscan::LogEvent>& events, EpochMillis start,
                            EpochMillis end) {
  SpanRule rule;
  rule.component = kLockd;
  rule.opens = [](const std::string& event) { return event == ev::kLockDelayStarted; };
  rule.closes = [](const std::string& event) { return event == ev::kLockDelayEnded; };
  rule.key = [](const logscan::LogEvent& e) { return Str(e.fields, "name"); };
  rule.make = [](const logscan::LogEvent& e) {
    Bar bar = LockdBar(BarKind::kLockDelay, e);
    bar.title = "lock-delay of '" + Str(e.fields, "name") + "' after " + bar.owner +
                "'s lease expired: lockd grants it to nobody";
    return bar;
  };
  return Spans(events, rule, start, end);
}

// Places each lease in the first row of lockd's lane free at its start, so
// leases of different locks that overlap in time do not hide each other.
// Returns the number of rows.
int PackLeaseRows(std::vector<Bar>& leases, std::vector<int>& row_of) {
  std::vector<EpochMillis> row_end;
  row_of.assign(leases.size(), 0);
  for (std::size_t i = 0; i < leases.size(); ++i) {
    std::size_t row = 0;
    while (row < row_end.size() && row_end[row] > leases[i].from_ms) ++row;
    if (row == row_end.size()) row_end.push_back(0);
    row_end[row] = leases[i].to_ms;
    row_of[i] = static_cast<int>(row);
  }
  return std::max<int>(1, static_cast<int>(row_end.size()));
}

// A worker's pauses: pause_injected (logged just before the SIGSTOP) to
// resumed (after the SIGCONT).
std::vector<Bar> Pauses(const std::vector<logscan::LogEvent>& events, EpochMillis start,
                        EpochMillis end) {
  SpanRule rule;
  rule.component = kWorker;
  rule.opens = [](const std::string& event) { return event == ev::kPauseInjected; };
  rule.closes = [](const std::string& event) { return event == ev::kResumed; };
  rule.key = LaneOf;
  rule.make = [](const logscan::LogEvent& e) {
    Bar bar;
    bar.kind = BarKind::kPause;
    bar.lane = LaneOf(e);
    bar.owner = Str(e.fields, ev::kOwner);
    bar.token = Uint(e.fields, ev::kTerm);
    bar.title = bar.owner + " stopped (SIGSTOP)";
    return bar;
  };
  return Spans(events, rule, start, end);
}

// Terms from logscan's analysis, and for each term the part after lockd
// ended the lease it was elected with: there the worker still believed it
// led although nobody held that lease any more.
std::vector<Bar> Terms(const logscan::Findings& f, const std::vector<Bar>& leases,
                       EpochMillis start) {
  std::vector<Bar> bars;
  for (const auto& t : f.terms) {
    // (leases holds lockd's lock-delays too; only leases end a belief.)
    Bar term;
    term.kind = BarKind::kTerm;
    term.lane = std::string(kWorker) + " " + t.owner;
    term.owner = t.owner;
    term.token = t.term;
    term.start_event = ev::kElected;
    term.end_event = t.ended_by;
    term.from_ms = t.start - start;
    term.to_ms = t.end - start;
    term.title = t.owner + " believes it leads '" + t.lock + "'";
    bars.push_back(term);
    for (const auto& lease : leases) {
      if (lease.kind != BarKind::kLease || lease.owner != t.owner || lease.token != t.term ||
          lease.end_event.empty() || lease.to_ms >= term.to_ms) {
        continue;
      }
      Bar stale = term;
      stale.kind = BarKind::kStaleBelief;
      stale.start_event = lease.end_event;
      stale.from_ms = std::max(lease.to_ms, term.from_ms);
      stale.title = t.owner + " still believes it leads, but lockd " + lease.end_event +
                    " its lease";
      bars.push_back(std::move(stale));
    }
  }
  return bars;
}

// A short label shown beside a mark; the tooltip has the rest.
std::string MarkLabel(const Mark& m) {
  std::string token = m.token ? "t" + std::to_string(*m.token) : "no token";
  switch (m.shape) {
    case MarkShape::kCircle:
      return "ok " + token;
    case MarkShape::kCross:
      return "409 " + token;
    case MarkShape::kTriangle:
      return "fence " + token;
    case MarkShape::kDiamond:
      return "elected " + token;
    case MarkShape::kBreak:
      return "broken " + token;
    case MarkShape::kDelayStart:
    case MarkShape::kDelayEnd:
      return "";  // the span between them says "lock-delay N ms"
  }
  return token;
}

// The facts of a line for its tooltip.
std::string Facts(const logscan::LogEvent& e, EpochMillis at_ms) {
  std::string out = e.event + " at +" + std::to_string(at_ms) + " ms";
  for (const char* f : {"owner", "key", "token", "highest_token", "term", "step", "lock_delay_ms",
                        "since_expiry_ms", "expires_in_ms", "reason", "caller"}) {
    auto it = e.fields.find(f);
    if (it == e.fields.end() || it->is_null()) continue;
    out += std::string(", ") + f + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
  }
  return out + " (" + e.source + ":" + std::to_string(e.line) + ")";
}

}  // namespace

std::optional<MarkShape> MarkShapeOf(const std::string& component, const std::string& event) {
  if (component == kWorker) {
    if (event == ev::kElected) return MarkShape::kDiamond;
    if (event == ev::kFenceRaised) return MarkShape::kTriangle;
    if (event == ev::kWriteDone) return MarkShape::kCircle;
    if (event == ev::kFenced) return MarkShape::kCross;
  } else if (component == kLockd) {
    if (event == ev::kLeaseBroken) return MarkShape::kBreak;
    if (event == ev::kLockDelayStarted) return MarkShape::kDelayStart;
    if (event == ev::kLockDelayEnded) return MarkShape::kDelayEnd;
  } else if (component == kStore) {
    if (event == ev::kFenceRaised) return MarkShape::kTriangle;
    if (event == ev::kWriteAccepted) return MarkShape::kCircle;
    if (event == ev::kWriteFenced) return MarkShape::kCross;
  }
  return std::nullopt;
}

std::string LaneOf(const logscan::LogEvent& e) {
  if (e.component == kWorker) {
    const std::string owner = Str(e.fields, ev::kOwner);
    return owner.empty() ? std::string(kWorker) : std::string(kWorker) + " " + owner;
  }
  if (e.component == kLockd || e.component == kStore) return e.component;
  return "";
}

std::int64_t TickStep(EpochMillis span_ms, int max_ticks) {
  const std::int64_t ticks = std::max(1, max_ticks);
  for (std::int64_t magnitude = 1;; magnitude *= 10) {
    for (std::int64_t m : {1, 2, 5}) {
      if (span_ms / (m * magnitude) <= ticks) return m * magnitude;
    }
  }
}

namespace {

// Vertical positions inside a lane: a worker's term band on top, then one
// row per mark kind, so an election, a fence raise and a write a
// millisecond apart stay distinguishable. lockd's marks sit on its first
// row of bars, where the lease they end or the delay they bound is drawn.
double MarkRowY(const Lane& lane, const std::string& component, MarkShape shape,
                const LayoutOptions& o) {
  if (component == kLockd) return lane.top + 15 + (o.lease_row_height - 12) / 2;
  if (component == kStore) {
    return lane.top + (shape == MarkShape::kTriangle ? 0.35 : 0.72) * lane.height;
  }
  switch (shape) {
    case MarkShape::kDiamond:
      return lane.top + 0.42 * lane.height;
    case MarkShape::kTriangle:
      return lane.top + 0.62 * lane.height;
    default:
      return lane.top + 0.83 * lane.height;
  }
}

void PlaceBar(Bar& bar, const Scale& scale, const LayoutOptions& o, double y, double height) {
  bar.x0 = scale.XOffset(bar.from_ms);
  bar.x1 = std::max(scale.XOffset(bar.to_ms), bar.x0 + o.min_bar_width);
  bar.y = y;
  bar.height = height;
}

}  // namespace

namespace {

// Lanes top to bottom; lockd's lane is as tall as its rows of leases.
void PlaceLanes(const std::vector<logscan::LogEvent>& events, int lease_rows,
                const LayoutOptions& o, Layout& layout) {
  double y = o.top;
  for (const auto& id : LaneOrder(events)) {
    const double height =
        id == kLockd ? std::max(o.lane_height * 0.6, lease_rows * o.lease_row_height + 10)
                     : o.lane_height;
    layout.lanes.push_back({id, y, height});
    y += height;
  }
  layout.plot_bottom = y;
  layout.height = y + o.axis_height;
}

const Lane* FindLane(const Layout& layout, const std::string& id) {
  for (const auto& lane : layout.lanes) {
    if (lane.id == id) return &lane;
  }
  return nullptr;
}

// Leases, terms and pauses, each at its lane's height for its kind.
void PlaceBars(const std::vector<logscan::LogEvent>& events, const logscan::Findings& findings,
               std::vector<Bar> leases, const std::vector<int>& lease_row, const Scale& scale,
               const LayoutOptions& o, Layout& layout) {
  const EpochMillis end = layout.start + layout.span_ms;
  for (std::size_t i = 0; i < leases.size(); ++i) {
    const double row_top = FindLane(layout, kLockd)->top + 5 + lease_row[i] * o.lease_row_height;
    PlaceBar(leases[i], scale, o, row_top + 10, o.lease_row_height - 12);
  }
  std::vector<Bar> terms = Terms(findings, leases, layout.start);
  std::vector<Bar> pauses = Pauses(events, layout.start, end);
  for (auto* group : {&pauses, &terms}) {
    for (auto& bar : *group) {
      const Lane* l = FindLane(layout, bar.lane);
      if (l == nullptr) continue;
      if (bar.kind == BarKind::kPause) {
        PlaceBar(bar, scale, o, l->top + 3, l->height - 6);
      } else {
        PlaceBar(bar, scale, o, l->top + 0.1 * l->height, 0.16 * l->height);
      }
    }
  }
  // Drawing order: pauses behind, then leases and terms.
  for (auto* group : {&pauses, &leases, &terms}) {
    for (auto& bar : *group) layout.bars.push_back(std::move(bar));
  }
}

// One cluster of marks that were too close: shared label.
void LabelCluster(std::vector<Mark*>& cluster, double plot_right, double label_room) {
  if (cluster.empty()) return;
  bool same = true;
  std::string joined;
  for (const Mark* m : cluster) {
    same = same && m->label == cluster.front()->label;
    if (!m->label.empty()) joined += (joined.empty() ? "" : ", ") + m->label;
  }
  const std::string label =
      cluster.size() == 1 || (same && cluster.front()->label.empty()) ? cluster.front()->label
      : same ? cluster.front()->label + " \u00d7" + std::to_string(cluster.size())
             : joined;
  for (Mark* m : cluster) m->label.clear();
  Mark* holder = cluster.back();
  if (holder->x > plot_right - label_room) {
    holder = cluster.front();
    holder->label_left = true;
  }
  holder->label = label;
  cluster.clear();
}

// Marks of one row (lane and height) closer than the gap would hide each
// other: each is moved right to the gap (its data-ms stays exact).
void SpreadMarks(std::vector<Mark>& marks, const LayoutOptions& o, double plot_right) {
  std::map<std::pair<std::string, double>, std::vector<Mark*>> rows;
  for (auto& m : marks) rows[{m.lane, m.y}].push_back(&m);
  for (auto& [row, list] : rows) {
    std::vector<Mark*> cluster;
    for (Mark* m : list) {
      if (!cluster.empty() && m->x < cluster.back()->x + o.min_mark_gap) {
        m->x = cluster.back()->x + o.min_mark_gap;
      } else {
        LabelCluster(cluster, plot_right, o.label_room);
      }
      cluster.push_back(m);
    }
    LabelCluster(cluster, plot_right, o.label_room);
  }
}

void PlaceMarks(const std::vector<logscan::LogEvent>& events, const Scale& scale,
                const LayoutOptions& o, Layout& layout) {
  for (const auto& e : events) {
    auto shape = MarkShapeOf(e.component, e.event);
    if (!shape) continue;
    Mark m;
    m.lane = LaneOf(e);
    m.event = e.event;
    m.shape = *shape;
    m.token = Uint(e.fields, ev::kToken);
    if (e.component == kWorker) m.term = Uint(e.fields, ev::kTerm);
    m.key = Str(e.fields, ev::kKey);
    m.at_ms = e.ts - layout.start;
    m.x = scale.X(e.ts);
    m.y = MarkRowY(*FindLane(layout, m.lane), e.component, m.shape, o);
    m.label = MarkLabel(m);
    m.title = Facts(e, m.at_ms);
    layout.marks.push_back(std::move(m));
  }
  SpreadMarks(layout.marks, o, layout.plot_right);
}

}  // namespace

Layout LayOut(std::vector<logscan::LogEvent> events, const LayoutOptions& o) {
  std::erase_if(events, [](const logscan::LogEvent& e) { return LaneOf(e).empty(); });
  std::stable_sort(events.begin(), events.end(),
                   [](const logscan::LogEvent& a, const logscan::LogEvent& b) { return a.ts < b.ts; });
  Layout layout;
  layout.width = o.width;
  if (events.empty()) return layout;
  layout.start = events.front().ts;
  layout.span_ms = events.back().ts - layout.start;
  layout.plot_left = o.label_width;
  layout.plot_right = o.width - o.right_margin;
  const Scale scale(layout.start, layout.span_ms, layout.plot_left, layout.plot_right);

  // Leases and lock-delays share lockd's rows: a delay follows the lease
  // whose expiry started it, in the same row.
  std::vector<Bar> leases = Leases(events, layout.start, events.back().ts);
  for (Bar& delay : LockDelays(events, layout.start, events.back().ts)) {
    leases.push_back(std::move(delay));
  }
  std::stable_sort(leases.begin(), leases.end(),
                   [](const Bar& a, const Bar& b) { return a.from_ms < b.from_ms; });
  std::vector<int> rows;
  PlaceLanes(events, PackLeaseRows(leases, rows), o, layout);
  const auto findings = logscan::Analyze(events, {});
  PlaceBars(events, findings, std::move(leases), rows, scale, o, layout);
  PlaceMarks(events, scale, o, layout);
  for (const auto& overlap : findings.overlaps) {
    Window w{overlap.lock, overlap.older.owner, overlap.newer.owner,
             overlap.from - layout.start, overlap.to - layout.start, 0, 0};
    w.x0 = scale.XOffset(w.from_ms);
    w.x1 = std::max(scale.XOffset(w.to_ms), w.x0 + o.min_bar_width);
    layout.windows.push_back(w);
  }
  const std::int64_t step = TickStep(layout.span_ms, 10);
  for (EpochMillis t = 0; t <= layout.span_ms; t += step) {
    layout.ticks.push_back({t, scale.XOffset(t)});
  }
  return layout;
}

}  // namespace fence::tools::timeline
