// One measurement cell per child process: the harness behind `performer longseq` and `bench attention`.
//
// A sweep measures each cell (one length, one attention kind, ...) in a fresh child process of the
// performer binary, so the cell's peak memory is its own and running out of memory (or hanging) ends the
// cell, not the sweep. The parent runs the child with `run_child` (util/process.h) and appends
// `--report PATH` to its command line; the child writes its result there as one small YAML document,
// whole or not at all (AtomicFile):
//
//   status: ok                  # ok | OOM | TIMEOUT | error
//   note: ""                    # why a cell is OOM or failed
//   figures:                    # named numbers; NaN is written .nan (e.g. a causal cell's all-masked figures)
//     tokens_per_second: 1234.5
//     peak_bytes: 350000000
//
// A child that leaves no report is judged by how it ended: past its deadline TIMEOUT; killed by the harness
// for passing its memory limit, or by SIGKILL (the kernel's OOM killer), OOM; otherwise error, each with a
// one-line note.
//
// A CPU cell's memory limit is enforced from the parent (run_child's memory_limit: the child's anonymous
// resident memory is watched and the child killed past it), not by an address-space limit inside the child:
// under RLIMIT_AS a failed allocation inside OpenBLAS is retried forever (its blas_memory_alloc loops), so
// such a cell spun instead of failing.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/process.h"

namespace performer {

enum class CellStatus { kOk, kOom, kTimeout, kError };

// "ok" | "OOM" | "TIMEOUT" | "error" (also the names in results.csv and the printed tables).
const std::vector<std::string>& cell_status_names();  // "ok", "OOM", "TIMEOUT", "error"
std::string cell_status_name(CellStatus status);
// The inverse of cell_status_name; anything else is an Error naming the text.
CellStatus parse_cell_status(const std::string& name);

// What a child reports about its cell.
struct CellReport {
  CellStatus status = CellStatus::kOk;
  std::string note;
  std::map<std::string, double> figures;
  // The named figure; an Error naming it when the report has none.
  double figure(const std::string& name) const;
};

// The YAML document of a report (see the header comment) and its parser; a malformed document (not YAML,
// no or an unknown status, a figure that is not a number) is an Error naming `where`.
std::string format_cell_report(const CellReport& report);
CellReport parse_cell_report(const std::string& yaml_text, const std::string& where);

// Child side: writes the document to `path` whole or not at all (AtomicFile); throws Error naming it.
void write_cell_report(const std::string& path, const CellReport& report);

// Parent side: one child and what became of it.
struct CellCommand {
  std::vector<std::string> argv;    // the child's command line; the harness appends "--report <path>"
  std::string report_path;          // where the child writes its report; empty: a temporary, removed after
  uint64_t address_space_limit = 0; // run_child's RLIMIT_AS in bytes (0: none; a child may limit itself)
  uint64_t memory_limit = 0;        // killed, and OOM, once its anonymous resident memory passes this (0: none)
  double timeout_seconds = 0;       // killed and reported TIMEOUT after this long (0: no deadline)
};
struct CellOutcome {
  CellReport report;     // the child's report, or the harness's verdict when it left none
  bool reported = false; // whether the child wrote a report
  ChildResult child;     // exit code or signal, stdout and stderr together, peak RSS
};

// Runs the child (a report left from an earlier run at report_path is removed first) and reads its report.
CellOutcome run_cell(const CellCommand& command);

}  // namespace performer
