// The run folder of `performer train` (output.dir): one training at a time, and never clobbered silently.
//
// * RunFolderLock: an exclusive flock on "<dir>/.lock" for as long as the training runs. The kernel
//   releases it when the process ends, also on kill -9, so a stale lock file never blocks; a second
//   training into the same folder is refused with the holder's pid (written into the lock file).
// * holds_run: the folder has results of a run (metrics.csv, eval.csv, best.h5 or ckpt-*.h5). Such a folder
//   is continued with --resume or started over with --overwrite; plain `train` refuses it.
// * move_run_aside (--overwrite): the old run's files go to "<dir>/previous-<UTC time>/" (nothing is
//   deleted); the prepared corpus cache (corpus.h5) stays, as it depends only on the data settings.
#pragma once
#include <string>

namespace performer {

class RunFolderLock {
 public:
  explicit RunFolderLock(const std::string& dir);  // throws Error naming the holder when the folder is in use
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

bool holds_run(const std::string& dir);
// "<dir>/config.yaml": the resolved config of the run (every --set included), which `--resume auto`
// continues from any working folder.
std::string run_config_path(const std::string& dir);
// Moves the run's files (config.yaml, train.log, metrics.csv, eval.csv, best.h5, ckpt-*.h5) into a new
// "<dir>/previous-<time>" folder and returns its path.
std::string move_run_aside(const std::string& dir);

}  // namespace performer
