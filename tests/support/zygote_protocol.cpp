#include "zygote_protocol.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace latmix::zygote {
namespace {

constexpr std::uint32_t kMagic = 0x325a4d4c;  // "LMZ2"
constexpr std::uint32_t kMaxPayload = 64u << 20;

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}
void put_string(std::string& out, const std::string& s) {
  put(out, static_cast<std::uint32_t>(s.size()));
  out += s;
}
void put_strings(std::string& out, const std::vector<std::string>& list) {
  put(out, static_cast<std::uint32_t>(list.size()));
  for (const auto& s : list) put_string(out, s);
}

// Reads the payload front to back; any overrun leaves ok false.
struct Reader {
  std::string_view rest;
  bool ok = true;
  template <typename T>
  T get() {
    T value{};
    if (rest.size() < sizeof value) {
      ok = false;
      return value;
    }
    std::memcpy(&value, rest.data(), sizeof value);
    rest.remove_prefix(sizeof value);
    return value;
  }
  std::string get_string() {
    auto size = get<std::uint32_t>();
    if (!ok || rest.size() < size) {
      ok = false;
      return {};
    }
    std::string s(rest.substr(0, size));
    rest.remove_prefix(size);
    return s;
  }
  std::vector<std::string> get_strings() {
    auto count = get<std::uint32_t>();
    std::vector<std::string> list;
    for (std::uint32_t i = 0; ok && i < count; ++i) list.push_back(get_string());
    return list;
  }
};

std::string encode(const Request& r) {
  std::string out;
  put(out, r.binary.device);
  put(out, r.binary.inode);
  put(out, r.binary.size);
  put(out, r.binary.mtime_ns);
  put(out, r.umask);
  put_strings(out, r.argv);
  put_strings(out, r.env);
  put_string(out, r.cwd);
  put(out, r.ignored_signals);
  put(out, static_cast<std::uint32_t>(r.limits.size()));
  for (const Limit& l : r.limits) {
    put(out, l.resource);
    put(out, l.soft);
    put(out, l.hard);
  }
  return out;
}

bool decode(std::string_view payload, Request* r) {
  Reader in{payload};
  r->binary.device = in.get<std::uint64_t>();
  r->binary.inode = in.get<std::uint64_t>();
  r->binary.size = in.get<std::uint64_t>();
  r->binary.mtime_ns = in.get<std::int64_t>();
  r->umask = in.get<std::uint32_t>();
  r->argv = in.get_strings();
  r->env = in.get_strings();
  r->cwd = in.get_string();
  r->ignored_signals = in.get<std::uint64_t>();
  const auto limits = in.get<std::uint32_t>();
  for (std::uint32_t i = 0; in.ok && i < limits && i < 64; ++i) {
    Limit l;
    l.resource = in.get<std::int32_t>();
    l.soft = in.get<std::uint64_t>();
    l.hard = in.get<std::uint64_t>();
    r->limits.push_back(l);
  }
  return in.ok && limits < 64 && in.rest.empty() && !r->argv.empty();
}

// FNV-1a: the socket's name only has to tell two binaries' paths apart.
std::string hash_hex(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string default_base_dir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string base = (runtime != nullptr && *runtime == '/') ? runtime : "/tmp";
  return base + "/latmix-zygote-" + std::to_string(::getuid());
}

// The directory must be ours alone: another user able to write there could plant a socket.
bool usable_private_dir(const std::string& dir, std::string* why) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *why = dir + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *why = dir + " is not a directory";
    return false;
  }
  if (st.st_uid != ::getuid() || (st.st_mode & 022) != 0) {
    *why = dir + " belongs to another user or is writable by others";
    return false;
  }
  return true;
}

}  // namespace

std::vector<Limit> current_limits() {
  std::vector<Limit> out;
  for (int resource : {RLIMIT_FSIZE, RLIMIT_AS, RLIMIT_DATA, RLIMIT_NOFILE, RLIMIT_CPU, RLIMIT_CORE}) {
    rlimit rl{};
    if (::getrlimit(resource, &rl) == 0) out.push_back({resource, rl.rlim_cur, rl.rlim_max});
  }
  return out;
}

bool BinaryIdentity::operator==(const BinaryIdentity& o) const {
  return device == o.device && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
}

