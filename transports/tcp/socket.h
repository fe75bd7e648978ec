// Small POSIX socket helpers for the TCP transport (non-blocking, with deadlines).
#pragma once

#include "core/deadline.h"
#include "core/status.h"

#include <cstdint>
#include <string>

namespace loom::tcp {

// Listening socket bound to host:0 (any free port), non-blocking. Returns the fd.
Expected<int> listenOn(const std::string& host, int backlog);
// "host:port" the fd is bound to.
Expected<std::string> localAddress(int fd);
// Connects to "host:port" by the deadline; the result is non-blocking with TCP_NODELAY.
Expected<int> connectTo(const std::string& hostPort, Deadline deadline);
// Writes all of buf, polling until the deadline (used only during connection set-up).
Status writeAll(int fd, const void* buf, size_t len, Deadline deadline);
// Whether two "host:port" addresses are on one machine: the same host text, or both loopback.
bool sameHost(const std::string& a, const std::string& b);
Status setNonBlocking(int fd);
void tuneDataSocket(int fd);  // TCP_NODELAY and keep the kernel's buffer autotuning
// Whether a connected socket's peer is on this machine (sameHost of its two ends: both loopback,
// or the same address, a rank on this host reached through a routable one). Both ends agree.
bool peerOnThisHost(int fd);
// The connection's smoothed round-trip time in microseconds (TCP_INFO), 0 if unknown. Read right
// after connect() or accept() it is the handshake's: SYN to SYN-ACK, or SYN-ACK to ACK.
uint32_t roundTripUs(int fd);
// A TCP socket's congestion control algorithm ("" if it cannot be read).
std::string congestionControl(int fd);
// Sets it; on refusal the error names the algorithm, the kernel's reason and what it offers.
Status setCongestionControl(int fd, const std::string& name);
// Whether this kernel lets this process use the algorithm (tried on a throwaway socket, so no
// socket of ours keeps it); the error is setCongestionControl's.
Status checkCongestionControl(const std::string& name);
void closeFd(int& fd);

}  // namespace loom::tcp
