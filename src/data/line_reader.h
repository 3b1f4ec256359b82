// Reads a text file line by line, plain or gzip (decided by the magic bytes 1f 8b, not by the name),
// through one reusable buffer: memory is bounded by the longest line, whatever the file size.
// Errors (missing file, directory, empty file, truncated or corrupt gzip) are thrown as performer::Error
// naming the file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace performer {

class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Next line without its '\n' (and without a trailing '\r', or a UTF-8 byte-order mark at the start of
  // the file); false at end of file. The view stays valid until the next call.
  bool next(std::string_view& line);

  const std::string& path() const { return path_; }
  long long line_number() const { return line_no_; }
  bool gzip() const { return gz_ != nullptr; }
  // Bytes of the file consumed so far (compressed bytes for gzip) and the file's size: for progress.
  uint64_t bytes_consumed() const;
  uint64_t file_size() const { return file_size_; }

 private:
  void skip_bom(std::string_view& line) const;
  // Appends more data after the unread part; false at end of input.
  bool fill();

  std::string path_;
  FILE* file_ = nullptr;
  void* gz_ = nullptr;  // gzFile
  uint64_t file_size_ = 0;
  std::string buf_;
  size_t begin_ = 0, end_ = 0;  // unread data is buf_[begin_, end_)
  bool eof_ = false;
  long long line_no_ = 0;
};

}  // namespace performer
