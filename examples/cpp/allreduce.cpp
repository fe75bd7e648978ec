// allreduce: the C example (examples/c/allreduce_broadcast.c) with the C++ layer, loom.hpp:
// the communicator frees itself, errors arrive as loom::Error, element types are deduced.
// Start it with a launcher that sets the environment, e.g.   loomrun -n 4 -- ./allreduce_cpp
#include <loom/loom.hpp>

#include <cstdio>
#include <vector>

int main() {
  try {
    loom::Comm comm = loom::Comm::fromEnv();
    const int rank = comm.rank(), size = comm.size();
    const size_t count = 1000;

    // Rank k contributes (k+1) * (i % 7): small integers, so the float sum is exact in any order.
    std::vector<float> data(count);
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>((rank + 1) * (i % 7));
    comm.allReduce(data.data(), data.data(), count, loomSum);  // float -> loomFloat32
    const float sumOfFactors = size * (size + 1) / 2.0f;
    size_t wrong = 0;
    for (size_t i = 0; i < count; ++i) wrong += data[i] != sumOfFactors * static_cast<float>(i % 7);

    // The asynchronous form: start, then wait (tags pair the same operation across ranks).
    std::vector<float> bcast(count, -1.0f);
    if (rank == 0)
      for (size_t i = 0; i < count; ++i) bcast[i] = static_cast<float>(i) + 0.5f;
    loom::Request request = comm.broadcastAsync(bcast.data(), bcast.data(), count, /*root=*/0, /*tag=*/1);
    request.wait();
    for (size_t i = 0; i < count; ++i) wrong += bcast[i] != static_cast<float>(i) + 0.5f;

    if (rank == 0)
      std::printf("allreduce: %d ranks: all-reduce [1] = %g (expected %g), broadcast [%zu] = %g: %s\n", size, data[1],
                  sumOfFactors, count - 1, bcast[count - 1], wrong ? "WRONG" : "OK");
    if (wrong) std::fprintf(stderr, "rank %d: %zu wrong values\n", rank, wrong);
    return wrong ? 1 : 0;
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "allreduce: %s\n", e.what());
    return 1;
  }
}
