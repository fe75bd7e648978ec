// Wire codec. Every read is bounds-checked through Reader, every integer is assembled byte by
// byte (explicit little-endian, no unaligned loads), and every length is compared with its limit
// before anything is allocated, so hostile input costs at most the bytes it actually carries.
#include "protocol/wire.h"

namespace loom::wire {
namespace {

// ---- writing -------------------------------------------------------------------------------
void putU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void putU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void putI32(std::vector<uint8_t>& out, int32_t v) { putU32(out, static_cast<uint32_t>(v)); }
void putString(std::vector<uint8_t>& out, const std::string& s) {
  putU32(out, static_cast<uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}
// Fixed-size stores into caller memory: encodeDataPrefix is on the data path and must not allocate.
uint8_t* storeU16(uint8_t* p, uint16_t v) {
  *p++ = uint8_t(v);
  *p++ = uint8_t(v >> 8);
  return p;
}
uint8_t* storeU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) *p++ = uint8_t(v >> (8 * i));
  return p;
}
uint8_t* storeU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) *p++ = uint8_t(v >> (8 * i));
  return p;
}

// ---- reading -------------------------------------------------------------------------------
// Cursor over a payload. `what` names the message in errors ("JoinRequest"); the first failure
// sticks, so a decoder reads every field and checks once at the end.
class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const char* what) : bytes_(bytes), what_(what) {}

  uint16_t u16(const char* field) { return static_cast<uint16_t>(take(2, field)); }
  uint32_t u32(const char* field) { return static_cast<uint32_t>(take(4, field)); }
  uint64_t u64(const char* field) { return take(8, field); }
  int32_t i32(const char* field) { return static_cast<int32_t>(u32(field)); }

  // u32 length + bytes; `label` is the field as it should appear in the error ("address 3").
  std::string str(const std::string& label, size_t limit) {
    uint32_t n = u32(label.c_str());
    if (!ok()) return {};
    if (n > limit) {
      fail(makeError(loomInvalidArgument, "{} {} is {} bytes, limit {}", what_, label, n, limit));
      return {};
    }
    if (n > remaining()) {
      fail(makeError(loomInvalidArgument, "{} truncated: {} needs {} bytes, {} left", what_, label, n,
                     remaining()));
      return {};
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

  size_t remaining() const { return bytes_.size() - pos_; }
  bool ok() const { return status_.isOk(); }
  void fail(Status s) {
    if (status_.isOk()) status_ = std::move(s);
  }
  // The decoder's verdict: the first error, else trailing bytes, else success.
  Status finish() {
    if (ok() && remaining() != 0)
      fail(makeError(loomInvalidArgument, "{} has {} trailing bytes after its last field", what_, remaining()));
    return status_;
  }

 private:
  uint64_t take(size_t n, const char* field) {
    if (!ok()) return 0;
    if (n > remaining()) {
      fail(makeError(loomInvalidArgument, "{} truncated: {} needs {} bytes, {} left", what_, field, n,
                     remaining()));
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(bytes_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }

  std::span<const uint8_t> bytes_;
  const char* what_;
  size_t pos_ = 0;
  Status status_;
};

bool knownType(uint16_t t) {
  switch (static_cast<Type>(t)) {
    case Type::JoinRequest:
    case Type::JoinAccept:
    case Type::Reject:
    case Type::Heartbeat:
    case Type::HeartbeatAck:
    case Type::Leave:
    case Type::PeerHello:
    case Type::PeerHelloAck:
    case Type::Data:
    case Type::OpError:
    case Type::UpdateRequest:
    case Type::EpochStart:
    case Type::PendingNotice:
      return true;
  }
  return false;
}

// Reject and OpError carry a loomResult_t; success or an unknown code is malformed.
void checkResultCode(Reader& r, int32_t code) {
  if (r.ok() && (code <= loomSuccess || code >= loomNumResults))
    r.fail(makeError(loomInvalidArgument, "result code {} is not a loomResult_t error", code));
}

void checkWorldSize(Reader& r, const char* what, uint32_t worldSize) {
  if (r.ok() && (worldSize == 0 || worldSize > kMaxWorldSize))
    r.fail(makeError(loomInvalidArgument, "{} worldSize {} is outside 1..{}", what, worldSize, kMaxWorldSize));
}

// `count` ranks (i32 each) in lo..kMaxWorldSize-1, named "<owner> <item>" ("<owner> lists N <items>")
// in errors; the count is checked against the bytes left before anything is reserved.
std::vector<int32_t> readRanks(Reader& r, uint32_t count, int32_t lo, const char* owner, const char* item,
                               const char* items) {
  std::vector<int32_t> ranks;
  if (r.ok() && (count > kMaxWorldSize || count > r.remaining() / 4))
    r.fail(makeError(loomInvalidArgument, "{} lists {} {} in {} bytes", owner, count, items, r.remaining()));
  if (!r.ok()) return ranks;
  ranks.reserve(count);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    int32_t v = r.i32(item);
    if (r.ok() && (v < lo || v >= static_cast<int32_t>(kMaxWorldSize)))
      r.fail(makeError(loomInvalidArgument, "{} {} {} is outside {}..{}", owner, item, v, lo, kMaxWorldSize - 1));
    ranks.push_back(v);
  }
  return ranks;
}

// Completes a frame: header with the real type and payload size, then the payload.
std::vector<uint8_t> frame(Header h, Type type, const std::vector<uint8_t>& payload) {
  h.type = type;
  h.payloadBytes = static_cast<uint32_t>(payload.size());
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + payload.size());
  encodeHeader(h, out);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace

const char* typeName(Type t) {
  switch (t) {
    case Type::JoinRequest: return "JoinRequest";
    case Type::JoinAccept: return "JoinAccept";
    case Type::Reject: return "Reject";
    case Type::Heartbeat: return "Heartbeat";
    case Type::HeartbeatAck: return "HeartbeatAck";
    case Type::Leave: return "Leave";
    case Type::PeerHello: return "PeerHello";
    case Type::PeerHelloAck: return "PeerHelloAck";
    case Type::Data: return "Data";
    case Type::OpError: return "OpError";
    case Type::UpdateRequest: return "UpdateRequest";
    case Type::EpochStart: return "EpochStart";
    case Type::PendingNotice: return "PendingNotice";
  }
  return "unknown";
}

size_t maxPayload(Type t) {
  switch (t) {
    case Type::JoinRequest: return 20 + kMaxAddressBytes;
    // Every rank's address: a full world of long addresses does not fit kMaxControlPayload, and
    // the limit exists to bound what a reader allocates, so it is the structural maximum (~16 MiB).
    case Type::JoinAccept:
    case Type::EpochStart: return 20 + size_t(kMaxWorldSize) * (8 + kMaxAddressBytes);
    case Type::UpdateRequest: return 16 + kMaxAddressBytes + size_t(kMaxWorldSize) * 4;
    case Type::PendingNotice: return 4;
    case Type::Reject: return 8 + kMaxMessageBytes;
    case Type::PeerHello: return 16;
    case Type::OpError: return 24 + kMaxMessageBytes;
    case Type::Data: return kDataHeaderBytes + kMaxDataFragment;
    case Type::Heartbeat:
    case Type::HeartbeatAck:
    case Type::Leave:
    case Type::PeerHelloAck: return 0;
  }
  return 0;
}

namespace {
uint8_t* storeHeader(uint8_t* p, const Header& h) {
  p = storeU32(p, kMagic);
  p = storeU16(p, h.wireVersion);
  p = storeU16(p, static_cast<uint16_t>(h.type));
  p = storeU32(p, h.payloadBytes);
  p = storeU32(p, h.flags);
  p = storeU64(p, h.commId);
  p = storeU64(p, h.epoch);
  return storeU64(p, h.seq);
}
}  // namespace

void encodeHeader(const Header& h, std::vector<uint8_t>& out) {
  size_t at = out.size();
  out.resize(at + kHeaderBytes);
  storeHeader(out.data() + at, h);
}

Expected<Header> decodeHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderBytes)
    return makeError(loomInvalidArgument, "truncated frame header: {} bytes, need {}", bytes.size(), kHeaderBytes);
  Reader r(bytes.first(kHeaderBytes), "frame header");
  uint32_t magic = r.u32("magic");
  if (magic != kMagic) return makeError(loomInvalidArgument, "frame magic 0x{:08x} is not LOOM", magic);
  Header h;
  h.wireVersion = r.u16("wireVersion");
  uint16_t type = r.u16("type");
  h.payloadBytes = r.u32("payloadBytes");
  h.flags = r.u32("flags");
  h.commId = r.u64("commId");
  h.epoch = r.u64("epoch");
  h.seq = r.u64("seq");
  // The version is checked before the type: another version may define types we do not know.
  if (h.wireVersion != kWireVersion)
    return makeError(loomVersionMismatch, "frame has wire version {}, this library speaks {}", h.wireVersion,
                     kWireVersion);
  if (!knownType(type)) return makeError(loomInvalidArgument, "unknown frame type {}", type);
  h.type = static_cast<Type>(type);
  if (h.payloadBytes > maxPayload(h.type))
    return makeError(loomInvalidArgument, "{} payload is {} bytes, limit {}", typeName(h.type), h.payloadBytes,
                     maxPayload(h.type));
  // A transport computes the fragment size as payloadBytes - kDataHeaderBytes; make that safe.
  if (h.type == Type::Data && h.payloadBytes < kDataHeaderBytes)
    return makeError(loomInvalidArgument, "Data payload is {} bytes, shorter than its {}-byte DataHeader",
                     h.payloadBytes, kDataHeaderBytes);
  return h;
}

