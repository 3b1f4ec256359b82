// Helpers shared by the tests: paths to the committed data, temporary folders, reading whole files.
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/sequence_reader.h"

namespace performer::testing {

inline std::string data_path(const std::string& name) { return std::string(PERFORMER_TEST_DATA) + "/" + name; }

// A fresh temporary folder, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "performer-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : throw std::runtime_error("mkdtemp failed");
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline std::vector<SequenceRecord> read_all(const std::string& path, ReaderOptions options = {}) {
  SequenceReader reader(path, options);
  std::vector<SequenceRecord> out;
  SequenceRecord rec;
  while (reader.next(rec)) out.push_back(rec);
  return out;
}

}  // namespace performer::testing
