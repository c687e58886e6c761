#include "tools/logscan/logscan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "core/log_event.h"

namespace fence::tools::logscan {

namespace {

// A token-like field: a JSON unsigned integer or a decimal string; null and
// anything else are "not given".
std::optional<std::uint64_t> UintField(const nlohmann::json& obj, std::string_view name) {
  auto it = obj.find(name);
  if (it == obj.end()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(it->get<std::int64_t>());
  }
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty() || s.size() > 20) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
      if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
      v = v * 10 + digit;
    }
    return v;
  }
  return std::nullopt;
}

std::string StringField(const nlohmann::json& obj, std::string_view name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// The term a worker line belongs to: its `term` field, else its `token`.
std::optional<std::uint64_t> TermOf(const LogEvent& e) {
  if (auto term = UintField(e.fields, events::kTerm)) return term;
  return UintField(e.fields, events::kToken);
}

bool EndsTerm(std::string_view event) {
  return event == events::kLeaseLost || event == events::kFenced ||
         event == events::kSteppedDown || event == events::kResigned;
}

struct TermState {
  LeaderTerm term;
  bool ended = false;
  EpochMillis last_seen = 0;  // the owner's last line while the term was open
};

class WorkerTerms {
 public:
  void Observe(const LogEvent& e) {
    const std::string owner = StringField(e.fields, events::kOwner);
    if (owner.empty()) return;
    if (e.event == events::kElected) {
      CloseOpen(owner);
      auto term = TermOf(e);
      if (!term) return;
      TermState state;
      state.term.lock = StringField(e.fields, "lock");
      state.term.owner = owner;
      state.term.term = *term;
      state.term.start = e.ts;
      state.term.end = e.ts;
      state.term.elected_at = {e.source, e.line};
      state.last_seen = e.ts;
      states_.push_back(std::move(state));
      open_[owner] = states_.size() - 1;
      latest_[{owner, *term}] = states_.size() - 1;
      return;
    }
    if (e.event == events::kAcquiring) {
      // Back to acquiring: whatever term it had is over, logged or not.
      CloseOpen(owner);
      return;
    }
    auto open = open_.find(owner);
    if (open != open_.end()) states_[open->second].last_seen = e.ts;
    if (EndsTerm(e.event)) {
      TermState* state = Find(owner, TermOf(e));
      if (state != nullptr && !state->ended) {
        state->ended = true;
        state->term.end = e.ts;
        state->term.ended_by = e.event;
        if (open != open_.end() && &states_[open->second] == state) open_.erase(open);
      }
    }
  }

  // The term instance a line of `owner` with `term` belongs to: the latest
  // election of that (owner, term), or the owner's open term.
  TermState* Find(const std::string& owner, std::optional<std::uint64_t> term) {
    if (term) {
      auto it = latest_.find({owner, *term});
      return it == latest_.end() ? nullptr : &states_[it->second];
    }
    auto it = open_.find(owner);
    return it == open_.end() ? nullptr : &states_[it->second];
  }

  // `log_end` is the last timestamp of the whole input.
  std::vector<LeaderTerm> Finish(EpochMillis log_end) {
    std::map<std::string, EpochMillis> latest_start;
    for (const auto& s : states_) {
      auto [it, fresh] = latest_start.try_emplace(s.term.lock, s.term.start);
      if (!fresh) it->second = std::max(it->second, s.term.start);
    }
    for (auto& [owner, index] : open_) {
      LeaderTerm& t = states_[index].term;
      // The lock's latest term, never ended, is still leading as far as the
      // log knows. A superseded one is only known up to its owner's last
      // line: the owner may have crashed, and a dead process leads nobody.
      t.end = t.start == latest_start[t.lock] ? log_end : states_[index].last_seen;
    }
    open_.clear();
    std::vector<LeaderTerm> terms;
    for (auto& s : states_) terms.push_back(s.term);
    return terms;
  }

  const std::vector<TermState>& states() const { return states_; }

 private:
  void CloseOpen(const std::string& owner) {
    auto it = open_.find(owner);
    if (it == open_.end()) return;
    states_[it->second].term.end = states_[it->second].last_seen;
    states_[it->second].ended = true;
    open_.erase(it);
  }

  std::vector<TermState> states_;
  std::map<std::string, std::size_t> open_;
  std::map<std::pair<std::string, std::uint64_t>, std::size_t> latest_;
};

std::vector<Overlap> FindOverlaps(const std::vector<LeaderTerm>& terms) {
  std::map<std::string, std::vector<const LeaderTerm*>> by_lock;
  for (const auto& t : terms) {
    if (!t.lock.empty()) by_lock[t.lock].push_back(&t);
  }
  std::vector<Overlap> overlaps;
  for (auto& [lock, list] : by_lock) {
    std::stable_sort(list.begin(), list.end(), [](const LeaderTerm* a, const LeaderTerm* b) {
      return a->start < b->start;
    });
    for (std::size_t i = 0; i < list.size(); ++i) {
      // Sorted by start: only terms starting before this one ends can meet it.
      for (std::size_t j = i + 1; j < list.size() && list[j]->start < list[i]->end; ++j) {
        if (list[j]->owner == list[i]->owner) continue;
        const EpochMillis to = std::min(list[i]->end, list[j]->end);
        if (to <= list[j]->start) continue;
        overlaps.push_back({lock, *list[i], *list[j], list[j]->start, to});
      }
    }
  }
  std::stable_sort(overlaps.begin(), overlaps.end(),
                   [](const Overlap& a, const Overlap& b) { return a.from < b.from; });
  return overlaps;
}

}  // namespace