std::vector<uint8_t> encode(const Header& h, const JoinRequest& m) {
  std::vector<uint8_t> p;
  putU32(p, m.libraryVersion);
  putU32(p, m.worldSize);
  putI32(p, m.requestedRank);
  putU32(p, m.maxWorld);
  putString(p, m.address);
  return frame(h, Type::JoinRequest, p);
}

std::vector<uint8_t> encodeAs(Type type, const Header& h, const JoinAccept& m) {
  std::vector<uint8_t> p;
  putI32(p, m.rank);
  putU32(p, m.worldSize);
  putU32(p, m.heartbeatMs);
  putU32(p, static_cast<uint32_t>(m.addresses.size()));
  for (const auto& a : m.addresses) putString(p, a);
  putU32(p, static_cast<uint32_t>(m.previousRanks.size()));
  for (int32_t r : m.previousRanks) putI32(p, r);
  return frame(h, type, p);
}

std::vector<uint8_t> encode(const Header& h, const JoinAccept& m) { return encodeAs(Type::JoinAccept, h, m); }

std::vector<uint8_t> encode(const Header& h, const UpdateRequest& m) {
  std::vector<uint8_t> p;
  putU32(p, m.flags);
  putU32(p, m.timeoutMs);
  putString(p, m.address);
  putU32(p, static_cast<uint32_t>(m.suspects.size()));
  for (int32_t r : m.suspects) putI32(p, r);
  return frame(h, Type::UpdateRequest, p);
}

