/*
 * allreduce_broadcast: the smallest complete Loom program, in C99.
 *
 * Every rank contributes rank-dependent values to an all-reduce (sum), checks the result, then
 * receives a broadcast from rank 0 and checks it. Start it with a launcher that sets the
 * environment, e.g.   loomrun -n 4 -- ./allreduce_broadcast
 * Exits 0 when every value is right, 1 otherwise.
 */
#include <loom/loom.h>

#include <stdio.h>

#define COUNT 1000

static float data[COUNT];
static float bcast[COUNT];

/* Prints what failed and the communicator's own explanation (which names the result, the peer and
 * what to do); returns 1 so main can return it. */
static int report(const char* what, loomResult_t result, loomComm_t comm) {
  const char* detail = loomGetLastError(comm);
  fprintf(stderr, "allreduce_broadcast: %s failed: %s\n", what, detail && *detail ? detail : loomGetErrorString(result));
  return 1;
}

int main(void) {
  loomComm_t comm = NULL;
  loomResult_t r;
  int rank = 0, size = 0, wrong = 0, i;
  float sumOfFactors;

  /* Rank, world size and coordinator come from the launcher's environment (loomrun, torchrun...). */
  r = loomCommInitFromEnv(&comm, NULL);
  if (r != loomSuccess) return report("loomCommInitFromEnv", r, NULL);
  if ((r = loomCommRank(comm, &rank)) != loomSuccess) return report("loomCommRank", r, comm);
  if ((r = loomCommSize(comm, &size)) != loomSuccess) return report("loomCommSize", r, comm);

  /* Rank k contributes (k+1) * (i % 7): small integers, so the float sum is exact in any order. */
  for (i = 0; i < COUNT; ++i) data[i] = (float)(rank + 1) * (float)(i % 7);
  r = loomAllReduce(data, data, COUNT, loomFloat32, loomSum, comm); /* in place */
  if (r != loomSuccess) return report("loomAllReduce", r, comm);
  sumOfFactors = (float)size * (float)(size + 1) / 2.0f; /* 1 + 2 + ... + size */
  for (i = 0; i < COUNT; ++i) {
    if (data[i] != sumOfFactors * (float)(i % 7)) {
      if (wrong == 0) fprintf(stderr, "rank %d: all-reduce [%d] = %g, expected %g\n", rank, i, data[i], sumOfFactors * (float)(i % 7));
      ++wrong;
    }
  }

  /* Rank 0 sends 0.5, 1.5, 2.5, ...; the others start from -1 and must end with rank 0's values. */
  for (i = 0; i < COUNT; ++i) bcast[i] = rank == 0 ? (float)i + 0.5f : -1.0f;
  r = loomBroadcast(bcast, bcast, COUNT, loomFloat32, 0, comm);
  if (r != loomSuccess) return report("loomBroadcast", r, comm);
  for (i = 0; i < COUNT; ++i) {
    if (bcast[i] != (float)i + 0.5f) {
      if (wrong == 0) fprintf(stderr, "rank %d: broadcast [%d] = %g, expected %g\n", rank, i, bcast[i], (float)i + 0.5f);
      ++wrong;
    }
  }

  if (rank == 0)
    printf("allreduce_broadcast: %d ranks: all-reduce [1] = %g (expected %g), broadcast [%d] = %g: %s\n", size, data[1],
           sumOfFactors, COUNT - 1, bcast[COUNT - 1], wrong ? "WRONG" : "OK");
  if (wrong) fprintf(stderr, "rank %d: %d wrong values\n", rank, wrong);

  r = loomCommDestroy(comm);
  if (r != loomSuccess) return report("loomCommDestroy", r, NULL);
  return wrong ? 1 : 0;
}