ParsedLine ParseLine(std::string_view text, std::string_view source, std::size_t line) {
  ParsedLine parsed;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  if (text.empty() || text.front() != '{') return parsed;
  nlohmann::json obj = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return parsed;
  parsed.kind = LineKind::kNotEvent;
  for (std::string_view field : {"ts", "component", "event"}) {
    auto it = obj.find(field);
    if (it == obj.end() || !it->is_string()) {
      parsed.problem = "no string field '" + std::string(field) + "'";
      return parsed;
    }
  }
  auto ts = ParseTimestamp(obj["ts"].get_ref<const std::string&>());
  if (!ts.ok()) {
    parsed.problem = ts.error().message;
    return parsed;
  }
  LogEvent e;
  e.source = std::string(source);
  e.line = line;
  e.ts = *ts;
  e.level = StringField(obj, "level");
  e.component = obj["component"].get<std::string>();
  e.event = obj["event"].get<std::string>();
  e.fields = std::move(obj);
  parsed.kind = LineKind::kEvent;
  parsed.event = std::move(e);
  return parsed;
}

std::size_t Findings::LandedStaleWrites() const {
  return static_cast<std::size_t>(
      std::count_if(stale_writes.begin(), stale_writes.end(),
                    [](const StaleWrite& w) { return w.outcome == WriteOutcome::kLanded; }));
}

std::size_t Findings::RejectedStaleWrites() const {
  return stale_writes.size() - LandedStaleWrites();
}

std::optional<double> Findings::FencedWritesPerSecond() const {
  if (!first_ts || !last_ts || *last_ts <= *first_ts) return std::nullopt;
  return static_cast<double>(fenced_writes.size()) * 1000.0 /
         static_cast<double>(*last_ts - *first_ts);
}

bool Findings::SplitBrainEvidence() const {
  return !overlaps.empty() || !stale_writes.empty() || !fenced_writes.empty() ||
         !regressions.empty();
}

namespace {

// Pass 2 over the events, in time order: stale writes, fenced writes and
// token regressions, judged against the leader terms of pass 1.
class EvidenceScan {
 public:
  EvidenceScan(Findings& f, bool have_store_log) : f_(f), have_store_log_(have_store_log) {}

  void Observe(const LogEvent& e) {
    if (e.component == "worker") {
      ObserveWorker(e);
    } else if (e.component == "store") {
      ObserveStore(e);
    } else if (e.component == "lockd" && e.event == events::kGranted) {
      ObserveGrant(e);
    }
  }

