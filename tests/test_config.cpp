// The run configuration: shipped configs load, every error is one line naming the place, the key and
// the fix, overrides apply, and the resolved YAML round-trips exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "train/config.h"
#include "util/error.h"
#include "util/text.h"

using namespace performer;
using namespace performer::testing;

namespace {

// The error message of parse_config(text), or "" when it succeeds.
std::string parse_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(text, "cfg.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(text, fragment)                                               \
  do {                                                                             \
    const std::string msg_ = (text);                                               \
    EXPECT_FALSE(msg_.empty()) << "no error, expected: " << (fragment);            \
    EXPECT_NE(msg_.find(fragment), std::string::npos) << msg_;                     \
    EXPECT_EQ(msg_.find('\n'), std::string::npos) << "not one line: " << msg_;     \
  } while (0)

}  // namespace

TEST(Config, ShippedConfigsLoad) {
  const auto dir = std::filesystem::path(project_root()) / "configs";
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".yaml") names.push_back(e.path().filename().string());
  for (const char* want : {"tiny.yaml", "quickstart.yaml", "quickstart-causal.yaml", "trembl-performer-relu.yaml",
                           "trembl-performer-softmax.yaml", "trembl-transformer.yaml", "longseq.yaml",
                           "trembl-concat-8192.yaml", "trembl-concat-8192-transformer.yaml", "esm2-8m-performer.yaml"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want << " missing in " << dir;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(load_config((dir / name).string())) << name;
  }
  RunConfig tiny = load_config((dir / "tiny.yaml").string());
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(project_root()) / tiny.data.train)) << tiny.data.train;
  EXPECT_EQ(tiny.model.kind, AttentionKind::kFavorRelu);
  EXPECT_EQ(tiny.model.layers, 2);
  EXPECT_EQ(tiny.train.steps, 20);
  EXPECT_EQ(tiny.runtime.device, "cpu");
  EXPECT_TRUE(load_config((dir / "quickstart-causal.yaml").string()).model.causal);
  // The ESM-2 8M shape: 6 layers, d 320, 20 heads, d_ff 1280, rotary, FAVOR softmax; precision measured.
  const RunConfig esm = load_config((dir / "esm2-8m-performer.yaml").string());
  EXPECT_EQ(esm.model.layers, 6);
  EXPECT_EQ(esm.model.d_model, 320);
  EXPECT_EQ(esm.model.heads, 20);
  EXPECT_EQ(esm.model.d_ff, 1280);
  EXPECT_EQ(esm.model.positions, PositionKind::kRotary);
  EXPECT_EQ(esm.model.kind, AttentionKind::kFavorSoftmax);
  EXPECT_EQ(esm.model.lm_head, LmHead::kEsm);  // ESM-2's head and token dropout: EsmForMaskedLM's shape
  EXPECT_TRUE(esm.model.token_dropout);
  EXPECT_EQ(load_config((dir / "quickstart.yaml").string()).model.lm_head, LmHead::kTied);  // the default stays
  EXPECT_EQ(esm.runtime.precision, Precision::kAuto);
  EXPECT_FALSE(load_config((dir / "quickstart.yaml").string()).model.causal);
  RunConfig exact = load_config((dir / "trembl-transformer.yaml").string());
  EXPECT_EQ(exact.model.kind, AttentionKind::kExact);
  EXPECT_EQ(exact.model.layers, 36);
  EXPECT_EQ(load_config((dir / "trembl-performer-softmax.yaml").string()).model.kind, AttentionKind::kFavorSoftmax);
  // TrEMBL-concat: the paper's shape (6 layers, 8 heads, d 512, d_ff 2048, L 8192), Performer and Transformer.
  RunConfig concat = load_config((dir / "trembl-concat-8192.yaml").string());
  RunConfig concat_exact = load_config((dir / "trembl-concat-8192-transformer.yaml").string());
  for (const RunConfig* c : {&concat, &concat_exact}) {
    EXPECT_TRUE(c->data.concat);
    EXPECT_EQ(c->data.max_len, 8192);
    EXPECT_EQ(c->model.max_len, 8192);
    EXPECT_EQ(c->model.layers, 6);
    EXPECT_EQ(c->model.heads, 8);
    EXPECT_EQ(c->model.d_model, 512);
    EXPECT_EQ(c->model.d_ff, 2048);
  }
  EXPECT_NE(concat.model.kind, AttentionKind::kExact);
  EXPECT_EQ(concat_exact.model.kind, AttentionKind::kExact);
  EXPECT_TRUE(load_config((dir / "longseq.yaml").string()).data.concat);
}

TEST(Config, EmptyTextGivesDefaults) {
  RunConfig c = parse_config("", "empty.yaml");
  RunConfig d;
  EXPECT_EQ(config_to_yaml(c), config_to_yaml(d));
  EXPECT_EQ(parse_config("# only a comment\neval:\n", "x").train.steps, d.train.steps);
}

