// The project's CSV files (metrics.csv, eval.csv, results.csv, bench --csv, the attention study's tables):
// one header row naming the columns, then rows. A cell holding a comma, a double quote or a line break is
// quoted, its quotes doubled (RFC 4180). Files are read back by column name, never by position, so a
// column added later does not shift the others. Written by hand (about 60 lines of logic): Debian's libcsv
// (C, parsing through callbacks) and libfccp (reading only, the column count fixed at compile time) would
// each cover half of it, for one more package in both toolchains and the Dockerfile.
#pragma once
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace performer {

// One row being built, cell by cell: numbers as std::ostream prints them (6 significant digits), text quoted
// when it must be.
class CsvRow {
 public:
  template <class T>
  CsvRow& operator<<(const T& value) {
    std::ostringstream s;
    s << value;
    return add(s.str());
  }
  CsvRow& operator<<(const std::string& text) { return add(text); }
  CsvRow& operator<<(const char* text) { return add(text); }
  CsvRow& operator<<(bool value) { return add(value ? "1" : "0"); }
  CsvRow& empty() { return add(""); }  // a cell with no value
  const std::vector<std::string>& cells() const { return cells_; }

 private:
  CsvRow& add(const std::string& cell) {
    cells_.push_back(cell);
    return *this;
  }
  std::vector<std::string> cells_;
};

// A CSV file written row by row, each row flushed to the operating system as it is written (a process
// killed later loses none). With `append`, rows go after those of an existing non-empty file; a new or
// empty file gets the header first. Errors are Error naming the file.
class CsvWriter {
 public:
  CsvWriter() = default;  // writes nothing
  CsvWriter(const std::string& path, const std::vector<std::string>& columns, bool append = false);
  void write(const CsvRow& row);
  bool is_open() const { return out_.is_open(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  size_t columns_ = 0;
  std::ofstream out_;
};

// "a,b,\"c,d\"" for the cells a, b and c,d.
std::string csv_line(const std::vector<std::string>& cells);
// The cells of one line (quotes removed, doubled quotes undone); throws Error on an unterminated quote.
std::vector<std::string> csv_cells(const std::string& line);

// A whole CSV file, read by column name. Errors (missing file, a row whose number of cells differs from the
// header's, a missing column, a cell that is not a number) are Error naming the file and line.
class CsvTable {
 public:
  static CsvTable read(const std::string& path);
  size_t rows() const { return rows_.size(); }
  bool has(const std::string& column) const;
  const std::string& text(size_t row, const std::string& column) const;
  double number(size_t row, const std::string& column) const;  // "" is NaN
  int64_t integer(size_t row, const std::string& column) const;
  const std::vector<std::string>& columns() const { return header_; }

 private:
  size_t index(const std::string& column) const;
  [[noreturn]] void fail(size_t row, const std::string& what) const;
  std::string path_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<long long> lines_;  // the file line of each row
};

}  // namespace performer
