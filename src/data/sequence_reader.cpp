#include "data/sequence_reader.h"

#include <array>
#include <cstdio>
#include <limits>

#include "data/alphabet.h"
#include "util/error.h"
#include "util/log.h"
#include "util/names.h"

namespace performer {

namespace {

// What a byte of a sequence line is.
enum CharClass : uint8_t { kResidue, kIgnore, kStop, kGap, kUnknown, kBinary };

struct CharTable {
  std::array<CharClass, 256> cls;
  std::array<char, 256> upper;
  CharTable() {
    for (int b = 0; b < 256; ++b) {
      char c = static_cast<char>(b);
      upper[b] = (b >= 'a' && b <= 'z') ? static_cast<char>(b - 32) : c;
      if (b < 0x20 || b >= 0x7f)
        cls[b] = kBinary;
      else if (Alphabet::residue_id(upper[b]) >= 0)
        cls[b] = kResidue;
      else if (b == ' ' || (b >= '0' && b <= '9'))
        cls[b] = kIgnore;
      else if (b == '*')
        cls[b] = kStop;
      else
        cls[b] = kUnknown;
    }
    cls['\t'] = kIgnore;
    cls['-'] = cls['.'] = kGap;  // letters of the alphabet too (kept by GapPolicy::kKeep)
  }
};
const CharTable& chars() {
  static const CharTable t;
  return t;
}

bool blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t') return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Control bytes in a header mean the file is not text.
long first_control_byte(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    if ((b < 0x20 && b != '\t') || b == 0x7f) return static_cast<long>(i);
  }
  return -1;
}

std::string byte_repr(unsigned char b) {
  char buf[16];
  if (b >= 0x20 && b < 0x7f)
    std::snprintf(buf, sizeof buf, "'%c'", b);
  else
    std::snprintf(buf, sizeof buf, "byte 0x%02x", b);
  return buf;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

const std::vector<std::string>& unknown_policy_names() {
  static const std::vector<std::string> names{"error", "map", "skip"};
  return names;
}

const std::vector<std::string>& gap_policy_names() {
  static const std::vector<std::string> names{"strip", "error", "keep"};
  return names;
}

GapPolicy parse_gap_policy(const std::string& s) { return parse_name<GapPolicy>(s, gap_policy_names(), "gap policy"); }

void warn_about(const std::string& path, const ReaderCounts& rc, GapPolicy gaps) {
  if (rc.likely_nucleotide > 0)
    warn(path + ": " + std::to_string(rc.likely_nucleotide) + " of " + std::to_string(rc.records) +
         " records are at least 90% A/C/G/T/U/N: nucleotides, not proteins?");
  if (rc.records_with_gaps > 0)
    warn(path + ": " + std::to_string(rc.records_with_gaps) + " records hold gap characters ('-' or '.'; " +
         std::to_string(rc.gaps) + " in all): an alignment (aligned FASTA or a3m)? " +
         (gaps == GapPolicy::kKeep ? std::string("The gaps were kept as tokens (--gaps keep)")
                                   : std::string("The gaps were removed, so each record is its protein's own residues "
                                                 "(a3m's lower-case insertions included); --gaps error refuses such input")));
}

UnknownResiduePolicy parse_unknown_policy(const std::string& s) {
  return parse_name<UnknownResiduePolicy>(s, unknown_policy_names(), "unknown-residue policy");
}

const std::vector<std::string>& empty_policy_names() {
  static const std::vector<std::string> names{"error", "skip"};
  return names;
}

EmptyRecordPolicy parse_empty_policy(const std::string& s) {
  return parse_name<EmptyRecordPolicy>(s, empty_policy_names(), "empty-record policy");
}

std::string parse_accession(std::string_view header) {
  header = trim(header);
  size_t end = 0;
  while (end < header.size() && header[end] != ' ' && header[end] != '\t') ++end;
  std::string_view word = header.substr(0, end);
  size_t bar = word.find('|');
  if (bar == std::string_view::npos) return std::string(word);
  std::string_view db = word.substr(0, bar);
  std::string_view rest = word.substr(bar + 1);
  if (db == "sp" || db == "tr") {
    std::string_view acc = rest.substr(0, rest.find('|'));
    if (!acc.empty()) return std::string(acc);
  }
  return std::string(db.empty() ? word : db);
}

SequenceReader::SequenceReader(const std::string& path, ReaderOptions options)
    : lines_(path), options_(options) {
  std::string_view line;
  while (lines_.next(line)) {
    if (blank(line)) continue;
    long bad = first_control_byte(line);
    if (bad >= 0)
      fail(lines_.line_number(), "binary data (" + byte_repr(static_cast<unsigned char>(line[bad])) +
                                     "): not a FASTA or UniProt text file");
    if (line[0] == '>') {
      format_ = SequenceFormat::kFasta;
    } else if (starts_with(line, "ID ")) {
      format_ = SequenceFormat::kUniProt;
    } else {
      fail(lines_.line_number(),
           "sequence data before any header (expected a '>' FASTA header or a UniProt 'ID' line)");
    }
    pending_header_.assign(line);
    pending_line_ = lines_.line_number();
    have_pending_ = true;
    return;
  }
  throw Error(path + ": no sequence records (the file holds only blank lines)");
}

void SequenceReader::fail(long long line, const std::string& what) const {
  throw Error(where(lines_.path(), line) + ": " + what);
}

bool SequenceReader::next(SequenceRecord& rec) {
  for (;;) {
    bool got = format_ == SequenceFormat::kFasta ? next_fasta(rec) : next_uniprot(rec);
    if (!got) return false;
    if (!rec.accession.empty()) {  // skipped records come back with an empty accession
      ++counts_.records;
      return true;
    }
  }
}

std::string SequenceReader::hint(const std::string& option) const {
  if (options_.policies_are_options) return option;
  return "`performer prepare " + option + "` (then set data.train to the corpus it writes)";
}

void SequenceReader::push(SequenceRecord& rec, char residue) {
  if (++rec.length <= options_.max_residues) {
    rec.residues.push_back(residue);
  } else if (!options_.keep_long_records) {
    fail(lines_.line_number(), "record " + std::to_string(rec.index) + " (" + rec.accession + ", from line " +
                                   std::to_string(rec.line) + ") has more than " + std::to_string(options_.max_residues) +
                                   " residues: not a protein (a corrupt or concatenated file?)");
  }
}

void SequenceReader::gap(unsigned char b, SequenceRecord& rec) {
  switch (options_.gaps) {
    case GapPolicy::kKeep: push(rec, static_cast<char>(b)); break;
    case GapPolicy::kStrip: break;
    case GapPolicy::kError:
      fail(lines_.line_number(), "gap character " + byte_repr(b) + " in record " + std::to_string(rec.index) + " (" +
                                     rec.accession + "): an alignment (aligned FASTA or a3m)? " +
                                     hint("--gaps strip") + " reads each record as its protein's own residues");
  }
  ++gaps_in_record_;
}

bool SequenceReader::unknown_residue(unsigned char b, SequenceRecord& rec, bool& skip) {
  switch (options_.unknown) {
    case UnknownResiduePolicy::kError:
      fail(lines_.line_number(), "character " + byte_repr(b) + " in record " + std::to_string(rec.index) + " (" +
                                     rec.accession + ") is not in the protein alphabet (" + hint("--unknown map") +
                                     " or skip accepts it)");
    case UnknownResiduePolicy::kMapToX:
      push(rec, 'X');
      ++mapped_in_record_;
      return true;
    case UnknownResiduePolicy::kSkipRecord:
      break;
  }
  skip = true;
  return false;
}

bool SequenceReader::append_residues(std::string_view line, SequenceRecord& rec, bool& skip) {
  const CharTable& t = chars();
  for (char ch : line) {
    auto b = static_cast<unsigned char>(ch);
    CharClass c = t.cls[b];
    if (c == kResidue) {
      if (star_seen_) {  // a '*' followed by more residues was not a terminal stop
        star_seen_ = false;
        if (!unknown_residue('*', rec, skip)) return false;
      }
      push(rec, t.upper[b]);
    } else if (c == kIgnore) {
      continue;
    } else if (c == kGap) {
      gap(b, rec);
    } else if (c == kStop) {
      if (star_seen_ && !unknown_residue('*', rec, skip)) return false;
      star_seen_ = true;
    } else if (c == kBinary) {
      fail(lines_.line_number(), "binary data (" + byte_repr(b) + ") in the sequence of record " +
                                     std::to_string(rec.index) + " (" + rec.accession + ")");
    } else if (!unknown_residue(b, rec, skip)) {
      return false;
    }
  }
  return true;
}

bool SequenceReader::finish(SequenceRecord& rec, bool skip) {
  if (skip) {
    ++counts_.skipped_unknown;
    rec.accession.clear();
    return true;
  }
  if (gaps_in_record_ > 0) {
    ++counts_.records_with_gaps;
    counts_.gaps += gaps_in_record_;
  }
  if (rec.length == 0) {
    if (options_.empty == EmptyRecordPolicy::kError)
      fail(rec.line, "record " + std::to_string(rec.index) + " (" + rec.accession + ") has no sequence" +
                         (gaps_in_record_ > 0 ? " (only gaps)" : "") + " (" + hint("--empty skip") +
                         " skips such records)");
    ++counts_.skipped_empty;
    rec.accession.clear();
    return true;
  }
  if (mapped_in_record_ > 0) {
    counts_.mapped_to_x += mapped_in_record_;
    ++counts_.records_with_x_mapping;
  }
  if (rec.residues.size() >= 20) {
    size_t nucleotide_letters = 0;
    for (char c : rec.residues) nucleotide_letters += c == 'A' || c == 'C' || c == 'G' || c == 'T' || c == 'U' || c == 'N';
    if (nucleotide_letters * 10 >= rec.residues.size() * 9) ++counts_.likely_nucleotide;
  }
  return true;
}

bool SequenceReader::next_fasta(SequenceRecord& rec) {
  if (!have_pending_) return false;
  begin_record(rec);
  std::string_view header(pending_header_);
  header.remove_prefix(1);  // '>'
  // PIR/NBRF (">P1;ID", then a title line, then the sequence ending in '*') would read its title as
  // sequence: refused by name.
  static constexpr std::string_view kPirTypes[] = {"P1;", "F1;", "DL;", "DC;", "RL;", "RC;", "N1;", "N3;", "XX;"};
  for (std::string_view t : kPirTypes)
    if (starts_with(header, t))
      fail(rec.line, "PIR/NBRF header '>" + std::string(t) +
                         "...': this is not FASTA; convert the file to FASTA (for example EMBOSS seqret) first");
  rec.accession = parse_accession(header);
  if (rec.accession.empty()) fail(rec.line, "FASTA header without an identifier");
  {
    std::string_view h = trim(header);
    size_t sp = h.find_first_of(" \t");
    rec.description = sp == std::string_view::npos ? std::string() : std::string(trim(h.substr(sp)));
  }
  have_pending_ = false;
  bool skip = false;
  std::string_view line;
  while (lines_.next(line)) {
    if (!line.empty() && line[0] == '>') {
      long bad = first_control_byte(line);
      if (bad >= 0)
        fail(lines_.line_number(), "binary data (" + byte_repr(static_cast<unsigned char>(line[bad])) +
                                       ") in a FASTA header");
      pending_header_.assign(line);
      pending_line_ = lines_.line_number();
      have_pending_ = true;
      break;
    }
    if (!skip) append_residues(line, rec, skip);
  }
  return finish(rec, skip);
}

bool SequenceReader::find_uniprot_id() {
  std::string_view line;
  for (;;) {
    if (!lines_.next(line)) return false;
    if (blank(line)) continue;
    if (!starts_with(line, "ID ")) {
      long bad = first_control_byte(line);
      if (bad >= 0)
        fail(lines_.line_number(),
             "binary data (" + byte_repr(static_cast<unsigned char>(line[bad])) + ") between records");
      fail(lines_.line_number(), "expected an 'ID' line to start a UniProt record");
    }
    pending_header_.assign(line);
    pending_line_ = lines_.line_number();
    return true;
  }
}

void SequenceReader::begin_record(SequenceRecord& rec) {
  rec.residues.clear();
  rec.length = 0;
  rec.index = ++record_index_;
  rec.line = pending_line_;
  mapped_in_record_ = 0;
  gaps_in_record_ = 0;
  star_seen_ = false;
}

void SequenceReader::read_uniprot_id(SequenceRecord& rec) {
  std::string_view id = trim(std::string_view(pending_header_).substr(2));
  rec.accession = std::string(id.substr(0, id.find_first_of(" \t")));  // entry name until AC is seen
  // An EMBL/GenBank-style nucleotide entry gives its length in BP ("... 1859 BP."), UniProt in AA.
  if (id.size() >= 3 && id.substr(id.size() - 3) == "BP.")
    fail(rec.line, "nucleotide entry " + rec.accession +
                       " (its ID line gives the length in BP): performer reads protein sequences only");
}

long long SequenceReader::declared_length(std::string_view sq) const {
  size_t pos = sq.find("SEQUENCE");
  if (pos == std::string_view::npos) return -1;
  long long declared = 0;
  bool digits = false;
  for (char c : sq.substr(pos + 8)) {
    if (c >= '0' && c <= '9') {
      if (declared > (std::numeric_limits<long long>::max() - (c - '0')) / 10)
        fail(lines_.line_number(), "SQ line declares an impossible length (" + std::string(trim(sq)) + ")");
      declared = declared * 10 + (c - '0');
      digits = true;
    } else if (digits) {
      break;
    }
  }
  return digits ? declared : -1;
}

void SequenceReader::read_uniprot_line(std::string_view line, SequenceRecord& rec, UniProtEntry& e) {
  long bad = first_control_byte(line);
  if (bad >= 0)
    fail(lines_.line_number(), "binary data (" + byte_repr(static_cast<unsigned char>(line[bad])) +
                                   ") in record " + std::to_string(rec.index));
  if (starts_with(line, "ID ")) fail(lines_.line_number(), "'ID' line inside a record: missing '//' before it");
  if (starts_with(line, "AC ") && !e.have_ac) {
    std::string_view ac = trim(line.substr(2));
    ac = ac.substr(0, ac.find_first_of("; \t"));
    if (!ac.empty()) {
      rec.accession = std::string(ac);
      e.have_ac = true;
    }
  } else if (starts_with(line, "DE ") && rec.description.empty()) {
    rec.description = std::string(trim(line.substr(2)));
  } else if (starts_with(line, "SQ ")) {
    e.in_sq = true;
    std::string_view sq = line.substr(2);
    if (sq.find(" BP;") != std::string_view::npos)
      fail(lines_.line_number(), "nucleotide sequence (SQ line counts BP) in record " + rec.accession +
                                     ": performer reads protein sequences only");
    e.declared = declared_length(sq);
  }
}

bool SequenceReader::next_uniprot(SequenceRecord& rec) {
  if (!have_pending_ && !find_uniprot_id()) return false;
  have_pending_ = false;
  begin_record(rec);
  rec.description.clear();
  read_uniprot_id(rec);
  UniProtEntry e;
  std::string_view line;
  while (lines_.next(line)) {
    if (starts_with(line, "//")) {
      if (e.declared >= 0 && !e.skip && rec.length != e.declared)
        fail(lines_.line_number(), "record " + std::to_string(rec.index) + " (" + rec.accession + ") has " +
                                       std::to_string(rec.length) + " residues but its SQ line says " +
                                       std::to_string(e.declared));
      return finish(rec, e.skip);
    }
    if (e.in_sq) {
      if (!e.skip) append_residues(line, rec, e.skip);
    } else {
      read_uniprot_line(line, rec, e);
    }
  }
  fail(rec.line, "record " + std::to_string(rec.index) + " (" + rec.accession +
                     ") is not terminated by '//' (truncated file?)");
}

}  // namespace performer
