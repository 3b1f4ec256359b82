// `performer export --format hf` and `performer import --hf`: a checkpoint to a HuggingFace ESM folder and
// back (interop/hf_esm.h has the mapping and the checks).
#pragma once
#include <string>
#include <vector>

namespace performer {

struct ExportJob {
  std::string checkpoint;    // a performer checkpoint of an ESM-shaped model
  std::string format = "hf";
  std::string out;           // the folder to create
  bool force = false;        // replace `out` when it exists
};
// Writes `out` whole or not at all (a temporary folder renamed into place). Returns the exit code.
int run_export_job(const ExportJob& job);

struct ImportJob {
  std::string hf;                   // a HuggingFace EsmForMaskedLM folder
  std::string out;                  // the checkpoint to write (.h5)
  std::vector<std::string> sets;    // config overrides, e.g. model.kind=favor-softmax
  bool force = false;               // replace `out` when it exists
};
// Writes a checkpoint at step 0 without optimizer state: eval, embed, attention and longseq use it as it is;
// train --init starts fine-tuning from it. Returns the exit code.
int run_import_job(const ImportJob& job);

}  // namespace performer
