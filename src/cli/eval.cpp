// performer eval --checkpoint CKPT (--input FASTA... | --corpus corpus.h5 --split test)
//                [--mode auto|masked|pseudo|causal] [--repeats K] [--mask-rate R] [--train-corpus corpus.h5] [--out DIR]
// The options and one call (experiments/eval_job.h has what is scored and written).
#include <memory>

#include "cli/commands.h"
#include "experiments/eval_job.h"

namespace performer::cli {

void add_eval(CLI::App& app, Action& run) {
  auto a = std::make_shared<EvalJob>();
  auto reader = std::make_shared<ReaderFlags>();
  auto* cmd = app.add_subcommand("eval", "Held-out perplexity of a checkpoint on FASTA/UniProt files or a corpus split");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint (.h5) written by performer train")->required();
  cmd->add_option("-i,--input", a->inputs, "FASTA or UniProt files (plain or gzip)");
  cmd->add_option("--corpus", a->corpus, "a prepared corpus instead of --input");
  cmd->add_option("--split", a->split, "split of --corpus: train | valid | test")->capture_default_str();
  std::vector<std::string> modes{kAutoEvalMode};
  modes.insert(modes.end(), eval_mode_names().begin(), eval_mode_names().end());
  cmd->add_option("--mode", a->mode, "auto (causal for causal models, else masked) | masked | pseudo | causal")
      ->check(CLI::IsMember(modes))
      ->capture_default_str();
  cmd->add_option("--repeats", a->perplexity.repeats, "masked mode: masks averaged (seeds seed..seed+K-1)")->capture_default_str();
  cmd->add_option("--seed", a->perplexity.seed, "masking seed")->capture_default_str();
  cmd->add_option("--mask-rate", a->mask_rate, "masked mode: share of residues masked (0 = the run's eval.mask_rate, "
                                               "which defaults to its data.mask_rate)")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  cmd->add_option("--tokens-per-batch", a->perplexity.tokens_per_batch, "token budget per forward pass")->capture_default_str();
  cmd->add_option("--train-corpus", a->train_corpus, "training corpus: unigram baseline and overlap removal "
                                                      "(default: the run's corpus.h5)");
  cmd->add_option("--paired-with", a->paired_with,
                  "another model's per_sequence.tsv (or its --out folder) from eval with the same options: prints "
                  "the perplexity difference on the shared proteins with a paired 95% interval");
  cmd->add_flag("--keep-train-overlap", a->keep_overlap, "do not leave out proteins identical to training proteins");
  add_device_option(cmd, a->device);
  add_precision_option(cmd, a->precision);
  cmd->add_option("--out", a->out, "folder for per_sequence.tsv and summary.json");
  add_reader_options(cmd, *reader);
  cmd->callback([&run, a, reader] {
    run = [a, reader] {
      a->reader = reader->options();
      return run_eval_job(*a);
    };
  });
}

}  // namespace performer::cli
