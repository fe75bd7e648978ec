// Every collective over the in-process transport, one thread per rank, compared bit for bit
// against closed-form results (collective_cases.h). Inputs are small integers, or raw byte
// patterns for the collectives that only move data, so every correct reduction order gives exactly
// the same bytes; a separate case uses inexact floats to check that all ranks still agree bit for
// bit. Also: algorithm selection, signatures, several operations in flight at once, and a count
// mismatch across ranks that must fail everywhere instead of hanging or giving wrong results.
#include <catch2/catch.hpp>

#include "collectives/collective_cases.h"

#include <chrono>
#include <functional>
#include <random>
#include <thread>
#include <typeinfo>

namespace {

using namespace loom;
using namespace loom::test;

// Runs every case on every rank (each rank walks the list on its own thread, tags = index + 1)
// and reports failures per case.
void runCases(int n, const std::vector<Case>& cases) {
  LocalWorld world(n);
  std::vector<std::vector<std::string>> failures(n);
  world.run([&](int rank) {
    RankDriver driver(world.transport(rank));
    for (size_t i = 0; i < cases.size(); ++i) {
      auto prepared = prepareCase(cases[i], world, rank, i + 1);
      Status s = driver.runOne(*prepared->op, prepared->tag, Deadline::afterMs(30000));
      std::string error = s.isOk() ? prepared->check() : "failed: " + s.toString();
      if (!error.empty() && failures[rank].size() < 20) {
        failures[rank].push_back(fmt::format("rank {}: {}: {}", rank, cases[i].describe(n), error));
      }
    }
  });
  size_t failed = 0;
  for (int r = 0; r < n; ++r) {
    for (const auto& f : failures[r]) FAIL_CHECK(f);
    failed += failures[r].size();
  }
  CHECK(failed == 0);
}

coll::Tuning tuningFor(Kind kind, const char* algorithm, size_t segmentBytes) {
  coll::Tuning t;
  t.segmentBytes = segmentBytes;
  t.singleLinkSegmentBytes = segmentBytes;  // many segments in a world of 2 as well
  const std::string a = algorithm;
  if (a == "allreduce/ring") t.allreduceAlgorithm = loomAlgoRing;
  if (a == "allreduce/recursive_doubling") t.allreduceAlgorithm = loomAlgoRecursiveDoubling;
  if (a == "allreduce/halving_doubling") t.allreduceAlgorithm = loomAlgoHalvingDoubling;
  if (a == "broadcast/chain") t.broadcastAlgorithm = loomAlgoChain;
  if (a == "broadcast/tree") t.broadcastAlgorithm = loomAlgoTree;
  // Reduce has no forcing knob: it follows the broadcast threshold.
  if (a == "reduce/chain") t.broadcastSmallBytes = 0;
  if (a == "reduce/tree") t.broadcastSmallBytes = kNoLimit;
  return t;
}

const std::vector<loomDataType_t> kTypes = {loomInt8,    loomUint8,    loomInt32,   loomUint32,  loomInt64,
                                            loomUint64,  loomFloat16,  loomBfloat16, loomFloat32, loomFloat64};
const std::vector<loomRedOp_t> kOps = {loomSum, loomProd, loomMin, loomMax, loomAvg};
const std::vector<std::pair<Kind, const char*>> kReductions = {{Kind::AllReduce, "allreduce/ring"},
                                                               {Kind::AllReduce, "allreduce/recursive_doubling"},
                                                               {Kind::AllReduce, "allreduce/halving_doubling"},
                                                               {Kind::Reduce, "reduce/chain"},
                                                               {Kind::Reduce, "reduce/tree"},
                                                               {Kind::ReduceScatter, "reducescatter/ring"}};
const std::vector<std::pair<Kind, const char*>> kMovers = {{Kind::Broadcast, "broadcast/chain"},
                                                           {Kind::Broadcast, "broadcast/tree"},
                                                           {Kind::AllGather, "allgather/ring"}};

// The matrix for one world size: every algorithm x dtype x op x in-place at counts 0, 1, 3n+1
// (not divisible by n) and the prime 1031, with 64-byte segments (many segments per chunk) and
// the default 1 MiB (one segment); a segment smaller than an element; a few larger vectors.
std::vector<Case> matrixFor(int n) {
  std::vector<Case> cases;
  const size_t uneven = static_cast<size_t>(3 * n + 1);  // not divisible by n (for n > 1)
  int rootCycle = 0;
  auto add = [&](Kind kind, const char* algorithm, loomDataType_t dt, loomRedOp_t op, size_t count, bool inPlace,
                 size_t segment) {
    Case c;
    c.kind = kind;
    c.algorithm = algorithm;
    c.dtype = dt;
    c.op = op;
    c.count = count;
    c.inPlace = inPlace;
    c.root = (rootCycle++) % n;
    c.tuning = tuningFor(kind, algorithm, segment);
    cases.push_back(c);
  };
  for (auto [kind, algorithm] : kReductions) {
    for (loomDataType_t dt : kTypes) {
      for (loomRedOp_t op : kOps) {
        for (bool inPlace : {false, true}) {
          for (size_t count : {size_t{0}, size_t{1}, uneven}) add(kind, algorithm, dt, op, count, inPlace, kTinySegment);
          add(kind, algorithm, dt, op, uneven, inPlace, size_t{1} << 20);
        }
      }
    }
    for (loomDataType_t dt : kTypes) {
      for (loomRedOp_t op : kOps) {
        for (bool inPlace : {false, true}) add(kind, algorithm, dt, op, 1031, inPlace, kTinySegment);
        if (op == loomSum) add(kind, algorithm, dt, op, 1031, false, size_t{1} << 20);
      }
    }
    // Larger vectors: many segments per chunk, far more than the pipeline depth.
    for (loomRedOp_t op : {loomSum, loomAvg}) add(kind, algorithm, loomFloat32, op, 100003, op == loomAvg, 4096);
    add(kind, algorithm, loomFloat64, loomSum, uneven, false, 3);  // segment smaller than an element
  }
  for (auto [kind, algorithm] : kMovers) {
    for (loomDataType_t dt : kTypes) {
      for (bool inPlace : {false, true}) {
        for (size_t count : {size_t{0}, size_t{1}, uneven, size_t{1031}}) {
          add(kind, algorithm, dt, loomSum, count, inPlace, kTinySegment);
        }
        add(kind, algorithm, dt, loomSum, 1031, inPlace, size_t{1} << 20);
      }
    }
    add(kind, algorithm, loomFloat64, loomSum, 50021, false, 4096);
    add(kind, algorithm, loomInt8, loomSum, uneven, true, 3);
  }
  // Every root, explicitly, for the rooted collectives at small sizes.
  for (const char* algorithm : {"broadcast/chain", "broadcast/tree", "reduce/chain", "reduce/tree"}) {
    const Kind kind = algorithm[0] == 'b' ? Kind::Broadcast : Kind::Reduce;
    for (int root = 0; root < n; ++root) {
      for (size_t count : {size_t{1}, uneven}) {
        add(kind, algorithm, loomInt32, loomSum, count, root % 2 == 1, kTinySegment);
        cases.back().root = root;
      }
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("every collective, algorithm, datatype and op gives the exact result on every rank", "[collectives]") {
  const int n = GENERATE(1, 2, 3, 4, 5, 8);
  CAPTURE(n);
  runCases(n, matrixFor(n));
}

TEST_CASE("makeOperation picks algorithms by size unless one is forced", "[collectives]") {
  auto pick = [](Kind kind, size_t count, coll::Tuning tuning, int size = 4) {
    coll::Args args;
    args.kind = kind;
    args.count = count;
    args.dtype = loomFloat32;
    coll::Context ctx;  // constructors post nothing, so no transport is needed
    ctx.size = size;
    ctx.tuning = tuning;
    auto op = coll::makeOperation(args, ctx);
    REQUIRE(op);
    const coll::Operation& ref = *op;
    return std::string(typeid(ref).name());
  };
  auto has = [](const std::string& name, const char* part) { return name.find(part) != std::string::npos; };
  coll::Tuning t;  // 64 KiB thresholds
  CHECK(has(pick(Kind::AllReduce, 16 << 10, t), "RecursiveDoubling"));  // exactly 64 KiB
  CHECK(has(pick(Kind::AllReduce, (16 << 10) + 1, t), "RingAllReduce"));
  // Halving-doubling above 512 KiB up to 4 MiB, in power-of-two worlds of 4 and more.
  CHECK(has(pick(Kind::AllReduce, 128 << 10, t), "RingAllReduce"));
  CHECK(has(pick(Kind::AllReduce, (128 << 10) + 1, t), "HalvingDoubling"));
  CHECK(has(pick(Kind::AllReduce, 1 << 20, t), "HalvingDoubling"));
  CHECK(has(pick(Kind::AllReduce, (1 << 20) + 1, t), "RingAllReduce"));
  CHECK(has(pick(Kind::AllReduce, 1 << 18, t, 8), "HalvingDoubling"));
  CHECK(has(pick(Kind::AllReduce, 1 << 18, t, 2), "RingAllReduce"));
  CHECK(has(pick(Kind::AllReduce, 1 << 18, t, 6), "RingAllReduce"));
  CHECK(has(pick(Kind::Broadcast, 16 << 10, t), "TreeBroadcast"));
  CHECK(has(pick(Kind::Broadcast, (16 << 10) + 1, t), "ChainBroadcast"));
  CHECK(has(pick(Kind::Reduce, 16 << 10, t), "TreeReduce"));
  CHECK(has(pick(Kind::Reduce, (16 << 10) + 1, t), "ChainReduce"));
  CHECK(has(pick(Kind::AllGather, 1, t), "RingAllGather"));
  CHECK(has(pick(Kind::ReduceScatter, 1, t), "RingReduceScatter"));
  CHECK(has(pick(Kind::Send, 1, t), "SendRecv"));
  CHECK(has(pick(Kind::Recv, 1, t), "SendRecv"));
  coll::Tuning forced = t;
  forced.allreduceAlgorithm = loomAlgoRing;
  forced.broadcastAlgorithm = loomAlgoChain;
  CHECK(has(pick(Kind::AllReduce, 1, forced), "RingAllReduce"));
  CHECK(has(pick(Kind::Broadcast, 1, forced), "ChainBroadcast"));
  forced.allreduceAlgorithm = loomAlgoRecursiveDoubling;
  forced.broadcastAlgorithm = loomAlgoTree;
  CHECK(has(pick(Kind::AllReduce, 1 << 20, forced), "RecursiveDoubling"));
  CHECK(has(pick(Kind::Broadcast, 1 << 20, forced), "TreeBroadcast"));
  forced.allreduceAlgorithm = loomAlgoHalvingDoubling;
  CHECK(has(pick(Kind::AllReduce, 1, forced), "HalvingDoubling"));
  CHECK(has(pick(Kind::AllReduce, 1, forced, 8), "HalvingDoubling"));
  CHECK(has(pick(Kind::AllReduce, 1, forced, 3), "RingAllReduce"));  // needs a power of two
  forced.allreduceAlgorithm = loomAlgoTree;  // not an all-reduce algorithm: Auto
  CHECK(has(pick(Kind::AllReduce, 1 << 22, forced), "RingAllReduce"));
}

TEST_CASE("signatures are equal for the same call and differ when any field that matters differs",
          "[collectives]") {
  coll::Args a;
  a.kind = Kind::AllReduce;
  a.count = 1000;
  a.dtype = loomFloat32;
  a.op = loomSum;
  coll::Args b = a;
  CHECK(coll::signatureOf(a) == coll::signatureOf(b));
  b.root = 3;  // all-reduce has no root
  CHECK(coll::signatureOf(a) == coll::signatureOf(b));
  for (auto change : std::vector<std::function<void(coll::Args&)>>{
           [](coll::Args& x) { x.count = 1001; }, [](coll::Args& x) { x.dtype = loomInt32; },
           [](coll::Args& x) { x.op = loomMax; }, [](coll::Args& x) { x.kind = Kind::Reduce; }}) {
    coll::Args c = a;
    change(c);
    CHECK(coll::signatureOf(a) != coll::signatureOf(c));
  }
  coll::Args reduce = a;
  reduce.kind = Kind::Reduce;
  coll::Args otherRoot = reduce;
  otherRoot.root = 1;
  CHECK(coll::signatureOf(reduce) != coll::signatureOf(otherRoot));
  coll::Args bcast = a;
  bcast.kind = Kind::Broadcast;
  coll::Args bcastOtherOp = bcast;
  bcastOtherOp.op = loomProd;  // broadcast has no op
  CHECK(coll::signatureOf(bcast) == coll::signatureOf(bcastOtherOp));
  // The two halves of a send/recv pair name each other as peer.
  coll::Args send = a, recv = a;
  send.kind = Kind::Send;
  send.root = 1;
  recv.kind = Kind::Recv;
  recv.root = 0;
  CHECK(coll::signatureOf(send) == coll::signatureOf(recv));
  recv.count = 999;
  CHECK(coll::signatureOf(send) != coll::signatureOf(recv));
}

TEST_CASE("several operations in flight at once, progressed in different orders on different ranks",
          "[collectives]") {
  constexpr int n = 5;
  LocalWorld world(n);
  auto make = [](Kind kind, const char* algorithm, loomDataType_t dt, loomRedOp_t op, size_t count, int root) {
    Case c;
    c.kind = kind;
    c.algorithm = algorithm;
    c.dtype = dt;
    c.op = op;
    c.count = count;
    c.root = root;
    c.tuning = tuningFor(kind, algorithm, kTinySegment);
    return c;
  };
  const std::vector<Case> cases = {
      make(Kind::AllReduce, "allreduce/ring", loomFloat32, loomSum, 1031, 0),
      make(Kind::AllReduce, "allreduce/recursive_doubling", loomInt32, loomMax, 517, 0),
      make(Kind::Broadcast, "broadcast/chain", loomInt8, loomSum, 1031, 2),
      make(Kind::Broadcast, "broadcast/tree", loomFloat64, loomSum, 300, 4),
      make(Kind::Reduce, "reduce/chain", loomFloat64, loomAvg, 777, 3),
      make(Kind::Reduce, "reduce/tree", loomUint8, loomProd, 640, 1),
      make(Kind::AllGather, "allgather/ring", loomUint8, loomSum, 300, 0),
      make(Kind::ReduceScatter, "reducescatter/ring", loomBfloat16, loomSum, 200, 0),
  };
  std::vector<std::vector<std::string>> errors(n);
  world.run([&](int rank) {
    std::vector<std::unique_ptr<PreparedCase>> prepared;
    for (size_t i = 0; i < cases.size(); ++i) prepared.push_back(prepareCase(cases[i], world, rank, 1000 + i));
    // Rank r starts and progresses them rotated by r, odd ranks backwards.
    std::vector<test::Running> running(cases.size());
    std::vector<test::Running*> order;
    for (size_t i = 0; i < cases.size(); ++i) {
      const size_t j = (i + static_cast<size_t>(rank)) % cases.size();
      running[j].op = prepared[j]->op.get();
      running[j].tag = prepared[j]->tag;
      order.push_back(&running[j]);
    }
    if (rank % 2) std::reverse(order.begin(), order.end());
    RankDriver(world.transport(rank)).run(order, Deadline::afterMs(30000));
    for (size_t i = 0; i < cases.size(); ++i) {
      const std::string e = running[i].result.isOk() ? prepared[i]->check() : running[i].result.toString();
      if (!e.empty()) errors[rank].push_back(fmt::format("rank {}: {}: {}", rank, cases[i].describe(n), e));
    }
  });
  for (const auto& perRank : errors) {
    for (const auto& e : perRank) FAIL_CHECK(e);
  }
}

TEST_CASE("a count that differs across ranks fails the operation everywhere instead of hanging", "[collectives]") {
  constexpr int n = 4;
  const std::pair<Kind, const char*> which = GENERATE(
      std::make_pair(Kind::AllReduce, "allreduce/ring"), std::make_pair(Kind::AllReduce, "allreduce/recursive_doubling"),
      std::make_pair(Kind::AllReduce, "allreduce/halving_doubling"),
      std::make_pair(Kind::Broadcast, "broadcast/chain"), std::make_pair(Kind::Broadcast, "broadcast/tree"),
      std::make_pair(Kind::Reduce, "reduce/chain"), std::make_pair(Kind::Reduce, "reduce/tree"),
      std::make_pair(Kind::AllGather, "allgather/ring"), std::make_pair(Kind::ReduceScatter, "reducescatter/ring"));
  CAPTURE(which.second);
  LocalWorld world(n);
  std::vector<Status> results(n);
  world.run([&](int rank) {
    Case c;
    c.kind = which.first;
    c.algorithm = which.second;
    c.dtype = loomFloat32;
    c.count = rank == 2 ? 65 : 64;  // rank 2 disagrees
    c.root = 1;
    c.tuning = tuningFor(c.kind, c.algorithm, kTinySegment);
    auto prepared = prepareCase(c, world, rank, 77);
    results[rank] = RankDriver(world.transport(rank)).runOne(*prepared->op, prepared->tag, Deadline::afterMs(20000));
  });
  int detected = 0;
  for (int r = 0; r < n; ++r) {
    CAPTURE(r, results[r].toString());
    CHECK(results[r].code() != loomTimeout);
    // Every rank's all-reduce/all-gather/reduce-scatter result depends on rank 2, so none may
    // succeed; in a broadcast or reduce ranks upstream of rank 2 legitimately finish.
    if (which.first != Kind::Broadcast && which.first != Kind::Reduce) CHECK_FALSE(results[r].isOk());
    if (!results[r].isOk()) {
      CHECK((results[r].code() == loomInvalidUsage || results[r].code() == loomRemoteError));
    }
    if (results[r].code() == loomInvalidUsage) ++detected;
  }
  CHECK(detected >= 1);
}

TEST_CASE("all-reduce results are bit-identical on every rank even when float rounding depends on order",
          "[collectives]") {
  const int n = GENERATE(3, 5, 8);
  const char* algorithm = GENERATE("allreduce/ring", "allreduce/recursive_doubling", "allreduce/halving_doubling");
  const loomDataType_t dtype = GENERATE(loomFloat16, loomBfloat16, loomFloat32, loomFloat64);
  CAPTURE(n, algorithm, dtype);
  LocalWorld world(n);
  constexpr size_t count = 1031;
  const size_t es = dataTypeSize(dtype);
  const std::vector<loomRedOp_t> ops = {loomSum, loomAvg, loomProd};
  std::vector<std::vector<std::vector<uint8_t>>> outputs(ops.size(), std::vector<std::vector<uint8_t>>(n));
  std::vector<Status> results(n);
  world.run([&](int rank) {
    RankDriver driver(world.transport(rank));
    std::mt19937 rng(1234 + rank);
    for (size_t k = 0; k < ops.size(); ++k) {
      std::uniform_real_distribution<double> dist(ops[k] == loomProd ? 0.9 : -1.0, ops[k] == loomProd ? 1.1 : 1.0);
      std::vector<uint8_t> in(count * es);
      for (size_t i = 0; i < count; ++i) store(dtype, in.data() + i * es, dist(rng));
      auto& out = outputs[k][rank];
      out.assign(count * es, 0);
      coll::Args args;
      args.kind = Kind::AllReduce;
      args.send = in.data();
      args.recv = out.data();
      args.count = count;
      args.dtype = dtype;
      args.op = ops[k];
      auto op = coll::makeOperation(args, contextFor(world, rank, args, k + 1,
                                                     tuningFor(Kind::AllReduce, algorithm, kTinySegment)));
      transport::Tag tag;
      tag.op = k + 1;
      tag.space = 1;
      Status s = driver.runOne(*op, tag, Deadline::afterMs(30000));
      if (!s.isOk()) results[rank] = s;
    }
  });
  for (int r = 0; r < n; ++r) REQUIRE(results[r].isOk());
  for (size_t k = 0; k < ops.size(); ++k) {
    for (int r = 1; r < n; ++r) {
      CAPTURE(k, r);
      CHECK(outputs[k][r] == outputs[k][0]);
    }
  }
}

// LOOM_RESTORE_INPUT, kept by the algorithm (ctx.keepInput): the ring keeps each piece of an
// in-place input just before it first overwrites it. settleInput(true) must then give back the
// exact input wherever the operation stopped, and after a completed one (which overwrote every
// byte with the sum: the strongest case, everything must have been kept). Stopping is a cancel
// after a number of progress calls, while the peers go on or stop at their own count.
// With keep-ahead off only the keeps at the write points protect the input, so a write point
// that does not keep first fails the run to the end deterministically.
TEST_CASE("an in-place ring all-reduce that keeps its input gives it back exactly, wherever it stops",
          "[collectives]") {
  const int n = GENERATE(2, 3, 4);
  const loomRedOp_t redOp = GENERATE(loomSum, loomAvg);
  const size_t keepAhead = GENERATE(size_t{0}, size_t{4096});
  const size_t count = GENERATE(size_t{100003}, size_t{3});  // ~100 segments of 4 KiB per chunk; fewer than n
  for (int stopAfter : {0, 1, 4, 20, 80, -1}) {  // progress calls before the cancel; -1: to the end
    CAPTURE(n, redOp, keepAhead, count, stopAfter);
    LocalWorld world(n);
    std::vector<std::string> errors(n);
    world.run([&](int rank) {
      std::vector<float> input(count);
      for (size_t i = 0; i < count; ++i) input[i] = static_cast<float>((i * 7 + static_cast<size_t>(rank) * 13) % 1000);
      std::vector<float> buf = input;
      coll::Args args{.kind = Kind::AllReduce, .send = buf.data(), .recv = buf.data(), .count = count,
                      .dtype = loomFloat32, .op = redOp};
      coll::Tuning tuning = tuningFor(Kind::AllReduce, "allreduce/ring", 4096);
      tuning.keepAheadBytes = keepAhead;
      coll::Context ctx = contextFor(world, rank, args, 100 + static_cast<uint64_t>(stopAfter + 1), tuning);
      ctx.keepInput = true;
      auto op = coll::makeOperation(args, ctx);
      if (stopAfter < 0) {
        Status s = RankDriver(world.transport(rank)).runOne(*op, ctx.base, Deadline::afterMs(30000));
        if (!s.isOk()) {
          errors[rank] = "failed: " + s.toString();
          return;
        }
        for (size_t i = 0; i < count && errors[rank].empty(); ++i) {
          float sum = 0;  // small integers: exact in any order
          for (int r = 0; r < n; ++r) sum += static_cast<float>((i * 7 + static_cast<size_t>(r) * 13) % 1000);
          const float expected = redOp == loomAvg ? sum / static_cast<float>(n) : sum;
          if (buf[i] != expected) errors[rank] = fmt::format("result [{}] = {}, expected {}", i, buf[i], expected);
        }
      } else {
        for (int k = 0; k < stopAfter; ++k) {
          world.transport(rank).poll();
          if (op->progress().code() != loomInProgress) break;
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        op->cancel(Status(loomAborted, "the test stops it here"));
      }
      op->settleInput(true);
      for (size_t i = 0; i < count && errors[rank].empty(); ++i)
        if (buf[i] != input[i]) errors[rank] = fmt::format("input [{}] = {} after the restore, was {}", i, buf[i], input[i]);
    });
    for (int r = 0; r < n; ++r) {
      CAPTURE(r);
      CHECK(errors[r] == "");
    }
  }
}

TEST_CASE("send and receive move a message between any pair, and a count mismatch fails the receive",
          "[collectives]") {
  constexpr int n = 4;
  LocalWorld world(n);
  std::vector<std::string> errors(n);
  world.run([&](int rank) {
    RankDriver driver(world.transport(rank));
    const int to = (rank + 1) % n, from = (rank + n - 1) % n;
    uint64_t tagOp = 1;
    for (size_t count : {size_t{0}, size_t{1}, size_t{1031}}) {
      const auto sent = bytePattern(rank, count * 8);
      auto got = outputBuffer(count * 8);
      coll::Args s, r;
      s.kind = Kind::Send;
      s.send = sent.data();
      s.count = count;
      s.dtype = loomFloat64;
      s.root = to;
      r = s;
      r.kind = Kind::Recv;
      r.send = nullptr;
      r.recv = got.data();
      r.root = from;
      auto sendOp = coll::makeOperation(s, contextFor(world, rank, s, tagOp));
      auto recvOp = coll::makeOperation(r, contextFor(world, rank, r, tagOp));
      test::Running a, b;
      a.op = sendOp.get();
      b.op = recvOp.get();
      a.tag.op = b.tag.op = tagOp++;
      a.tag.space = b.tag.space = 1;
      driver.run({&b, &a}, Deadline::afterMs(20000));
      if (!a.result.isOk() || !b.result.isOk()) errors[rank] += a.result.toString() + b.result.toString();
      if (!sameBytes(got.data(), bytePattern(from, count * 8)) || !guardIntact(got, count * 8)) {
        errors[rank] += fmt::format(" wrong bytes for count {};", count);
      }
    }
    // Sender says 10 elements, receiver expects 12: the receive fails, naming the problem.
    std::vector<uint8_t> buf(12 * 8, 0);
    coll::Args a;
    a.kind = rank % 2 == 0 ? Kind::Send : Kind::Recv;
    a.count = rank % 2 == 0 ? 10 : 12;
    a.dtype = loomFloat64;
    a.send = buf.data();
    a.recv = buf.data();
    a.root = rank % 2 == 0 ? rank + 1 : rank - 1;
    const uint64_t pairTag = 100 + rank / 2;  // each pair its own operation
    auto op = coll::makeOperation(a, contextFor(world, rank, a, pairTag));
    transport::Tag tag;
    tag.op = pairTag;
    tag.space = 1;
    Status st = driver.runOne(*op, tag, Deadline::afterMs(20000));
    const bool ok = rank % 2 == 0 ? (st.isOk() || st.code() == loomRemoteError) : st.code() == loomInvalidUsage;
    if (!ok) errors[rank] += " mismatch gave " + st.toString();
  });
  for (int r = 0; r < n; ++r) {
    CAPTURE(r);
    CHECK(errors[r].empty());
    if (!errors[r].empty()) WARN(errors[r]);
  }
}
