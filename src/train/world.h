// Which process of a data-parallel job this is, read from the launcher's environment:
//   torchrun (and `performer train --nproc N`): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//            MASTER_ADDR, MASTER_PORT
//   SLURM (a task of an srun step):             SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS),
//            SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or SLURM_TASKS_PER_NODE), MASTER_ADDR, MASTER_PORT;
//            SLURM_STEP_ID must be a step number (the batch script itself is one process)
// torchrun's variables win when both are set (torchrun started inside a SLURM allocation). Neither: one
// process (rank 0 of 1), and nothing about training changes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace performer {

struct World {
  int rank = 0, size = 1;              // this process, of `size`
  int local_rank = 0, local_size = 1;  // on this machine: picks the GPU (cuda:local_rank) and the CPU threads
  std::string master_addr;             // the rendezvous store (rank 0 hosts it unless torchrun's agent does)
  int master_port = 0;
  bool agent_store = false;            // torchrun's agent hosts the store at master_addr:master_port
  int restart = 0;                     // torchrun's TORCHELASTIC_RESTART_COUNT (keys of a restart kept apart)
  std::string launcher;                // "torchrun", "slurm" or "" (one process)
  std::string job;                     // the launcher's job identity: PERFORMER_JOB_ID (train --nproc),
                                       // TORCHELASTIC_RUN_ID, or SLURM_JOB_ID.SLURM_STEP_ID; "" by hand
  bool distributed() const { return size > 1; }
  std::string describe() const;        // "rank 1 of 4 (local 1 of 2, torchrun), store 10.0.0.1:29500"
};

// The collective engine of a data-parallel job (runtime.backend): auto = NCCL on CUDA, Gloo on CPU.
enum class Backend { kAuto, kGloo, kNccl };
const std::vector<std::string>& backend_names();  // "auto", "gloo", "nccl"
Backend parse_backend(const std::string& name);
std::string backend_name(Backend b);

// Throws Error naming the variable when one is malformed or missing (MASTER_ADDR under SLURM, say).
World world_from_environment();

}  // namespace performer