TEST(Config, UnknownKeyNamesKeyLineAndSuggestion) {
  const std::string text = "train:\n  lr: 1e-3\n  lrr: 2e-3\n";
  EXPECT_ERROR(parse_error(text), "cfg.yaml:3: unknown key 'train.lrr' (did you mean 'train.lr'?)");
  EXPECT_ERROR(parse_error("data:\n  max_length: 100\n"), "cfg.yaml:2: unknown key 'data.max_length' (did you mean 'data.max_len'?)");
  EXPECT_ERROR(parse_error("train:\n  max_len: 100\n"), "(did you mean 'data.max_len'?)");
  EXPECT_ERROR(parse_error("model:\n  seed: 3\n"), "runtime.seed");
  EXPECT_ERROR(parse_error("eval:\n  zzzzzzzzzzzzz: 1\n"), "valid keys in eval: every, max_sequences, seed");
}

TEST(Config, UnknownSection) {
  EXPECT_ERROR(parse_error("data:\n  max_len: 64\ntrian:\n  steps: 5\n"),
               "cfg.yaml:3: unknown section 'trian' (did you mean 'train'?)");
  EXPECT_ERROR(parse_error("lr: 0.1\n"), "cfg.yaml:1: unknown section 'lr' (did you mean 'train.lr'?)");
  EXPECT_ERROR(parse_error("- a\n- b\n"), "cfg.yaml:1: the top level must be a map of sections");
  EXPECT_ERROR(parse_error("train: 5\n"), "cfg.yaml:1: section 'train' must be a map of keys");
}

TEST(Config, InvalidYamlNamesLine) {
  EXPECT_ERROR(parse_error("train:\n  lr: [1, 2\n  steps: 3\n"), "invalid YAML");
  EXPECT_EQ(parse_error("train:\n  lr: [1, 2\n").rfind("cfg.yaml:", 0), 0u);
  EXPECT_ERROR(parse_error("train:\n  lr: 1\n  lr: 2\n"), "cfg.yaml:3: duplicate key 'train.lr' (first at cfg.yaml:2)");
}

TEST(Config, WrongType) {
  EXPECT_ERROR(parse_error("train:\n  steps: abc\n"), "cfg.yaml:2: train.steps must be an integer, got 'abc'");
  EXPECT_ERROR(parse_error("train:\n  lr: fast\n"), "cfg.yaml:2: train.lr must be a number, got 'fast'");
  EXPECT_ERROR(parse_error("model:\n  causal: yes\n"), "cfg.yaml:2: model.causal must be true or false, got 'yes'");
  EXPECT_ERROR(parse_error("model:\n  causal: 1\n"), "model.causal must be true or false");
  EXPECT_ERROR(parse_error("train:\n  steps: [1, 2]\n"), "train.steps must be an integer, got a list");
  EXPECT_ERROR(parse_error("train:\n  steps:\n"), "train.steps must be an integer, got nothing");
  EXPECT_ERROR(parse_error("train:\n  steps: \"10\"\n"), "train.steps must be an integer, got '10' (quoted");
  EXPECT_ERROR(parse_error("output:\n  dir: ''\n"), "output.dir must not be empty");
  // A string key takes any scalar as text.
  EXPECT_EQ(parse_config("output:\n  dir: 123\n", "x").output.dir, "123");
}

TEST(Config, IntegerGivenAsFloat) {
  EXPECT_ERROR(parse_error("train:\n  steps: 1.5\n"), "cfg.yaml:2: train.steps must be an integer, got '1.5'");
  EXPECT_ERROR(parse_error("train:\n  steps: 1e5\n"), "train.steps must be an integer, got '1e5' (write 100000)");
  // A float key accepts an integer literal.
  EXPECT_EQ(parse_config("train:\n  grad_clip: 2\n", "x").train.grad_clip, 2.0);
}

TEST(Config, OutOfRange) {
  EXPECT_ERROR(parse_error("model:\n  dropout: 1.5\n"), "cfg.yaml:2: model.dropout = 1.5 is out of range [0, 1)");
  EXPECT_ERROR(parse_error("train:\n  lr: 0\n"), "train.lr = 0 is out of range (0, 10]");
  EXPECT_ERROR(parse_error("train:\n  lr: .nan\n"), "train.lr = .nan is out of range");
  EXPECT_ERROR(parse_error("model:\n  layers: 0\n"), "model.layers = 0 is out of range [1, inf)");
  EXPECT_ERROR(parse_error("output:\n  keep_last: -1\n"), "output.keep_last = -1 is out of range [1, inf)");
  EXPECT_ERROR(parse_error("data:\n  mask_rate: 1\n"), "data.mask_rate = 1 is out of range (0, 1)");
  EXPECT_ERROR(parse_error("eval:\n  mask_rate: -0.1\n"), "eval.mask_rate = -0.1 is out of range [0, 1)");
  EXPECT_ERROR(parse_error("runtime:\n  seed: -1\n"), "runtime.seed = -1 is out of range [0, 2^64)");
  EXPECT_ERROR(parse_error("train:\n  steps: 99999999999999999999999\n"), "train.steps = 99999999999999999999999 is out of range");
  EXPECT_EQ(parse_config("runtime:\n  seed: 18446744073709551615\n", "x").runtime.seed, 18446744073709551615ull);
}

