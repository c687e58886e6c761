#include "tools/demo/demo_auth.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/auth.h"

namespace fence::tools::demo {
namespace {

// 32 bytes from the kernel's generator, in hex: unguessable, as
// docs/security.md asks of every token.
std::string RandomToken() {
  std::random_device device;
  std::string bytes;
  for (int i = 0; i < 8; ++i) {
    const std::uint32_t word = device();
    for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<char>((word >> (8 * b)) & 0xff));
  }
  return auth::HexOf(auth::HashToken(bytes));
}

Status WritePrivate(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    if (!out.good()) return MakeError("io_error", "cannot write " + path);
  }
  if (chmod(path.c_str(), 0600) != 0) return MakeError("io_error", "cannot chmod " + path);
  return OkStatus();
}

std::string Credential(std::string_view role, const std::string& token, std::string_view name) {
  return std::string(role) + " " + auth::HexOf(auth::HashToken(token)) + " " +
         std::string(name) + "\n";
}

}  // namespace

Result<DemoAuth> MakeDemoAuth(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return MakeError("io_error", "cannot create " + dir + ": " + ec.message());
  DemoAuth a{RandomToken(), RandomToken(), dir + "/worker.token", dir + "/store.auth",
             dir + "/lockd.auth"};
  for (const auto& [path, text] :
       {std::pair{a.worker_token_file, a.worker_token + "\n"},
        std::pair{a.store_auth_file, Credential("writer", a.worker_token, "demo-workers") +
                                         Credential("admin", a.admin_token, "demo-operator")},
        std::pair{a.lockd_auth_file, Credential("client", a.worker_token, "demo-workers") +
                                         Credential("admin", a.admin_token, "demo-operator")}}) {
    if (auto written = WritePrivate(path, text); !written.ok()) return written.error();
  }
  return a;
}

}  // namespace fence::tools::demo
