// One TCP stream: the frame reader (header -> payload, straight into the user's buffer where the
// receive is already posted) and the write queue (writev of many small frames at once).
#include "transports/tcp/tcp_transport.h"
#include "transports/tcp/socket.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace loom::tcp {

namespace {
constexpr size_t kInBufferBytes = 64 << 10;
constexpr int kMaxIov = 64;
}  // namespace

Stream::Stream(TcpTransport& owner, int fd, Role role) : owner_(owner), fd_(fd), role_(role), in_(kInBufferBytes) {}

Stream::~Stream() { close(); }

void Stream::close() { closeFd(fd_); }

uint8_t* Stream::payloadDestination(size_t& maxLen) {
  Incoming* in = target_;
  if (in->discard) {
    maxLen = std::min<uint64_t>(fragLeft_, owner_.discardBytes());
    return owner_.discardBuffer();
  }
  maxLen = fragLeft_;
  if (in->direct) return in->direct + fragOffset_;
  return in->stash.data() + fragOffset_;
}

void Stream::fragmentDone() {
  inPayload_ = false;
  target_ = nullptr;
}

bool Stream::resume() { return parse() && (held || onReadable()); }

bool Stream::onReadable(bool hangup) {
  if (hangup) {  // a closing peer: take everything it sent, so its loss is seen
    hungUp_ = true;
    held = false;
  }
  while (fd_ >= 0 && !held) {
    ssize_t n;
    if (inPayload_ && inBegin_ == inEnd_ && fragLeft_ >= kDirectReadBytes) {
      size_t len;
      uint8_t* dst = payloadDestination(len);
      // The rest of the payload straight to its destination, and in the same call the next
      // frame's header into the buffer if it is there already: one call per message in a stream
      // of them instead of two (a 16 KiB broadcast receiver made 2.4 calls a message, Open MPI's
      // 0.7). Only a header's worth, so the next payload too can go straight to its destination.
      inBegin_ = inEnd_ = 0;
      iovec iov[2] = {{dst, len}, {in_.data(), wire::kDataPrefixBytes}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      n = ::recvmsg(fd_, &msg, 0);
      if (n > 0) {
        owner_.heardFrom(peer);
        noteRead();
        const size_t direct = std::min(static_cast<size_t>(n), len);
        fragOffset_ += direct;
        fragLeft_ -= direct;
        Incoming* in = target_;
        if (fragLeft_ == 0) fragmentDone();
        owner_.incomingProgress(peer, in, direct);
        inEnd_ = static_cast<size_t>(n) - direct;
        if (inEnd_ > 0 && !parse()) return false;
        if (static_cast<size_t>(n) < len + wire::kDataPrefixBytes && !hungUp_) return fd_ >= 0;  // drained (see below)
        continue;  // (stops if parse() put the stream on hold)
      }
    } else {
      if (inBegin_ == inEnd_) inBegin_ = inEnd_ = 0;
      if (inEnd_ == in_.size()) {  // compact: keep the partial frame at the front
        std::memmove(in_.data(), in_.data() + inBegin_, inEnd_ - inBegin_);
        inEnd_ -= inBegin_;
        inBegin_ = 0;
      }
      size_t want = in_.size() - inEnd_;
      if (expectLarge_ && !inPayload_) {
        // After a large fragment the next is likely large too: read just its header, so the
        // payload goes straight to its destination instead of through this buffer.
        size_t have = inEnd_ - inBegin_;
        want = std::min(want, have < wire::kDataPrefixBytes ? wire::kDataPrefixBytes - have : size_t(1));
      }
      n = ::recv(fd_, in_.data() + inEnd_, want, 0);
      if (n > 0) {
        owner_.heardFrom(peer);
        noteRead();
        inEnd_ += static_cast<size_t>(n);
        if (!parse()) return false;
        // A short read drained the socket: stop here instead of asking again only to hear EAGAIN
        // (a syscall per wake-up, a tenth of a 4 KiB broadcast). epoll is level-triggered, so
        // bytes that arrive meanwhile are reported by the next poll. A hung-up peer is read to EOF.
        if (static_cast<size_t>(n) < want && !hungUp_) return fd_ >= 0;
        continue;  // (stops if parse() put the stream on hold)
      }
    }
    // EOF, or a reset from an established peer: a process that exits with bytes of ours still
    // unread (a heartbeat that crossed its last read) resets the connection instead of closing it.
    // Either way its end is closed; streamClosed fails the peer only if something is pending with it.
    if (n == 0 || (errno == ECONNRESET && established)) {
      owner_.streamClosed(*this);
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    owner_.streamFailed(*this, makeError(loomPeerLost, "connection to {} failed: {}", owner_.peerName(peer),
                                         std::strerror(errno)));
    return false;
  }
  return fd_ >= 0;
}

bool Stream::parse() {
  while (fd_ >= 0) {
    size_t avail = inEnd_ - inBegin_;
    if (inPayload_) {
      if (avail == 0) return true;
      size_t take = std::min<uint64_t>(avail, fragLeft_);
      size_t room;
      uint8_t* dst = payloadDestination(room);
      take = std::min(take, room);
      std::memcpy(dst, in_.data() + inBegin_, take);
      inBegin_ += take;
      fragOffset_ += take;
      fragLeft_ -= take;
      Incoming* in = target_;
      if (fragLeft_ == 0) fragmentDone();
      owner_.incomingProgress(peer, in, take);
      continue;
    }
    if (avail < wire::kHeaderBytes) return true;
    auto header = wire::decodeHeader({in_.data() + inBegin_, wire::kHeaderBytes});
    if (!header) {
      loomResult_t code = header.error().code() == loomVersionMismatch ? loomVersionMismatch
                          : established                                ? loomPeerLost
                                                                       : loomInvalidArgument;
      owner_.streamFailed(*this, makeError(code, "malformed frame from {}: {}", owner_.peerName(peer),
                                           header.error().message()));
      return false;
    }
    const wire::Header& h = *header;
    if (h.type == wire::Type::Data) {
      if (avail < wire::kDataPrefixBytes) return true;
      if (!established || h.payloadBytes < wire::kDataHeaderBytes || h.commId != owner_.options().commId ||
          h.epoch != owner_.epoch()) {
        owner_.streamFailed(*this, makeError(loomPeerLost,
                                             "unexpected data frame from {} (communicator {}, epoch {}; expected {}, {})",
                                             owner_.peerName(peer), h.commId, h.epoch, owner_.options().commId,
                                             owner_.epoch()));
        return false;
      }
      auto d = wire::decodeDataHeader({in_.data() + inBegin_ + wire::kHeaderBytes, wire::kDataHeaderBytes});
      if (d && !hungUp_ && owner_.mustHold(peer, *d)) {  // left unparsed until a receive or a freed stash lifts the hold
        held = true;
        owner_.holdStream(*this);
        return true;
      }
      size_t fragment = h.payloadBytes - wire::kDataHeaderBytes;
      Status error;
      Incoming* in = d ? owner_.incomingFor(peer, *d, fragment, error) : nullptr;
      if (!in) {
        owner_.streamFailed(*this, makeError(loomPeerLost, "bad data frame from {}: {}", owner_.peerName(peer),
                                             d ? error.message() : d.error().message()));
        return false;
      }
      inBegin_ += wire::kDataPrefixBytes;
      expectLarge_ = fragment >= kDirectReadBytes;
      lastFrameSmall_ = wire::kDataPrefixBytes + fragment < kCoalesceFrameBytes;
      target_ = in;
      fragOffset_ = d->offset;
      fragLeft_ = fragment;
      inPayload_ = true;
      if (fragLeft_ == 0) {
        fragmentDone();
        owner_.incomingProgress(peer, in, 0);
      }
      continue;
    }
    // Control frame: needs to fit the buffer whole.
    if (h.payloadBytes > in_.size() - wire::kHeaderBytes) {
      owner_.streamFailed(*this, makeError(loomPeerLost, "control frame of {} bytes from {} is too large",
                                           h.payloadBytes, owner_.peerName(peer)));
      return false;
    }
    if (avail < wire::kHeaderBytes + h.payloadBytes) {
      if (inBegin_ + wire::kHeaderBytes + h.payloadBytes > in_.size()) {
        std::memmove(in_.data(), in_.data() + inBegin_, avail);
        inBegin_ = 0;
        inEnd_ = avail;
      }
      return true;
    }
    std::span<const uint8_t> payload{in_.data() + inBegin_ + wire::kHeaderBytes, h.payloadBytes};
    inBegin_ += wire::kHeaderBytes + h.payloadBytes;
    lastFrameSmall_ = true;
    if (!handleFrame(h, payload)) return false;
  }
  return false;
}

bool Stream::handleFrame(const wire::Header& h, std::span<const uint8_t> payload) {
  switch (h.type) {
    case wire::Type::PeerHello: {
      auto hello = wire::decodePeerHello(payload);
      if (!hello || role_ != Role::Accepted || established) {
        owner_.streamFailed(*this, makeError(loomInvalidArgument, "bad hello: {}",
                                             hello ? "unexpected on this stream" : hello.error().message()));
        return false;
      }
      owner_.onHello(*this, h, *hello);
      return fd_ >= 0;
    }
    case wire::Type::PeerHelloAck:
      if (role_ != Role::Connected || established) break;
      owner_.onHelloAck(*this);
      return true;
    case wire::Type::Reject: {
      auto r = wire::decodeReject(payload);
      if (!r) break;
      owner_.onReject(*this, *r);
      return false;
    }
    case wire::Type::Heartbeat:  // liveness only: the bytes were counted when read
      if (!established) break;
      return true;
    case wire::Type::OpError: {
      auto e = wire::decodeOpError(payload);
      if (!e || !established) break;
      owner_.onOpError(peer, *e);
      return true;
    }
    default:
      break;
  }
  owner_.streamFailed(*this, makeError(loomPeerLost, "unexpected {} frame from {}", wire::typeName(h.type),
                                       owner_.peerName(peer)));
  return false;
}

bool Stream::flush() {
  while (fd_ >= 0 && !outq.empty()) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t offered = 0;
    for (auto it = outq.begin(); it != outq.end() && n + 2 <= kMaxIov; ++it) {
      offered += it->total() - it->sent;
      size_t off = it->sent;
      if (off < it->prefixLen) {
        iov[n++] = {it->prefix + off, it->prefixLen - off};
        off = it->prefixLen;
      }
      size_t dataOff = off - it->prefixLen;
      if (dataOff < it->dataLen) iov[n++] = {const_cast<uint8_t*>(it->data) + dataOff, it->dataLen - dataOff};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    const auto now = std::chrono::steady_clock::now();
    const int holdBack = holdBackFlag(offered, now);
    ssize_t written = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | holdBack);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!writeArmed) owner_.armWrite(*this, true);
        return true;
      }
      owner_.streamFailed(*this, makeError(loomPeerLost, "sending to {} failed: {}", owner_.peerName(peer),
                                           std::strerror(errno)));
      return false;
    }
    noteSent(offered, holdBack != 0, now);
    size_t left = static_cast<size_t>(written);
    const bool full = left < offered;  // the kernel took less than offered: its buffer is full
    while (left > 0 || (!outq.empty() && outq.front().sent == outq.front().total())) {
      OutFrame& f = outq.front();
      size_t take = std::min(left, f.total() - f.sent);
      f.sent += take;
      left -= take;
      if (f.sent < f.total()) break;
      auto send = std::move(f.send);
      outq.pop_front();
      if (send && --send->fragmentsLeft == 0 && !send->done())
        send->state.store(transport::Transfer::Done, std::memory_order_release);
    }
    // Another sendmsg now would only hear EAGAIN: wait for EPOLLOUT instead.
    if (full && !outq.empty()) {
      if (!writeArmed) owner_.armWrite(*this, true);
      return fd_ >= 0;
    }
  }
  if (writeArmed && outq.empty()) owner_.armWrite(*this, false);
  return fd_ >= 0;
}

}  // namespace loom::tcp
