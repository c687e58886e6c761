// Renders fence-demo's results: summary.json for programs, the CSV and SVG
// of the TTL trade-off, report.md and the short summary for people. Pure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "tools/demo/demo.h"
#include "core/log_event.h"
#include "tools/timeline/timeline_html.h"

namespace fence::tools::demo {

namespace ev = fence::events;
namespace tl = fence::tools::timeline;

namespace {

nlohmann::json Opt(const std::optional<std::int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
nlohmann::json OptU(const std::optional<std::uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string Fixed(double v, int digits = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string OptText(const std::optional<std::int64_t>& v, const std::string& unit = "") {
  return v ? std::to_string(*v) + unit : "?";
}
std::string OptText(const std::optional<std::uint64_t>& v) {
  return v ? std::to_string(*v) : "?";
}

nlohmann::json StatsJson(const Stats& s, std::int64_t ttl_ms) {
  if (s.count == 0) return {{"count", 0}};
  return {{"count", s.count},
          {"median_ms", s.median},
          {"min_ms", s.min},
          {"max_ms", s.max},
          {"median_ratio_to_ttl", ttl_ms > 0 ? s.median / static_cast<double>(ttl_ms) : 0.0}};
}

nlohmann::json ScheduleJson(const ScheduleOutcome& o) {
  return {{"name", o.name},
          {"fencing", o.fencing},
          {"ttl_ms", o.ttl_ms},
          {"pause_ms", o.pause_ms},
          {"log", o.log_path},
          {"a_token", OptU(o.a_token)},
          {"b_token", OptU(o.b_token)},
          {"a_result", o.a_result},
          {"a_result_line", o.a_result_line},
          {"a_term_end_event", o.a_term_end_event},
          {"b_result", o.b_result},
          {"a_elected_ts_ms", Opt(o.a_elected_ts)},
          {"a_pause_ts_ms", Opt(o.a_pause_ts)},
          {"a_resumed_ts_ms", Opt(o.a_resumed_ts)},
          {"a_write_ts_ms", Opt(o.a_write_ts)},
          {"a_term_end_ts_ms", Opt(o.a_term_end_ts)},
          {"b_elected_ts_ms", Opt(o.b_elected_ts)},
          {"b_write_done_ts_ms", Opt(o.b_write_done_ts)},
          {"b_accepted_ts_ms", Opt(o.b_accepted_ts)},
          {"lease_remaining_ms", Opt(o.lease_remaining_ms)},
          {"paused_ms", Opt(o.paused_ms)},
          {"failover_ms", Opt(o.failover_ms)},
          {"final_owner", o.final_owner},
          {"final_token", OptU(o.final_token)},
          {"final_object", o.final_object},
          {"problems", o.problems}};
}

// A lockd run's schedule and its handover at lockd, by lockd's clock.
nlohmann::json LockdRunJson(const ScheduleOutcome& o) {
  nlohmann::json j = ScheduleJson(o);
  j.update({{"lock_delay_ms", o.lock_delay_ms},
            {"a_lease_id", o.a_lease_id},
            {"a_renewed_ts_ms", Opt(o.a_renewed_ts)},
            {"a_lease_end_event", o.a_lease_end_event},
            {"a_lease_end_ts_ms", Opt(o.a_lease_end_ts)},
            {"lock_delay_started_ts_ms", Opt(o.delay_started_ts)},
            {"lock_delay_ended_ts_ms", Opt(o.delay_ended_ts)},
            {"lock_delay_since_expiry_ms", Opt(o.delay_since_expiry_ms)},
            {"b_granted_ts_ms", Opt(o.b_granted_ts)},
            {"renewal_to_grant_ms", Opt(o.renewal_to_grant_ms)},
            {"end_to_grant_ms", Opt(o.end_to_grant_ms)},
            {"pause_to_elected_ms", Opt(o.pause_to_elected_ms)},
            {"lease_broken", o.broken_line},
            {"a_keepalive_refused_lease_broken", o.a_keepalive_refused_broken},
            {"a_lease_lost", o.a_lease_lost_line}});
  return j;
}

bool Interesting(const LogLine& l) {
  static const std::set<std::string> kWorker = {
      std::string(ev::kElected),    std::string(ev::kPauseInjected), std::string(ev::kResumed),
      std::string(ev::kWriteAttempt), std::string(ev::kWriteDone),   std::string(ev::kFenced),
      std::string(ev::kLeaseLost),  std::string(ev::kResigned),      std::string(ev::kSteppedDown)};
  static const std::set<std::string> kOther = {
      std::string(ev::kGranted), std::string(ev::kExpired), std::string(ev::kReleased),
      std::string(ev::kWriteAccepted),    std::string(ev::kWriteFenced),
      std::string(ev::kLockDelayStarted), std::string(ev::kLockDelayEnded),
      std::string(ev::kLeaseBroken)};
  const std::string component = l.Str("component");
  const std::string e = l.Event();
  if (component == "worker") return kWorker.count(e) > 0;
  // A keep-alive of a broken lease, refused.
  if (e == ev::kRefused) return l.Str("error") == ev::kLeaseBroken;
  return kOther.count(e) > 0;
}

std::string Facts(const LogLine& l) {
  std::vector<std::string> parts;
  for (const char* f : {"owner", "name", "key", "token", "highest_token", "term", "duration_ms",
                        "lease_remaining_ms", "paused_ms", "lock_delay_ms", "since_expiry_ms",
                        "expires_in_ms", "op", "reason", "caller", "error"}) {
    if (!l.json.contains(f) || l.json[f].is_null()) continue;
    if (std::string(f) == "owner" && l.Str("component") == "worker") continue;
    const auto& v = l.json[f];
    parts.push_back(std::string(f) + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
  }
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out;
}

std::string Who(const LogLine& l) {
  const std::string c = l.Str("component");
  if (c == "worker") return "worker " + l.Str("owner");
  return c.empty() ? l.source : c;
}

// The events that tell the story, as a table relative to A's election.
std::string Timeline(const ScheduleOutcome& o) {
  std::string md = "| t (ms) | clock (UTC) | who | event | facts |\n|---:|---|---|---|---|\n";
  const std::int64_t t0 = o.a_elected_ts.value_or(0);
  for (const auto& l : o.lines) {
    if (!Interesting(l) || !l.ts_ms) continue;
    md += "| " + std::to_string(*l.ts_ms - t0) + " | " + FormatClockMs(*l.ts_ms) + " | " + Who(l) +
          " | `" + l.Event() + "` | " + Facts(l) + " |\n";
  }
  return md;
}

// The raw lines that prove the point, exactly as the processes printed them.
std::string Excerpt(const ScheduleOutcome& o, const std::set<std::string>& events) {
  std::string out = "```json\n";
  for (const auto& l : o.lines) {
    if (Interesting(l) && events.count(l.Event()) > 0) out += l.text + "\n";
  }
  return out + "```\n";
}

std::string Check(bool ok) { return ok ? "yes" : "**NO**"; }

// "250;500;1000": the asked TTLs a row's granted TTL stands for.
std::string AskedList(const TradeoffRow& row, const std::string& sep) {
  std::string out;
  for (auto a : row.asked_ms) out += (out.empty() ? "" : sep) + std::to_string(a);
  return out;
}

// "TTL 1000 ms (asked 1000 ms)" or "... (asked 250, 500, 1000 ms; granted as 1000 ms)".
std::string TtlText(std::int64_t granted, const std::vector<std::int64_t>& asked) {
  std::string list;
  for (auto a : asked) list += (list.empty() ? "" : ", ") + std::to_string(a);
  const bool same = asked.size() == 1 && asked.front() == granted;
  return "TTL " + std::to_string(granted) + " ms (asked " + list + " ms" +
         (same ? ", granted as asked)" : "; granted " + std::to_string(granted) + " ms)");
}

// The forged-token part of the bypass step (signed tokens only).
bool ForgedRefused(const ForgedWrite& f) {
  return f.status == 403 && f.body.is_object() &&
         f.body.value("error", "") == "bad_token_signature" && f.fence_before &&
         f.fence_before == f.fence_after;
}

nlohmann::json ForgedJson(const BypassOutcome& b) {
  if (!b.signed_tokens) return nullptr;
  const ForgedWrite& f = b.forged;
  return {{"curl", f.curl},
          {"token", f.token},
          {"status", f.status},
          {"response", f.body},
          {"store_line", f.store_line},
          {"fence_before", OptU(f.fence_before)},
          {"fence_after", OptU(f.fence_after)},
          {"refused", ForgedRefused(f)}};
}

std::string ForgedSentence(const BypassOutcome& b) {
  if (!b.signed_tokens) return "";
  const ForgedWrite& f = b.forged;
  return "With signed tokens on, a forged future token " + f.token + " was answered " +
         std::to_string(f.status) + " and the key's fence stayed " + FenceText(f.fence_after) +
         " (before: " + FenceText(f.fence_before) + "). ";
}

}  // namespace

nlohmann::json SummaryJson(const DemoResults& r) {
  nlohmann::json failover_trials = nlohmann::json::array();
  for (const auto& t : r.failover_trials) {
    failover_trials.push_back({{"name", t.name},
                               {"failover_ms", Opt(t.failover_ms)},
                               {"lease_remaining_ms", Opt(t.lease_remaining_ms)},
                               {"a_token", OptU(t.a_token)},
                               {"b_token", OptU(t.b_token)},
                               {"log", t.log_path},
                               {"problems", t.problems}});
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.tradeoff) {
    nlohmann::json stalls = nlohmann::json::array();
    for (const auto& s : row.stalls) {
      stalls.push_back({{"stall_ms", s.stall_ms},
                        {"phase_ms", s.phase_ms},
                        {"paused_ms", Opt(s.paused_ms)},
                        {"evicted", s.evicted},
                        {"problem", s.problem}});
    }
    rows.push_back({{"ttl_ms", row.ttl_ms},
                    {"ttl_asked_ms", row.asked_ms},
                    {"failovers_ms", row.failovers_ms},
                    {"failover", StatsJson(row.failover, row.ttl_ms)},
                    {"stall_trials", row.stall_trials_ok},
                    {"false_evictions", row.evictions},
                    {"false_eviction_rate",
                     row.stall_trials_ok ? static_cast<double>(row.evictions) / row.stall_trials_ok : 0.0},
                    {"stalls", stalls}});
  }
  const auto& d = r.options.stalls;
  nlohmann::json lockd_runs = {{"skipped", r.skip_lockd_runs}};
  if (r.skip_lockd_runs.empty()) {
    const auto& c = r.break_call;
    lockd_runs["lock_delay"] = LockdRunJson(r.lock_delay);
    lockd_runs["break"] = LockdRunJson(r.broken);
    lockd_runs["break"]["call"] = {{"curl", c.curl},           {"reason", c.reason},
                                   {"a_stopped", c.a_stopped}, {"b_waiting", c.b_waiting},
                                   {"sent_ts_ms", Opt(c.sent_ts)},
                                   {"status", c.status},       {"response", c.body},
                                   {"to_b_elected_ms", Opt(c.to_b_elected_ms)}};
    lockd_runs["fenced_without_delay"] = {
        {"renewal_to_grant_ms", Opt(r.fenced.renewal_to_grant_ms)},
        {"end_to_grant_ms", Opt(r.fenced.end_to_grant_ms)},
        {"pause_to_elected_ms", Opt(r.fenced.pause_to_elected_ms)}};
  }
  return {
      {"ok", r.failures.empty()},
      {"failures", r.failures},
      {"started_at", r.started_at},
      {"elapsed_s", r.elapsed_s},
      {"backend", r.options.backend},
      {"ttl_ms", r.ttl_granted_ms},
      {"ttl_asked_ms", r.ttl_asked_ms},
      {"ttl_granted_ms", r.ttl_granted_ms},
      {"lock_endpoints", r.lock_endpoints},
      {"store_unfenced", r.store_unfenced_url},
      {"store_fenced", r.store_fenced_url},
      {"unfenced", ScheduleJson(r.unfenced)},
      {"fenced", ScheduleJson(r.fenced)},
      {"bypass",
       {{"curl", r.bypass.curl},
        {"token", r.bypass.token},
        {"status", r.bypass.status},
        {"response", r.bypass.body},
        {"store_line", r.bypass.store_line},
        {"signed_tokens", r.bypass.signed_tokens},
        {"forged", ForgedJson(r.bypass)}}},
      {"failover",
       {{"ttl_ms", r.ttl_granted_ms},
        {"trials", failover_trials},
        {"stats", StatsJson(r.failover, r.ttl_granted_ms)}}},
      {"tradeoff",
       {{"stall_distribution",
         {{"kind", "lognormal"},
          {"median_ms", d.median_ms},
          {"sigma", d.sigma},
          {"min_ms", d.min_ms},
          {"max_ms", d.max_ms},
          {"seed", d.seed},
          {"phase", "uniform in [0, TTL/3) of working before the stall"}}},
        {"rows", rows}}},
      {"lockd_runs", lockd_runs},
  };
}

std::string TradeoffCsv(const DemoResults& r) {
  std::string csv =
      "ttl_ms,failover_trials,failover_median_ms,failover_min_ms,failover_max_ms,"
      "failover_median_ratio_to_ttl,stall_trials,false_evictions,false_eviction_rate,"
      "ttl_asked_ms\n";
  for (const auto& row : r.tradeoff) {
    const double rate =
        row.stall_trials_ok ? static_cast<double>(row.evictions) / row.stall_trials_ok : 0.0;
    csv += std::to_string(row.ttl_ms) + "," + std::to_string(row.failover.count) + "," +
           Fixed(row.failover.median, 1) + "," + std::to_string(row.failover.min) + "," +
           std::to_string(row.failover.max) + "," +
           Fixed(row.failover.median / static_cast<double>(std::max<std::int64_t>(1, row.ttl_ms)), 3) +
           "," + std::to_string(row.stall_trials_ok) + "," + std::to_string(row.evictions) + "," +
           Fixed(rate, 3) + "," + AskedList(row, ";") + "\n";
  }
  return csv;
}

std::string TradeoffSvg(const DemoResults& r) {
  // Two panels over the same TTL axis (evenly spaced categories): failover
  // (median, with a min-max bar) and the false-eviction rate.
  const int panel_w = 380, panel_h = 280, left = 60, top = 40, plot_w = 290, plot_h = 180;
  const std::size_t n = r.tradeoff.size();
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << 2 * panel_w << "\" height=\""
      << panel_h << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  auto x_of = [&](std::size_t i) {
    return n <= 1 ? plot_w / 2.0 : 15.0 + (plot_w - 30.0) * static_cast<double>(i) / static_cast<double>(n - 1);
  };
  for (int panel = 0; panel < 2; ++panel) {
    const int ox = panel * panel_w + left;
    double ymax = panel == 0 ? 1.0 : 100.0;
    if (panel == 0) {
      for (const auto& row : r.tradeoff) ymax = std::max(ymax, static_cast<double>(row.failover.max));
      ymax *= 1.15;
    }
    const std::string title = panel == 0 ? "Failover vs lease TTL (median, min-max)"
                                         : "False evictions of a slow leader vs TTL";
    svg << "<text x=\"" << ox + plot_w / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">"
        << title << "</text>\n";
    svg << "<line x1=\"" << ox << "\" y1=\"" << top + plot_h << "\" x2=\"" << ox + plot_w << "\" y2=\""
        << top + plot_h << "\" stroke=\"black\"/>\n";
    svg << "<line x1=\"" << ox << "\" y1=\"" << top << "\" x2=\"" << ox << "\" y2=\"" << top + plot_h
        << "\" stroke=\"black\"/>\n";
    for (int k = 0; k <= 4; ++k) {
      const double v = ymax * k / 4;
      const double y = top + plot_h - plot_h * k / 4.0;
      svg << "<line x1=\"" << ox - 4 << "\" y1=\"" << y << "\" x2=\"" << ox + plot_w << "\" y2=\"" << y
          << "\" stroke=\"#ddd\"/>\n<text x=\"" << ox - 6 << "\" y=\"" << y + 4
          << "\" text-anchor=\"end\">" << Fixed(v) << (panel == 1 ? "%" : "") << "</text>\n";
    }
    svg << "<text x=\"" << ox + plot_w / 2 << "\" y=\"" << top + plot_h + 34
        << "\" text-anchor=\"middle\">lease TTL (ms)</text>\n";
    svg << "<text transform=\"translate(" << ox - 44 << "," << top + plot_h / 2
        << ") rotate(-90)\" text-anchor=\"middle\">"
        << (panel == 0 ? "pause start to new leader's write (ms)" : "stalls that cost the lease (%)")
        << "</text>\n";
    std::string points;
    for (std::size_t i = 0; i < n; ++i) {
      const auto& row = r.tradeoff[i];
      const double x = ox + x_of(i);
      svg << "<text x=\"" << x << "\" y=\"" << top + plot_h + 16 << "\" text-anchor=\"middle\">"
          << row.ttl_ms << "</text>\n";
      double v = 0;
      if (panel == 0) {
        v = row.failover.median;
        const double y_min = top + plot_h - plot_h * row.failover.min / ymax;
        const double y_max = top + plot_h - plot_h * row.failover.max / ymax;
        svg << "<line x1=\"" << x << "\" y1=\"" << y_min << "\" x2=\"" << x << "\" y2=\"" << y_max
            << "\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n";
        // The TTL itself, the floor no failover can beat.
        const double y_ttl = top + plot_h - plot_h * static_cast<double>(row.ttl_ms) / ymax;
        svg << "<line x1=\"" << x - 8 << "\" y1=\"" << y_ttl << "\" x2=\"" << x + 8 << "\" y2=\"" << y_ttl
            << "\" stroke=\"#999\" stroke-dasharray=\"3,2\"/>\n";
      } else {
        v = row.stall_trials_ok ? 100.0 * row.evictions / row.stall_trials_ok : 0.0;
      }
      const double y = top + plot_h - plot_h * v / ymax;
      const std::string color = panel == 0 ? "#1f77b4" : "#d62728";
      svg << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"4\" fill=\"" << color << "\"/>\n";
      svg << "<text x=\"" << x + 6 << "\" y=\"" << y - 6 << "\">" << Fixed(v) << (panel == 1 ? "%" : "")
          << "</text>\n";
      points += Fixed(x, 1) + "," + Fixed(y, 1) + " ";
    }
    svg << "<polyline fill=\"none\" stroke=\"" << (panel == 0 ? "#1f77b4" : "#d62728")
        << "\" stroke-width=\"1.5\" points=\"" << points << "\"/>\n";
    if (panel == 0) {
      svg << "<text x=\"" << ox + 4 << "\" y=\"" << top + 10
          << "\" fill=\"#777\">dashes: the TTL</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string SummaryText(const DemoResults& r) {
  std::ostringstream s;
  const auto& u = r.unfenced;
  const auto& f = r.fenced;
  s << "fence-demo (" << r.options.backend << ", "
    << TtlText(r.ttl_granted_ms, {r.ttl_asked_ms}) << ", " << Fixed(r.elapsed_s, 1) << " s)\n";
  s << "  unfenced: A (token " << OptText(u.a_token) << ") stopped " << OptText(u.paused_ms, " ms")
    << "; B (token " << OptText(u.b_token) << ") elected and wrote; A resumed and wrote too: final object is "
    << (u.final_owner.empty() ? std::string("?") : u.final_owner + "'s") << "\n";
  s << "  fenced:   A's write with token " << OptText(f.a_token) << " "
    << (f.a_result == "fenced" ? "refused with 409 stale_token, highest_token " +
                                     (f.a_result_line.contains("highest_token")
                                          ? f.a_result_line["highest_token"].dump()
                                          : std::string("?"))
                               : "NOT refused (" + f.a_result + ")")
    << "; final object is " << (f.final_owner.empty() ? std::string("?") : f.final_owner + "'s") << "\n";
  s << "  bypass:   PUT with stale token " << r.bypass.token << " straight to the store -> "
    << r.bypass.status << " " << (r.bypass.body.is_object() ? r.bypass.body.value("error", "") : "")
    << "\n";
  if (r.bypass.signed_tokens) {
    const ForgedWrite& fw = r.bypass.forged;
    s << "  forged:   PUT with forged token " << fw.token << " -> " << fw.status << " "
      << (fw.body.is_object() ? fw.body.value("error", "") : "") << ", fence "
      << FenceText(fw.fence_before) << " -> " << FenceText(fw.fence_after) << "\n";
  }
  if (r.failover.count > 0) {
    s << "  failover: median " << Fixed(r.failover.median) << " ms (min " << r.failover.min << ", max "
      << r.failover.max << ") over " << r.failover.count << " trials = "
      << Fixed(r.failover.median / static_cast<double>(std::max<std::int64_t>(1, r.ttl_granted_ms)), 2)
      << " x TTL\n";
  }
  for (const auto& row : r.tradeoff) {
    s << "  " << TtlText(row.ttl_ms, row.asked_ms) << ": failover median "
      << Fixed(row.failover.median) << " ms, false evictions " << row.evictions << "/"
      << row.stall_trials_ok << "\n";
  }
  if (r.skip_lockd_runs.empty()) {
    const auto& d = r.lock_delay;
    const auto& b = r.broken;
    s << "  lock-delay " << d.lock_delay_ms << " ms: B granted " << OptText(d.renewal_to_grant_ms, " ms")
      << " after A's last renewal (TTL + delay = " << d.ttl_ms + d.lock_delay_ms
      << " ms; without delay " << OptText(r.fenced.renewal_to_grant_ms, " ms") << ")\n";
    s << "  break:    B elected " << OptText(r.break_call.to_b_elected_ms, " ms")
      << " after the operator's break (A's lease had "
      << (b.broken_line.is_object() ? std::to_string(b.broken_line.value("expires_in_ms", 0)) : "?")
      << " ms left); A's write " << (b.a_result == "fenced" ? "refused 409" : b.a_result)
      << ", its keep-alive " << (b.a_keepalive_refused_broken ? "refused lease_broken" : "NOT refused")
      << "\n";
  } else {
    s << "  lock-delay and break: skipped (" << r.skip_lockd_runs << ")\n";
  }
  if (r.failures.empty()) {
    s << "all expected outcomes happened\n";
  } else {
    s << "FAILED: " << r.failures.size() << " expected outcome(s) did not happen:\n";
    for (const auto& f2 : r.failures) s << "  - " << f2 << "\n";
  }
  return s.str();
}

namespace {

void ReportHeader(const DemoResults& r, std::ostringstream& md) {
  const auto& u = r.unfenced;
  md << "# Split-brain demo: elect for liveness, fence for safety\n\n"
     << "Generated by `fence-demo` from the run started " << r.started_at << " ("
     << Fixed(r.elapsed_s, 1) << " s). Lock service: **" << r.options.backend << "** at `"
     << r.lock_endpoints << "`; lease TTL asked " << r.ttl_asked_ms << " ms, **granted "
     << r.ttl_granted_ms << " ms**; worker A is stopped with a real "
     << "`SIGSTOP` (a helper process sends `SIGCONT`) just before its write, for TTL + margin = "
     << u.pause_ms << " ms. Every figure below comes from this run's logs.\n\n";
}

// The outcome table's rows, shared by report.md and report.html.
struct OutcomeRow {
  std::string expected;
  bool happened = false;
};
std::vector<OutcomeRow> OutcomeRows(const DemoResults& r) {
  std::vector<OutcomeRow> rows = {
      {"unfenced: two leaders at once, A's stale write accepted, final object A's",
       r.unfenced.problems.empty()},
      {"fenced: A's write refused 409 with t1 < t2, final object B's", r.fenced.problems.empty()},
      {"bypass: PUT with the stale token t1, not through any lock, refused 409",
       r.bypass.status == 409},
      {"bypass: a forged future token refused 403 bad_token_signature, the key's fence unchanged" +
           std::string(r.bypass.signed_tokens ? "" : " (signed tokens off: not run)"),
       !r.bypass.signed_tokens || ForgedRefused(r.bypass.forged)},
      {"failover measured over " + std::to_string(r.options.failover_trials) +
           " trials, each at least the lease time A had left",
       r.failover.count == static_cast<std::size_t>(r.options.failover_trials)},
  };
  if (!r.skip_lockd_runs.empty()) return rows;
  rows.push_back({"lock-delay: lockd grants B the lock only TTL + lock-delay after A's last "
                  "renewal (lock_delay_started/ended logged); A's write refused 409, final object B's",
                  r.lock_delay.problems.empty()});
  rows.push_back({"break: B elected at once after the operator's break, before A's lease would have "
                  "expired; A's write refused 409, its keep-alive refused lease_broken",
                  r.broken.problems.empty() && r.break_call.status == 200 && r.break_call.a_stopped});
  return rows;
}

void ReportOutcomes(const DemoResults& r, std::ostringstream& md) {
  md << "## Outcomes\n\n| expected | happened |\n|---|---|\n";
  for (const auto& row : OutcomeRows(r)) {
    md << "| " << row.expected << " | " << Check(row.happened) << " |\n";
  }
  md << "\n";
  if (!r.failures.empty()) {
    md << "**Expected outcomes that did not happen:**\n\n";
    for (const auto& x : r.failures) md << "- " << x << "\n";
    md << "\n";
  }
}

void ReportUnfenced(const DemoResults& r, std::ostringstream& md) {
  const auto& u = r.unfenced;
  md << "## 1. Unfenced run (`unfenced.log`)\n\n"
     << "The store runs with `--fencing off` and the workers send no token. A is elected with token t1 = "
     << OptText(u.a_token) << " and stopped before writing, holding a lease with at least "
     << OptText(u.lease_remaining_ms, " ms") << " left. Its keep-alive thread is stopped with it, so the "
     << "lease expires; B, waiting on the lock, is elected with t2 = " << OptText(u.b_token)
     << " and writes. A resumes after " << OptText(u.paused_ms, " ms")
     << ", still inside its own view of its term, and writes too. Both believed they were the leader: "
     << "A's term (from `elected` to its first `" << (u.a_term_end_event.empty() ? "?" : u.a_term_end_event)
     << "`) overlaps B's by "
     << ((u.a_term_end_ts && u.b_elected_ts) ? std::to_string(*u.a_term_end_ts - *u.b_elected_ts) + " ms"
                                              : std::string("?"))
     << ".\n\n"
     << Timeline(u) << "\n"
     << "The stored object at the end is **" << (u.final_owner.empty() ? "?" : u.final_owner + "'s")
     << "**: `" << u.final_object.dump() << "`: B's newer result was overwritten by a stale leader.\n\n"
     << Excerpt(u, {std::string(ev::kElected), std::string(ev::kPauseInjected), std::string(ev::kResumed),
                    std::string(ev::kWriteDone), std::string(ev::kWriteAccepted), std::string(ev::kExpired)})
     << "\n";
}

// When B raised its lock's scope (fence-worker --scope-fencing on), after
// its key: one call that fences A on every key of the job.
std::string ScopeSentence(const ScheduleOutcome& f) {
  for (const LogLine& l : f.lines) {
    if (l.Str("component") != "worker" || l.Str("owner") != "B" ||
        l.Event() != ev::kScopeFenceRaised) {
      continue;
    }
    return ", then its lock's scope `" + l.Str("scope") + "` (`scope_fence_raised`" +
           (l.ts_ms ? " at " + FormatClockMs(*l.ts_ms) : std::string()) +
           ": one call that fences A on every key of the job, even keys B never writes; "
           "see docs/api.md, Scopes)";
  }
  return "";
}

void ReportFenced(const DemoResults& r, std::ostringstream& md) {
  const auto& f = r.fenced;
  md << "## 2. Fenced run (`fenced.log`)\n\n"
     << "The same schedule; the store enforces fencing and every write carries its term's token. "
     << "A (t1 = " << OptText(f.a_token) << ") resumes after " << OptText(f.paused_ms, " ms")
     << " and writes. B, elected with t2 = " << OptText(f.b_token)
     << ", raised the fence on the key first (`fence_raised`"
     << (f.b_fence_raised_ts ? " at " + FormatClockMs(*f.b_fence_raised_ts) : std::string())
     << ")" << ScopeSentence(f)
     << ", before any work and before its own write, so A's write is refused with `409 stale_token`: token "
     << (f.a_result_line.contains("token") ? f.a_result_line["token"].dump() : "?") << " < highest_token "
     << (f.a_result_line.contains("highest_token") ? f.a_result_line["highest_token"].dump() : "?")
     << ". A logs `fenced`, does not retry, releases and stops.\n\n"
     << Timeline(f) << "\n"
     << "The stored object at the end is **" << (f.final_owner.empty() ? "?" : f.final_owner + "'s")
     << "** (Fencing-Token " << OptText(f.final_token) << "): `" << f.final_object.dump() << "`.\n\n"
     << Excerpt(f, {std::string(ev::kFenceRaised), std::string(ev::kWriteDone), std::string(ev::kFenced),
                    std::string(ev::kWriteFenced), std::string(ev::kWriteAccepted)})
     << "\n";
}

void ReportBypass(const DemoResults& r, std::ostringstream& md) {
  md << "## 3. Bypass (`bypass.log`)\n\n"
     << "A plain HTTP PUT straight to the store, not through any lock or worker, carrying the stale token "
     << r.bypass.token << ". The check is in the resource, so it does not matter who sends the write:\n\n"
     << "```\n$ " << r.bypass.curl << "\n```\n\nanswered **" << r.bypass.status << "**:\n\n```json\n"
     << r.bypass.body.dump() << "\n```\n\n";
  if (!r.bypass.signed_tokens) return;
  const ForgedWrite& f = r.bypass.forged;
  md << "### A forged future token (signed tokens on)\n\n"
     << "lockd signs every grant and this store runs with `--require-signed-tokens` "
        "(docs/signed-tokens.md). The same PUT with the token edited to " << f.token
     << " and A's real signature of t1 would, if accepted, fence the key above every token "
        "lockd will ever issue. The key's fence before: **" << FenceText(f.fence_before)
     << "**.\n\n```\n$ " << f.curl << "\n```\n\nanswered **" << f.status
     << "**:\n\n```json\n" << f.body.dump() << "\n```\n\nThe key's fence after: **"
     << FenceText(f.fence_after) << "** (unchanged: "
     << (f.fence_before && f.fence_before == f.fence_after ? "yes" : "NO") << ").\n\n";
}

void ReportFailover(const DemoResults& r, std::ostringstream& md) {
  const std::int64_t ttl = r.ttl_granted_ms;
  md << "## 4. Failover (`failover/`)\n\n"
     << "From A's pause start (`pause_injected`) to the store accepting the new leader's first write "
     << "(`write_accepted` with B's token), TTL " << ttl << " ms, " << r.failover.count << " trials:\n\n"
     << "| trial | failover (ms) | A's lease left at pause start (ms, lower bound) | t1 | t2 |\n|---|---:|---:|---:|---:|\n";
  for (const auto& t : r.failover_trials) {
    md << "| " << t.name << " | " << OptText(t.failover_ms) << " | " << OptText(t.lease_remaining_ms)
       << " | " << OptText(t.a_token) << " | " << OptText(t.b_token) << " |\n";
  }
  if (r.failover.count > 0) {
    md << "\n**median " << Fixed(r.failover.median) << " ms, min " << r.failover.min << " ms, max "
       << r.failover.max << " ms; median / TTL = "
       << Fixed(r.failover.median / static_cast<double>(ttl), 2) << "**. "
       << "Failover can never beat the time A's lease still had: the lock service grants the lock only "
       << "after the lease expires (checked in every trial); what it adds is the expiry timer and the "
       << "new leader's grant and write.\n\n";
  }
}

void ReportTradeoff(const DemoResults& r, std::ostringstream& md) {
  const std::int64_t ttl = r.ttl_granted_ms;
  const auto& d = r.options.stalls;
  md << "## 5. The TTL trade-off (`ttl_tradeoff.csv`, `ttl_tradeoff.svg`)\n\n"
     << "For each TTL: failover as above (" << r.options.tradeoff_failover_trials
     << " trials, or the trials of section 4 at TTL " << ttl << " ms), and " << r.options.stall_trials
     << " healthy leaders that each stall once, with a real `SIGSTOP`, right after working for a random "
     << "part of their renewal cycle (uniform in [0, TTL/3), the keep-alive interval). Stall durations are "
     << "**log-normal with median " << Fixed(d.median_ms) << " ms and sigma " << Fixed(d.sigma, 2)
     << ", clamped to [" << d.min_ms << ", " << d.max_ms << "] ms, drawn from mt19937_64 with seed "
     << d.seed << "**; every TTL faces the same stalls. A leader is falsely evicted when its lease did not "
     << "survive the stall (its first renewal afterwards was refused: `lease_lost`); it was healthy and "
     << "would have carried on.\n\n"
     << "| TTL granted (ms) | asked (ms) | failover median (ms) | min | max | median / TTL | false evictions | rate |\n"
     << "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& row : r.tradeoff) {
    const double rate = row.stall_trials_ok ? 100.0 * row.evictions / row.stall_trials_ok : 0.0;
    md << "| " << row.ttl_ms << " | " << AskedList(row, ", ") << " | " << Fixed(row.failover.median) << " | " << row.failover.min << " | "
       << row.failover.max << " | "
       << Fixed(row.failover.median / static_cast<double>(std::max<std::int64_t>(1, row.ttl_ms)), 2)
       << " | " << row.evictions << "/" << row.stall_trials_ok << " | " << Fixed(rate) << "% |\n";
  }
  md << "\n![failover and false evictions vs TTL](ttl_tradeoff.svg)\n\n";
  if (!r.tradeoff.empty()) {
    const auto& lo = r.tradeoff.front();
    const auto& hi = r.tradeoff.back();
    auto rate = [](const TradeoffRow& row) {
      return row.stall_trials_ok ? 100.0 * row.evictions / row.stall_trials_ok : 0.0;
    };
    md << "**A shorter TTL speeds failover but evicts more healthy-but-slow leaders.** A standby can take "
       << "over only once the old leader's lease has run out, so failover grows with the TTL (median "
       << Fixed(lo.failover.median) << " ms at " << lo.ttl_ms << " ms, " << Fixed(hi.failover.median)
       << " ms at " << hi.ttl_ms << " ms); but the lease is also all the slack a leader has for a stall "
       << "(GC, swap, a frozen VM), and every stall longer than what is left of it costs the lease of a "
       << "leader that was not dead, only slow (" << Fixed(rate(lo)) << "% of the same stalls at "
       << lo.ttl_ms << " ms, " << Fixed(rate(hi)) << "% at " << hi.ttl_ms
       << " ms). No TTL removes the stale write: a stall longer than the TTL is rarer with a longer TTL, "
       << "never impossible, and when it happens only the store's fence stops the old leader's write.\n\n";
  }
}

// One row of the lock-delay comparison: the handover by lockd's clock and
// by the workers'.
std::string HandoverRow(const std::string& run, const ScheduleOutcome& o) {
  return "| " + run + " | " + std::to_string(o.ttl_ms) + " | " + std::to_string(o.lock_delay_ms) +
         " | **" + OptText(o.renewal_to_grant_ms) + "** | " + OptText(o.end_to_grant_ms) + " | " +
         OptText(o.pause_to_elected_ms) + " | " + OptText(o.failover_ms) + " |\n";
}

void ReportLockDelay(const DemoResults& r, std::ostringstream& md) {
  const auto& d = r.lock_delay;
  const auto& f = r.fenced;
  md << "## 6. Lock-delay (`lock-delay.log`)\n\n"
     << "The fenced schedule again, but every acquire asks lockd for a lock-delay of "
     << d.lock_delay_ms << " ms (`fence-worker --lock-delay-ms " << d.lock_delay_ms
     << "`, `lock_delay_ms` in the acquire). A is stopped for " << d.pause_ms
     << " ms (TTL + lock-delay + margin); its lease expires at lockd (`expired`), and lockd then "
     << "grants the lock to nobody until the delay is over (`lock_delay_started` to "
     << "`lock_delay_ended`, which says " << OptText(d.delay_since_expiry_ms, " ms")
     << " since the expiry by lockd's monotonic clock). Only then is B, waiting on the lock, "
     << "granted it. The delay is for resources that cannot check a token; the store here still "
     << "does, and A's write with t1 = " << OptText(d.a_token) << " is refused `409 stale_token` "
     << "as in run 2 (A: " << d.a_result << "; final object "
     << (d.final_owner.empty() ? "?" : d.final_owner + "'s") << ").\n\n"
     << "| run | TTL (ms) | lock-delay (ms) | lockd: A's last renewal to B granted (ms) | "
        "lockd: A's expiry to B granted (ms) | A's pause start to B elected (ms) | "
        "A's pause start to B's write accepted (ms) |\n|---|---:|---:|---:|---:|---:|---:|\n"
     << HandoverRow("2. fenced, no lock-delay", f) << HandoverRow("6. lock-delay", d) << "\n"
     << "**Failover = TTL + lock-delay**: lockd granted B " << OptText(d.renewal_to_grant_ms, " ms")
     << " after A's last renewal, against TTL + lock-delay = " << d.ttl_ms + d.lock_delay_ms
     << " ms, and " << OptText(f.renewal_to_grant_ms, " ms")
     << " without a delay in run 2 of this same demo (TTL " << f.ttl_ms
     << " ms). The demo checks only the lower bound (at least TTL + lock-delay, less 1 ms for the "
        "millisecond timestamps); how to choose a delay: `docs/lockd.md`, \"Lock-delay and the TTL "
        "trade-off\".\n\n"
     << Timeline(d) << "\n"
     << Excerpt(d, {std::string(ev::kExpired), std::string(ev::kLockDelayStarted),
                    std::string(ev::kLockDelayEnded),
                    std::string(ev::kFenced)})
     << "\n";
}

// lockd's lease_broken line, or "?" fields when it is missing.
std::string BrokenFigure(const ScheduleOutcome& b, const char* field) {
  if (!b.broken_line.is_object() || !b.broken_line.contains(field)) return "?";
  const auto& v = b.broken_line[field];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// lockd's lease_broken line exactly as printed.
std::string BrokenLineText(const ScheduleOutcome& b) {
  for (const auto& l : b.lines) {
    if (l.Str("component") == tl::kLockd && l.Event() == ev::kLeaseBroken) return l.text;
  }
  return "(no lease_broken line in lockd's log)";
}

void ReportBreak(const DemoResults& r, std::ostringstream& md) {
  const auto& b = r.broken;
  const auto& c = r.break_call;
  md << "## 7. Audited lease break (`break.log`)\n\n"
     << "A is elected (t1 = " << OptText(b.a_token) << ") with a " << b.ttl_ms
     << " ms lease (three times its pause, so its lease is still alive by its own clock when it "
        "wakes, with a renewal overdue; its job's last step before the write takes 500 ms, "
        "`--write-delay-ms`, so that renewal reaches lockd first) and stopped for "
     << b.pause_ms << " ms. While it is stopped ("
     << (c.a_stopped ? "state `T` in /proc" : "**A was not found stopped**")
     << ") and B's acquire is queued at lockd ("
     << (c.b_waiting ? "`waiters` 1 in `GET /v1/locks/demo-break`" : "**B was not seen waiting**")
     << "), the demo, as the operator, breaks A's lease:\n\n```\n$ " << c.curl
     << "\n```\n\nanswered **" << c.status << "** `" << c.body.dump() << "`. lockd logs "
     << "`lease_broken` (level warning) with the holder, its token, the reason and the caller's "
        "address:\n\n```json\n" << BrokenLineText(b) << "\n```\n\n"
     << "B, waiting on the lock, is granted " << OptText(b.end_to_grant_ms, " ms")
     << " after the break by lockd's clock, and logs `elected` (t2 = " << OptText(b.b_token) << ") "
     << OptText(c.to_b_elected_ms, " ms") << " after the break was sent, while A's lease still "
     << "had **" << BrokenFigure(b, "expires_in_ms") << " ms** to run (TTL " << b.ttl_ms
     << " ms): without the break, B would have waited that long. No lock-delay follows a break. B "
        "raises the fence and writes. A resumes after " << OptText(b.paused_ms, " ms")
     << ": its keep-alive is refused `404 lease_broken` ("
     << (b.a_keepalive_refused_broken ? "lockd's `refused` line" : "**no refusal in lockd's log**")
     << ", and A's `lease_lost`: \"an operator broke it\"), and its write with t1 is refused "
        "`409 stale_token` (A: " << b.a_result << ") because B raised the fence first; final object "
     << (b.final_owner.empty() ? "?" : b.final_owner + "'s") << ". How to decide to break, and "
        "how to confirm it with `fence-logscan`: `docs/runbook.md`, \"Breaking a lease\".\n\n"
     << Timeline(b) << "\n"
     << Excerpt(b, {std::string(ev::kLeaseBroken), std::string(ev::kRefused), std::string(ev::kLeaseLost),
                    std::string(ev::kFenced), std::string(ev::kWriteFenced)})
     << "\n";
}

void ReportLockdRuns(const DemoResults& r, std::ostringstream& md) {
  if (r.skip_lockd_runs.empty()) {
    ReportLockDelay(r, md);
    ReportBreak(r, md);
    return;
  }
  md << "## 6, 7. Lock-delay and the audited break\n\nNot run: " << r.skip_lockd_runs
     << ". Run `build/bin/fence-demo` (lockd, started by the demo) to see them.\n\n";
}

void ReportFiles(const DemoResults& r, std::ostringstream& md) {
  md << "## Files\n\n"
     << "- `unfenced.log`, `fenced.log`: the lock service's, the store's and both workers' JSON lines, "
        "merged by `ts`\n"
     << "- `bypass.log`: the curl command and the store's answer\n"
     << "- `lock-delay.log`, `break.log`: the lock-delay run and the audited break (lockd only)\n"
     << "- `failover/*.log`: every failover trial; `stalls/*.log`: every stall trial's worker\n"
     << "- `summary.json`: all outcomes and figures, machine-readable\n"
     << "- `ttl_tradeoff.csv`, `ttl_tradeoff.svg`: the trade-off\n\n"
     << "Reproduce: `build/bin/fence-demo --out demo-out --ttl-ms " << r.ttl_asked_ms << " --backend "
     << r.options.backend << "`. Why this works, and why nothing inside the paused process could have "
     << "prevented the stale write: `docs/why-fencing.md`.\n";
}

// What was asked and what the lock service granted: every pause, failover
// and sweep row below uses the granted TTL.
void ReportTtls(const DemoResults& r, std::ostringstream& md) {
  md << "## Lease TTLs: asked and granted\n\n"
     << "A lock service may grant a longer lease than asked: etcd raises a TTL below its minimum "
     << "and counts whole seconds, ZooKeeper negotiates its session timeout (at least 2 ticks); "
     << "lockd grants what is asked up to its `--max-ttl-ms`. The demo asks " << r.options.backend
     << " once per TTL before the runs and plans A's pause and every row with the TTL it "
     << "granted; each run checks that A's `elected` line (`ttl_ms`) says the same.\n\n"
     << "| asked (ms) | granted by " << r.options.backend << " (ms) | used for |\n|---:|---:|---|\n"
     << "| " << r.ttl_asked_ms << " | " << r.ttl_granted_ms
     << " | unfenced, fenced, failover (`--ttl-ms`) |\n";
  for (const auto& row : r.tradeoff) {
    for (auto asked : row.asked_ms) {
      md << "| " << asked << " | " << row.ttl_ms << " | trade-off row " << row.ttl_ms << " ms";
      if (row.asked_ms.size() > 1) {
        md << " (asked " << AskedList(row, ", ") << " ms are the same lease: one row, measured once)";
      }
      md << " |\n";
    }
  }
  md << "\n";
}

}  // namespace

std::string ReportMarkdown(const DemoResults& r) {
  std::ostringstream md;
  ReportHeader(r, md);
  ReportOutcomes(r, md);
  ReportTtls(r, md);
  ReportUnfenced(r, md);
  ReportFenced(r, md);
  ReportBypass(r, md);
  ReportFailover(r, md);
  ReportTradeoff(r, md);
  ReportLockdRuns(r, md);
  ReportFiles(r, md);
  return md.str();
}

namespace {

std::string HtmlOutcomes(const DemoResults& r) {
  std::string html = "<h2>Outcomes</h2>\n<table><tr><th>expected</th><th>happened</th></tr>\n";
  for (const auto& row : OutcomeRows(r)) {
    html += "<tr><td>" + tl::HtmlEscape(row.expected) + "</td><td class=\"" +
            (row.happened ? "yes\">yes" : "no\">NO") + "</td></tr>\n";
  }
  html += "</table>\n";
  if (!r.failures.empty()) {
    html += "<p><b>Expected outcomes that did not happen:</b></p>\n<ul>\n";
    for (const auto& x : r.failures) html += "<li>" + tl::HtmlEscape(x) + "</li>\n";
    html += "</ul>\n";
  }
  return html;
}

// The bypass at the store: the fenced run's store lines (the key's history)
// and the store's line for the bypass PUT.
std::vector<logscan::LogEvent> BypassEvents(const DemoResults& r) {
  std::vector<LogLine> lines;
  for (const auto& l : r.fenced.lines) {
    if (l.Str("component") == "store") lines.push_back(l);
  }
  if (!r.bypass.store_line.empty()) lines.push_back(ParseLogLine(r.bypass.store_line, "bypass"));
  if (!r.bypass.forged.store_line.empty()) {
    lines.push_back(ParseLogLine(r.bypass.forged.store_line, "bypass"));
  }
  return ToLogEvents(lines);
}

std::string HtmlRuns(const DemoResults& r) {
  const auto& u = r.unfenced;
  const auto& f = r.fenced;
  return tl::TimelineSection(
             "unfenced", "1. Unfenced: two leaders, and the stale write lands",
             "The store runs with fencing off. A (token " + OptText(u.a_token) +
                 ") is stopped before its write; its lease expires at lockd, B (token " +
                 OptText(u.b_token) + ") is elected and writes; A resumes after " +
                 OptText(u.paused_ms, " ms") + " and overwrites B's result (final object: " +
                 (u.final_owner.empty() ? "?" : u.final_owner + "'s") + "). Log: unfenced.log.",
             tl::LayOut(ToLogEvents(u.lines))) +
         tl::TimelineSection(
             "fenced", "2. Fenced: the same schedule, and the store refuses A",
             "B raises the fence on the key first; A's write with token " + OptText(f.a_token) +
                 " is refused 409 stale_token (" + f.a_result + "), and B's object stands (final: " +
                 (f.final_owner.empty() ? "?" : f.final_owner + "'s") + "). Log: fenced.log.",
             tl::LayOut(ToLogEvents(f.lines))) +
         tl::TimelineSection(
             "bypass", "3. Bypass: a PUT with the stale token, not through any lock",
             "The store's lines for the fenced run's key, then a plain HTTP PUT with token " +
                 std::to_string(r.bypass.token) + ": answered " + std::to_string(r.bypass.status) +
                 ". The check is in the resource, so it does not matter who sends the write. " +
                 ForgedSentence(r.bypass) + "Log: bypass.log.",
             tl::LayOut(BypassEvents(r)));
}

std::string HtmlTradeoff(const DemoResults& r) {
  std::string html = "<h2>4. Failover and the TTL trade-off</h2>\n";
  if (r.failover.count > 0) {
    html += "<p>Failover at TTL " + std::to_string(r.ttl_granted_ms) + " ms (pause start to the "
            "new leader's accepted write): median " + Fixed(r.failover.median) + " ms, min " +
            std::to_string(r.failover.min) + ", max " + std::to_string(r.failover.max) +
            " over " + std::to_string(r.failover.count) + " trials.</p>\n";
  }
  if (r.tradeoff.empty()) {
    return html + "<p>The TTL trade-off was not measured in this run (--tradeoff-ttls none).</p>\n";
  }
  return html + "<p>A shorter TTL speeds failover but evicts more healthy-but-slow leaders "
                "(stalls drawn log-normal, the same for every TTL; see report.md).</p>\n"
                "<div class=\"figure\">" + TradeoffSvg(r) + "</div>\n";
}

// The lockd runs: the lock-delay as a span on lockd's lane, the break as a
// mark there, each with the figures report.md has.
std::string HtmlLockdRuns(const DemoResults& r) {
  if (!r.skip_lockd_runs.empty()) {
    return "<h2>5, 6. Lock-delay and the audited break</h2>\n<p>" +
           tl::HtmlEscape("Not run: " + r.skip_lockd_runs + ".") + "</p>\n";
  }
  const auto& d = r.lock_delay;
  const auto& b = r.broken;
  return tl::TimelineSection(
             "lock-delay", "5. Lock-delay: failover = TTL + lock-delay",
             "The fenced schedule with lock_delay_ms " + std::to_string(d.lock_delay_ms) +
                 " on every acquire. A's lease expires at lockd, which then grants the lock to "
                 "nobody for the delay (the span on lockd's lane) before B. lockd granted B " +
                 OptText(d.renewal_to_grant_ms, " ms") + " after A's last renewal: TTL + delay = " +
                 std::to_string(d.ttl_ms + d.lock_delay_ms) + " ms; without a delay (run 2) " +
                 OptText(r.fenced.renewal_to_grant_ms, " ms") + ". A's write is still refused 409 (" +
                 d.a_result + "). Log: lock-delay.log; report.md section 6.",
             tl::LayOut(ToLogEvents(d.lines))) +
         tl::TimelineSection(
             "break", "6. Audited break: B elected at once, A refused",
             "A holds a " + std::to_string(b.ttl_ms) + " ms lease and is stopped; the demo, as "
                 "the operator, calls POST /v1/locks/demo-break/break (answered " +
                 std::to_string(r.break_call.status) + "). lockd logs lease_broken (the mark on "
                 "its lane) and grants B " + OptText(b.end_to_grant_ms, " ms") +
                 " later, while A's lease still had " + BrokenFigure(b, "expires_in_ms") +
                 " ms to run. A resumes: its keep-alive is refused lease_broken" +
                 (b.a_keepalive_refused_broken ? "" : " (NOT seen)") + " and its write 409 (" +
                 b.a_result + "). Log: break.log; report.md section 7.",
             tl::LayOut(ToLogEvents(b.lines)));
}

}  // namespace

std::string ReportHtml(const DemoResults& r) {
  const std::string body =
      "<h1>Split-brain demo: elect for liveness, fence for safety</h1>\n<p>" +
      tl::HtmlEscape("fence-demo run started " + r.started_at + " (" + Fixed(r.elapsed_s, 1) +
                     " s), lock service " + r.options.backend + ", lease TTL granted " +
                     std::to_string(r.ttl_granted_ms) + " ms; worker A is stopped with a real "
                     "SIGSTOP just before its write for " + std::to_string(r.unfenced.pause_ms) +
                     " ms. Every shape below is a line of this run's logs; hover one for it. "
                     "The text report with the log excerpts is report.md.") +
      "</p>\n" + HtmlOutcomes(r) + HtmlRuns(r) + HtmlTradeoff(r) + HtmlLockdRuns(r);
  return tl::HtmlPage("fence-demo report", body);
}

}  // namespace fence::tools::demo
