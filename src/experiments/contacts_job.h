// `performer contacts fit | predict | eval`: residue contacts from a model's attention maps
// (analysis/contacts.h has the features, analysis/contact_regression.h the regression,
// analysis/contact_metrics.h the scores).
//
//   fit      For each protein of --structures: its sequence (the structure file's SEQRES, else the observed
//            residues), every layer x head attention map of the checkpoint's model (FAVOR maps as the
//            model applies them), the contact features, and its true contacts (C-beta < 8 A, the observed
//            residues aligned to the sequence). Fits the L1 logistic regression on the pairs at least 6
//            apart and writes it to --out (HDF5) with the training proteins, the settings and the single
//            head whose features rank long-range contacts best on those proteins (no fitting). C, the
//            inverse L1 strength, is chosen by cross-validation over the proteins unless given (--c).
//   predict  A contact probability map per protein of --input (FASTA) to --out (HDF5: /proteins/<name>/
//            contacts [n, n] float32), and PNG heatmaps of the first --png proteins beside it.
//   eval     Precision at top L, L/2, L/5 per range (short 6-11, medium 12-23, long >= 24) on --structures,
//            per protein and mean with a bootstrap interval, beside a random ranking (the contact density)
//            and a separation-only ranking, and the regression file's best single head; one line per range
//            on stdout; with --out: summary.json, per_protein.csv and png/ (the first --png proteins' predicted
//            maps beside their true contacts) there.
// --regression checkpoint uses the model's own contact regression (an imported ESM-2 model carries one).
// Proteins longer than the model's max_len - 2 are cut to their first max_len - 2 residues.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/contact_regression.h"
#include "data/sequence_reader.h"

namespace performer {

struct ContactsJob {
  std::string checkpoint;
  std::string structures;  // --structures LIST: lines "path [chain]", paths relative to the list's folder
  std::string regression;  // --regression R.h5 (predict, eval), or "checkpoint"
  std::vector<std::string> inputs;  // --input FASTA... (predict)
  std::string out;
  std::string device = "auto";
  std::string precision = "fp32";  // fp32 | bf16 | auto (util/precision.h)
  RegressionSettings settings;      // fit (settings.c is used when c_auto is false)
  bool c_auto = true;               // fit: C by cross-validation over the proteins (--c auto)
  double cutoff = 8.0;              // contact: C-beta distance below this, in A
  int64_t png = 3;                  // predict, eval: proteins drawn
  uint64_t seed = 0;                // eval: bootstrap
  bool force = false;               // fit: replace an existing --out
  ReaderOptions reader;
};

// Each returns 0; errors are Error, raised before any output is written.
int run_contacts_fit(const ContactsJob& job);
int run_contacts_predict(const ContactsJob& job);
int run_contacts_eval(const ContactsJob& job);

// One line of a structure list.
struct StructureEntry {
  std::string path, chain;  // chain "" = the file's only protein chain
  long long line = 0;
};
// Reads "path [chain]" lines ('#' comments and blank lines skipped); relative paths are taken from the
// list's folder. Errors name list:line.
std::vector<StructureEntry> read_structure_list(const std::string& list);

}  // namespace performer
