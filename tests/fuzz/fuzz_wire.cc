// Fuzz target for the wire codec (libFuzzer). Any input must decode or be refused without a crash,
// a leak or undefined behaviour; a frame that decodes must re-encode to exactly its own bytes.
//
// Built with -fsanitize=fuzzer by the LOOM_FUZZ build (tests/fuzz/run_fuzzer.sh). Built with
// LOOM_FUZZ_REPLAY_MAIN instead, it is a plain program that replays files and directories given
// as arguments (CTest fuzz.corpus_replay); there a file named valid_* must decode as a frame.
#include "protocol/wire.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

using namespace loom::wire;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_wire: %s\n", what);
  std::abort();
}

// The codec has one encoding per value, so decode-then-encode must reproduce the input.
void checkRoundTrip(std::span<const uint8_t> frame, const Header& h) {
  auto payload = frame.subspan(kHeaderBytes);
  std::vector<uint8_t> again;
  switch (h.type) {
    case Type::JoinRequest: again = encode(h, decodeJoinRequest(payload).value()); break;
    case Type::JoinAccept:
    case Type::EpochStart: again = encodeAs(h.type, h, decodeJoinAccept(payload).value()); break;
    case Type::UpdateRequest: again = encode(h, decodeUpdateRequest(payload).value()); break;
    case Type::PendingNotice: again = encode(h, decodePendingNotice(payload).value()); break;
    case Type::Reject: again = encode(h, decodeReject(payload).value()); break;
    case Type::PeerHello: again = encode(h, decodePeerHello(payload).value()); break;
    case Type::OpError: again = encode(h, decodeOpError(payload).value()); break;
    case Type::Data:
      again.resize(kDataPrefixBytes);
      encodeDataPrefix(h, decodeDataHeader(payload.first(kDataHeaderBytes)).value(), again.data());
      again.insert(again.end(), payload.begin() + kDataHeaderBytes, payload.end());
      break;
    case Type::Heartbeat:
    case Type::HeartbeatAck:
    case Type::Leave:
    case Type::PeerHelloAck: again = encodeEmpty(h); break;
  }
  if (again.size() != frame.size() || !std::equal(again.begin(), again.end(), frame.begin()))
    die("a decoded frame does not re-encode to the same bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  loom::Status frame = decodeFrame(in);
  if (size >= kHeaderBytes) {
    auto h = decodeHeader(in);
    if (frame.isOk()) {
      if (!h) die("decodeFrame accepted a frame whose header decodeHeader refuses");
      checkRoundTrip(in, *h);
    }
    auto rest = in.subspan(kHeaderBytes);
    (void)decodeDataHeader(rest.first(std::min(rest.size(), kDataHeaderBytes)));
  }
  // The payload decoders on raw bytes too: they reach states no valid header lets through.
  (void)decodeJoinRequest(in);
  (void)decodeJoinAccept(in);
  (void)decodeReject(in);
  (void)decodePeerHello(in);
  (void)decodeOpError(in);
  (void)decodeUpdateRequest(in);
  (void)decodePendingNotice(in);
  (void)decodeDataHeader(in);
  return 0;
}

#ifdef LOOM_FUZZ_REPLAY_MAIN
#include <filesystem>
#include <fstream>
#include <iterator>

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& e : fs::directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.emplace_back(argv[i]);
    } else {
      std::fprintf(stderr, "fuzz_wire: %s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "fuzz_wire: no inputs to replay\n");
    return 2;
  }
  int valid = 0, failures = 0;
  for (const auto& path : files) {
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    if (path.filename().string().rfind("valid_", 0) == 0) {
      ++valid;
      loom::Status s = decodeFrame(bytes);
      if (!s.isOk()) {
        std::fprintf(stderr, "fuzz_wire: %s should decode but: %s\n", path.c_str(), s.toString().c_str());
        ++failures;
      }
    }
  }
  std::printf("fuzz_wire: replayed %zu inputs, %d valid frames, %d failures\n", files.size(), valid, failures);
  return failures == 0 ? 0 : 1;
}
#endif
