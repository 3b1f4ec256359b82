#include "io/line_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace performer {

namespace {
constexpr size_t kChunk = 1 << 20;  // bytes read per call
}

LineReader::LineReader(const std::string& path) : path_(path == "-" ? "<stdin>" : path) {
  if (path == "-") {
    fd_ = ::dup(STDIN_FILENO);
    if (fd_ < 0) throw Error("<stdin>: cannot read standard input: " + std::string(std::strerror(errno)));
  } else {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error(path + ": cannot open: " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected a FASTA or UniProt file");
    // A FIFO blocks here until a writer opens it; a signal (Ctrl-C) interrupts the wait.
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0 && errno == EINTR) throw Error(path + ": interrupted while waiting for data");
    if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) file_size_ = static_cast<uint64_t>(st.st_size);
  buf_.resize(2 * kChunk);
  // Sniff the first bytes as they arrive: no seeking back, so a pipe works like a file.
  size_t got = 0;
  while (got < 2) {
    const size_t n = read_raw(&buf_[got], kChunk - got);
    if (n == 0) break;
    got += n;
  }
  if (got == 0) {
    ::close(fd_);
    fd_ = -1;
    throw Error(path_ + ": file is empty");
  }
  if (got >= 2 && static_cast<unsigned char>(buf_[0]) == 0x1f && static_cast<unsigned char>(buf_[1]) == 0x8b) {
    gzip_ = true;
    raw_.assign(buf_.data(), got);  // the compressed bytes read so far are inflated first
    raw_.resize(kChunk);
    raw_end_ = got;
    auto* zs = new z_stream{};
    if (inflateInit2(zs, 16 + MAX_WBITS) != Z_OK) {
      delete zs;
      ::close(fd_);
      fd_ = -1;
      throw Error(path_ + ": cannot start gzip decompression");
    }
    zs_ = zs;
  } else {
    end_ = got;  // plain text: what was read is already data
  }
}

LineReader::~LineReader() {
  if (zs_) {
    inflateEnd(static_cast<z_stream*>(zs_));
    delete static_cast<z_stream*>(zs_);
  }
  if (fd_ >= 0) ::close(fd_);
}

size_t LineReader::read_raw(char* out, size_t n) {
  for (;;) {
    const ssize_t r = ::read(fd_, out, n);
    if (r >= 0) {
      consumed_ += static_cast<uint64_t>(r);
      return static_cast<size_t>(r);
    }
    if (errno != EINTR) throw Error(path_ + ": read error: " + std::strerror(errno));
  }
}

uint64_t LineReader::bytes_consumed() const { return consumed_; }

bool LineReader::fill() {
  if (eof_) return false;
  // Move the unread tail to the front, grow when a single line is longer than the buffer.
  if (begin_ > 0) {
    std::memmove(&buf_[0], &buf_[begin_], end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < kChunk) buf_.resize(buf_.size() * 2);
  const size_t room = std::min(buf_.size() - end_, size_t(1) << 30);
  size_t n = 0;
  if (!gzip_) {
    n = read_raw(&buf_[end_], room);
  } else {
    auto* zs = static_cast<z_stream*>(zs_);
    while (n == 0) {
      if (raw_begin_ == raw_end_ && !raw_eof_) {
        raw_begin_ = 0;
        raw_end_ = read_raw(&raw_[0], raw_.size());
        raw_eof_ = raw_end_ == 0;
      }
      if (raw_begin_ == raw_end_) {  // no more compressed input
        if (!member_done_)
          throw Error(path_ + ": gzip stream is truncated (unexpected end of file) near line " +
                      std::to_string(line_no_ + 1));
        break;
      }
      if (member_done_) {  // another gzip member follows the one that ended
        inflateReset(zs);
        member_done_ = false;
      }
      zs->next_in = reinterpret_cast<Bytef*>(&raw_[raw_begin_]);
      zs->avail_in = static_cast<uInt>(raw_end_ - raw_begin_);
      zs->next_out = reinterpret_cast<Bytef*>(&buf_[end_]);
      zs->avail_out = static_cast<uInt>(room);
      const int r = inflate(zs, Z_NO_FLUSH);
      raw_begin_ = raw_end_ - zs->avail_in;
      n = room - zs->avail_out;
      if (r == Z_STREAM_END) {
        member_done_ = true;
      } else if (r != Z_OK && !(r == Z_BUF_ERROR && n > 0)) {
        throw Error(path_ + ": corrupt gzip data: " + std::string(zs->msg ? zs->msg : "inflate failed") +
                    " near line " + std::to_string(line_no_ + 1));
      }
    }
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += n;
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
    if (offset > kMaxLineBytes)
      throw Error(path_ + ":" + std::to_string(line_no_ + 1) + ": a line longer than " +
                  std::to_string(kMaxLineBytes >> 20) + " MiB: not a FASTA or UniProt text file");
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