std::vector<uint8_t> encode(const Header& h, const PendingNotice& m) {
  std::vector<uint8_t> p;
  putU32(p, m.joiners);
  return frame(h, Type::PendingNotice, p);
}

std::vector<uint8_t> encode(const Header& h, const Reject& m) {
  std::vector<uint8_t> p;
  putI32(p, m.code);
  putString(p, m.message);
  return frame(h, Type::Reject, p);
}

std::vector<uint8_t> encode(const Header& h, const PeerHello& m) {
  std::vector<uint8_t> p;
  putU32(p, m.libraryVersion);
  putI32(p, m.rank);
  putU32(p, m.worldSize);
  putU32(p, m.stream);
  return frame(h, Type::PeerHello, p);
}

std::vector<uint8_t> encode(const Header& h, const OpError& m) {
  std::vector<uint8_t> p;
  putU64(p, m.tagOp);
  putU32(p, m.tagSpace);
  putI32(p, m.code);
  putI32(p, m.lostRank);
  putString(p, m.message);
  return frame(h, Type::OpError, p);
}

std::vector<uint8_t> encodeEmpty(const Header& h) {
  Header e = h;
  e.payloadBytes = 0;
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes);
  encodeHeader(e, out);
  return out;
}

Expected<JoinRequest> decodeJoinRequest(std::span<const uint8_t> payload) {
  Reader r(payload, "JoinRequest");
  JoinRequest m;
  m.libraryVersion = r.u32("libraryVersion");
  m.worldSize = r.u32("worldSize");
  m.requestedRank = r.i32("requestedRank");
  m.maxWorld = r.u32("maxWorld");
  checkWorldSize(r, "JoinRequest", m.worldSize);
  if (r.ok() && m.maxWorld > kMaxWorldSize)
    r.fail(makeError(loomInvalidArgument, "JoinRequest maxWorld {} is over {}", m.maxWorld, kMaxWorldSize));
  m.address = r.str("address", kMaxAddressBytes);
  // requestedRank is range-checked by the coordinator: out of range is misuse, not malformed.
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

Expected<JoinAccept> decodeJoinAccept(std::span<const uint8_t> payload) {
  Reader r(payload, "JoinAccept");
  JoinAccept m;
  m.rank = r.i32("rank");
  m.worldSize = r.u32("worldSize");
  m.heartbeatMs = r.u32("heartbeatMs");
  uint32_t count = r.u32("address count");
  checkWorldSize(r, "JoinAccept", m.worldSize);
  if (r.ok() && (m.rank < 0 || uint32_t(m.rank) >= m.worldSize))
    r.fail(makeError(loomInvalidArgument, "JoinAccept rank {} is outside 0..{}", m.rank, m.worldSize - 1));
  if (r.ok() && count != m.worldSize)
    r.fail(makeError(loomInvalidArgument, "JoinAccept has {} addresses for worldSize {}", count, m.worldSize));
  // Each address costs at least its 4-byte length: refuse a count the bytes cannot hold before
  // reserving memory for it.
  if (r.ok() && count > r.remaining() / 4)
    r.fail(makeError(loomInvalidArgument, "JoinAccept truncated: {} addresses cannot fit in {} bytes", count,
                     r.remaining()));
  if (r.ok()) {
    m.addresses.reserve(count);
    for (uint32_t i = 0; i < count && r.ok(); ++i)
      m.addresses.push_back(r.str(fmt::format("address {}", i), kMaxAddressBytes));
  }
  uint32_t previous = r.u32("previous rank count");
  if (r.ok() && previous != 0 && previous != m.worldSize)
    r.fail(makeError(loomInvalidArgument, "JoinAccept has {} previous ranks for worldSize {}", previous, m.worldSize));
  m.previousRanks = readRanks(r, previous, -1, "JoinAccept", "previous rank", "previous ranks");
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

Expected<UpdateRequest> decodeUpdateRequest(std::span<const uint8_t> payload) {
  Reader r(payload, "UpdateRequest");
  UpdateRequest m;
  m.flags = r.u32("flags");
  m.timeoutMs = r.u32("timeoutMs");
  m.address = r.str("address", kMaxAddressBytes);
  uint32_t count = r.u32("suspect count");
  m.suspects = readRanks(r, count, 0, "UpdateRequest", "suspect rank", "suspects");
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

Expected<PendingNotice> decodePendingNotice(std::span<const uint8_t> payload) {
  Reader r(payload, "PendingNotice");
  PendingNotice m;
  m.joiners = r.u32("joiners");
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

Expected<Reject> decodeReject(std::span<const uint8_t> payload) {
  Reader r(payload, "Reject");
  Reject m;
  m.code = r.i32("code");
  checkResultCode(r, m.code);
  m.message = r.str("message", kMaxMessageBytes);
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

Expected<PeerHello> decodePeerHello(std::span<const uint8_t> payload) {
  Reader r(payload, "PeerHello");
  PeerHello m;
  m.libraryVersion = r.u32("libraryVersion");
  m.rank = r.i32("rank");
  m.worldSize = r.u32("worldSize");
  m.stream = r.u32("stream");
  checkWorldSize(r, "PeerHello", m.worldSize);
  if (r.ok() && (m.rank < 0 || uint32_t(m.rank) >= m.worldSize))
    r.fail(makeError(loomInvalidArgument, "PeerHello rank {} is outside 0..{}", m.rank, m.worldSize - 1));
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

Expected<OpError> decodeOpError(std::span<const uint8_t> payload) {
  Reader r(payload, "OpError");
  OpError m;
  m.tagOp = r.u64("tagOp");
  m.tagSpace = r.u32("tagSpace");
  m.code = r.i32("code");
  checkResultCode(r, m.code);
  m.lostRank = r.i32("lostRank");
  if (r.ok() && (m.lostRank < -1 || m.lostRank >= static_cast<int32_t>(kMaxWorldSize)))
    r.fail(makeError(loomInvalidArgument, "OpError lostRank {} is outside -1..{}", m.lostRank, kMaxWorldSize - 1));
  m.message = r.str("message", kMaxMessageBytes);
  LOOM_RETURN_IF_ERROR(r.finish());
  return m;
}

void encodeDataPrefix(const Header& h, const DataHeader& d, uint8_t* out) {
  Header fh = h;
  fh.type = Type::Data;  // payloadBytes is the caller's: kDataHeaderBytes + fragment bytes
  uint8_t* p = storeHeader(out, fh);
  p = storeU64(p, d.tagOp);
  p = storeU32(p, d.tagSpace);
  p = storeU32(p, d.tagStep);
  p = storeU64(p, d.signature);
  p = storeU64(p, d.totalBytes);
  storeU64(p, d.offset);
}

Expected<DataHeader> decodeDataHeader(std::span<const uint8_t> bytes) {
  Reader r(bytes, "DataHeader");
  DataHeader d;
  d.tagOp = r.u64("tagOp");
  d.tagSpace = r.u32("tagSpace");
  d.tagStep = r.u32("tagStep");
  d.signature = r.u64("signature");
  d.totalBytes = r.u64("totalBytes");
  d.offset = r.u64("offset");
  if (r.ok() && d.offset > d.totalBytes)
    r.fail(makeError(loomInvalidArgument, "DataHeader offset {} is past the message's {} bytes", d.offset,
                     d.totalBytes));
  LOOM_RETURN_IF_ERROR(r.finish());
  return d;
}

Status decodeFrame(std::span<const uint8_t> bytes) {
  auto h = decodeHeader(bytes);
  if (!h) return h.error();
  size_t want = kHeaderBytes + h->payloadBytes;
  if (bytes.size() < want)
    return makeError(loomInvalidArgument, "{} frame truncated: {} of {} bytes", typeName(h->type), bytes.size(),
                     want);
  if (bytes.size() > want)
    return makeError(loomInvalidArgument, "{} frame has {} trailing bytes", typeName(h->type), bytes.size() - want);
  auto payload = bytes.subspan(kHeaderBytes);
  switch (h->type) {
    case Type::JoinRequest: return decodeJoinRequest(payload).status();
    case Type::JoinAccept:
    case Type::EpochStart: return decodeJoinAccept(payload).status();
    case Type::UpdateRequest: return decodeUpdateRequest(payload).status();
    case Type::PendingNotice: return decodePendingNotice(payload).status();
    case Type::Reject: return decodeReject(payload).status();
    case Type::PeerHello: return decodePeerHello(payload).status();
    case Type::OpError: return decodeOpError(payload).status();
    case Type::Data: {
      auto d = decodeDataHeader(payload.first(kDataHeaderBytes));
      if (!d) return d.error();
      uint64_t fragment = payload.size() - kDataHeaderBytes;
      if (fragment > d->totalBytes - d->offset)
        return makeError(loomInvalidArgument, "Data fragment of {} bytes at offset {} overruns the {}-byte message",
                         fragment, d->offset, d->totalBytes);
      return Status::ok();
    }
    case Type::Heartbeat:
    case Type::HeartbeatAck:
    case Type::Leave:
    case Type::PeerHelloAck: return Status::ok();  // decodeHeader already required an empty payload
  }
  return makeError(loomInternalError, "decodeFrame: unhandled type {}", static_cast<int>(h->type));
}

}  // namespace loom::wire
