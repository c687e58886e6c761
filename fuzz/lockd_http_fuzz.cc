// Fuzzes fence-lockd's HTTP edge in process: the input is the bytes a
// client sends on one connection (pipelined requests), served through the
// real parser, router and handlers (net::DispatchBytes over LockdApi's
// routes) and the real lock service on a fake clock and fake timers, with
// its token journal on a simulated file system. A request that waits for a
// lock moves the fake clock on until it is answered. Besides the checks
// every response gets (valid HTTP, JSON errors), tokens granted strictly
// increase within a run.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <spdlog/spdlog.h>
#include <string_view>

#include "core/clock.h"
#include "fuzz/http_fuzz.h"
#include "lockd/async_lock_service.h"
#include "lockd/http_api.h"
#include "lockd/metrics.h"
#include "lockd/token_journal.h"
#include "tests/support/sim_env.h"

namespace {

using fence::fuzz::Check;
namespace lockd = fence::lockd;

// Small bounds, so waits and expiries are reached in few clock steps.
constexpr fence::Millis kMaxTtl{5000};
constexpr fence::Millis kMaxWait{2000};
constexpr fence::Millis kClockStep{250};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // a log line per request only slows the search
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fence::testing::SimEnv env;
  auto journal = lockd::TokenJournal::Open(env, "/lockd", {.block = 4});
  Check(journal.ok(), "the token journal does not open on a fresh simulated disk");
  boost::asio::io_context ioc;
  fence::FakeClock clock;
  fence::FakeTimers timers(clock);
  auto registry = std::make_shared<prometheus::Registry>();
  lockd::LockdMetrics metrics(*registry);
  lockd::AsyncLockService service(ioc, clock, timers, **journal, metrics,
                                  {.max_ttl = kMaxTtl, .max_wait = kMaxWait});
  lockd::LockdApi api(service, metrics, registry, {.max_ttl = kMaxTtl, .max_wait = kMaxWait});
  fence::net::ServerOptions options;
  options.metrics_prefix = "fence_lockd";
  options.max_header_bytes = 1024;
  const std::vector<fence::net::Route> routes = api.Routes();

  // Runs what is ready; once nothing is, moves the clock (a waiting acquire
  // ends by its wait_ms at the latest). Bounded by kMaxWait's worth of steps.
  int idle_steps = 0;
  auto step = [&]() {
    if (ioc.poll() > 0) {
      ioc.restart();
      return true;
    }
    ioc.restart();
    if (++idle_steps > 2 * (kMaxWait / kClockStep) + 4) return false;
    timers.Advance(kClockStep);
    return true;
  };
  std::uint64_t last_token = 0;
  fence::fuzz::ServePipeline(
      routes, options, std::string_view(reinterpret_cast<const char*>(data), size), step,
      [&](const fence::net::Response& response, const nlohmann::json& body) {
        idle_steps = 0;
        if (response.result_int() != 200 || !body.is_object() || !body.contains("lease_id") ||
            !body.contains("ttl_ms") || body.contains("released") || !body.contains("owner")) {
          return;
        }
        // An acquire's grant: a new token, above every one before it.
        const auto token = body.value("token", std::uint64_t{0});
        Check(token > last_token, "a grant's token is not above every earlier grant");
        last_token = token;
      });
  service.Shutdown();
  ioc.poll();
  return 0;
}
