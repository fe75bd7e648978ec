/* Compiled as C99 with -pedantic -Werror: the public header must stay plain C. Also calls the
 * parts of the API that need no peers, and checks their answers. */
#include <loom/loom.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                               \
  do {                                                            \
    if (!(cond)) {                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                 \
    }                                                             \
  } while (0)

int main(void) {
  int version = 0;
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  loomComm_t comm = NULL;
  loomRequest_t request = NULL;
  float x = 1.0f;

  CHECK(loomGetVersion(&version) == loomSuccess);
  CHECK(version == LOOM_VERSION_CODE);
  CHECK(loomGetVersion(NULL) == loomInvalidArgument);
  CHECK(strcmp(loomGetErrorString(loomPeerLost), "peer lost") == 0);
  CHECK(config.size == sizeof(loomConfig_t));
  CHECK(loomDataTypeSize(loomBfloat16) == 2);
  CHECK(loomDataTypeSize(loomFloat64) == 8);
  CHECK(loomAllReduce(&x, &x, 1, loomFloat32, loomSum, NULL) == loomInvalidArgument);
  CHECK(strstr(loomGetLastError(NULL), "comm is NULL") != NULL);
  CHECK(loomAllReduceAsync(&x, &x, 1, loomFloat32, loomSum, 7, NULL, &request) == loomInvalidArgument);
  CHECK(loomCommInitRank(&comm, 0, 0, "127.0.0.1:1", &config) == loomInvalidArgument);
  CHECK(strstr(loomGetLastError(NULL), "nranks") != NULL);
  CHECK(loomWait(NULL, 0) == loomInvalidArgument);
  if (failures == 0) printf("c99 api: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
