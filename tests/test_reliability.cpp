// No lost work: inputs never overwritten, run folders never clobbered, one training per folder
// (issue cases reproduced as tests; each failed before the fix).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "train/checkpoint.h"
#include "io/hdf5.h"
#include "test_util.h"
#include "train/config.h"
#include "train/run_folder.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

std::string root() { return fs::path(PERFORMER_TEST_DATA).parent_path().parent_path().string(); }


std::string tiny_train(const std::string& dir, const std::string& extra = "") {
  return "train --config " + root() + "/configs/tiny.yaml --set output.dir=" + dir + " --set data.train=" +
         data_path("real_excerpt.fasta") + " --set train.steps=3 --set eval.every=0 --set runtime.threads=1 " + extra;
}

void expect_one_line_error(const CliRun& r, const std::string& fragment) {
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
}

}  // namespace

TEST(Reliability, PrepareNeverOverwritesItsInputOrAForeignFile) {
  TempDir dir;
  const std::string input = dir.file("a.fasta");
  fs::copy_file(data_path("real_excerpt.fasta"), input);
  const std::string before = read_text(input);
  // --out is the input itself, or a link to it.
  expect_one_line_error(run_performer("prepare -q --input " + input + " --out " + input), "is also an input");
  fs::create_symlink(input, dir.file("link.h5"));
  expect_one_line_error(run_performer("prepare -q --input " + input + " --out " + dir.file("link.h5")), "is also an input");
  EXPECT_EQ(read_text(input), before) << "the input must be untouched";
  // An existing file that is not a corpus is replaced only with --force.
  write_file(dir.file("notes.txt"), "my notes\n");
  expect_one_line_error(run_performer("prepare -q --input " + input + " --out " + dir.file("notes.txt")),
                        "is not a performer corpus");
  EXPECT_EQ(read_text(dir.file("notes.txt")), "my notes\n");
  EXPECT_EQ(run_performer("prepare -q --input " + input + " --out " + dir.file("notes.txt") + " --force").status, 0);
  // An existing corpus is simply rebuilt.
  EXPECT_EQ(run_performer("prepare -q --input " + input + " --out " + dir.file("c.h5")).status, 0);
  EXPECT_EQ(run_performer("prepare -q --input " + input + " --out " + dir.file("c.h5")).status, 0);
  // NaN fractions are refused.
  expect_one_line_error(run_performer("prepare -q --input " + input + " --out " + dir.file("d.h5") + " --valid-frac nan"),
                        "--valid-frac");
}

TEST(Reliability, TrainRefusesAFolderHoldingARunUnlessResumeOrOverwrite) {
  TempDir dir;
  const std::string run = dir.file("run");
  ASSERT_EQ(run_performer(tiny_train(run)).status, 0);
  const std::string metrics = read_text(run + "/metrics.csv"), best = read_text(run + "/best.h5");
  ASSERT_FALSE(metrics.empty());
  // A second plain run is refused and changes nothing.
  expect_one_line_error(run_performer(tiny_train(run)), "--resume auto");
  EXPECT_EQ(read_text(run + "/metrics.csv"), metrics);
  EXPECT_EQ(read_text(run + "/best.h5"), best);
  // --resume auto continues it (more steps), --overwrite starts over with the old files kept aside.
  CliRun more = run_performer(tiny_train(run, "--resume auto --set train.steps=5"));
  ASSERT_EQ(more.status, 0) << more.out;
  const std::string continued = read_text(run + "/metrics.csv");
  EXPECT_EQ(std::count(continued.begin(), continued.end(), '\n'), 6) << "header and steps 1-5";
  CliRun over = run_performer(tiny_train(run, "--overwrite"));
  ASSERT_EQ(over.status, 0) << over.out;
  std::vector<fs::path> previous;
  for (const auto& e : fs::directory_iterator(run))
    if (e.is_directory() && e.path().filename().string().rfind("previous-", 0) == 0) previous.push_back(e.path());
  ASSERT_EQ(previous.size(), 1u);
  EXPECT_EQ(read_text((previous[0] / "metrics.csv").string()), continued);
  EXPECT_TRUE(fs::exists(previous[0] / "best.h5"));
  const std::string fresh = read_text(run + "/metrics.csv");
  EXPECT_EQ(std::count(fresh.begin(), fresh.end(), '\n'), 4) << "header and steps 1-3";
}

