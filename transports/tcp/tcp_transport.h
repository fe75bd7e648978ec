// TCP transport: several non-blocking streams per peer pair, one message striped across them.
//
// Progress model: all sockets sit in one private epoll set, whose fd is eventFd(). Whoever holds
// the communicator's engine lock calls poll() — the event-loop thread when woken by libuv
// watching that fd, or a waiting caller that drives progress itself (no hand-over to a sleeping
// thread on the latency path). Sends are written eagerly from isend(); only what the kernel
// does not take is queued and waits for EPOLLOUT.
#pragma once

#include "core/scratch.h"
#include "protocol/wire.h"
#include "transports/iface/transport.h"

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace loom::tcp {

using transport::Tag;
using transport::TagHash;
using transport::TransferPtr;

// A payload at least this large is read straight into its destination, bypassing the stream's
// buffer; only such messages are worth leaving in the socket until their receive is posted.
inline constexpr size_t kDirectReadBytes = 16 << 10;
// Frames (header included) this small may wait behind unacknowledged ones on a coalescing
// stream; a receiver that has read one and finds nothing more acknowledges at once. Half a
// loopback segment (64 KiB), so that several can join one.
inline constexpr size_t kCoalesceFrameBytes = 32 << 10;

// A message from one peer, matched by tag. It may arrive before or after its receive is posted.
struct Incoming {
  Tag tag;                   // its key in the peer's map
  TransferPtr recv;          // the posted receive, if any
  uint8_t* userBuf = nullptr;
  uint8_t* direct = nullptr; // fragments land here (the user buffer) when posted before arrival
  size_t expectedBytes = 0;
  uint64_t expectedSignature = 0;
  bool arrived = false;      // first fragment seen: totalBytes/signature valid
  uint64_t totalBytes = 0;
  uint64_t signature = 0;
  uint64_t received = 0;
  Scratch stash;  // bytes that arrived before the receive was posted (recycled memory)
  bool discard = false;        // mismatched or cancelled: drop what still arrives
  bool complete() const { return arrived && received == totalBytes; }
};

// One send, possibly split into fragments over several streams: the transfer the poster holds,
// with the count of fragments still queued (one allocation per send, not two).
struct SendState : transport::Transfer {
  int fragmentsLeft = 0;
};

struct OutFrame {
  uint8_t prefix[wire::kDataPrefixBytes] = {};
  size_t prefixLen = 0;
  const uint8_t* data = nullptr;  // user bytes (not owned) or owned.data()
  size_t dataLen = 0;
  std::vector<uint8_t> owned;     // control frames, and fragments copied out on cancel
  size_t sent = 0;                // of prefixLen + dataLen
  std::shared_ptr<SendState> send;
  size_t total() const { return prefixLen + dataLen; }
};

class TcpTransport;

class Stream {
 public:
  enum class Role { Accepted, Connected };
  Stream(TcpTransport& owner, int fd, Role role);
  ~Stream();
  int fd() const { return fd_; }
  int peer = -1;        // rank, once known
  int index = 0;        // stream index within the pair
  bool established = false;
  bool writeArmed = false;
  // Not read: the next message has no receive posted and the peer's unexpected bytes are at the
  // cap. The sender's TCP window then pushes back, instead of this rank buffering without bound.
  bool held = false;
  bool coalesce = false;  // small frames may wait behind unacknowledged ones (tcp_coalesce.cc)
  bool ackListed = false;  // in the owner's list of streams that may owe an acknowledgement
  std::deque<OutFrame> outq;

  // Returns false when the stream failed (owner has been told why). `hangup`: the socket reported
  // an error or hang-up, so it is read even while held (its closing must be seen).
  bool onReadable(bool hangup = false);
  // Parses what is already buffered, then reads on (after a hold is lifted).
  bool resume();
  bool flush();
  void close();
  // Acknowledges at once what was read, if the last frame was small and nothing since has
  // carried the acknowledgement (tcp_coalesce.cc). Called when a poll finds nothing to read.
  void acknowledgeIfOwed();

 private:
  bool parse();
  bool handleFrame(const wire::Header& h, std::span<const uint8_t> payload);
  uint8_t* payloadDestination(size_t& maxLen);
  void fragmentDone();
  void noteRead();
  int holdBackFlag(size_t offered, std::chrono::steady_clock::time_point now) const;
  void noteSent(size_t offered, bool heldBack, std::chrono::steady_clock::time_point now);

  TcpTransport& owner_;
  int fd_;
  Role role_;
  std::vector<uint8_t> in_;
  size_t inBegin_ = 0, inEnd_ = 0;
  bool inPayload_ = false;
  bool expectLarge_ = false;  // the last data fragment was large
  bool hungUp_ = false;       // the socket reported hang-up or error: never held again
  // Coalescing (tcp_coalesce.cc). Sending side: what the last sendmsg was like, and whether the
  // peer has spoken since (a reply acknowledges; only a one-way run of frames is held back).
  std::chrono::steady_clock::time_point lastSend_{};
  bool lastSendSmall_ = false;
  bool heardSinceSend_ = true;
  // Receiving side: bytes read and not yet acknowledged by our own data, and whether the last
  // frame parsed was small (its sender may be holding the next one back until it is acknowledged).
  bool ackOwed_ = false;
  bool lastFrameSmall_ = false;
  Incoming* target_ = nullptr;
  uint64_t fragOffset_ = 0, fragLeft_ = 0;
};

class TcpTransport final : public transport::Transport {
 public:
  explicit TcpTransport(const transport::TransportOptions& options);
  ~TcpTransport() override;

  const char* name() const override { return "tcp"; }
  Expected<std::string> listen() override;
  Status connect(int rank, const std::vector<std::string>& addresses, Deadline deadline) override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  TransferPtr isend(int peer, const void* buf, size_t bytes, Tag tag, uint64_t signature) override;
  TransferPtr irecv(int peer, void* buf, size_t bytes, Tag tag, uint64_t signature) override;
  void cancel(const TransferPtr& t, const Status& why) override;
  void sendOpError(Tag tag, const Status& why) override;
  std::vector<transport::RemoteOpError> takeRemoteOpErrors() override;
  bool poll() override;
  int eventFd() const override { return epollFd_; }
  Status health() const override { return failure_; }
  void setEpoch(uint64_t epoch) override { options_.epoch = epoch; }
  void shutdown(const Status& why) override;
  void checkLiveness() override;
  std::vector<transport::PeerFailure> failures() const override { return failures_; }

  // ---- used by Stream ----
  const transport::TransportOptions& options() const { return options_; }
  uint64_t epoch() const { return options_.epoch; }
  Incoming* incomingFor(int peer, const wire::DataHeader& d, size_t fragmentBytes, Status& error);
  // True if a new message described by `d` must wait in the socket (see Stream::held).
  bool mustHold(int peer, const wire::DataHeader& d);
  void holdStream(Stream& s);
  void listOwedAck(Stream& s) { ackOwed_.push_back(&s); }
  void heardFrom(int peer);  // any bytes from it: alive
  void setReading(Stream& s, bool on);
  void incomingProgress(int peer, Incoming* in, size_t bytes);
  void onHello(Stream& s, const wire::Header& h, const wire::PeerHello& hello);
  void onHelloAck(Stream& s);
  void onReject(Stream& s, const wire::Reject& r);
  void onOpError(int peer, const wire::OpError& e);
  void streamFailed(Stream& s, const Status& why);
  // The peer closed this stream (EOF): data already sent on its other streams is still read.
  void streamClosed(Stream& s);
  void armWrite(Stream& s, bool on);
  std::string peerName(int peer) const;
  uint8_t* discardBuffer() { return discard_.data(); }
  size_t discardBytes() const { return discard_.size(); }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Peer {
    std::string address;
    std::vector<Stream*> streams;  // index = stream number, null until established
    std::unordered_map<Tag, Incoming, TagHash> incoming;
    uint32_t nextStream = 0;
    int closedStreams = 0;
    uint64_t sentMessages = 0;      // every data frame carries its message's number (header seq)
    uint64_t receivedMessages = 0;  // completed receives, named in errors about this peer
    uint64_t stashedBytes = 0;      // of messages that arrived before their receive (flow control)
    bool hasHeld = false;           // some stream of this peer is held
    TimePoint idleHoldSince{};      // first hold while this rank awaited nothing from it (mustHold)
    std::chrono::steady_clock::time_point lastHeard;  // liveness (checkLiveness)
    Status closed;  // set once every stream saw EOF: the peer left (or crashed)
  };
  bool hasPendingWith(int peer) const;
  static bool awaitsMessage(const Peer& p);  // a receive from it is posted and nothing has arrived for it

  void acceptAll();
  void addToEpoll(int fd, Stream* s);
  void failAll(const Status& why);
  void failPeer(int peer, const Status& why);
  void dropStream(Stream& s, const Status& why);  // fail its queued sends, close it
  void rejectStranger(Stream& s, const Status& why);
  Status peerGone(int peer) const;
  static Status mismatch(int peer, uint64_t gotBytes, uint64_t wantBytes);
  static TransferPtr failed(const Status& why);
  void complete(const TransferPtr& t);
  void fail(const TransferPtr& t, const Status& why);
  void finishIncoming(int peer, Tag tag, Incoming& in);
  void releaseHolds(int peer);  // a receive was posted or a stash freed: held streams may go on
  void chooseCongestion(int fd);  // the options' algorithm for a peer on this host or another
  bool coalescesWith(int fd) const;
  void releaseExpiredHolds();    // idle holds past kIdleHoldLimit
  // Armed whenever an idle hold may be waiting; fires once it may have expired. False if it
  // cannot run (no timerfd): then nothing is held for an idle receiver.
  bool armHoldTimer();
  void queueFrame(int peer, size_t stream, OutFrame&& frame);
  bool allEstablished() const;
  int streamsTo(int peer) const;  // streams per pair: local or remote count (both ends agree)
  std::string missingPeers() const;

  transport::TransportOptions options_;
  int rank_ = -1;
  int size_ = 0;
  int listenFd_ = -1;
  int epollFd_ = -1;
  std::string address_;
  std::vector<Peer> peers_;
  std::vector<std::unique_ptr<Stream>> streams_;  // owns every stream (pending ones too)
  std::vector<transport::RemoteOpError> remoteErrors_;
  std::vector<transport::PeerFailure> failures_;
  void recordFailure(transport::PeerFailure f);  // once per rank
  void recordLoss(int peer, const Status& why);  // seen here: its address and last sequence are known
  int holdTimerFd_ = -1;
  bool holdTimerArmed_ = false;
  std::vector<Stream*> resumed_;  // holds lifted: poll() parses what they already buffered
  std::vector<Stream*> ackOwed_;  // read from since poll() last found nothing to read
  std::vector<uint8_t> discard_;
  struct {
    uint64_t receivedMessages = 0, receivedBytes = 0, stashedMessages = 0, stashedBytes = 0;
  } stats_;  // logged (LOOM_DEBUG=info) when the transport closes
  Status failure_;   // the first peer lost (or shut down): the transport's health
  Status shutDown_;  // set by shutdown(): every transfer fails
  Status setupError_;
  bool connecting_ = false;
};

}  // namespace loom::tcp
