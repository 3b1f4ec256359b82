#include "data/line_reader.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace performer {

namespace {
constexpr size_t kChunk = 1 << 20;  // bytes read per call
}

LineReader::LineReader(const std::string& path) : path_(path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(path + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected a FASTA or UniProt file");
  file_size_ = static_cast<uint64_t>(st.st_size);
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw Error(path + ": cannot open: " + std::strerror(errno));
  unsigned char magic[2] = {0, 0};
  size_t got = std::fread(magic, 1, 2, file_);
  if (got == 0 && S_ISREG(st.st_mode)) {
    std::fclose(file_);
    file_ = nullptr;
    throw Error(path + ": file is empty");
  }
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    std::fclose(file_);
    file_ = nullptr;
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz) throw Error(path + ": cannot open gzip stream");
    gzbuffer(gz, 1 << 18);
    gz_ = gz;
  } else {
    std::rewind(file_);
  }
  buf_.resize(2 * kChunk);
}

LineReader::~LineReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
  if (file_) std::fclose(file_);
}

uint64_t LineReader::bytes_consumed() const {
  if (gz_) return static_cast<uint64_t>(gzoffset(static_cast<gzFile>(gz_)));
  long pos = file_ ? std::ftell(file_) : 0;
  return pos < 0 ? 0 : static_cast<uint64_t>(pos);
}

bool LineReader::fill() {
  if (eof_) return false;
  // Move the unread tail to the front, grow when a single line is longer than the buffer.
  if (begin_ > 0) {
    std::memmove(&buf_[0], &buf_[begin_], end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < kChunk) buf_.resize(buf_.size() * 2);
  size_t room = buf_.size() - end_;
  long long n;
  if (gz_) {
    auto* gz = static_cast<gzFile>(gz_);
    int r = gzread(gz, &buf_[end_], static_cast<unsigned>(std::min(room, size_t(1) << 30)));
    int errnum = Z_OK;
    const char* msg = gzerror(gz, &errnum);
    if (r < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
      std::string what = (errnum == Z_BUF_ERROR) ? "gzip stream is truncated (unexpected end of file)"
                                                 : std::string("corrupt gzip data: ") + msg;
      throw Error(path_ + ": " + what + " near line " + std::to_string(line_no_ + 1));
    }
    n = r;
  } else {
    n = static_cast<long long>(std::fread(&buf_[end_], 1, room, file_));
    if (n == 0 && std::ferror(file_)) throw Error(path_ + ": read error: " + std::strerror(errno));
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(n);
  return true;
}

// A UTF-8 byte-order mark (EF BB BF) that some editors put at the start of a text file is not data.
void LineReader::skip_bom(std::string_view& line) const {
  if (line_no_ == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.remove_prefix(3);
}

bool LineReader::next(std::string_view& line) {
  size_t scanned = begin_;
  for (;;) {
    const char* base = buf_.data();
    const void* nl = std::memchr(base + scanned, '\n', end_ - scanned);
    if (nl) {
      size_t pos = static_cast<const char*>(nl) - base;
      size_t len = pos - begin_;
      if (len > 0 && base[pos - 1] == '\r') --len;
      line = std::string_view(base + begin_, len);
      begin_ = pos + 1;
      ++line_no_;
      skip_bom(line);
      return true;
    }
    size_t offset = end_ - begin_;  // already scanned, relative to begin_
    if (!fill()) {
      if (begin_ == end_) return false;
      // Last line without a trailing newline.
      size_t len = end_ - begin_;
      if (len > 0 && buf_[begin_ + len - 1] == '\r') --len;
      line = std::string_view(buf_.data() + begin_, len);
      begin_ = end_;
      ++line_no_;
      skip_bom(line);
      return true;
    }
    scanned = begin_ + offset;
  }
}

}  // namespace performer
