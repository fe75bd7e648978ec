// Writes the fuzz seed corpus: one valid frame of every message type (valid_<Type>.bin, which the
// replay test requires to decode) and a few near-misses that start the fuzzer beside each check.
//   make_corpus DIR        (run once; the output is committed under tests/fuzz/corpus/)
#include "protocol/wire.h"

#include <cstdio>
#include <fstream>
#include <string>

using namespace loom::wire;

namespace {

Header header(Type t) {
  Header h;
  h.type = t;
  h.commId = 0x1005;
  h.epoch = 1;
  h.seq = 7;
  return h;
}

void write(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::ofstream(dir + "/" + name + ".bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  auto valid = [&](Type t, const std::vector<uint8_t>& f) { write(dir, std::string("valid_") + typeName(t), f); };

  auto joinRequest = encode(header(Type::JoinRequest), JoinRequest{LOOM_VERSION_CODE, 4, -1, "127.0.0.1:41000"});
  valid(Type::JoinRequest, joinRequest);
  JoinAccept accept{1, 3, 1000, {"127.0.0.1:41000", "127.0.0.1:41001", "[::1]:41002"}};
  valid(Type::JoinAccept, encode(header(Type::JoinAccept), accept));
  accept.previousRanks = {0, 2, -1};
  valid(Type::EpochStart, encodeAs(Type::EpochStart, header(Type::EpochStart), accept));
  valid(Type::UpdateRequest,
        encode(header(Type::UpdateRequest), UpdateRequest{0, 10000, "127.0.0.1:41005", {1, 3}}));
  valid(Type::PendingNotice, encode(header(Type::PendingNotice), PendingNotice{2}));
  valid(Type::Reject, encode(header(Type::Reject), Reject{loomVersionMismatch, "peer runs Loom 0.2.0"}));
  valid(Type::PeerHello, encode(header(Type::PeerHello), PeerHello{LOOM_VERSION_CODE, 2, 4, 1}));
  valid(Type::OpError, encode(header(Type::OpError), OpError{42, 1, loomPeerLost, 3, "rank 3 lost"}));
  for (Type t : {Type::Heartbeat, Type::HeartbeatAck, Type::Leave, Type::PeerHelloAck})
    valid(t, encodeEmpty(header(t)));
  Header dh = header(Type::Data);
  dh.payloadBytes = kDataHeaderBytes + 8;
  std::vector<uint8_t> data(kDataPrefixBytes + 8, 0xAB);
  encodeDataPrefix(dh, DataHeader{42, 1, 0, 0x5157, 64, 56}, data.data());
  valid(Type::Data, data);

  // Near-misses: truncated, trailing byte, another wire version.
  write(dir, "invalid_truncated", std::vector<uint8_t>(joinRequest.begin(), joinRequest.end() - 1));
  auto trailing = joinRequest;
  trailing.push_back(0);
  write(dir, "invalid_trailing", trailing);
  auto v2 = joinRequest;
  v2[4] = 2;  // an older wire version
  write(dir, "invalid_version", v2);
  return 0;
}
