// How every command speaks (one convention):
//   results: tables, figures, files written      stdout (printf): what a user reads or pipes on
//   warnings                                      stderr, one line "warning: ..." (warn())
//   errors                                        a thrown performer::Error, printed once by main as
//                                                 "error: ..." on stderr with exit status 1
//   progress of long jobs                         stderr (util/progress.h)
//   a training run's log                          spdlog logger "train": stdout and <run>/train.log,
//                                                 time-stamped (train/run_log.h)
#pragma once
#include <string>

namespace performer {

// "warning: <message>" on stderr (a training run also records its warnings in train.log).
void warn(const std::string& message);

}  // namespace performer
