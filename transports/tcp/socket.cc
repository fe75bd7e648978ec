#include "transports/tcp/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace loom::tcp {

namespace {

Expected<std::pair<std::string, std::string>> splitHostPort(const std::string& hp) {
  std::string host, port;
  if (!hp.empty() && hp[0] == '[') {
    auto close = hp.find(']');
    if (close == std::string::npos || close + 1 >= hp.size() || hp[close + 1] != ':')
      return makeError(loomInvalidArgument, "address '{}' is not [host]:port", hp);
    host = hp.substr(1, close - 1);
    port = hp.substr(close + 2);
  } else {
    auto colon = hp.rfind(':');
    if (colon == std::string::npos || colon == 0) return makeError(loomInvalidArgument, "address '{}' is not host:port", hp);
    host = hp.substr(0, colon);
    port = hp.substr(colon + 1);
  }
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
    return makeError(loomInvalidArgument, "address '{}' has no numeric port", hp);
  return std::make_pair(host, port);
}

bool isLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// "host:port" ("[host]:port" for IPv6) of a socket's own end, or of its peer's.
Expected<std::string> endpointAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if ((peer ? getpeername : getsockname)(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return makeError(loomSystemError, "{}: {}", peer ? "getpeername" : "getsockname", std::strerror(errno));
  char host[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
  return fmt::format("{}:{}", host, ntohs(a->sin_port));
}

}  // namespace

bool sameHost(const std::string& a, const std::string& b) {
  auto ha = splitHostPort(a);
  auto hb = splitHostPort(b);
  if (!ha || !hb) return false;
  return ha->first == hb->first || (isLoopback(ha->first) && isLoopback(hb->first));
}

Status setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return makeError(loomSystemError, "fcntl(O_NONBLOCK): {}", std::strerror(errno));
  return Status::ok();
}

void tuneDataSocket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// The rule that sets a pair's stream count (sameHost), applied to the two ends of a connection.
bool peerOnThisHost(int fd) {
  auto self = endpointAddress(fd, false);
  auto peer = endpointAddress(fd, true);
  return self && peer && sameHost(*self, *peer);
}

uint32_t roundTripUs(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
  return info.tcpi_rtt;
}

std::string congestionControl(int fd) {
  char name[64] = {};
  socklen_t len = sizeof(name) - 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0) return {};
  return std::string(name, strnlen(name, len));
}

namespace {
std::string firstLineOf(const char* path) {
  std::string line;
  if (FILE* f = std::fopen(path, "r")) {
    char buf[512];
    if (std::fgets(buf, sizeof(buf), f)) line = buf;
    std::fclose(f);
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line.empty() ? "?" : line;
}
}  // namespace

Status setCongestionControl(int fd, const std::string& name) {
  if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), static_cast<socklen_t>(name.size())) == 0)
    return Status::ok();
  const int err = errno;
  return makeError(loomInvalidArgument,
                   "TCP congestion control '{}' is refused by the kernel: {} (available: {}; allowed without "
                   "CAP_NET_ADMIN: {})",
                   name, std::strerror(err), firstLineOf("/proc/sys/net/ipv4/tcp_available_congestion_control"),
                   firstLineOf("/proc/sys/net/ipv4/tcp_allowed_congestion_control"));
}

Status checkCongestionControl(const std::string& name) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return makeError(loomSystemError, "socket(): {}", std::strerror(errno));
  Status s = setCongestionControl(fd, name);
  ::close(fd);
  return s;
}

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

Expected<int> listenOn(const std::string& host, int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), "0", &hints, &res);
  if (rc != 0) return makeError(loomInvalidArgument, "cannot resolve listen host '{}': {}", host, gai_strerror(rc));
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return makeError(loomSystemError, "socket(): {}", std::strerror(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
    int err = errno;
    freeaddrinfo(res);
    ::close(fd);
    return makeError(loomSystemError, "cannot listen on {}: {}", host, std::strerror(err));
  }
  freeaddrinfo(res);
  if (auto s = setNonBlocking(fd); !s) {
    ::close(fd);
    return s;
  }
  return fd;
}

Expected<std::string> localAddress(int fd) { return endpointAddress(fd, false); }

Expected<int> connectTo(const std::string& hostPort, Deadline deadline) {
  auto hp = splitHostPort(hostPort);
  if (!hp) return hp.error();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &res);
  if (rc != 0) return makeError(loomInvalidArgument, "cannot resolve '{}': {}", hostPort, gai_strerror(rc));
  int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return makeError(loomSystemError, "socket(): {}", std::strerror(errno));
  }
  rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    return makeError(loomSystemError, "cannot connect to {}: {}", hostPort, std::strerror(err));
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, deadline.remainingMs());
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      ::close(fd);
      return makeError(loomTimeout, "connecting to {} timed out", hostPort);
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n < 0 || err != 0) {
      ::close(fd);
      return makeError(loomSystemError, "cannot connect to {}: {}", hostPort, std::strerror(n < 0 ? errno : err));
    }
  }
  tuneDataSocket(fd);
  return fd;
}

Status writeAll(int fd, const void* buf, size_t len, Deadline deadline) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, deadline.remainingMs()) == 0) return makeError(loomTimeout, "write timed out");
      continue;
    }
    return makeError(loomSystemError, "write failed: {}", std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace loom::tcp