TEST(Config, BadChoice) {
  EXPECT_ERROR(parse_error("model:\n  kind: favor\n"),
               "cfg.yaml:2: model.kind = 'favor' must be one of exact, favor-softmax, favor-relu");
  EXPECT_ERROR(parse_error("train:\n  schedule: step\n"), "train.schedule = 'step' must be one of constant, linear, cosine");
  EXPECT_ERROR(parse_error("runtime:\n  precision: fp16\n"), "must be one of fp32, bf16");
  RunConfig c = parse_config("model:\n  kind: exact\n  row_norms: sqrt-d\n  positions: rotary\n", "x");
  EXPECT_EQ(c.model.kind, AttentionKind::kExact);
  EXPECT_EQ(c.model.row_norms, RowNorms::kSqrtD);
  EXPECT_EQ(position_kind_name(c.model.positions), "rotary");
}

TEST(Config, OverridesApplyAndAreValidated) {
  RunConfig c = parse_config("train:\n  lr: 1e-3\n", "cfg.yaml",
                             {"train.lr=3e-4", "model.kind=exact", "runtime.seed=7", "output.dir=runs/x y",
                              "model.causal=true"});
  EXPECT_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.model.kind, AttentionKind::kExact);
  EXPECT_EQ(c.runtime.seed, 7u);
  EXPECT_EQ(c.model.seed, 7u);  // the model seed follows runtime.seed
  EXPECT_EQ(c.output.dir, "runs/x y");
  EXPECT_TRUE(c.model.causal);
  EXPECT_ERROR(parse_error("", {"train.lrr=1"}), "--set train.lrr=1: unknown key 'train.lrr' (did you mean 'train.lr'?)");
  EXPECT_ERROR(parse_error("", {"lr=1"}), "--set lr=1: unknown key 'lr' (did you mean 'train.lr'?)");
  EXPECT_ERROR(parse_error("", {"train.lr"}), "--set train.lr: expected section.key=value");
  EXPECT_ERROR(parse_error("", {"train.steps=1.5"}), "--set train.steps=1.5: train.steps must be an integer");
  EXPECT_ERROR(parse_error("", {"model.dropout=2"}), "--set model.dropout=2: model.dropout = 2 is out of range [0, 1)");
}

TEST(Config, CrossChecks) {
  EXPECT_ERROR(parse_error("data:\n  max_len: 512\nmodel:\n  max_len: 256\n"),
               "cfg.yaml:4: model.max_len = 256 is less than data.max_len = 512");
  EXPECT_ERROR(parse_error("", {"data.max_len=2048"}), "model.max_len = 1024 is less than data.max_len = 2048");
  EXPECT_ERROR(parse_error("data:\n  tokens_per_batch: 100\n"), "data.tokens_per_batch = 100 is less than data.max_len");
  EXPECT_ERROR(parse_error("data:\n  valid_frac: 0.6\n  test_frac: 0.5\n"), "data.valid_frac + data.test_frac");
  EXPECT_ERROR(parse_error("model:\n  heads: 7\n"), "cfg.yaml:2: model.d_model must be a positive multiple of model.heads");
  EXPECT_ERROR(parse_error("train:\n  max_minutes: 10\n  budget_minutes: 12\n"),
               "cfg.yaml:3: train.budget_minutes = 12.0 is more than train.max_minutes = 10.0");
  EXPECT_EQ(parse_config("train:\n  max_minutes: 13\n  budget_minutes: 11.5\n", "x").train.budget_minutes, 11.5);
  EXPECT_EQ(parse_config("train:\n  budget_minutes: 60\n", "x").train.budget_minutes, 60);  // no max_minutes: no limit
}