TEST(Reliability, FailedStartLeavesTheRunFolderAsItWas) {
  TempDir dir;
  const std::string run = dir.file("run");
  ASSERT_EQ(run_performer(tiny_train(run)).status, 0);
  const std::string config = read_text(run + "/config.yaml"), log = read_text(run + "/train.log");
  // A missing data file, and a resume from a checkpoint that does not exist: refused before writing.
  CliRun missing = run_performer(tiny_train(run, "--resume auto --set data.train=" + dir.file("missing.fasta")));
  expect_one_line_error(missing, "missing.fasta");
  CliRun bad_resume = run_performer(tiny_train(run, "--resume " + dir.file("nope.h5") + " --set train.steps=9"));
  expect_one_line_error(bad_resume, "nope.h5");
  EXPECT_EQ(read_text(run + "/config.yaml"), config) << "the resume command printed by the run must keep working";
  EXPECT_EQ(read_text(run + "/train.log"), log);
  EXPECT_EQ(run_performer("train --config " + run + "/config.yaml --resume auto").status, 0);
}

TEST(Reliability, OneTrainingPerRunFolder) {
  TempDir dir;
  const std::string run = dir.file("run");
  fs::create_directories(run);
  {
    RunFolderLock held(run);  // this process holds the folder, as a running training would
    CliRun second = run_performer(tiny_train(run));
    expect_one_line_error(second, "another training is running in this folder (pid " + std::to_string(::getpid()) + ")");
    EXPECT_FALSE(fs::exists(run + "/metrics.csv"));
    EXPECT_THROW(RunFolderLock again(run), std::exception);
  }
  // Released with its holder (the kernel releases it on kill -9 too): the folder is usable again.
  EXPECT_EQ(run_performer(tiny_train(run)).status, 0);
}

namespace {

// Flips one byte in the middle of the stored chunk of dataset `name` (a checkpoint's weights).
void flip_byte_in_dataset(const std::string& file, const std::string& name) {
  haddr_t addr = 0;
  hsize_t size = 0;
  {
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    ASSERT_GE(d, 0);
    hsize_t origin[2] = {0, 0};
    unsigned mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(d, origin, &mask, &addr, &size), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_GT(size, 16u);
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(addr + size / 2));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  io.seekp(static_cast<std::streamoff>(addr + size / 2));
  io.write(&c, 1);
}

std::string ckpt(const std::string& run, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "/ckpt-%09d.h5", step);
  return run + name;
}

}  // namespace

TEST(Reliability, CorruptOrNonFiniteCheckpointIsSkippedForThePreviousOne) {
  TempDir dir;
  const std::string run = dir.file("run");
  const std::string base = tiny_train(run, "--set train.steps=20 --set output.checkpoint_every=10 --set output.keep_last=2");
  ASSERT_EQ(run_performer(base).status, 0);
  ASSERT_TRUE(fs::exists(ckpt(run, 10)) && fs::exists(ckpt(run, 20)));
  // Changed bytes inside the weights: the checksum makes the read fail, naming file and tensor.
  flip_byte_in_dataset(ckpt(run, 20), "model/layers.0.ff1.weight");
  CliRun eval = run_performer("eval --checkpoint " + ckpt(run, 20) + " --input " + data_path("real_excerpt.fasta"));
  expect_one_line_error(eval, "layers.0.ff1.weight");
  // --resume auto falls back to step 10 with a warning and trains on to 30; the damaged file is not used.
  CliRun resumed = run_performer(tiny_train(run, "--resume auto --set train.steps=30 --set output.checkpoint_every=10"
                                                 " --set output.keep_last=2"));
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("warning:"), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("resumed from " + ckpt(run, 10)), std::string::npos) << resumed.out;
  // A checkpoint holding NaN weights is skipped the same way, and the one resumed from survives rotation.
  {
    hid_t f = H5Fopen(ckpt(run, 30).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "model/lm_bias", H5P_DEFAULT);
    std::vector<float> nan(33, std::nanf(""));
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, nan.data()), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  CliRun again = run_performer(tiny_train(run, "--resume auto --set train.steps=50 --set output.checkpoint_every=10"
                                              " --set output.keep_last=1"));
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find("NaN"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("resumed from"), std::string::npos) << again.out;
  EXPECT_TRUE(fs::exists(ckpt(run, 50)));
  // keep_last = 1, yet the checkpoint it resumed from (step 20, the newest that loaded) is still there.
  EXPECT_TRUE(fs::exists(ckpt(run, 20))) << again.out;
}

