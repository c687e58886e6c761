// The network side of the partition experiment: a network namespace of its
// own, processes started inside it, and partitions made of iptables rules in
// that namespace only (never in the root namespace).
//
// Why rules match on owner group and connection mark, not on addresses: on
// a loopback every connection's source address is 127.0.0.1 (the kernel's
// `local 127.0.0.0/8 ... src 127.0.0.1` route), whichever 127.0.0.x the
// peer listens on, so a source address does not say which process sent a
// packet. Instead every process runs with a group id of its own (its role),
// a mangle rule stamps each new connection with its originator's group
// (CONNMARK), and a cut drops every packet, both directions, of connections
// whose originator and listening address sit on different sides.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/process.h"
#include "core/result.h"

namespace fence::tools::partition {

// One process of the experiment. `address` is where it listens ("" for a
// pure client such as a worker); `gid` identifies its packets.
struct Role {
  std::string name;
  unsigned gid = 0;
  std::string address;
};

// A partition: each side is a list of role names. Roles on no side (the
// store, say) keep talking to everyone.
struct Cut {
  std::string name;
  std::vector<std::vector<std::string>> sides;
};

// iptables-restore input (mangle table) that marks each new connection
// with its originator's group id. Pure.
std::string MarkRules(const std::vector<Role>& roles);
// iptables-restore input (filter table) that drops every packet of a
// connection opened from one side to a listener on another side. Fails on
// a role name that is not in `roles`. Pure.
Result<std::string> CutRules(const std::vector<Role>& roles, const Cut& cut);

// "fence-part-<pid>"; the namespace name carries the owner's pid so that a
// later run can tell a crashed run's namespace (pid gone) from a live one.
std::string NamespaceName(int pid);
// The pid in a namespace name of ours, or nullopt for any other name. Pure.
std::optional<int> NamespaceOwnerPid(const std::string& name);

// RunToCompletion (common/process.h) of argv (argv[0] an absolute path,
// found with FindProgram) within `timeout`; output goes to `log_path` if
// given. Error "command_failed" with the output tail unless it exits 0.
Status RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  const std::string& log_path = "");

// A network namespace owned by this process: created with loopback up and
// the connection-marking rules installed, deleted (with every rule in it) by
// the destructor. Processes started in it get SIGKILL if the starting
// thread exits (ChildProcess), and a namespace left by a crash is removed
// by RemoveStaleNamespaces on the next run.
class Namespace {
 public:
  // `roles` fixes the group ids whose connections get marked; `log_path`
  // receives the output of the ip/iptables commands.
  static Result<std::unique_ptr<Namespace>> Create(const std::string& name,
                                                   std::vector<Role> roles,
                                                   std::string log_path);
  ~Namespace();
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;

  const std::string& name() const { return name_; }
  const Role* FindRole(const std::string& role) const;

  // The command line that runs argv inside the namespace with the role's
  // group id (for ChildProcess::Start or StartListeningDaemon: the daemon's
  // own words stay last).
  Result<ChildProcess::Options> Command(const std::string& role, std::vector<std::string> argv,
                                        const std::string& log_path) const;
  // ChildProcess::Start of Command(...).
  Result<std::unique_ptr<ChildProcess>> Start(const std::string& role,
                                              std::vector<std::string> argv,
                                              const std::string& log_path) const;
  // Installs the cut's rules at once (iptables-restore --noflush); the rules
  // file is kept at `rules_path` as evidence.
  Status Apply(const Cut& cut, const std::string& rules_path);
  // Removes every filter rule: the partition heals.
  Status Heal();
  // The namespace's current rules (iptables-save), for the logs.
  std::string SaveRules();
  // Deletes the namespace now; safe to call more than once.
  void Delete();

 private:
  Namespace(std::string name, std::vector<Role> roles, std::string log_path);
  std::vector<std::string> Exec(std::vector<std::string> argv) const;

  std::string name_;
  std::vector<Role> roles_;
  std::string log_path_;
  std::string ip_;
  std::string iptables_restore_;
  std::string iptables_;
  std::string launcher_;  // fence-partition, for its run-as subcommand
  bool deleted_ = false;
};

// Deletes namespaces named fence-part-<pid> whose pid no longer runs.
// Returns the names removed.
std::vector<std::string> RemoveStaleNamespaces();

// Why this machine cannot run the experiment (not root, no `ip netns`, no
// iptables), or nullopt when it can.
std::optional<std::string> MissingPrerequisite();

// fence-partition run-as: takes group `gid` (dropping supplementary
// groups), re-arms SIGKILL on the death of `parent`, and execs argv.
// Returns an exit code only if it could not exec.
int RunAs(unsigned gid, int parent, const std::vector<std::string>& argv);

}  // namespace fence::tools::partition
