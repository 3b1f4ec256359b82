// libFuzzer target for the sequence reader (data/sequence_reader.h, io/line_reader.h): any bytes, read
// as a file, must give records or a performer::Error, never a crash, a hang, a sanitizer report or another
// exception. Built and run by scripts/fuzz-reader.sh (clang, -fsanitize=fuzzer,address,undefined).
//
// The first input byte picks the reader's options and whether the rest is fed gzip-compressed (so that
// the inflate path sees well-formed gzip around arbitrary content; raw bytes starting with the gzip magic
// exercise it with damaged streams). Every returned record is checked: residues are letters of the
// alphabet, the accession is not empty, record numbers count up.
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "data/alphabet.h"
#include "data/sequence_reader.h"
#include "util/error.h"

namespace {

// gzip (RFC 1952) of `data`, one member.
std::string gzip(const uint8_t* data, size_t size) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, size) + 32, '\0');
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;
  const std::string bytes = (mode & 4) ? gzip(data, size) : std::string(reinterpret_cast<const char*>(data), size);
  // The reader takes a path: the input lives in an anonymous in-memory file, opened by its /proc name.
  const int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  if (!bytes.empty() && write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) std::abort();
  performer::ReaderOptions options;
  options.unknown = (mode & 1) ? performer::UnknownResiduePolicy::kSkipRecord : performer::UnknownResiduePolicy::kMapToX;
  if (mode & 8) options.unknown = performer::UnknownResiduePolicy::kError;
  options.empty = (mode & 2) ? performer::EmptyRecordPolicy::kSkip : performer::EmptyRecordPolicy::kError;
  try {
    performer::SequenceReader reader("/proc/self/fd/" + std::to_string(fd), options);
    performer::SequenceRecord rec;
    long long previous = 0;
    while (reader.next(rec)) {
      check(!rec.accession.empty());
      check(!rec.residues.empty());
      check(rec.index > previous);
      previous = rec.index;
      for (char c : rec.residues) check(performer::Alphabet::kResidues.find(c) != std::string_view::npos);
    }
  } catch (const performer::Error&) {
    // bad input, reported as it should be
  }
  close(fd);
  return 0;
}
