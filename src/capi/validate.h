// Argument checks for the C API and the launch environment reader. Every error names the argument.
#pragma once

#include "collectives/collective.h"
#include "core/status.h"

#include <string>

namespace loom::capi {

Status validateArgs(const coll::Args& args, int rank, int size);

struct LaunchEnvironment {
  int rank = 0;
  int size = 0;
  std::string coordinator;
  bool coordinatorFromMaster = false;  // derived from torchrun's MASTER_ADDR/MASTER_PORT
};
// LOOM_RANK/LOOM_WORLD_SIZE, RANK/WORLD_SIZE, OMPI_COMM_WORLD_RANK/_SIZE, SLURM_PROCID/SLURM_NTASKS;
// LOOM_COORDINATOR, else MASTER_ADDR:(MASTER_PORT+1).
Expected<LaunchEnvironment> readLaunchEnvironment();

}  // namespace loom::capi
