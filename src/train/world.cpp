#include "train/world.h"

#include <cstdlib>

#include "util/error.h"
#include "util/names.h"

namespace performer {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

int env_int(const char* name, int min, int fallback) {
  const char* v = env(name);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < min || x > 1 << 20)
    throw Error(std::string("environment variable ") + name + "='" + v + "': expected an integer >= " + std::to_string(min));
  return static_cast<int>(x);
}

// The number of tasks on node `node` in SLURM's compressed per-node list "2(x3),1" (nodes 0-2 run 2,
// node 3 runs 1); 0 when the list is malformed (checked whole) or shorter.
int tasks_on_node(const std::string& list, int node) {
  auto number = [&](size_t& at, long& out) {  // digits only, at most 1,048,576
    const size_t from = at;
    out = 0;
    while (at < list.size() && list[at] >= '0' && list[at] <= '9' && at - from < 8) out = out * 10 + (list[at++] - '0');
    return at > from && out >= 1 && out <= (1 << 20) && (at >= list.size() || list[at] < '0' || list[at] > '9');
  };
  int found = 0;
  long index = 0;
  size_t at = 0;
  while (true) {
    long count = 0, repeat = 1;
    if (!number(at, count)) return 0;
    if (list.compare(at, 2, "(x") == 0) {
      at += 2;
      if (!number(at, repeat) || at >= list.size() || list[at] != ')') return 0;
      ++at;
    }
    if (found == 0 && node >= index && node < index + repeat) found = static_cast<int>(count);
    index += repeat;
    if (at == list.size()) break;
    if (list[at] != ',') return 0;
    ++at;
  }
  return found;
}

// The tasks of this step on this node: SLURM_STEP_TASKS_PER_NODE (the step's layout, which may differ from
// the job's: `srun -n 1` inside an allocation of 4 tasks per node) at this node's place (SLURM_NODEID),
// else the job's SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE.
int slurm_tasks_per_node() {
  const int node = env("SLURM_NODEID") ? env_int("SLURM_NODEID", 0, 0) : 0;
  if (const char* step = env("SLURM_STEP_TASKS_PER_NODE")) {
    if (const int n = tasks_on_node(step, node); n > 0) return n;
  }
  if (env("SLURM_NTASKS_PER_NODE")) return env_int("SLURM_NTASKS_PER_NODE", 1, 1);
  if (const char* job = env("SLURM_TASKS_PER_NODE")) {
    if (const int n = tasks_on_node(job, node); n > 0) return n;
  }
  return 1;
}

// A task of an srun step (numeric step id). The batch script of `sbatch --ntasks N` also has SLURM_PROCID
// and SLURM_NTASKS, but a plain command there is one process, not rank 0 of N.
bool in_srun_step() {
  const char* id = env("SLURM_STEP_ID");
  if (id == nullptr) id = env("SLURM_STEPID");
  if (id == nullptr) return false;
  for (const char* c = id; *c != '\0'; ++c)
    if (*c < '0' || *c > '9') return false;
  return true;
}

void check(const World& w) {
  if (w.rank >= w.size)
    throw Error("rank " + std::to_string(w.rank) + " is not below the world size " + std::to_string(w.size) + " (" +
                w.launcher + " environment)");
  if (w.local_rank >= w.local_size)
    throw Error("local rank " + std::to_string(w.local_rank) + " is not below the local world size " +
                std::to_string(w.local_size) + " (" + w.launcher + " environment)");
  if (!w.distributed()) return;
  if (w.master_addr.empty())
    throw Error("MASTER_ADDR is not set: a " + std::to_string(w.size) + "-process " + w.launcher +
                " job needs the address of rank 0's host (scripts/slurm-train.sh sets it)");
  if (w.master_port <= 0 || w.master_port > 65535)
    throw Error("MASTER_PORT is not set (or not a port): a " + std::to_string(w.size) + "-process " + w.launcher +
                " job needs the rendezvous port");
}

}  // namespace

const std::vector<std::string>& backend_names() {
  static const std::vector<std::string> names{"auto", "gloo", "nccl"};
  return names;
}
Backend parse_backend(const std::string& name) { return parse_name<Backend>(name, backend_names(), "runtime.backend"); }
std::string backend_name(Backend b) { return name_of(b, backend_names()); }

std::string World::describe() const {
  if (!distributed()) return "one process";
  return "rank " + std::to_string(rank) + " of " + std::to_string(size) + " (local " + std::to_string(local_rank) +
         " of " + std::to_string(local_size) + ", " + launcher + "), store " + master_addr + ":" +
         std::to_string(master_port);
}

World world_from_environment() {
  World w;
  if (env("RANK") || env("WORLD_SIZE")) {
    w.launcher = env("PERFORMER_LAUNCHER") ? env("PERFORMER_LAUNCHER") : "torchrun";
    w.size = env_int("WORLD_SIZE", 1, 1);
    w.rank = env_int("RANK", 0, 0);
    w.local_rank = env_int("LOCAL_RANK", 0, w.rank);
    w.local_size = env_int("LOCAL_WORLD_SIZE", 1, w.size);
    const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
    w.agent_store = agent != nullptr && std::string(agent) == "True";
    w.restart = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0);
  } else if (in_srun_step() && env("SLURM_PROCID")) {
    w.launcher = "slurm";
    w.size = env("SLURM_STEP_NUM_TASKS") ? env_int("SLURM_STEP_NUM_TASKS", 1, 1) : env_int("SLURM_NTASKS", 1, 1);
    w.rank = env_int("SLURM_PROCID", 0, 0);
    w.local_rank = env_int("SLURM_LOCALID", 0, 0);
    w.local_size = slurm_tasks_per_node();
  } else {
    return w;
  }
  if (const char* id = env("PERFORMER_JOB_ID")) {
    w.job = id;
  } else if (const char* run = env("TORCHELASTIC_RUN_ID"); run != nullptr && std::string(run) != "none") {
    w.job = std::string("torchrun ") + run;
  } else if (w.launcher == "slurm" && env("SLURM_JOB_ID")) {
    const char* step = env("SLURM_STEP_ID") ? env("SLURM_STEP_ID") : env("SLURM_STEPID");
    w.job = std::string("slurm ") + env("SLURM_JOB_ID") + "." + (step != nullptr ? step : "");
  }
  if (const char* a = env("MASTER_ADDR")) w.master_addr = a;
  w.master_port = env_int("MASTER_PORT", 1, 0);
  check(w);
  return w;
}

}  // namespace performer