TEST(Reliability, CsvFilesSurviveKillNineAndResume) {
  // kill -9 right after the first checkpoint, then --resume auto: metrics.csv has its header first, then
  // steps 1..N exactly once, no blank line.
  TempDir dir;
  const std::string run = dir.file("run");
  const std::string cmd = std::string(PERFORMER_BINARY) + " " +
                          tiny_train(run, "--set train.steps=400 --set output.checkpoint_every=5 --set output.log_every=100") +
                          " > " + dir.file("out.txt") + " 2>&1 & echo $!";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  int pid = 0;
  ASSERT_EQ(std::fscanf(p, "%d", &pid), 1);
  ::pclose(p);
  for (int i = 0; i < 600 && !fs::exists(ckpt(run, 5)); ++i) ::usleep(20000);
  ASSERT_TRUE(fs::exists(ckpt(run, 5)));
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) ::usleep(20000);
  const std::string killed = read_text(run + "/metrics.csv");
  EXPECT_EQ(killed.rfind("step,tokens_seen,", 0), 0u) << "header on disk before the first row: " << killed;
  CliRun resumed = run_performer(tiny_train(run, "--resume auto --set train.steps=12 --set output.checkpoint_every=5"));
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  std::ifstream in(run + "/metrics.csv");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("step,tokens_seen,", 0), 0u);
  int expected = 1;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty()) << "blank line";
    EXPECT_EQ(std::stoi(line.substr(0, line.find(','))), expected++) << line;
  }
  EXPECT_EQ(expected, 13);
}

TEST(Reliability, StaleTemporariesOfDeadProcessesAreRemoved) {
  TempDir dir;
  const std::string run = dir.file("run");
  fs::create_directories(run);
  // A pid that is not running (a reaped child) and this process's own pid.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  write_file(run + "/ckpt-000000005.h5.tmp-" + std::to_string(child), "partial");
  write_file(run + "/ckpt-000000005.h5.tmp-" + std::to_string(::getpid()), "ours");
  ASSERT_EQ(run_performer(tiny_train(run)).status, 0);
  EXPECT_FALSE(fs::exists(run + "/ckpt-000000005.h5.tmp-" + std::to_string(child)));
  EXPECT_TRUE(fs::exists(run + "/ckpt-000000005.h5.tmp-" + std::to_string(::getpid())));
}