TEST(Config, YamlRoundTrip) {
  RunConfig c = parse_config("train:\n  lr: 3.3e-4\n  max_minutes: 12.5\noutput:\n  dir: \"runs/a: b #c\"\n", "x",
                             {"train.eps=1e-9", "runtime.seed=18446744073709551615", "data.train=true",
                              "model.kind=favor-relu", "data.mask_rate=0.1", "train.weight_decay=0.30000000000000004"});
  const std::string yaml = config_to_yaml(c);
  RunConfig back = parse_config(yaml, "resolved.yaml");
  EXPECT_EQ(config_to_yaml(back), yaml);
  EXPECT_EQ(back.train.lr, 3.3e-4);
  EXPECT_EQ(back.train.weight_decay, 0.30000000000000004);
  EXPECT_EQ(back.output.dir, "runs/a: b #c");
  EXPECT_EQ(back.data.train, "true");
  EXPECT_EQ(back.runtime.seed, 18446744073709551615ull);
  EXPECT_NE(yaml.find("lr: "), std::string::npos);
  EXPECT_NE(yaml.find(" 0.00033\n"), std::string::npos) << yaml;  // shortest form that round-trips
  EXPECT_NE(yaml.find(" 1e-9\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("max_minutes:      12.5\n"), std::string::npos) << yaml;
  // Every key of every section is written.
  for (const char* key : {"  train:", "  valid_frac:", "  kind:", "  causal_chunk:", "  max_bad_steps:",
                          "  max_sequences:", "  keep_last:", "  precision:"})
    EXPECT_NE(yaml.find(key), std::string::npos) << key;
  // Doubles are written so they read back bit for bit.
  for (double v : {0.1, 1.0 / 3, 10.0, 500000.0, 1e16, 1e17, 123456789.125, 2.5e-7, 1e-300, 5e-324,
                   1.7976931348623157e308, 0.0}) {
    RunConfig r;
    r.train.max_minutes = v;
    EXPECT_EQ(parse_config(config_to_yaml(r), "r").train.max_minutes, v) << config_to_yaml(r);
  }
  // Defaults round-trip too.
  RunConfig d;
  EXPECT_EQ(config_to_yaml(parse_config(config_to_yaml(d), "d")), config_to_yaml(d));
}

TEST(Config, DefaultsTextMentionsEveryKey) {
  const std::string text = config_defaults_text();
  const std::string yaml = config_to_yaml(RunConfig());
  // Every key of the resolved YAML appears as section.key in the defaults text.
  std::string section;
  int keys = 0;
  std::istringstream lines(yaml);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ') {
      section = line.substr(0, line.find(':'));
      continue;
    }
    const std::string key = section + "." + line.substr(2, line.find(':') - 2);
    EXPECT_NE(text.find(key + " "), std::string::npos) << key;
    ++keys;
  }
  EXPECT_EQ(keys, 67);
  EXPECT_NE(text.find("exact | favor-softmax | favor-relu"), std::string::npos);
  EXPECT_NE(text.find("[0, 1)"), std::string::npos);
  EXPECT_EQ(text.find("model.seed"), std::string::npos);
}

TEST(Config, LoadConfigErrorsNameThePath) {
  TempDir dir;
  EXPECT_ERROR(
      [&] {
        try {
          load_config(dir.file("missing.yaml"));
        } catch (const Error& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      "missing.yaml: config file not found");
  EXPECT_ERROR(
      [&] {
        try {
          load_config(dir.path());
        } catch (const Error& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      "is a directory");
  write_file(dir.file("c.yaml"), "train:\n  steps: 5\n  stepz: 6\n");
  EXPECT_ERROR(
      [&] {
        try {
          load_config(dir.file("c.yaml"));
        } catch (const Error& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      dir.file("c.yaml") + ":3: unknown key 'train.stepz' (did you mean 'train.steps'?)");
  write_file(dir.file("ok.yaml"), "train:\n  steps: 5\n");
  EXPECT_EQ(load_config(dir.file("ok.yaml"), {"train.steps=6"}).train.steps, 6);
}

TEST(IntegerLists, OneParserForLengthsLayersAndHeads) {
  EXPECT_EQ(parse_int_list("512,1024", "--lengths", 1), (std::vector<int64_t>{512, 1024}));
  EXPECT_EQ(parse_int_list("0,-1", "--layers"), (std::vector<int64_t>{0, -1}));
  for (const char* bad : {"512x", "256.9", "1e3", "", "7,,8", "512,", ",512", "+5", " 5", "--5", "99999999999999999999"}) {
    try {
      parse_int_list(bad, "--lengths", 1);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--lengths: ", 0), 0u) << e.what();
    }
  }
  EXPECT_THROW(parse_int_list("0", "--lengths", 1), Error);
  // Layers and heads: from 0, or counted from the end; "all"; each once.
  EXPECT_EQ(parse_index_list("all", 3, "--heads"), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(parse_index_list("-1,0", 4, "--layers"), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(resolve_indices({-4}, 4, "--layers"), (std::vector<int64_t>{0}));
  for (const std::vector<int64_t>& bad : {std::vector<int64_t>{4}, {-5}, {1, -3}}) EXPECT_THROW(resolve_indices(bad, 4, "--layers"), Error);
  try {
    parse_index_list("9", 4, "--heads");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--heads: 9 does not exist (0..3, or -4..-1 counted from the end)");
  }
}
