// The wire codec: every message type round-trips, and every kind of malformed input is refused
// with the right code and a message naming the problem.
#include "protocol/wire.h"

#include <catch2/catch.hpp>

#include <cstring>

using namespace loom;
using namespace loom::wire;

namespace {

Header header(Type t, uint64_t commId = 0x1122334455667788ull, uint64_t epoch = 3, uint64_t seq = 42) {
  Header h;
  h.type = t;
  h.flags = 0xA5;
  h.commId = commId;
  h.epoch = epoch;
  h.seq = seq;
  return h;
}

// A copy, so that passing a temporary frame cannot leave a dangling span.
std::vector<uint8_t> payloadOf(const std::vector<uint8_t>& frame) {
  return std::vector<uint8_t>(frame.begin() + kHeaderBytes, frame.end());
}

// Decodes the header of a frame we just encoded and checks it carries what was sent.
Header checkHeader(const std::vector<uint8_t>& frame, Type type) {
  REQUIRE(decodeFrame(frame).isOk());
  auto h = decodeHeader(frame);
  REQUIRE(h);
  CHECK(h->type == type);
  CHECK(h->wireVersion == kWireVersion);
  CHECK(h->payloadBytes == frame.size() - kHeaderBytes);
  CHECK(h->flags == 0xA5);
  CHECK(h->commId == 0x1122334455667788ull);
  CHECK(h->epoch == 3);
  CHECK(h->seq == 42);
  return *h;
}

void putU32At(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

bool contains(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

std::vector<uint8_t> validJoinRequest() {
  return encode(header(Type::JoinRequest), JoinRequest{LOOM_VERSION_CODE, 4, 2, "10.0.0.2:4000"});
}

}  // namespace

TEST_CASE("header layout is little-endian and starts with LOOM", "[wire]") {
  auto f = encodeEmpty(header(Type::Heartbeat));
  REQUIRE(f.size() == kHeaderBytes);
  CHECK(std::memcmp(f.data(), "LOOM", 4) == 0);
  CHECK(f[4] == kWireVersion);
  CHECK(f[5] == 0);
  CHECK(f[6] == uint8_t(Type::Heartbeat));
  CHECK(f[16] == 0x88);  // commId low byte first
  CHECK(f[23] == 0x11);
}

TEST_CASE("JoinRequest round-trips", "[wire]") {
  auto f = validJoinRequest();
  checkHeader(f, Type::JoinRequest);
  auto m = decodeJoinRequest(payloadOf(f));
  REQUIRE(m);
  CHECK(m->libraryVersion == LOOM_VERSION_CODE);
  CHECK(m->worldSize == 4);
  CHECK(m->requestedRank == 2);
  CHECK(m->address == "10.0.0.2:4000");
  auto any = encode(header(Type::JoinRequest), JoinRequest{LOOM_VERSION_CODE, 1, -1, ""});
  REQUIRE(decodeJoinRequest(payloadOf(any)));
  CHECK(decodeJoinRequest(payloadOf(any))->requestedRank == -1);
}

TEST_CASE("JoinAccept round-trips", "[wire]") {
  JoinAccept a{1, 3, 250, {"a:1", "", std::string(kMaxAddressBytes, 'x')}, {}};
  auto f = encode(header(Type::JoinAccept), a);
  checkHeader(f, Type::JoinAccept);
  auto m = decodeJoinAccept(payloadOf(f));
  REQUIRE(m);
  CHECK(m->rank == 1);
  CHECK(m->worldSize == 3);
  CHECK(m->heartbeatMs == 250);
  CHECK(m->addresses == a.addresses);
}

TEST_CASE("Reject round-trips", "[wire]") {
  auto f = encode(header(Type::Reject), Reject{loomVersionMismatch, "too old"});
  checkHeader(f, Type::Reject);
  auto m = decodeReject(payloadOf(f));
  REQUIRE(m);
  CHECK(m->code == loomVersionMismatch);
  CHECK(m->message == "too old");
}

TEST_CASE("PeerHello round-trips", "[wire]") {
  auto f = encode(header(Type::PeerHello), PeerHello{LOOM_VERSION_CODE, 5, 8, 3});
  checkHeader(f, Type::PeerHello);
  auto m = decodePeerHello(payloadOf(f));
  REQUIRE(m);
  CHECK(m->libraryVersion == LOOM_VERSION_CODE);
  CHECK(m->rank == 5);
  CHECK(m->worldSize == 8);
  CHECK(m->stream == 3);
}

TEST_CASE("OpError round-trips", "[wire]") {
  auto f = encode(header(Type::OpError), OpError{0xDEADBEEFCAFEull, 7, loomPeerLost, 3, "rank 3 died"});
  checkHeader(f, Type::OpError);
  auto m = decodeOpError(payloadOf(f));
  REQUIRE(m);
  CHECK(m->tagOp == 0xDEADBEEFCAFEull);
  CHECK(m->tagSpace == 7);
  CHECK(m->code == loomPeerLost);
  CHECK(m->lostRank == 3);
  CHECK(m->message == "rank 3 died");
}

TEST_CASE("empty frames round-trip", "[wire]") {
  for (Type t : {Type::Heartbeat, Type::HeartbeatAck, Type::Leave, Type::PeerHelloAck}) {
    auto f = encodeEmpty(header(t));
    CHECK(checkHeader(f, t).payloadBytes == 0);
  }
}

TEST_CASE("Data prefix round-trips", "[wire]") {
  Header h = header(Type::Data);
  h.payloadBytes = kDataHeaderBytes + 100;
  DataHeader d{0x0102030405060708ull, 9, 11, 0xFEEDull, 1000, 900};
  std::vector<uint8_t> f(kDataPrefixBytes + 100, 0xEE);
  encodeDataPrefix(h, d, f.data());
  checkHeader(f, Type::Data);
  auto got = decodeDataHeader(std::span<const uint8_t>(f).subspan(kHeaderBytes, kDataHeaderBytes));
  REQUIRE(got);
  CHECK(got->tagOp == d.tagOp);
  CHECK(got->tagSpace == 9);
  CHECK(got->tagStep == 11);
  CHECK(got->signature == 0xFEEDull);
  CHECK(got->totalBytes == 1000);
  CHECK(got->offset == 900);
}

TEST_CASE("a bad magic is refused", "[wire]") {
  auto f = validJoinRequest();
  f[0] = 'X';
  auto h = decodeHeader(f);
  REQUIRE_FALSE(h);
  CHECK(h.error().code() == loomInvalidArgument);
  CHECK(contains(h.error(), "is not LOOM"));
  CHECK(contains(h.error(), "0x4d4f4f58"));
}

TEST_CASE("another wire version is a version mismatch", "[wire]") {
  Header h = header(Type::Heartbeat);
  h.wireVersion = kWireVersion + 1;
  auto s = decodeFrame(encodeEmpty(h));
  CHECK(s.code() == loomVersionMismatch);
  CHECK(contains(s, "wire version " + std::to_string(kWireVersion + 1)));
}

TEST_CASE("an unknown type is refused", "[wire]") {
  auto f = encodeEmpty(header(Type::Heartbeat));
  f[6] = 99;
  auto s = decodeFrame(f);
  CHECK(s.code() == loomInvalidArgument);
  CHECK(contains(s, "unknown frame type 99"));
}

TEST_CASE("a truncated header is refused", "[wire]") {
  auto f = validJoinRequest();
  auto s = decodeHeader(std::span<const uint8_t>(f).first(kHeaderBytes - 1));
  REQUIRE_FALSE(s);
  CHECK(s.error().code() == loomInvalidArgument);
  CHECK(contains(s.error(), "truncated frame header"));
  CHECK(decodeFrame({}).code() == loomInvalidArgument);
}

TEST_CASE("a truncated payload is refused", "[wire]") {
  auto f = validJoinRequest();
  f.pop_back();
  CHECK(decodeFrame(f).code() == loomInvalidArgument);
  CHECK(contains(decodeFrame(f), "truncated"));
  // A payload decoder given too few bytes names the field it could not read.
  auto payload = payloadOf(validJoinRequest());
  std::span<const uint8_t> p(payload);
  auto m = decodeJoinRequest(p.first(6));
  REQUIRE_FALSE(m);
  CHECK(contains(m.error(), "worldSize"));
  auto m2 = decodeJoinRequest(p.first(p.size() - 1));
  REQUIRE_FALSE(m2);
  CHECK(contains(m2.error(), "address needs 13 bytes, 12 left"));
}

TEST_CASE("trailing bytes are refused", "[wire]") {
  auto f = validJoinRequest();
  f.push_back(0);
  CHECK(decodeFrame(f).code() == loomInvalidArgument);
  CHECK(contains(decodeFrame(f), "trailing"));
  auto p = payloadOf(validJoinRequest());
  p.push_back(7);
  auto m = decodeJoinRequest(p);
  REQUIRE_FALSE(m);
  CHECK(contains(m.error(), "1 trailing bytes"));
  auto hb = encodeEmpty(header(Type::Heartbeat));
  hb.push_back(0);
  CHECK(decodeFrame(hb).code() == loomInvalidArgument);
}

TEST_CASE("a payload over the type's limit is refused from the header alone", "[wire]") {
  auto f = encodeEmpty(header(Type::Heartbeat));
  putU32At(f, 8, 1);  // a Heartbeat carries nothing
  auto h = decodeHeader(f);
  REQUIRE_FALSE(h);
  CHECK(contains(h.error(), "Heartbeat payload is 1 bytes, limit 0"));
  auto j = validJoinRequest();
  putU32At(j, 8, uint32_t(maxPayload(Type::JoinRequest) + 1));
  CHECK(decodeHeader(j).error().code() == loomInvalidArgument);
  auto d = encodeEmpty(header(Type::Data));
  putU32At(d, 8, 0xFFFFFFFFu);
  CHECK(contains(decodeHeader(d).error(), "Data payload is 4294967295 bytes"));
  putU32At(d, 8, 10);  // shorter than the DataHeader
  CHECK(decodeHeader(d).error().code() == loomInvalidArgument);
}

TEST_CASE("an over-long address or message is refused", "[wire]") {
  auto jr = encode(header(Type::JoinRequest), JoinRequest{LOOM_VERSION_CODE, 2, 0, std::string(300, 'a')});
  auto m = decodeJoinRequest(payloadOf(jr));
  REQUIRE_FALSE(m);
  CHECK(m.error().code() == loomInvalidArgument);
  CHECK(contains(m.error(), "JoinRequest address is 300 bytes, limit 256"));
  JoinAccept a{0, 4, 100, {"a", "b", "c", std::string(300, 'z')}, {}};
  auto ja = decodeJoinAccept(payloadOf(encode(header(Type::JoinAccept), a)));
  REQUIRE_FALSE(ja);
  CHECK(ja.error().message() == "JoinAccept address 3 is 300 bytes, limit 256");
  auto r = decodeReject(payloadOf(encode(header(Type::Reject), Reject{loomInternalError,
                                                                        std::string(kMaxMessageBytes + 1, 'm')})));
  REQUIRE_FALSE(r);
  CHECK(contains(r.error(), "message is 4097 bytes, limit 4096"));
}

TEST_CASE("a worldSize over the limit is refused", "[wire]") {
  auto jr = encode(header(Type::JoinRequest), JoinRequest{LOOM_VERSION_CODE, kMaxWorldSize + 1, 0, "x"});
  auto m = decodeJoinRequest(payloadOf(jr));
  REQUIRE_FALSE(m);
  CHECK(contains(m.error(), "worldSize 65537 is outside 1..65536"));
  auto zero = encode(header(Type::JoinRequest), JoinRequest{LOOM_VERSION_CODE, 0, 0, "x"});
  CHECK(decodeFrame(zero).code() == loomInvalidArgument);
  auto ph = encode(header(Type::PeerHello), PeerHello{LOOM_VERSION_CODE, 0, kMaxWorldSize + 1, 0});
  CHECK(decodeFrame(ph).code() == loomInvalidArgument);
}

TEST_CASE("inconsistent fields are refused", "[wire]") {
  // A JoinAccept whose rank or address list does not fit its world.
  CHECK(decodeFrame(encode(header(Type::JoinAccept), JoinAccept{3, 3, 1, {"a", "b", "c"}, {}})).code() ==
        loomInvalidArgument);
  CHECK(contains(decodeFrame(encode(header(Type::JoinAccept), JoinAccept{0, 3, 1, {"a", "b"}, {}})),
                 "2 addresses for worldSize 3"));
  // A huge address count with no bytes behind it fails before allocating.
  auto ja = encode(header(Type::JoinAccept), JoinAccept{0, kMaxWorldSize, 1, {}, {}});
  putU32At(ja, kHeaderBytes + 12, kMaxWorldSize);
  CHECK(contains(decodeFrame(ja), "cannot fit"));
  // Reject and OpError must carry an error code.
  CHECK(decodeFrame(encode(header(Type::Reject), Reject{loomSuccess, ""})).code() == loomInvalidArgument);
  CHECK(decodeFrame(encode(header(Type::OpError), OpError{1, 1, 999, -1, ""})).code() == loomInvalidArgument);
  // A lost rank is -1 or a rank a world can have.
  CHECK(contains(decodeFrame(encode(header(Type::OpError), OpError{1, 1, loomPeerLost, -2, ""})), "lostRank"));
  // A Data fragment must lie inside its message.
  Header h = header(Type::Data);
  h.payloadBytes = kDataHeaderBytes + 10;
  std::vector<uint8_t> f(kDataPrefixBytes + 10);
  encodeDataPrefix(h, DataHeader{1, 0, 0, 0, 100, 95}, f.data());
  CHECK(contains(decodeFrame(f), "overruns"));
  encodeDataPrefix(h, DataHeader{1, 0, 0, 0, 100, 101}, f.data());
  CHECK(contains(decodeFrame(f), "offset 101 is past"));
}

TEST_CASE("type names are stable", "[wire]") {
  CHECK(std::string(typeName(Type::JoinRequest)) == "JoinRequest");
  CHECK(std::string(typeName(Type::OpError)) == "OpError");
  CHECK(std::string(typeName(static_cast<Type>(1234))) == "unknown");
}

// ---- membership epochs (wire version 3) ---------------------------------------------------------

namespace {

UpdateRequest sampleUpdate() {
  UpdateRequest u;
  u.flags = kUpdateLeaving;
  u.timeoutMs = 1500;
  u.address = "10.0.0.7:5000";
  u.suspects = {1, 4};
  return u;
}

// Offset of the suspect count in an UpdateRequest payload: flags, timeoutMs, address (length + bytes).
size_t suspectCountAt(const UpdateRequest& u) { return 4 + 4 + 4 + u.address.size(); }

// Offset of the previous-rank count in a JoinAccept payload.
size_t previousCountAt(const JoinAccept& a) {
  size_t at = 16;
  for (const auto& s : a.addresses) at += 4 + s.size();
  return at;
}

}  // namespace

TEST_CASE("UpdateRequest round-trips", "[wire][epoch]") {
  UpdateRequest u = sampleUpdate();
  auto f = encode(header(Type::UpdateRequest), u);
  checkHeader(f, Type::UpdateRequest);
  auto m = decodeUpdateRequest(payloadOf(f));
  REQUIRE(m);
  CHECK(m->flags == kUpdateLeaving);
  CHECK(m->timeoutMs == 1500);
  CHECK(m->address == "10.0.0.7:5000");
  CHECK(m->suspects == std::vector<int32_t>{1, 4});
  // No suspects and no address (a leaving member sends none) is fine too.
  auto empty = encode(header(Type::UpdateRequest), UpdateRequest{});
  checkHeader(empty, Type::UpdateRequest);
  auto e = decodeUpdateRequest(payloadOf(empty));
  REQUIRE(e);
  CHECK(e->flags == 0);
  CHECK(e->address.empty());
  CHECK(e->suspects.empty());
  // The largest legal suspect rank.
  UpdateRequest top;
  top.suspects = {int32_t(kMaxWorldSize - 1)};
  REQUIRE(decodeUpdateRequest(payloadOf(encode(header(Type::UpdateRequest), top))));
}

TEST_CASE("PendingNotice round-trips", "[wire][epoch]") {
  auto f = encode(header(Type::PendingNotice), PendingNotice{3});
  CHECK(checkHeader(f, Type::PendingNotice).payloadBytes == 4);
  auto m = decodePendingNotice(payloadOf(f));
  REQUIRE(m);
  CHECK(m->joiners == 3);
  auto zero = decodePendingNotice(payloadOf(encode(header(Type::PendingNotice), PendingNotice{0})));
  REQUIRE(zero);
  CHECK(zero->joiners == 0);
}

TEST_CASE("EpochStart carries a JoinAccept with previous ranks", "[wire][epoch]") {
  JoinAccept a{2, 3, 100, {"a:1", "b:2", "new:3"}, {0, 2, -1}};
  auto f = encodeAs(Type::EpochStart, header(Type::EpochStart), a);
  checkHeader(f, Type::EpochStart);
  auto m = decodeJoinAccept(payloadOf(f));
  REQUIRE(m);
  CHECK(m->rank == 2);
  CHECK(m->worldSize == 3);
  CHECK(m->heartbeatMs == 100);
  CHECK(m->addresses == a.addresses);
  CHECK(m->previousRanks == std::vector<int32_t>{0, 2, -1});
  // The same payload under JoinAccept (an admitted joiner) decodes the same.
  auto j = encode(header(Type::JoinAccept), a);
  checkHeader(j, Type::JoinAccept);
  CHECK(payloadOf(j) == payloadOf(f));
  // A founding JoinAccept has no previous ranks.
  auto founding = decodeJoinAccept(payloadOf(encode(header(Type::JoinAccept), JoinAccept{0, 2, 1, {"x", "y"}, {}})));
  REQUIRE(founding);
  CHECK(founding->previousRanks.empty());
}

TEST_CASE("a previous-rank count that is neither 0 nor worldSize is refused", "[wire][epoch]") {
  JoinAccept a{0, 3, 1, {"a", "b", "c"}, {0, 1}};
  auto f = encodeAs(Type::EpochStart, header(Type::EpochStart), a);
  auto s = decodeFrame(f);
  CHECK(s.code() == loomInvalidArgument);
  CHECK(contains(s, "2 previous ranks for worldSize 3"));
  auto m = decodeJoinAccept(payloadOf(f));
  REQUIRE_FALSE(m);
  CHECK(m.error().message() == "JoinAccept has 2 previous ranks for worldSize 3");
  // More previous ranks than members is as wrong as fewer.
  JoinAccept more{0, 1, 1, {"a"}, {0, 1}};
  CHECK(contains(decodeJoinAccept(payloadOf(encode(header(Type::JoinAccept), more))).error(),
                 "2 previous ranks for worldSize 1"));
  // A huge count with no bytes behind it fails on the count, before allocating.
  JoinAccept ok{0, 2, 1, {"a", "b"}, {0, 1}};
  auto p = payloadOf(encode(header(Type::JoinAccept), ok));
  putU32At(p, previousCountAt(ok), 0xFFFFFFFFu);
  auto huge = decodeJoinAccept(p);
  REQUIRE_FALSE(huge);
  CHECK(huge.error().code() == loomInvalidArgument);
  CHECK(contains(huge.error(), "previous ranks"));
}

TEST_CASE("a previous rank below -1 is refused", "[wire][epoch]") {
  JoinAccept a{1, 2, 1, {"a", "b"}, {0, -2}};
  auto f = encodeAs(Type::EpochStart, header(Type::EpochStart), a);
  auto s = decodeFrame(f);
  CHECK(s.code() == loomInvalidArgument);
  CHECK(contains(s, "previous rank -2"));
  auto m = decodeJoinAccept(payloadOf(f));
  REQUIRE_FALSE(m);
  CHECK(m.error().message() == "JoinAccept previous rank -2 is outside -1..65535");
  // -1 (new in this epoch) is fine; so is the largest rank a world can have.
  JoinAccept edge{0, 2, 1, {"a", "b"}, {-1, int32_t(kMaxWorldSize - 1)}};
  CHECK(decodeJoinAccept(payloadOf(encode(header(Type::JoinAccept), edge))));
  JoinAccept over{0, 2, 1, {"a", "b"}, {0, int32_t(kMaxWorldSize)}};
  CHECK(contains(decodeJoinAccept(payloadOf(encode(header(Type::JoinAccept), over))).error(), "previous rank 65536"));
}

TEST_CASE("an UpdateRequest suspect count the bytes cannot hold is refused", "[wire][epoch]") {
  UpdateRequest u = sampleUpdate();
  auto f = encode(header(Type::UpdateRequest), u);
  auto p = payloadOf(f);
  putU32At(p, suspectCountAt(u), 3);  // two suspects' bytes follow
  auto m = decodeUpdateRequest(p);
  REQUIRE_FALSE(m);
  CHECK(m.error().code() == loomInvalidArgument);
  CHECK(m.error().message() == "UpdateRequest lists 3 suspects in 8 bytes");
  putU32At(p, suspectCountAt(u), 0xFFFFFFFFu);
  auto huge = decodeUpdateRequest(p);
  REQUIRE_FALSE(huge);
  CHECK(contains(huge.error(), "suspects"));
  // Through the frame decoder too.
  putU32At(f, kHeaderBytes + suspectCountAt(u), 1000);
  CHECK(contains(decodeFrame(f), "UpdateRequest lists 1000 suspects"));
}

TEST_CASE("a negative UpdateRequest suspect rank is refused", "[wire][epoch]") {
  UpdateRequest u;
  u.address = "x";
  u.suspects = {2, -1};
  auto f = encode(header(Type::UpdateRequest), u);
  auto s = decodeFrame(f);
  CHECK(s.code() == loomInvalidArgument);
  auto m = decodeUpdateRequest(payloadOf(f));
  REQUIRE_FALSE(m);
  CHECK(m.error().message() == "UpdateRequest suspect rank -1 is outside 0..65535");
  u.suspects = {int32_t(kMaxWorldSize)};
  CHECK(contains(decodeUpdateRequest(payloadOf(encode(header(Type::UpdateRequest), u))).error(),
                 "suspect rank 65536"));
}

TEST_CASE("truncated epoch messages name the field they could not read", "[wire][epoch]") {
  UpdateRequest u = sampleUpdate();
  auto up = payloadOf(encode(header(Type::UpdateRequest), u));
  std::span<const uint8_t> ups(up);
  auto flags = decodeUpdateRequest(ups.first(2));
  REQUIRE_FALSE(flags);
  CHECK(flags.error().message() == "UpdateRequest truncated: flags needs 4 bytes, 2 left");
  CHECK(contains(decodeUpdateRequest(ups.first(6)).error(), "timeoutMs needs 4 bytes"));
  CHECK(contains(decodeUpdateRequest(ups.first(12)).error(), "address needs 13 bytes, 0 left"));
  CHECK(contains(decodeUpdateRequest(ups.first(suspectCountAt(u) + 2)).error(), "suspect count needs 4 bytes"));
  // The last suspect cut short: the count no longer fits the bytes.
  auto last = decodeUpdateRequest(ups.first(up.size() - 1));
  REQUIRE_FALSE(last);
  CHECK(last.error().code() == loomInvalidArgument);
  CHECK(contains(last.error(), "suspects in 7 bytes"));

  auto pn = payloadOf(encode(header(Type::PendingNotice), PendingNotice{5}));
  auto shortNotice = decodePendingNotice(std::span<const uint8_t>(pn).first(3));
  REQUIRE_FALSE(shortNotice);
  CHECK(shortNotice.error().message() == "PendingNotice truncated: joiners needs 4 bytes, 3 left");
  CHECK(contains(decodePendingNotice({}).error(), "joiners"));

  JoinAccept a{0, 2, 1, {"a", "b"}, {1, -1}};
  auto ep = payloadOf(encodeAs(Type::EpochStart, header(Type::EpochStart), a));
  std::span<const uint8_t> eps(ep);
  CHECK(contains(decodeJoinAccept(eps.first(previousCountAt(a) + 1)).error(), "previous rank count needs 4 bytes"));
  auto lastRank = decodeJoinAccept(eps.first(ep.size() - 1));
  REQUIRE_FALSE(lastRank);
  CHECK(contains(lastRank.error(), "previous ranks in 7 bytes"));
  // A JoinAccept without the previous-rank count (wire version 2's layout) is truncated now.
  CHECK(contains(decodeJoinAccept(eps.first(previousCountAt(a))).error(), "previous rank count"));

  // The frame decoder sees the cut too.
  auto f = encode(header(Type::UpdateRequest), u);
  f.pop_back();
  CHECK(decodeFrame(f).code() == loomInvalidArgument);
  CHECK(contains(decodeFrame(f), "truncated"));
}

TEST_CASE("trailing bytes after epoch messages are refused", "[wire][epoch]") {
  auto up = payloadOf(encode(header(Type::UpdateRequest), sampleUpdate()));
  up.push_back(0);
  auto u = decodeUpdateRequest(up);
  REQUIRE_FALSE(u);
  CHECK(u.error().message() == "UpdateRequest has 1 trailing bytes after its last field");

  auto pn = payloadOf(encode(header(Type::PendingNotice), PendingNotice{1}));
  pn.insert(pn.end(), {1, 2});
  auto p = decodePendingNotice(pn);
  REQUIRE_FALSE(p);
  CHECK(p.error().message() == "PendingNotice has 2 trailing bytes after its last field");

  auto ep = payloadOf(encodeAs(Type::EpochStart, header(Type::EpochStart), JoinAccept{0, 1, 1, {"a"}, {0}}));
  ep.push_back(9);
  auto e = decodeJoinAccept(ep);
  REQUIRE_FALSE(e);
  CHECK(contains(e.error(), "JoinAccept has 1 trailing bytes"));

  auto f = encode(header(Type::PendingNotice), PendingNotice{1});
  f.push_back(0);
  CHECK(decodeFrame(f).code() == loomInvalidArgument);
}

TEST_CASE("a JoinRequest maxWorld over the limit is refused", "[wire][epoch]") {
  JoinRequest j{LOOM_VERSION_CODE, 2, -1, "x", kMaxWorldSize};
  auto ok = decodeJoinRequest(payloadOf(encode(header(Type::JoinRequest), j)));
  REQUIRE(ok);
  CHECK(ok->maxWorld == kMaxWorldSize);
  j.maxWorld = kMaxWorldSize + 1;
  auto f = encode(header(Type::JoinRequest), j);
  auto m = decodeJoinRequest(payloadOf(f));
  REQUIRE_FALSE(m);
  CHECK(m.error().code() == loomInvalidArgument);
  CHECK(m.error().message() == "JoinRequest maxWorld 65537 is over 65536");
  CHECK(contains(decodeFrame(f), "maxWorld"));
  // The running-join flag travels in the header.
  Header h = header(Type::JoinRequest);
  h.flags = kJoinRunning;
  auto running = encode(h, JoinRequest{LOOM_VERSION_CODE, 1, -1, "j", 0});
  auto rh = decodeHeader(running);
  REQUIRE(rh);
  CHECK((rh->flags & kJoinRunning) != 0);
}

TEST_CASE("epoch message limits and names", "[wire][epoch]") {
  CHECK(std::string(typeName(Type::UpdateRequest)) == "UpdateRequest");
  CHECK(std::string(typeName(Type::EpochStart)) == "EpochStart");
  CHECK(std::string(typeName(Type::PendingNotice)) == "PendingNotice");
  // A PendingNotice carries exactly one count; the header alone refuses a longer one.
  auto f = encode(header(Type::PendingNotice), PendingNotice{1});
  putU32At(f, 8, 5);
  auto h = decodeHeader(f);
  REQUIRE_FALSE(h);
  CHECK(contains(h.error(), "PendingNotice payload is 5 bytes, limit 4"));
  // A full world of suspects with the longest address fits the UpdateRequest limit.
  UpdateRequest big;
  big.address = std::string(kMaxAddressBytes, 'a');
  big.suspects.assign(kMaxWorldSize, 0);
  auto bf = encode(header(Type::UpdateRequest), big);
  CHECK(bf.size() - kHeaderBytes == maxPayload(Type::UpdateRequest));
  CHECK(decodeFrame(bf).isOk());
}