std::optional<BinaryIdentity> identity_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  BinaryIdentity id;
  id.device = st.st_dev;
  id.inode = st.st_ino;
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

std::optional<ZygotePaths> zygote_paths(const std::string& binary_realpath, const std::vector<std::string>& load_env,
                                        std::string* why) {
  const char* configured = std::getenv("LATMIX_ZYGOTE_DIR");
  ZygotePaths p;
  p.dir = (configured != nullptr && *configured != '\0') ? configured : default_base_dir();
  if (!usable_private_dir(p.dir, why)) return std::nullopt;
  std::string name = binary_realpath.substr(binary_realpath.rfind('/') + 1).substr(0, 32);
  std::string key = binary_realpath;
  for (const std::string& entry : load_env) key += '\n' + entry;
  std::string stem = p.dir + "/" + name + "-" + hash_hex(key);
  p.socket = stem + ".sock";
  p.lock = stem + ".lock";
  p.log = stem + ".log";
  if (p.socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    *why = p.socket + ": too long for a Unix socket";
    return std::nullopt;
  }
  return p;
}

bool read_at_load(std::string_view entry) {
  static constexpr std::array<std::string_view, 13> kPrefixes = {
      "LD_",   "OMP_",   "GOMP_", "KMP_",  "MKL_",  "OPENBLAS_", "MALLOC_", "GLIBC_TUNABLES=",
      "ASAN_", "UBSAN_", "LSAN_", "TSAN_", "GTEST_"};
  return std::any_of(kPrefixes.begin(), kPrefixes.end(),
                     [&](std::string_view prefix) { return entry.substr(0, prefix.size()) == prefix; });
}

std::vector<std::string> load_time_entries(const std::vector<std::string>& env) {
  std::vector<std::string> out;
  std::copy_if(env.begin(), env.end(), std::back_inserter(out), [](const std::string& e) { return read_at_load(e); });
  std::sort(out.begin(), out.end());
  return out;
}

bool send_request(int sock, const Request& request, const int fds[3]) {
  std::string payload = encode(request);
  std::uint32_t header[2] = {kMagic, static_cast<std::uint32_t>(payload.size())};
  iovec iov{header, sizeof header};
  alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
  std::memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return false;
  if (n < static_cast<ssize_t>(sizeof header) &&
      !write_all(sock, reinterpret_cast<char*>(header) + n, sizeof header - static_cast<size_t>(n))) {
    return false;
  }
  return write_all(sock, payload.data(), payload.size());
}

bool receive_request(int sock, Request* request, int fds[3]) {
  fds[0] = fds[1] = fds[2] = -1;
  std::uint32_t header[2] = {};
  iovec iov{header, sizeof header};
  alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int received[3] = {-1, -1, -1};
      std::memcpy(received, CMSG_DATA(cm), std::min<size_t>(count, 3) * sizeof(int));
      if (count == 3) {
        std::copy(received, received + 3, fds);
      } else {
        for (size_t i = 0; i < std::min<size_t>(count, 3); ++i) ::close(received[i]);
      }
    }
  }
  bool ok = fds[0] >= 0 && (msg.msg_flags & MSG_CTRUNC) == 0;
  if (ok && n < static_cast<ssize_t>(sizeof header)) {
    ok = read_all(sock, reinterpret_cast<char*>(header) + n, sizeof header - static_cast<size_t>(n));
  }
  ok = ok && header[0] == kMagic && header[1] <= kMaxPayload;
  std::string payload(ok ? header[1] : 0, '\0');
  ok = ok && read_all(sock, payload.data(), payload.size()) && decode(payload, request);
  if (!ok) {
    for (int i = 0; i < 3; ++i) {
      if (fds[i] >= 0) ::close(fds[i]);
      fds[i] = -1;
    }
  }
  return ok;
}

bool send_reply(int sock, const Reply& reply) {
  std::int32_t words[2] = {static_cast<std::int32_t>(reply.kind), reply.value};
  return write_all(sock, words, sizeof words);
}

bool receive_reply(int sock, Reply* reply) {
  std::int32_t words[2] = {};
  if (!read_all(sock, words, sizeof words)) return false;
  reply->kind = static_cast<ReplyKind>(words[0]);
  reply->value = words[1];
  return true;
}

}  // namespace latmix::zygote