 private:
  using SourceKey = std::pair<std::string, std::string>;  // (source, lock or key)

  // The term a write belongs to: the latest election of (owner, term) at or
  // before the write.
  const LeaderTerm* TermOfWrite(const std::string& owner, std::uint64_t term,
                                EpochMillis ts) const {
    const LeaderTerm* found = nullptr;
    for (const auto& t : f_.terms) {
      if (t.owner == owner && t.term == term && t.start <= ts) found = &t;
    }
    return found;
  }

  // Whether a term elected at `start` (logged at `elected_at`) began before
  // an event at `ts` (logged at `where`). Timestamps have milliseconds: in
  // one file, line order breaks a tie; across files a tie counts as before,
  // so that no stale write is missed.
  static bool ElectedBefore(EpochMillis start, const Where& elected_at, EpochMillis ts,
                            const Where& where) {
    if (start != ts || elected_at.source != where.source) return start <= ts;
    return elected_at.line < where.line;
  }

  // The first newer term on the same lock elected after `mine` began and
  // before the event at (`ts`, `where`). Terms elected before `mine` began
  // belong to an earlier run or are a regression, reported separately.
  const LeaderTerm* NewerTermBefore(const LeaderTerm& mine, EpochMillis ts,
                                    const Where& where) const {
    const LeaderTerm* found = nullptr;
    for (const auto& t : f_.terms) {
      if (t.lock == mine.lock && t.term > mine.term && t.start > mine.start &&
          ElectedBefore(t.start, t.elected_at, ts, where) &&
          (found == nullptr || t.start < found->start)) {
        found = &t;
      }
    }
    return found;
  }

  void ObserveWorker(const LogEvent& e) {
    if (e.event == events::kElected) {
      ObserveElection(e);
    } else if (e.event == events::kWriteDone) {
      ObserveWriteDone(e);
    } else if (e.event == events::kFenced) {
      ObserveWorkerFenced(e);
    }
  }

  void ObserveElection(const LogEvent& e) {
    const std::string owner = StringField(e.fields, events::kOwner);
    const std::string lock = StringField(e.fields, "lock");
    auto term = TermOf(e);
    if (!term || lock.empty()) return;
    auto [it, fresh] = elected_by_lock_.try_emplace({e.source, lock}, *term, owner);
    if (fresh) return;
    if (*term < it->second.first || (*term == it->second.first && owner != it->second.second)) {
      f_.regressions.push_back(
          {"leader_term", lock, it->second.first, *term, e.ts, {e.source, e.line}});
    }
    if (*term > it->second.first) it->second = {*term, owner};
  }

  void ObserveWriteDone(const LogEvent& e) {
    const std::string owner = StringField(e.fields, events::kOwner);
    auto term = TermOf(e);
    const LeaderTerm* mine = term ? TermOfWrite(owner, *term, e.ts) : nullptr;
    const LeaderTerm* newer = mine ? NewerTermBefore(*mine, e.ts, {e.source, e.line}) : nullptr;
    if (newer == nullptr) return;
    f_.stale_writes.push_back({WriteOutcome::kLanded, mine->lock, owner,
                               StringField(e.fields, events::kKey), mine->term, newer->term,
                               newer->owner, e.ts, {e.source, e.line}});
  }

  void ObserveWorkerFenced(const LogEvent& e) {
    const std::string owner = StringField(e.fields, events::kOwner);
    const std::string key = StringField(e.fields, events::kKey);
    auto term = TermOf(e);
    const auto highest = UintField(e.fields, events::kHighestToken);
    StaleWrite w{WriteOutcome::kRejected, "", owner, key, term.value_or(0), highest.value_or(0),
                 "", e.ts, {e.source, e.line}};
    if (const LeaderTerm* mine = term ? TermOfWrite(owner, *term, e.ts) : nullptr) {
      w.lock = mine->lock;
      if (const LeaderTerm* newer = NewerTermBefore(*mine, e.ts, {e.source, e.line})) {
        w.newer_owner = newer->owner;
        if (!highest) w.newer_term = newer->term;
      }
    }
    f_.stale_writes.push_back(w);
    if (!have_store_log_) {
      f_.fenced_writes.push_back({"worker", key, owner, UintField(e.fields, events::kToken),
                                  highest, e.ts, {e.source, e.line}});
    }
  }

