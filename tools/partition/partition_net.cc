#include "tools/partition/partition_net.h"

#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace fence::tools::partition {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kNamespacePrefix = "fence-part-";
constexpr std::chrono::milliseconds kCommandTimeout{10000};

std::string Tail(const std::vector<std::string>& lines, std::size_t n = 10) {
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += lines[i] + "\n";
  }
  return out;
}

}  // namespace

std::string MarkRules(const std::vector<Role>& roles) {
  std::string out = "*mangle\n";
  for (const auto& role : roles) {
    // Only the first packet of a connection (ctstate NEW) is sent by its
    // originator for sure; the mark then follows every later packet of the
    // connection in both directions.
    out += "-A OUTPUT -m conntrack --ctstate NEW -m owner --gid-owner " +
           std::to_string(role.gid) + " -m comment --comment \"originator " + role.name +
           "\" -j CONNMARK --set-mark " + std::to_string(role.gid) + "\n";
  }
  out += "COMMIT\n";
  return out;
}

Result<std::string> CutRules(const std::vector<Role>& roles, const Cut& cut) {
  std::map<std::string, const Role*> by_name;
  for (const auto& role : roles) by_name[role.name] = &role;
  std::set<std::string> seen;
  for (const auto& side : cut.sides) {
    for (const auto& name : side) {
      if (by_name.count(name) == 0) {
        return MakeError("bad_cut", "cut '" + cut.name + "' names unknown role '" + name + "'");
      }
      if (!seen.insert(name).second) {
        return MakeError("bad_cut",
                         "cut '" + cut.name + "' puts role '" + name + "' on two sides");
      }
    }
  }
  std::string out = "*filter\n";
  for (std::size_t from = 0; from < cut.sides.size(); ++from) {
    for (std::size_t to = 0; to < cut.sides.size(); ++to) {
      if (from == to) continue;
      for (const auto& originator : cut.sides[from]) {
        for (const auto& listener : cut.sides[to]) {
          const Role& o = *by_name[originator];
          const Role& l = *by_name[listener];
          if (l.address.empty()) continue;  // nobody connects to a pure client
          out += "-A OUTPUT -m connmark --mark " + std::to_string(o.gid) +
                 " -m conntrack --ctorigdst " + l.address + " -m comment --comment \"" +
                 cut.name + ": " + o.name + " -x- " + l.name + "\" -j DROP\n";
        }
      }
    }
  }
  out += "COMMIT\n";
  return out;
}

std::string NamespaceName(int pid) { return std::string(kNamespacePrefix) + std::to_string(pid); }

std::optional<int> NamespaceOwnerPid(const std::string& name) {
  if (name.rfind(kNamespacePrefix, 0) != 0) return std::nullopt;
  const std::string digits = name.substr(kNamespacePrefix.size());
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  if (digits[0] == '0') return std::nullopt;
  return std::stoi(digits);
}

Status RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  const std::string& log_path) {
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  auto run = RunToCompletion({argv, log_path, {}}, timeout);
  if (!run.ok()) return run.error();
  if (run->exit_code != 0) {
    return MakeError("command_failed", "'" + command + "' failed or did not finish within " +
                                           std::to_string(timeout.count()) +
                                           " ms (exit code " + std::to_string(run->exit_code) +
                                           "): " + Tail(run->lines));
  }
  return OkStatus();
}

Namespace::Namespace(std::string name, std::vector<Role> roles, std::string log_path)
    : name_(std::move(name)),
      roles_(std::move(roles)),
      log_path_(std::move(log_path)),
      ip_(FindProgram("ip").value_or("ip")),
      iptables_restore_(FindProgram("iptables-restore").value_or("iptables-restore")),
      iptables_(FindProgram("iptables").value_or("iptables")),
      launcher_(SiblingBinary("fence-partition")) {}

Result<std::unique_ptr<Namespace>> Namespace::Create(const std::string& name,
                                                     std::vector<Role> roles,
                                                     std::string log_path) {
  if (auto missing = MissingPrerequisite()) return MakeError("unavailable", *missing);
  std::unique_ptr<Namespace> ns(new Namespace(name, std::move(roles), std::move(log_path)));
  if (auto added = RunCommand({ns->ip_, "netns", "add", name}, kCommandTimeout, ns->log_path_);
      !added.ok()) {
    ns->deleted_ = true;  // never created: nothing of ours to delete
    return added.error();
  }
  // From here the destructor deletes the namespace on every path.
  if (auto up = RunCommand(ns->Exec({ns->ip_, "link", "set", "lo", "up"}), kCommandTimeout,
                           ns->log_path_);
      !up.ok()) {
    return up.error();
  }
  const std::string marks_path = ns->log_path_ + ".marks.rules";
  {
    std::ofstream out(marks_path);
    out << MarkRules(ns->roles_);
    if (!out) return MakeError("io_error", "cannot write " + marks_path);
  }
  if (auto marked = RunCommand(ns->Exec({ns->iptables_restore_, "--noflush", marks_path}),
                               kCommandTimeout, ns->log_path_);
      !marked.ok()) {
    return marked.error();
  }
  return ns;
}

Namespace::~Namespace() { Delete(); }

