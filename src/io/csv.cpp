#include "io/csv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "util/error.h"
#include "util/names.h"

namespace performer {

namespace {

std::string quoted(const std::string& cell) {
  if (cell.find_first_of(",\"\n\r") == std::string::npos) return cell;
  std::string out = "\"";
  for (char c : cell) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string csv_line(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + quoted(cells[i]);
  return line;
}

std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> cells(1);
  bool in_quotes = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cells.back() += '"';
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        cells.back() += c;
      }
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  if (in_quotes) throw Error("unterminated quote");
  return cells;
}

CsvWriter::CsvWriter(const std::string& path, const std::vector<std::string>& columns, bool append)
    : path_(path), columns_(columns.size()) {
  std::error_code ec;
  const bool has_rows = append && std::filesystem::exists(path, ec) && std::filesystem::file_size(path, ec) > 0;
  out_.open(path, has_rows ? std::ios::app : std::ios::trunc);
  if (!out_) throw Error(path + ": cannot write");
  if (!has_rows) out_ << csv_line(columns) << '\n';
  if (!out_.flush()) throw Error(path + ": cannot write (disk full?)");
}

void CsvWriter::write(const CsvRow& row) {
  if (!out_.is_open()) return;
  if (row.cells().size() != columns_)
    throw Error(path_ + ": a row of " + std::to_string(row.cells().size()) + " cells for " + std::to_string(columns_) +
                " columns");
  out_ << csv_line(row.cells()) << '\n';
  if (!out_.flush()) throw Error(path_ + ": cannot write (disk full?)");
}

CsvTable CsvTable::read(const std::string& path) {
  CsvTable t;
  t.path_ = path;
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read");
  std::string line, record;
  long long number = 0, first = 0;  // the file line of the record being read, and of its start
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (record.empty()) first = number;
    record += line;
    // A quoted cell may hold line breaks: an odd count of quotes so far means the record goes on.
    if (std::count(record.begin(), record.end(), '"') % 2 == 1) {
      record += '\n';
      continue;
    }
    if (record.empty()) continue;
    std::vector<std::string> cells;
    try {
      cells = csv_cells(record);
    } catch (const Error& e) {
      throw Error(where(path, first) + ": " + e.what());
    }
    record.clear();
    if (t.header_.empty()) {
      t.header_ = std::move(cells);
      continue;
    }
    if (cells.size() != t.header_.size())
      throw Error(where(path, first) + ": " + std::to_string(cells.size()) + " cells, the header names " +
                  std::to_string(t.header_.size()) + " columns");
    t.rows_.push_back(std::move(cells));
    t.lines_.push_back(first);
  }
  if (!record.empty()) throw Error(where(path, first) + ": unterminated quote");
  if (t.header_.empty()) throw Error(path + ": empty (no header row)");
  return t;
}

bool CsvTable::has(const std::string& column) const {
  for (const std::string& c : header_)
    if (c == column) return true;
  return false;
}

size_t CsvTable::index(const std::string& column) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == column) return i;
  throw Error(path_ + ": no column '" + column + "' (columns: " + join(header_, ", ") + ")");
}

void CsvTable::fail(size_t row, const std::string& what) const { throw Error(where(path_, lines_.at(row)) + ": " + what); }

const std::string& CsvTable::text(size_t row, const std::string& column) const { return rows_.at(row)[index(column)]; }

double CsvTable::number(size_t row, const std::string& column) const {
  const std::string& cell = text(row, column);
  if (cell.empty()) return std::nan("");
  char* end = nullptr;
  const double v = std::strtod(cell.c_str(), &end);
  if (end != cell.c_str() + cell.size()) fail(row, column + " '" + cell + "' is not a number");
  return v;
}

int64_t CsvTable::integer(size_t row, const std::string& column) const {
  const std::string& cell = text(row, column);
  char* end = nullptr;
  const long long v = std::strtoll(cell.c_str(), &end, 10);
  if (cell.empty() || end != cell.c_str() + cell.size()) fail(row, column + " '" + cell + "' is not a whole number");
  return v;
}

}  // namespace performer