  void ObserveStore(const LogEvent& e) {
    const Where where{e.source, e.line};
    const std::string key = StringField(e.fields, events::kKey);
    const auto token = UintField(e.fields, events::kToken);
    const auto highest = UintField(e.fields, events::kHighestToken);
    const bool mutation = e.event == events::kWriteAccepted || e.event == events::kFenceRaised ||
                          e.event == events::kWriteFenced;
    if (mutation && highest && !key.empty()) {
      auto [it, fresh] = highest_by_key_.try_emplace({e.source, key}, *highest);
      if (!fresh && *highest < it->second) {
        f_.regressions.push_back({"store_fence", key, it->second, *highest, e.ts, where});
      }
      it->second = std::max(it->second, *highest);
    }
    if (e.event == events::kWriteAccepted && token && !key.empty()) {
      // With fencing on this cannot happen; with fencing off (or a lost
      // fence) it is an old leader's write overwriting a newer one.
      auto [it, fresh] = accepted_by_key_.try_emplace({e.source, key}, *token);
      if (!fresh && *token < it->second) {
        f_.stale_writes.push_back(
            {WriteOutcome::kLanded, "", "", key, *token, it->second, "", e.ts, where});
      }
      it->second = std::max(it->second, *token);
    } else if (e.event == events::kWriteFenced) {
      f_.fenced_writes.push_back({"store", key, "", token, highest, e.ts, where});
    }
  }

  void ObserveGrant(const LogEvent& e) {
    const auto token = UintField(e.fields, events::kToken);
    if (!token) return;
    auto [it, fresh] = lockd_highest_grant_.try_emplace(e.source, *token);
    if (fresh) return;
    // lockd's tokens strictly increase across all locks and restarts.
    if (*token <= it->second) {
      f_.regressions.push_back({"lockd_grant", StringField(e.fields, "name"), it->second, *token,
                                e.ts, {e.source, e.line}});
    }
    it->second = std::max(it->second, *token);
  }

  Findings& f_;
  const bool have_store_log_;
  std::map<SourceKey, std::uint64_t> accepted_by_key_;
  std::map<SourceKey, std::uint64_t> highest_by_key_;
  std::map<std::string, std::uint64_t> lockd_highest_grant_;
  std::map<SourceKey, std::pair<std::uint64_t, std::string>> elected_by_lock_;
};

}  // namespace

Findings Analyze(std::vector<LogEvent> events, InputStats input) {
  Findings f;
  f.input = std::move(input);
  std::stable_sort(events.begin(), events.end(),
                   [](const LogEvent& a, const LogEvent& b) { return a.ts < b.ts; });
  if (!events.empty()) {
    f.first_ts = events.front().ts;
    f.last_ts = events.back().ts;
  }
  // Pass 1: leader terms from the workers' lines.
  WorkerTerms worker_terms;
  for (const auto& e : events) {
    if (e.component == "worker") worker_terms.Observe(e);
  }
  f.terms = worker_terms.Finish(f.last_ts.value_or(0));
  f.overlaps = FindOverlaps(f.terms);
  // Pass 2: writes and tokens.
  const bool have_store_log = std::any_of(events.begin(), events.end(), [](const LogEvent& e) {
    return e.component == "store";
  });
  EvidenceScan scan(f, have_store_log);
  for (const auto& e : events) scan.Observe(e);
  return f;
}

namespace {

nlohmann::json TermJson(const LeaderTerm& t) {
  return {{"lock", t.lock},
          {"owner", t.owner},
          {"term", t.term},
          {"elected", FormatTimestamp(t.start)},
          {"ended", FormatTimestamp(t.end)},
          {"ended_by", t.ended_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.ended_by)},
          {"source", t.elected_at.source},
          {"line", t.elected_at.line}};
}

