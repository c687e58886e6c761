#include "tools/progress/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace fence::tools {
namespace {

// Every Progress and EndWith write under it: once a tool has ended its
// output for an exit, a redraw racing the exit must not bring a status line
// back.
std::mutex output_mu;
bool output_ended = false;  // GUARDED_BY(output_mu)

}  // namespace

Progress::Progress(std::FILE* out, bool terminal, int steps, const Clock& clock, Millis redraw)
    : out_(out), terminal_(terminal), steps_(steps), clock_(clock), started_(clock.Now()) {
  if (terminal_) redraw_ = std::thread([this, redraw] { RedrawLoop(redraw); });
}

Progress::~Progress() {
  {
    std::lock_guard guard(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (redraw_.joinable()) redraw_.join();
  std::lock_guard guard(output_mu);
  if (terminal_ && !output_ended) {
    std::fputs("\r\033[K", out_);  // leave the terminal as it was
    std::fflush(out_);
  }
}

void Progress::EndWith(std::FILE* out, bool terminal, const std::string& message) {
  std::lock_guard guard(output_mu);
  output_ended = true;
  if (terminal) std::fputs("\r\033[K", out);
  std::fprintf(out, "%s\n", message.c_str());
  std::fflush(out);
}

bool Progress::StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

void Progress::Step(const std::string& what) {
  {
    std::lock_guard guard(mu_);
    ++step_;
    what_ = what;
    waiting_.clear();
  }
  if (terminal_) return Draw();
  const std::string line = StatusLine();
  std::lock_guard guard(output_mu);
  if (output_ended) return;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void Progress::Waiting(const std::string& what) {
  {
    std::lock_guard guard(mu_);
    waiting_ = what;
  }
  if (terminal_) Draw();
}

std::string Progress::StatusLine() const {
  const double elapsed = static_cast<double>((clock_.Now() - started_).count()) / 1000.0;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f s", elapsed);
  std::lock_guard guard(mu_);
  std::string line = "[" + std::to_string(step_) + "/" + std::to_string(steps_) + "] " + what_;
  if (terminal_ && !waiting_.empty()) line += ": " + waiting_;
  return line + " (" + seconds + ")";
}

namespace {

// The terminal's width now (it may be resized), or 80 when it cannot say.
std::size_t Columns(std::FILE* out) {
  winsize size{};
  if (ioctl(fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

void Progress::Draw() {
  // A line longer than the terminal would wrap, and "\r" then clears only
  // its last row: the status line must fit on one row.
  std::string line = StatusLine();
  const std::size_t columns = Columns(out_);
  if (line.size() >= columns) line = line.substr(0, columns - 4) + "...";
  std::lock_guard guard(output_mu);
  if (output_ended) return;
  std::fprintf(out_, "\r\033[K%s", line.c_str());
  std::fflush(out_);
}

void Progress::RedrawLoop(Millis every) {
  std::unique_lock lock(mu_);
  while (!stop_cv_.wait_for(lock, every, [this] { return stop_; })) {
    if (step_ == 0) continue;
    lock.unlock();
    Draw();
    lock.lock();
  }
}

}  // namespace fence::tools
