// Streaming reader of protein sequence records from FASTA or UniProt flat files (.dat: ID/AC/DE/SQ
// blocks ending in "//"), plain or gzip. One pass, one record in memory at a time.
//
// Sequence lines may be split over many lines, use CRLF, lower case, carry a trailing '*' (stop), and
// contain blanks and digits (as in flat files); those are removed. Blank lines are ignored. Headers give
// the accession: "sp|ACC|NAME ...", "tr|ACC|NAME ...", "ACC|..." or else the first word.
//
// Bad input is an Error naming the file and line: a sequence line before any header, a header with no
// sequence (or skipped and counted, by policy), letters outside the alphabet (by policy: error, replace
// by X and count, or skip the record), control or non-ASCII bytes in sequence data (binary garbage),
// an unterminated UniProt record, a length that disagrees with the SQ line, a record longer than the
// reader keeps (ReaderOptions::max_residues), a line longer than the line reader holds (io/line_reader.h).
//
// Alignment gaps ('-' and '.', as in aligned FASTA and a3m) are, by policy, removed (the default: each record
// becomes its protein's own residues; a3m's lower-case insertions are residues of the protein too),
// refused, or kept as the alphabet's gap tokens. Records with gaps are counted; warn_about() says so.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/line_reader.h"

namespace performer {

enum class UnknownResiduePolicy { kError, kMapToX, kSkipRecord };
enum class EmptyRecordPolicy { kError, kSkip };
enum class GapPolicy { kStrip, kError, kKeep };
enum class SequenceFormat { kFasta, kUniProt };

const std::vector<std::string>& unknown_policy_names();  // "error", "map", "skip"
UnknownResiduePolicy parse_unknown_policy(const std::string& s);
const std::vector<std::string>& empty_policy_names();    // "error", "skip"
EmptyRecordPolicy parse_empty_policy(const std::string& s);
const std::vector<std::string>& gap_policy_names();      // "strip", "error", "keep"
GapPolicy parse_gap_policy(const std::string& s);

// The most residues one record may have unless the caller says otherwise: ~270 times the longest known
// protein (titin, ~36,000), so that a corrupt or hostile input (a gzip bomb of one endless record) ends with
// an error after 10 MB instead of exhausting memory.
constexpr int64_t kMaxRecordResidues = 10'000'000;

struct ReaderOptions {
  UnknownResiduePolicy unknown = UnknownResiduePolicy::kMapToX;
  EmptyRecordPolicy empty = EmptyRecordPolicy::kError;
  GapPolicy gaps = GapPolicy::kStrip;
  // Residues kept of one record. A longer record is an error, or with keep_long_records it is returned
  // with only its first max_residues residues and SequenceRecord::length counting them all (prepare
  // --max-len drops such records while reading them, in bounded memory).
  int64_t max_residues = kMaxRecordResidues;
  bool keep_long_records = false;
  // How the user changes a policy, for the hints of errors: "--empty skip" (the commands' options), or for
  // train's data.train, by preparing the corpus with `performer prepare`.
  bool policies_are_options = true;
};

struct SequenceRecord {
  std::string accession;
  std::string description;  // rest of the FASTA header, or the first DE line of a UniProt entry
  std::string residues;     // upper-case letters of the alphabet only (at most ReaderOptions::max_residues)
  int64_t length = 0;       // residues the record has (more than residues.size() only for a long record)
  long long line = 0;       // line of the header (FASTA) or ID line (UniProt)
  long long index = 0;      // 1-based record number in the file
};

struct ReaderCounts {
  long long records = 0;         // records returned
  long long skipped_empty = 0;   // headers without a sequence, skipped by policy
  long long skipped_unknown = 0; // records skipped for letters outside the alphabet
  long long mapped_to_x = 0;     // letters replaced by X
  long long records_with_x_mapping = 0;
  long long likely_nucleotide = 0;  // records of >= 20 letters, >= 90% of them A/C/G/T/U/N
  long long records_with_gaps = 0;  // records holding '-' or '.' (removed, refused or kept by GapPolicy)
  long long gaps = 0;               // gap characters in them
};

// Warnings (util/log.h) about what a file's records suggest: nucleotides instead of proteins, or an
// alignment (gaps) read as sequences.
void warn_about(const std::string& path, const ReaderCounts& counts, GapPolicy gaps);

class SequenceReader {
 public:
  explicit SequenceReader(const std::string& path, ReaderOptions options = {});

  // Reads the next record into rec; false at the end of the file.
  bool next(SequenceRecord& rec);

  SequenceFormat format() const { return format_; }
  const ReaderCounts& counts() const { return counts_; }
  const LineReader& lines() const { return lines_; }

 private:
  // What is known of a UniProt record while its lines before "//" are read.
  struct UniProtEntry {
    bool have_ac = false;     // the first AC line gave the accession
    bool in_sq = false;       // past the SQ line: sequence lines follow
    bool skip = false;        // skipped by the unknown-residue policy
    long long declared = -1;  // length from the SQ line, -1 when it gives none
  };

  bool next_fasta(SequenceRecord& rec);
  bool next_uniprot(SequenceRecord& rec);
  // Resets rec and the per-record state for the record whose header is pending.
  void begin_record(SequenceRecord& rec);
  // UniProt: reads up to the next "ID" line (only blank lines may come between records); false at the end.
  bool find_uniprot_id();
  // UniProt: the entry name from the pending ID line (the accession until an AC line is seen).
  void read_uniprot_id(SequenceRecord& rec);
  // UniProt: one line of a record before its sequence (AC, DE and SQ are read; others are ignored).
  void read_uniprot_line(std::string_view line, SequenceRecord& rec, UniProtEntry& e);
  // UniProt: the length an SQ line declares ("SQ   SEQUENCE   367 AA; ..."), or -1 when it gives none.
  long long declared_length(std::string_view sq) const;
  // Appends the residues of one sequence line; returns false when the record must be skipped.
  bool append_residues(std::string_view line, SequenceRecord& rec, bool& skip);
  // Applies the unknown-residue policy to one byte; false when the record must be skipped.
  bool unknown_residue(unsigned char b, SequenceRecord& rec, bool& skip);
  // Applies the gap policy to a '-' or '.'.
  void gap(unsigned char b, SequenceRecord& rec);
  // Appends one residue letter, within ReaderOptions::max_residues.
  void push(SequenceRecord& rec, char residue);
  // How a policy is changed, for an error's hint: "--empty skip", or the same through `performer prepare`.
  std::string hint(const std::string& option) const;
  // Applies the empty/unknown policies once a record is complete; false if it is to be skipped.
  bool finish(SequenceRecord& rec, bool skip);
  [[noreturn]] void fail(long long line, const std::string& what) const;

  LineReader lines_;
  ReaderOptions options_;
  SequenceFormat format_ = SequenceFormat::kFasta;
  ReaderCounts counts_;
  std::string pending_header_;  // FASTA: header line already read for the next record
  long long pending_line_ = 0;
  bool have_pending_ = false;
  bool at_end_ = false;
  long long record_index_ = 0;
  long long mapped_in_record_ = 0;
  long long gaps_in_record_ = 0;
  bool star_seen_ = false;
};

// Accession from a FASTA header (without '>'): sp|ACC|NAME, tr|ACC|NAME, ACC|..., or the first word.
std::string parse_accession(std::string_view header);

}  // namespace performer