TEST(Reliability, DiskFullIsOneErrorLineAndExitOneNotACrash) {
  // A 128 KB tmpfs (needs root and mount; skipped elsewhere): prepare runs out of space writing the corpus.
  // It used to print the right message and then crash in HDF5's exit handler (exit 139).
  TempDir dir;
  const std::string mnt = dir.file("small");
  fs::create_directories(mnt);
  if (::geteuid() != 0 || std::system(("mount -t tmpfs -o size=128k tmpfs " + mnt + " 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here";
  CliRun r = run_performer("prepare -q --input " + data_path("trembl_600.fasta.gz") + " --out " + mnt + "/c.h5");
  CliRun t = run_performer(tiny_train(mnt + "/run"));
  std::vector<std::string> left;
  for (const auto& e : fs::recursive_directory_iterator(mnt))
    if (e.is_regular_file() && e.path().filename() != ".lock") left.push_back(e.path().string());
  const int umounted = std::system(("umount " + mnt).c_str());  // cleanup: its status does not decide the test
  (void)umounted;
  expect_one_line_error(r, "disk full");
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(t, "disk full");
  EXPECT_EQ(t.status, 1);
  EXPECT_TRUE(left.empty()) << "half-written files left: " << left.front();
}

TEST(Reliability, StandardInputPipesAndFifosWork) {
  // The reader used to rewind after sniffing the gzip magic, so pipes failed; now it reads strictly forward.
  TempDir dir;
  const std::string bin = PERFORMER_BINARY;
  auto sh = [](const std::string& cmd) { return std::system(("bash -c '" + cmd + "' > /dev/null 2>&1").c_str()); };
  EXPECT_EQ(sh("cat " + data_path("real_excerpt.fasta") + " | " + bin + " prepare -q --input - --out " + dir.file("a.h5")), 0);
  EXPECT_EQ(sh("gzip -c " + data_path("real_excerpt.fasta") + " | " + bin + " prepare -q --input /dev/stdin --out " +
               dir.file("b.h5")),
            0);
  EXPECT_EQ(sh(bin + " prepare -q --input <(zcat " + data_path("trembl_600.fasta.gz") + ") --out " + dir.file("c.h5")), 0);
  CliRun a = run_performer("info " + dir.file("a.h5")), b = run_performer("info " + dir.file("b.h5"));
  EXPECT_NE(a.out.find("sequences: 60 "), std::string::npos) << a.out;
  EXPECT_NE(b.out.find("sequences: 60 "), std::string::npos) << b.out;
  EXPECT_NE(run_performer("info " + dir.file("c.h5")).out.find("sequences: 600 "), std::string::npos);
  // A FIFO nobody writes to: Ctrl-C ends the wait with one error line instead of hanging.
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string cmd = bin + " prepare -q --input " + fifo + " --out " + dir.file("d.h5") + " > " + dir.file("fifo.txt") +
                          " 2>&1 & echo $!";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  int pid = 0;
  ASSERT_EQ(std::fscanf(p, "%d", &pid), 1);
  ::pclose(p);
  // Signal only once prepare catches SIGINT (bit 2 of SigCgt in /proc/<pid>/status): under load the
  // binary's start-up can take longer than any fixed wait. And only once the pid runs the binary: between
  // the shell's fork and its exec, the pid is still the shell, whose SIGINT handling is not prepare's.
  auto catches_sigint = [pid, bin] {
    std::error_code ec;
    const auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
    if (ec || !fs::equivalent(exe, bin, ec)) return 0ull;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (SIGINT - 1)) & 1;
    return 0ull;
  };
  for (int i = 0; i < 400 && !catches_sigint(); ++i) ::usleep(50000);
  // Ctrl-C, repeated every second as a user would while it waits (a signal that lands between the handler's
  // installation and the open is taken by the check before the open; this one interrupts the wait).
  bool ended = false;
  for (int i = 0; i < 200 && !ended; ++i) {
    if (i % 20 == 0) ::kill(pid, SIGINT);
    ::usleep(50000);
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    bool zombie = false;  // exited, not yet reaped by whoever adopted it
    while (std::getline(status, line))
      if (line.rfind("State:", 0) == 0) zombie = line.find('Z') != std::string::npos;
    ended = ::kill(pid, 0) != 0 || zombie;
  }
  if (!ended) ::kill(pid, SIGKILL);
  EXPECT_TRUE(ended) << "prepare kept waiting on the FIFO after SIGINT";
  EXPECT_NE(read_text(dir.file("fifo.txt")).find("error: "), std::string::npos) << read_text(dir.file("fifo.txt"));
  EXPECT_FALSE(fs::exists(dir.file("d.h5")));
}

TEST(Reliability, TrainRefusesAModelThatCannotFitBeforeAllocating) {
  // A plausible but oversized model (7.8 GB predicted) under a 6 GB address-space limit: refused at once
  // with the figure, nothing written; a model that fits starts under the same limit.
  TempDir dir;
  const std::string run = dir.file("run");
  const std::string limited = "bash -c 'ulimit -v 6000000; " + std::string(PERFORMER_BINARY) + " ";
  auto under_limit = [&](const std::string& args) { return run_command(limited + args + "' 2>&1"); };
  const auto big = under_limit(tiny_train(run, "--set model.d_model=4096 --set model.d_ff=16384"));
  expect_one_line_error(big, "needs about 7.8 GB of memory");
  EXPECT_NE(big.out.find("machine has 6.1 GB"), std::string::npos) << big.out;
  EXPECT_FALSE(fs::exists(run));
  const auto ok = under_limit(tiny_train(run, "--set train.steps=1"));
  EXPECT_EQ(ok.status, 0) << ok.out;
}

TEST(Reliability, AttentionExportStatesTheMemoryOfHugeMapsAndWritesNothing) {
  TempDir dir;
  RunConfig c = load_config(root() + "/configs/tiny.yaml", {"output.dir=" + dir.path(), "model.max_len=100002"});
  Encoder model(c.model);
  TrainState st;
  st.config_yaml = config_to_yaml(c);
  const std::string ckpt = dir.file("ckpt.h5");
  save_checkpoint(ckpt, model, nullptr, st);
  std::string residues;
  for (int i = 0; i < 100000; ++i) residues.push_back("ACDEFGHIKLMNPQRSTVWY"[(i * 7 + i / 3) % 20]);
  write_file(dir.file("long.fasta"), ">SHORT1\nMKTAYIAKQRQISFVKSHFSRQ\n>LONG1\n" + residues + "\n");
  const std::string out = dir.file("att");
  const std::string base = "attention --checkpoint " + ckpt + " --input " + dir.file("long.fasta") + " --blosum " +
                           root() + "/data/BLOSUM62 --device cpu --out " + out;
  // 2 layers x 4 heads x 100,002^2 x 4 bytes x (4 x 2 + 4): 1.9 TB, on no machine we run on.
  const auto r = run_performer(base);
  expect_one_line_error(r, "LONG1 has 100000 residues; its attention maps need about 1.9 TB");
  EXPECT_NE(r.out.find("use --max-residues"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
  // --max-residues crops every protein: the export then runs and stores the cropped sequence.
  const auto cropped = run_performer(base + " --max-residues 150 --export 2");
  ASSERT_EQ(cropped.status, 0) << cropped.out;
  h5::Handle f = h5::open_file(out + "/attention.h5");
  h5::Handle g = h5::open_group(f, "proteins/LONG1");
  EXPECT_EQ(h5::read_attr_string(g, "sequence"), residues.substr(0, 150));
  EXPECT_TRUE(fs::exists(out + "/png/LONG1_layer0_head0.png"));
}

// ------------------------------------------------------------------------------------- second probe

TEST(Reliability, ACheckpointDeclaringAHugeDatasetIsDamagedAndResumeAutoSkipsIt) {
  TempDir dir;
  const std::string run = dir.file("run");
  const std::string base = tiny_train(run, "--set train.steps=20 --set output.checkpoint_every=10 --set output.keep_last=2");
  ASSERT_EQ(run_performer(base).status, 0);
  // rng/torch_cpu replaced by a chunked dataset declared 8 GiB and never written.
  {
    hid_t f = H5Fopen(ckpt(run, 20).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "rng/torch_cpu", H5P_DEFAULT), 0);
    hsize_t dims[1] = {hsize_t(1) << 33}, chunk[1] = {hsize_t(1) << 20};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    hid_t d = H5Dcreate2(f, "rng/torch_cpu", H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(f);
  }
  const std::string damaged = dir.file("damaged.h5");  // the resumed run writes a new step-20 checkpoint
  fs::copy_file(ckpt(run, 20), damaged);
  const CliRun resumed = run_performer(tiny_train(run, "--resume auto --set train.steps=25 --set output.checkpoint_every=10"));
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("warning: " + ckpt(run, 20) + ": 'rng/torch_cpu' has shape [8589934592]"), std::string::npos)
      << resumed.out;
  EXPECT_NE(resumed.out.find("resumed from " + ckpt(run, 10)), std::string::npos) << resumed.out;
  // Named by --resume, it is one error line naming the file and the dataset (after the line of the corpus
  // prepared for the new run folder).
  const CliRun named = run_performer(tiny_train(dir.file("other"), "--resume " + damaged));
  EXPECT_EQ(named.status, 1) << named.out;
  EXPECT_NE(named.out.find("\nerror: " + damaged + ": 'rng/torch_cpu' has shape [8589934592] but this LibTorch's "
                           "generator state has"), std::string::npos) << named.out;
}

TEST(Reliability, AnInvisibleCharacterInAConfigKeyIsShownEscaped) {
  TempDir dir;
  const std::string yaml = dir.file("c.yaml");
  write_file(yaml, "train:\n  lr\xE2\x80\x8B: 1.0e-3\n");
  const CliRun r = run_performer("config --check " + yaml);
  expect_one_line_error(r, "unknown key 'train.lr\\u200b' (it holds invisible or non-ASCII characters, shown escaped; "
                           "did you mean 'train.lr'?)");
  // In a section name, and a non-breaking space in a --set key, likewise.
  write_file(yaml, "tr\xC2\xA0" "ain:\n  lr: 1.0e-3\n");
  expect_one_line_error(run_performer("config --check " + yaml), "unknown section 'tr\\u00a0ain'");
  expect_one_line_error(run_performer("config --check " + root() + "/configs/tiny.yaml --set train.\xEF\xBB\xBFlr=1"),
                        "unknown key 'train.\\ufefflr'");
}

TEST(Reliability, SighupCheckpointsAndTheResumeHintWorksFromAnywhere) {
  // A closed terminal (SIGHUP) stops training as SIGTERM does: checkpoint, exit 130. The hint names the run
  // folder's config.yaml, which holds the --set overrides and absolute paths; followed from another folder
  // it continues the same run. Here the run folder is given relative to the working folder.
  TempDir dir;
  const std::string run = dir.file("run");
  const std::string cmd = "cd " + dir.path() + " && " + std::string(PERFORMER_BINARY) + " " +
                          tiny_train("run", "--set train.steps=100000 --set output.log_every=1 --set train.lr=7e-4") +
                          " > " + dir.file("out.txt") + " 2>&1; echo $? > " + dir.file("status.txt");
  FILE* p = ::popen(("bash -c '" + cmd + "' & echo $!").c_str(), "r");
  ASSERT_NE(p, nullptr);
  int shell = 0;
  ASSERT_EQ(std::fscanf(p, "%d", &shell), 1);
  ::pclose(p);
  auto rows = [&] {
    const std::string m = read_text(run + "/metrics.csv");
    return static_cast<int>(std::count(m.begin(), m.end(), '\n')) - 1;
  };
  for (int i = 0; i < 3000 && rows() < 3; ++i) ::usleep(20000);
  ASSERT_GE(rows(), 3) << read_text(dir.file("out.txt"));
  ASSERT_EQ(std::system(("pkill -HUP -P " + std::to_string(shell)).c_str()), 0);
  for (int i = 0; i < 3000 && read_text(dir.file("status.txt")).empty(); ++i) ::usleep(20000);
  EXPECT_EQ(read_text(dir.file("status.txt")), "130\n") << read_text(dir.file("out.txt"));
  const std::string out = read_text(dir.file("out.txt"));
  const int stopped = rows();
  EXPECT_NE(out.find("interrupted at step " + std::to_string(stopped)), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(ckpt(run, stopped))) << out;
  const std::string hint = "resume with: performer train --config " + run + "/config.yaml --resume auto";
  EXPECT_NE(out.find(hint), std::string::npos) << out;
  // Followed from the filesystem root, with a step budget added: the same run (lr 7e-4) goes on.
  const CliRun resumed = run_command("cd / && " + std::string(PERFORMER_BINARY) + " train --config " + run +
                                     "/config.yaml --resume auto --set train.steps=" + std::to_string(stopped + 2) + " 2>&1");
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_EQ(rows(), stopped + 2);
  EXPECT_NE(read_text(run + "/config.yaml").find("0.0007\n"), std::string::npos) << read_text(run + "/config.yaml");
}

TEST(Reliability, ResumeAutoWithNothingToResumeSuggestsOnlyWhatCanWork) {
  TempDir dir;
  const std::string run = dir.file("run");
  ASSERT_EQ(run_performer(tiny_train(run, "--set train.steps=10 --set output.checkpoint_every=5")).status, 0);
  // Every checkpoint damaged: named, and --overwrite suggested, not --resume auto again.
  for (const std::string& f : {ckpt(run, 5), ckpt(run, 10)}) flip_byte_in_dataset(f, "model/layers.0.ff1.weight");
  CliRun r = run_performer(tiny_train(run, "--resume auto --set train.steps=12"));
  EXPECT_NE(r.status, 0) << r.out;
  const std::string last = r.out.substr(r.out.rfind("error: "));
  EXPECT_NE(last.find("none of its checkpoints loads completely (" + ckpt(run, 10) + ", " + ckpt(run, 5)), std::string::npos)
      << last;
  EXPECT_NE(last.find("--overwrite"), std::string::npos) << last;
  EXPECT_EQ(last.find("--resume auto"), std::string::npos) << last;
  // No checkpoint at all (only metrics): the same, without files to name.
  for (const std::string& f : {ckpt(run, 5), ckpt(run, 10)}) fs::remove(f);
  r = run_performer(tiny_train(run, "--resume auto --set train.steps=12"));
  expect_one_line_error(r, "holds a run but no checkpoint (ckpt-*.h5) to continue it from; start over with --overwrite");
}