nlohmann::json OptionalJson(const std::optional<std::uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string Seconds(EpochMillis ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string At(const Where& w) { return w.source + ":" + std::to_string(w.line); }

std::string Quoted(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

template <typename T, typename F>
void ListSection(std::string& out, const std::vector<T>& items, std::size_t max_items, F line) {
  for (std::size_t i = 0; i < items.size() && i < max_items; ++i) out += "  " + line(items[i]) + "\n";
  if (items.size() > max_items) {
    out += "  ... and " + std::to_string(items.size() - max_items) + " more (see --json)\n";
  }
}

}  // namespace

nlohmann::json ToJson(const Findings& f) {
  nlohmann::json j;
  j["verdict"] = f.SplitBrainEvidence() ? "split_brain_evidence" : "clean";
  j["input"] = {{"sources", f.input.sources},
                {"lines", f.input.lines},
                {"events", f.input.events},
                {"not_json_lines", f.input.not_json},
                {"not_event_lines", f.input.not_event}};
  if (f.first_ts && f.last_ts) {
    j["span"] = {{"from", FormatTimestamp(*f.first_ts)},
                 {"to", FormatTimestamp(*f.last_ts)},
                 {"ms", *f.last_ts - *f.first_ts}};
  } else {
    j["span"] = nullptr;
  }
  j["terms"] = nlohmann::json::array();
  for (const auto& t : f.terms) j["terms"].push_back(TermJson(t));
  j["overlaps"] = nlohmann::json::array();
  for (const auto& o : f.overlaps) {
    j["overlaps"].push_back({{"lock", o.lock},
                             {"from", FormatTimestamp(o.from)},
                             {"to", FormatTimestamp(o.to)},
                             {"duration_ms", o.to - o.from},
                             {"older", TermJson(o.older)},
                             {"newer", TermJson(o.newer)}});
  }
  nlohmann::json writes = nlohmann::json::array();
  for (const auto& w : f.stale_writes) {
    writes.push_back({{"outcome", w.outcome == WriteOutcome::kLanded ? "landed" : "rejected"},
                      {"lock", w.lock},
                      {"owner", w.owner},
                      {"key", w.key},
                      {"term", w.term},
                      {"newer_term", w.newer_term},
                      {"newer_owner", w.newer_owner},
                      {"ts", FormatTimestamp(w.ts)},
                      {"source", w.where.source},
                      {"line", w.where.line}});
  }
  j["stale_writes"] = {{"landed", f.LandedStaleWrites()},
                       {"rejected", f.RejectedStaleWrites()},
                       {"writes", std::move(writes)}};
  nlohmann::json fenced = nlohmann::json::array();
  for (const auto& w : f.fenced_writes) {
    fenced.push_back({{"component", w.component},
                      {"key", w.key},
                      {"owner", w.owner},
                      {"token", OptionalJson(w.token)},
                      {"highest_token", OptionalJson(w.highest_token)},
                      {"ts", FormatTimestamp(w.ts)},
                      {"source", w.where.source},
                      {"line", w.where.line}});
  }
  const auto rate = f.FencedWritesPerSecond();
  j["fenced_writes"] = {{"count", f.fenced_writes.size()},
                        {"per_second", rate ? nlohmann::json(*rate) : nlohmann::json(nullptr)},
                        {"first", f.fenced_writes.empty()
                                      ? nlohmann::json(nullptr)
                                      : nlohmann::json(FormatTimestamp(f.fenced_writes.front().ts))},
                        {"last", f.fenced_writes.empty()
                                     ? nlohmann::json(nullptr)
                                     : nlohmann::json(FormatTimestamp(f.fenced_writes.back().ts))},
                        {"writes", std::move(fenced)}};
  j["regressions"] = nlohmann::json::array();
  for (const auto& r : f.regressions) {
    j["regressions"].push_back({{"kind", r.kind},
                                {"subject", r.subject},
                                {"before", r.before},
                                {"after", r.after},
                                {"ts", FormatTimestamp(r.ts)},
                                {"source", r.where.source},
                                {"line", r.where.line}});
  }
  return j;
}

std::string FormatReport(const Findings& f, std::size_t max_items) {
  std::string out;
  out += f.SplitBrainEvidence() ? "fence-logscan: SPLIT-BRAIN EVIDENCE FOUND\n"
                                : "fence-logscan: no split-brain evidence\n";
  out += "  read " + std::to_string(f.input.events) + " events from " +
         std::to_string(f.input.sources.size()) + " input(s), " +
         std::to_string(f.input.lines) + " lines (" + std::to_string(f.input.not_json) +
         " not JSON, " + std::to_string(f.input.not_event) + " JSON but not log events: ignored)\n";
  if (f.first_ts && f.last_ts) {
    out += "  span " + FormatTimestamp(*f.first_ts) + " .. " + FormatTimestamp(*f.last_ts) +
           " (" + Seconds(*f.last_ts - *f.first_ts) + "); " + std::to_string(f.terms.size()) +
           " leader term(s)\n";
  }

  out += "\nOverlapping leader terms: " + std::to_string(f.overlaps.size()) + "\n";
  ListSection(out, f.overlaps, max_items, [](const Overlap& o) {
    auto describe = [](const LeaderTerm& t) {
      return Quoted(t.owner) + " term " + std::to_string(t.term) + " (elected " +
             FormatTimestamp(t.start) + " at " + At(t.elected_at) + ", " +
             (t.ended_by.empty() ? "no end logged, counted to " : "ended by " + t.ended_by + " ") +
             FormatTimestamp(t.end) + ")";
    };
    return "lock " + Quoted(o.lock) + ": both leading from " + FormatTimestamp(o.from) +
           " to " + FormatTimestamp(o.to) + " (" + std::to_string(o.to - o.from) +
           " ms)\n      older: " + describe(o.older) + "\n      newer: " + describe(o.newer);
  });

  out += "\nStale writes (written after a newer term was elected): " +
         std::to_string(f.LandedStaleWrites()) + " LANDED, " +
         std::to_string(f.RejectedStaleWrites()) + " rejected by the store\n";
  ListSection(out, f.stale_writes, max_items, [](const StaleWrite& w) {
    std::string who = w.owner.empty() ? std::string("a writer") : Quoted(w.owner);
    std::string newer = "newer term " + std::to_string(w.newer_term) +
                        (w.newer_owner.empty() ? "" : " of " + Quoted(w.newer_owner));
    return std::string(w.outcome == WriteOutcome::kLanded ? "LANDED   " : "rejected ") + who +
           " term " + std::to_string(w.term) + " wrote key " + Quoted(w.key) + " at " +
           FormatTimestamp(w.ts) + " after " + newer + " (" + At(w.where) + ")";
  });

  out += "\nFenced writes (refused by the store, 409 stale_token): " +
         std::to_string(f.fenced_writes.size());
  if (auto rate = f.FencedWritesPerSecond(); rate && !f.fenced_writes.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", %.3f/s over the log span", *rate);
    out += buf;
  }
  out += "\n";
  ListSection(out, f.fenced_writes, max_items, [](const FencedWrite& w) {
    auto num = [](const std::optional<std::uint64_t>& v) {
      return v ? std::to_string(*v) : std::string("none");
    };
    return FormatTimestamp(w.ts) + " key " + Quoted(w.key) + " token " + num(w.token) +
           " < highest_token " + num(w.highest_token) +
           (w.owner.empty() ? "" : " from " + Quoted(w.owner)) + " (" + w.component + ", " +
           At(w.where) + ")";
  });

  out += "\nToken regressions: " + std::to_string(f.regressions.size()) + "\n";
  ListSection(out, f.regressions, max_items, [](const Regression& r) {
    return r.kind + " " + Quoted(r.subject) + ": " + std::to_string(r.after) + " after " +
           std::to_string(r.before) + " at " + FormatTimestamp(r.ts) + " (" + At(r.where) + ")";
  });

  if (f.SplitBrainEvidence()) {
    out += "\nNext: contain the older leader first (docs/runbook.md), then verify one holder.\n";
  }
  return out;
}

}  // namespace fence::tools::logscan
