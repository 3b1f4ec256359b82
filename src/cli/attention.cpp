// performer attention --checkpoint CKPT --input FASTA... --out DIR [--layers all|0,3] [--max-sequences 500]
//                     [--export 3] [--blosum data/BLOSUM62] [--seed 0] [--threshold 0.3]
// The options and one call (experiments/attention_study.h has what is computed and written).
#include "cli/commands.h"
#include "experiments/attention_study.h"

namespace performer::cli {

void add_attention(CLI::App& app, Action& run) {
  auto a = std::make_shared<AttentionStudy>();
  auto reader = std::make_shared<ReaderFlags>();
  auto* cmd = app.add_subcommand("attention", "Export attention maps (HDF5 + PNG) and compare them with BLOSUM62");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint (.h5) written by performer train")->required();
  cmd->add_option("-i,--input", a->inputs, "FASTA or UniProt files")->required();
  cmd->add_option("--out", a->out, "output folder")->required();
  cmd->add_option("--layers", a->layers, "'all' or comma-separated layers (from 0; -1 = the last)")->capture_default_str();
  cmd->add_option("--heads", a->heads, "'all' or comma-separated heads whose maps are exported (from 0; -1 = the last; "
                                       "all heads are used for the BLOSUM62 comparison)")->capture_default_str();
  cmd->add_option("--max-sequences", a->max_sequences, "proteins aggregated for the BLOSUM62 comparison")->capture_default_str();
  cmd->add_option("--export", a->exported, "proteins whose maps are written (HDF5 + PNG)")->capture_default_str();
  cmd->add_option("--max-residues", a->max_residues,
                  "use the first N residues of each protein (default: the model's max_len - 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--blosum", a->blosum, "substitution matrix in NCBI text format")->capture_default_str();
  add_device_option(cmd, a->device);
  add_precision_option(cmd, a->precision);
  cmd->add_option("--seed", a->seed, "seed of the residue shuffles (null model)")->capture_default_str();
  cmd->add_option("--threshold", a->threshold, "high-confidence attention for the target-share measure (Vig et al.: 0.3)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  add_reader_options(cmd, *reader);
  cmd->callback([&run, a, reader] {
    run = [a, reader] {
      a->reader = reader->options();
      return run_attention_study(*a);
    };
  });
}

}  // namespace performer::cli
