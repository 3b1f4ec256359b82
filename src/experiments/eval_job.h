// `performer eval` as one call: held-out perplexity of a trained model (analysis/perplexity.h), beside the uniform (20 amino acids) and
// unigram (training frequencies) baselines. Proteins identical to a training-split protein of the
// training corpus are left out (and counted), so "held-out" means unseen.
#pragma once
#include <string>
#include <vector>

#include "analysis/perplexity.h"
#include "data/sequence_reader.h"

namespace performer {

// --mode auto: the mode the model was trained for (causal for causal models, else masked).
constexpr const char* kAutoEvalMode = "auto";

struct EvalJob {
  std::string checkpoint;
  std::vector<std::string> inputs;  // FASTA/UniProt files, or
  std::string corpus, split = "test";  // a prepared corpus's split
  std::string train_corpus;         // unigram baseline and overlap removal ("": the run's corpus.h5)
  std::string out;                  // folder for per_sequence.tsv and summary.json ("": none)
  std::string device = "auto";
  std::string precision = "fp32";  // fp32 | bf16 | auto (util/precision.h)
  std::string mode = kAutoEvalMode;  // kAutoEvalMode or a name of eval_mode_names()
  PerplexityOptions perplexity;     // its mask_rate, mask_frac and random_frac are the run's
  double mask_rate = 0;             // masked mode: share of residues masked; 0 = the run's (eval.mask_rate)
  bool keep_overlap = false;        // keep proteins identical to training proteins
  std::string paired_with;          // another model's per_sequence.tsv (or its folder), scored with the same
                                    // options: the perplexity difference on the shared proteins, paired
  ReaderOptions reader;
};

// Scores the proteins, prints the figures and the baselines, writes --out's files; returns 0.
int run_eval_job(const EvalJob& job);

}  // namespace performer
