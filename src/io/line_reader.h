// Reads a text file line by line, plain or gzip (decided by the magic bytes 1f 8b, not by the name),
// through one reusable buffer: memory is bounded by the longest line, whatever the file size, and a line
// longer than kMaxLineBytes is an error (a binary file, or a gzip bomb of one endless line, cannot exhaust
// memory). The input is
// read strictly forward (the magic bytes are sniffed from the first block read, never by seeking back), so
// pipes, FIFOs, process substitution and standard input ("-") work like files; gzip is inflated with zlib's
// stream API, members one after another.
// Errors (missing file, directory, empty file, truncated or corrupt gzip) are thrown as performer::Error
// naming the file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace performer {

// Longer than one line of any FASTA or UniProt file: a whole protein of the reader's record cap
// (data/sequence_reader.h, 10 M residues) on one line, three times over.
constexpr size_t kMaxLineBytes = size_t(32) << 20;

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
  bool gzip() const { return gzip_; }
  // Bytes of the file consumed so far (compressed bytes for gzip) and the file's size: for progress.
  uint64_t bytes_consumed() const;
  uint64_t file_size() const { return file_size_; }

 private:
  void skip_bom(std::string_view& line) const;
  // Appends more data after the unread part; false at end of input.
  bool fill();

  // Reads raw bytes from the descriptor (retrying on EINTR); 0 at end of input.
  size_t read_raw(char* out, size_t n);

  std::string path_;
  int fd_ = -1;
  bool gzip_ = false;
  void* zs_ = nullptr;        // z_stream while inflating
  std::string raw_;           // compressed input not yet inflated: raw_[raw_begin_, raw_end_)
  size_t raw_begin_ = 0, raw_end_ = 0;
  bool raw_eof_ = false;
  bool member_done_ = false;  // the last gzip member ended (Z_STREAM_END) with no input after it yet
  uint64_t consumed_ = 0;     // raw bytes read from the descriptor
  uint64_t file_size_ = 0;
  std::string buf_;
  size_t begin_ = 0, end_ = 0;  // unread data is buf_[begin_, end_)
  bool eof_ = false;
  long long line_no_ = 0;
};

}  // namespace performer
