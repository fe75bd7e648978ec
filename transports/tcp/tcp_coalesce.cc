// Coalescing small frames: a run of them leaves the sender as few large segments.
//
// Why. Every TCP segment costs a trip through the sender's TCP output, loopback and the
// receiver's TCP input, and over loopback the input runs in the sender's context too. A 4 KiB
// frame costs the root of a 2-rank broadcast about 7 us of kernel time this way, whatever the
// library (a bare sendmsg loop pays the same; bench/RESULTS.md, session 15). Handed to the kernel
// with MSG_MORE, a frame waits in the socket instead and joins the frames after it; the
// acknowledgement of what is in flight sends them all as one segment, and over loopback it is
// processed in the receiver's context, so the two cores share the work. A 2-rank stream of
// 4 KiB broadcasts went from 11-18 to about 6-7 us a call (5000-call runs).
//
// Held back only when all of these hold, so that a lone frame, a reply, or a large transfer
// leaves at once as before:
//  - the stream coalesces (by default: the peer is on this host; TransportOptions::coalesce);
//  - what this call sends is small (kCoalesceFrameBytes), and so was the last call's;
//  - the last call was recent (kRecent) and the peer has sent nothing since: a one-way run.
//
// A held frame must not wait for long. Two rules see to it:
//  - Sender: after the call, TCP_INFO says whether anything is unacknowledged. If not, no
//    acknowledgement is coming to carry the frame out (the kernel would wait for its probe timer,
//    200 ms or more), so it is pushed at once: setting TCP_NODELAY again pushes what is queued.
//  - Receiver: Linux acknowledges a lone segment only after its delayed-ACK timer (40 ms, or
//    when it next sends data itself), so a receiver that has read a small frame and finds nothing
//    more to read acknowledges at once (TCP_QUICKACK; TcpTransport::poll calls
//    acknowledgeIfOwed). Sending data of our own acknowledges too, so a rank that replies never
//    pays for the extra call. The receiver does this whatever its own setting, since it cannot
//    know its peer's.
// A held frame therefore waits at most until the receiver has read what came before it, one
// round trip over loopback (tens of microseconds).
#include "transports/tcp/tcp_transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace loom::tcp {

namespace {
// A run of frames: each sent within this long of the last. Longer than a small collective's
// call (5-50 us here), far shorter than the gaps between a training step's collectives.
constexpr auto kRecent = std::chrono::microseconds(100);

// Anything sent and not yet acknowledged: an acknowledgement will come and push held bytes out.
bool somethingInFlight(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_unacked > 0;
}
}  // namespace

int Stream::holdBackFlag(size_t offered, std::chrono::steady_clock::time_point now) const {
  const bool run = lastSendSmall_ && !heardSinceSend_ && now - lastSend_ < kRecent;
  return coalesce && offered < kCoalesceFrameBytes && run ? MSG_MORE : 0;
}

void Stream::noteSent(size_t offered, bool heldBack, std::chrono::steady_clock::time_point now) {
  bool left = !heldBack;
  if (heldBack && !somethingInFlight(fd_)) {
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    left = true;
  }
  lastSend_ = now;
  lastSendSmall_ = offered < kCoalesceFrameBytes;
  heardSinceSend_ = false;
  if (left) ackOwed_ = false;  // our data carried the acknowledgement of everything read so far
}

void Stream::noteRead() {
  heardSinceSend_ = true;
  ackOwed_ = true;
  if (!ackListed) {
    ackListed = true;
    owner_.listOwedAck(*this);
  }
}

void Stream::acknowledgeIfOwed() {
  ackListed = false;
  if (!ackOwed_ || !lastFrameSmall_ || fd_ < 0) return;
  ackOwed_ = false;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

}  // namespace loom::tcp