void Namespace::Delete() {
  if (deleted_) return;
  deleted_ = true;
  // Processes still inside keep the namespace alive until they exit; the
  // name goes now, and their rules go with the namespace.
  (void)RunCommand({ip_, "netns", "delete", name_}, kCommandTimeout, log_path_);
}

const Role* Namespace::FindRole(const std::string& role) const {
  for (const auto& r : roles_) {
    if (r.name == role) return &r;
  }
  return nullptr;
}

std::vector<std::string> Namespace::Exec(std::vector<std::string> argv) const {
  std::vector<std::string> full = {ip_, "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

Result<ChildProcess::Options> Namespace::Command(const std::string& role,
                                                std::vector<std::string> argv,
                                                const std::string& log_path) const {
  const Role* r = FindRole(role);
  if (r == nullptr) return MakeError("bad_role", "no role '" + role + "' in the experiment");
  // `ip netns exec` and the launcher both exec in place, so the pid we get
  // is the program's own and signals reach it directly. The launcher (not
  // setpriv) changes the group: a credential change clears the parent-death
  // signal, and the launcher sets it again before exec.
  std::vector<std::string> full = {launcher_, "run-as", "--gid", std::to_string(r->gid),
                                   "--parent", std::to_string(getpid()), "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return ChildProcess::Options{Exec(full), log_path, {}};
}

Result<std::unique_ptr<ChildProcess>> Namespace::Start(const std::string& role,
                                                       std::vector<std::string> argv,
                                                       const std::string& log_path) const {
  auto command = Command(role, std::move(argv), log_path);
  if (!command.ok()) return command.error();
  return ChildProcess::Start(std::move(*command));
}

Status Namespace::Apply(const Cut& cut, const std::string& rules_path) {
  auto rules = CutRules(roles_, cut);
  if (!rules.ok()) return rules.error();
  {
    std::ofstream out(rules_path);
    out << *rules;
    if (!out) return MakeError("io_error", "cannot write " + rules_path);
  }
  return RunCommand(Exec({iptables_restore_, "--noflush", rules_path}), kCommandTimeout,
                    log_path_);
}

Status Namespace::Heal() {
  return RunCommand(Exec({iptables_, "-w", "5", "-F", "OUTPUT"}), kCommandTimeout, log_path_);
}

std::string Namespace::SaveRules() {
  auto child = ChildProcess::Start({Exec({FindProgram("iptables-save").value_or("iptables-save")}), "", {}});
  if (!child.ok()) return "";
  if (!(*child)->WaitExit(kCommandTimeout)) (*child)->Kill();
  std::string out;
  for (const auto& line : (*child)->Lines()) {
    if (!line.empty() && line[0] == '#') continue;  // timestamps of the dump itself
    out += line + "\n";
  }
  return out;
}

std::vector<std::string> RemoveStaleNamespaces() {
  std::vector<std::string> removed;
  std::error_code ec;
  const auto ip_path = FindProgram("ip");
  if (!ip_path) return removed;
  const std::string& ip = *ip_path;
  for (const auto& entry : fs::directory_iterator("/run/netns", ec)) {
    const std::string name = entry.path().filename().string();
    const auto pid = NamespaceOwnerPid(name);
    if (!pid || *pid == getpid()) continue;
    if (kill(*pid, 0) == 0 || errno != ESRCH) continue;  // its run is alive
    if (RunCommand({ip, "netns", "delete", name}, kCommandTimeout).ok()) {
      removed.push_back(name);
    }
  }
  return removed;
}

std::optional<std::string> MissingPrerequisite() {
  if (geteuid() != 0) {
    return "the partition experiment needs root (it creates a network namespace and "
           "iptables rules inside it)";
  }
  for (const char* tool : {"ip", "iptables", "iptables-restore", "iptables-save"}) {
    if (!FindProgram(tool)) {
      return std::string(tool) +
             " is not installed; install iproute2 and iptables "
             "(deploy/install-deps.sh)";
    }
  }
  // `ip netns` needs a kernel with network namespaces and a writable /run.
  const std::string probe = NamespaceName(getpid()) + "-probe";
  const std::string ip = FindProgram("ip").value_or("ip");
  if (auto added = RunCommand({ip, "netns", "add", probe}, kCommandTimeout); !added.ok()) {
    return "'ip netns add' does not work here: " + added.error().message;
  }
  (void)RunCommand({ip, "netns", "delete", probe}, kCommandTimeout);
  return std::nullopt;
}

int RunAs(unsigned gid, int parent, const std::vector<std::string>& argv) {
  if (argv.empty()) {
    std::fprintf(stderr, "fence-partition run-as: no program given\n");
    return 2;
  }
  if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0) {
    std::fprintf(stderr, "fence-partition run-as: cannot take group %u: %s\n", gid,
                 std::strerror(errno));
    return 1;
  }
  // setresgid cleared the parent-death signal ChildProcess set; without it a
  // crashed experiment would leave this process running.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) return 1;  // the experiment is already gone
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  std::fprintf(stderr, "fence-partition run-as: cannot run %s: %s\n", args[0],
               std::strerror(errno));
  return 127;
}

}  // namespace fence::tools::partition
