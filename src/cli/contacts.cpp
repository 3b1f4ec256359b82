// performer contacts fit     --checkpoint C --structures LIST --out R.h5 [--c auto|0.15] [--cutoff 8] [--force]
// performer contacts predict --checkpoint C --regression R.h5|checkpoint --input FASTA... --out P.h5 [--png 3]
// performer contacts eval    --checkpoint C --regression R.h5|checkpoint --structures LIST [--out DIR] [--png 3]
// The options and one call each (experiments/contacts_job.h has what is computed and written).
#include <cmath>
#include <cstdlib>
#include <memory>

#include "cli/commands.h"
#include "experiments/contacts_job.h"
#include "util/error.h"

namespace performer::cli {

namespace {

// --c: "auto" or a positive number.
double parse_positive_double(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v > 0) || !std::isfinite(v))
    throw Error(what + ": expected 'auto' or a positive number, got '" + text + "'");
  return v;
}

CLI::App* add_common(CLI::App* cmd, ContactsJob& job) {
  cmd->add_option("--checkpoint", job.checkpoint, "checkpoint (.h5) of the model whose attention is used")->required();
  add_device_option(cmd, job.device);
  add_precision_option(cmd, job.precision);
  cmd->add_option("--cutoff", job.cutoff, "contact: C-beta (C-alpha for glycine) distance below this, in Angstrom")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return cmd;
}

void add_structures(CLI::App* cmd, ContactsJob& job) {
  cmd->add_option("--structures", job.structures,
                  "text file of lines 'path [chain]': PDB or mmCIF files (plain or gzip), paths relative to the list")
      ->required();
}

void add_regression(CLI::App* cmd, ContactsJob& job) {
  cmd->add_option("--regression", job.regression,
                  "regression written by contacts fit, or 'checkpoint' for the model's own contact head (ESM-2 imports)")
      ->required();
}

}  // namespace

void add_contacts(CLI::App& app, Action& run) {
  auto* contacts = app.add_subcommand("contacts", "Residue contacts from attention maps, scored against structures");
  contacts->require_subcommand(1);

  auto fit = std::make_shared<ContactsJob>();
  auto* f = add_common(contacts->add_subcommand("fit", "Fit the L1 logistic regression from attention to contacts"), *fit);
  add_structures(f, *fit);
  f->add_option("--out", fit->out, "regression file (.h5) to write")->required();
  auto c_text = std::make_shared<std::string>("auto");
  f->add_option("--c", *c_text, "inverse L1 regularization strength (smaller: fewer heads), or 'auto': chosen by "
                                "cross-validation over the proteins")
      ->capture_default_str();
  f->add_option("--tolerance", fit->settings.tolerance, "the solver's stopping tolerance")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  f->add_flag("--force", fit->force, "replace --out when it exists");
  f->callback([&run, fit, c_text] {
    run = [fit, c_text] {
      fit->c_auto = *c_text == "auto";
      if (!fit->c_auto) fit->settings.c = parse_positive_double(*c_text, "--c");
      return run_contacts_fit(*fit);
    };
  });

  auto predict = std::make_shared<ContactsJob>();
  auto reader = std::make_shared<ReaderFlags>();
  auto* p = add_common(contacts->add_subcommand("predict", "Contact probability maps of the proteins of a FASTA"), *predict);
  add_regression(p, *predict);
  p->add_option("-i,--input", predict->inputs, "FASTA or UniProt files")->required();
  p->add_option("--out", predict->out, "HDF5 file of the maps (/proteins/<name>/contacts [n, n])")->required();
  p->add_option("--png", predict->png, "proteins drawn as PNG heatmaps (into <out>_png/)")->capture_default_str();
  add_reader_options(p, *reader);
  p->callback([&run, predict, reader] {
    run = [predict, reader] {
      predict->reader = reader->options();
      return run_contacts_predict(*predict);
    };
  });

  auto eval = std::make_shared<ContactsJob>();
  auto* e = add_common(contacts->add_subcommand("eval", "Precision of the predicted contacts on proteins with structures"),
                       *eval);
  add_regression(e, *eval);
  add_structures(e, *eval);
  e->add_option("--out", eval->out, "folder for summary.json and per_protein.csv");
  e->add_option("--seed", eval->seed, "seed of the bootstrap intervals")->capture_default_str();
  e->add_option("--png", eval->png, "proteins drawn into --out/png/ (predicted map beside the true contacts)")
      ->capture_default_str();
  e->callback([&run, eval] { run = [eval] { return run_contacts_eval(*eval); }; });
}

}  // namespace performer::cli
