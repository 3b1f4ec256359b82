// PDB and mmCIF are parsed by hand, not with gemmi: gemmi 0.5.7 (Debian) was measured to read a coordinate
// field "abcdef" silently as 0, and a contact map from such a file would be wrong without a word.
#include "io/structure.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include "io/line_reader.h"
#include "util/error.h"

namespace performer {

namespace {

// ---------------------------------------------------------------------------------------------------------
// Residue names

constexpr std::pair<std::string_view, char> kStandardResidues[] = {
    {"ALA", 'A'}, {"ARG", 'R'}, {"ASN", 'N'}, {"ASP", 'D'}, {"CYS", 'C'}, {"GLN", 'Q'}, {"GLU", 'E'},
    {"GLY", 'G'}, {"HIS", 'H'}, {"ILE", 'I'}, {"LEU", 'L'}, {"LYS", 'K'}, {"MET", 'M'}, {"PHE", 'F'},
    {"PRO", 'P'}, {"SER", 'S'}, {"THR", 'T'}, {"TRP", 'W'}, {"TYR", 'Y'}, {"VAL", 'V'},
};

// Modified amino acids and the one-letter code of their parent (the PDB Chemical Component Dictionary's
// mon_nstd_parent_comp_id): these come as HETATM records inside a chain and are part of its sequence.
constexpr std::pair<std::string_view, char> kModifiedResidues[] = {
    // selenium, phosphorylation, sulfation
    {"MSE", 'M'}, {"SEC", 'C'}, {"SEP", 'S'}, {"TPO", 'T'}, {"PTR", 'Y'}, {"TYS", 'Y'}, {"NEP", 'H'},
    {"HIP", 'H'},
    // lysine: methylation, acetylation, carbamylation, cofactors
    {"MLY", 'K'}, {"M3L", 'K'}, {"MLZ", 'K'}, {"ALY", 'K'}, {"KCX", 'K'}, {"LLP", 'K'}, {"LYZ", 'K'},
    {"PYL", 'K'},
    // cysteine: oxidation, alkylation
    {"CSO", 'C'}, {"CME", 'C'}, {"OCS", 'C'}, {"CSD", 'C'}, {"CAS", 'C'}, {"CSX", 'C'}, {"SMC", 'C'},
    {"CSS", 'C'}, {"YCM", 'C'}, {"SCH", 'C'}, {"CMT", 'C'}, {"SNC", 'C'},
    // other side-chain modifications
    {"HYP", 'P'}, {"FME", 'M'}, {"MHO", 'M'}, {"HIC", 'H'}, {"SAC", 'S'}, {"CGU", 'E'}, {"AGM", 'R'},
    {"MEN", 'N'}, {"IYR", 'Y'}, {"TYI", 'Y'}, {"PHI", 'F'}, {"BMT", 'T'},
    // non-proteinogenic analogues and N-methylated residues
    {"ABA", 'A'}, {"AIB", 'A'}, {"NLE", 'L'}, {"MLE", 'L'}, {"MVA", 'V'}, {"SAR", 'G'},
    // D-amino acids
    {"DAL", 'A'}, {"DAR", 'R'}, {"DSG", 'N'}, {"DAS", 'D'}, {"DCY", 'C'}, {"DGN", 'Q'}, {"DGL", 'E'},
    {"DHI", 'H'}, {"DIL", 'I'}, {"DLE", 'L'}, {"DLY", 'K'}, {"MED", 'M'}, {"DPN", 'F'}, {"DPR", 'P'},
    {"DSN", 'S'}, {"DTH", 'T'}, {"DTR", 'W'}, {"DTY", 'Y'}, {"DVA", 'V'},
};

constexpr std::string_view kUnknownResidue = "UNK";  // an amino acid of unknown type, code 'X'

char table_code(std::string_view name, const std::pair<std::string_view, char>* begin,
                const std::pair<std::string_view, char>* end) {
  for (auto* p = begin; p != end; ++p)
    if (p->first == name) return p->second;
  return '\0';
}

char standard_code(std::string_view name) {
  return table_code(name, std::begin(kStandardResidues), std::end(kStandardResidues));
}

// A one-letter code as mmCIF's pdbx_seq_one_letter_code_can writes it, in the 20-letter alphabet: U
// (selenocysteine) and O (pyrrolysine) become their parents, like SEC and PYL above.
char alphabet_letter(char c) {
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (c == 'U') return 'C';
  if (c == 'O') return 'K';
  for (const auto& [name, code] : kStandardResidues)
    if (code == c) return c;
  return 'X';
}

// ---------------------------------------------------------------------------------------------------------
// Small text helpers

constexpr std::string_view kSpaces = " \t";

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kSpaces);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpaces) - b + 1);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && lower(s.substr(0, prefix.size())) == prefix;
}

// A whole integer ("-12"; surrounding blanks allowed, nothing else).
bool parse_int(std::string_view text, int64_t& out) {
  text = trim(text);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

// A whole finite decimal number ("-1.5", "2e3"); locale-independent.
bool parse_double(std::string_view text, double& out) {
  text = trim(text);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size() && std::isfinite(out);
}

[[noreturn]] void fail(const std::string& path, long long line, const std::string& what) {
  throw Error(where(path, line) + ": " + what);
}

std::string chain_label(const std::string& id) { return id.empty() ? "'' (blank)" : "'" + id + "'"; }

// ---------------------------------------------------------------------------------------------------------
// Lines with one line of look-back, for telling the format from the first meaningful line.

class Lines {
 public:
  explicit Lines(const std::string& path) : reader_(path) {}
  bool next(std::string_view& line) {
    if (pushed_) {
      pushed_ = false;
      line = pushed_line_;
      return true;
    }
    return reader_.next(line);
  }
  // The line just read is returned again by the next call (line_number() still counts it).
  void push_back(std::string_view line) {
    pushed_line_.assign(line);
    pushed_ = true;
  }
  long long line_number() const { return reader_.line_number(); }
  const std::string& path() const { return reader_.path(); }

 private:
  LineReader reader_;
  std::string pushed_line_;
  bool pushed_ = false;
};

bool is_mmcif(Lines& lines) {
  std::string_view line;
  while (lines.next(line)) {
    const std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    lines.push_back(line);
    return starts_with_nocase(t, "data_");
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Collecting residues from atom records, whatever the format

// What kind of record an atom came from: PDB record name or mmCIF group_PDB; kUnknown when an mmCIF file has
// no group_PDB column (gemmi 0.5.7 writes none).
enum class Group { kAtom, kHetatm, kUnknown };

struct AtomRecord {
  Group group = Group::kAtom;
  std::string_view chain, residue, atom, element;  // element "" when the file does not give it
  char alt = ' ';                                   // alternate location, ' ' when none
  int64_t number = 0;
  char insertion = ' ';
  std::array<double, 3> xyz{};
  std::string_view entity, label_asym;  // mmCIF label_entity_id and label_asym_id; "" for PDB
};

// Whether an atom's residue belongs to the protein chain: ATOM records of amino acids (an unknown name only
// if the residue has a CA, which nucleotides lack), HETATM records of modified amino acids with a known parent
// (a free standard amino acid is a ligand), and, without record kinds, the names in the tables.
enum class Accept { kNo, kYes, kIfCalpha };

Accept accept_residue(Group group, std::string_view name) {
  const bool standard = standard_code(name) != '\0';
  const bool known = amino_acid_code(name) != '\0';
  switch (group) {
    case Group::kAtom: return known ? Accept::kYes : Accept::kIfCalpha;
    case Group::kHetatm: return known && !standard && name != kUnknownResidue ? Accept::kYes : Accept::kNo;
    case Group::kUnknown: return known ? Accept::kYes : Accept::kNo;
  }
  return Accept::kNo;
}

bool is_hydrogen(std::string_view atom, std::string_view element) {
  if (!element.empty()) return element == "H" || element == "D";
  // Without an element column: hydrogen names start with H or D after an optional digit ("1HB"); no heavy
  // atom of an amino acid does.
  const size_t i = atom.find_first_not_of("0123456789");
  return i != std::string_view::npos && (atom[i] == 'H' || atom[i] == 'D');
}

// The atoms a residue's point is made of.
enum AtomSlot { kN, kCA, kC, kCB, kSlots };

int atom_slot(std::string_view atom) {
  if (atom == "N") return kN;
  if (atom == "CA") return kCA;
  if (atom == "C") return kC;
  if (atom == "CB") return kCB;
  return -1;
}

using Vec3 = std::array<double, 3>;

Vec3 sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

// Where the C-beta of an ideal residue sits given its backbone: b = CA - N, c = C - CA, a = b x c, CB =
// kVirtualA a + kVirtualB b + kVirtualC c + CA (the constants of trRosetta's virtual C-beta; on real residues
// it lies within 0.3 A of the C-beta in the file, tests/test_structure.cpp).
constexpr double kVirtualA = -0.58273431, kVirtualB = 0.56802827, kVirtualC = -0.54067466;

Vec3 virtual_cbeta(const Vec3& n, const Vec3& ca, const Vec3& c) {
  const Vec3 b = sub(ca, n), cc = sub(c, ca), a = cross(b, cc);
  Vec3 out{};
  for (int k = 0; k < 3; ++k) out[k] = kVirtualA * a[k] + kVirtualB * b[k] + kVirtualC * cc[k] + ca[k];
  return out;
}

struct ResidueBuild {
  StructureResidue residue;
  char alt = ' ';           // the alternate location kept: the first non-blank one seen
  bool needs_calpha = false;
  std::array<bool, kSlots> have{};
  std::array<Vec3, kSlots> atoms{};
};

struct ChainBuild {
  std::string id;
  std::vector<ResidueBuild> residues;
  std::map<std::pair<int64_t, char>, size_t> index;  // (number, insertion) -> residues
  int64_t atoms = 0;
  std::string entity, label_asym;  // mmCIF: of the chain's first amino-acid record
};

// Sets the residue's point: C-alpha for glycine; C-beta, else the virtual C-beta, for the others.
void place_point(ResidueBuild& r) {
  StructureResidue& res = r.residue;
  res.has_ca = r.have[kCA];
  res.ca = r.atoms[kCA];
  if (res.code == 'G') {
    res.has_point = r.have[kCA];
    res.point = r.atoms[kCA];
  } else if (r.have[kCB]) {
    res.has_point = true;
    res.point = r.atoms[kCB];
  } else if (r.have[kN] && r.have[kCA] && r.have[kC]) {
    res.has_point = true;
    res.point = virtual_cbeta(r.atoms[kN], r.atoms[kCA], r.atoms[kC]);
  }
}

// Groups atom records into residues by (chain, number, insertion code), in order of first appearance.
class ChainCollector {
 public:
  explicit ChainCollector(std::string path) : path_(std::move(path)) {}

  void add(const AtomRecord& a, long long line) {
    if (is_hydrogen(a.atom, a.element)) return;
    const Accept accept = accept_residue(a.group, a.residue);
    if (accept == Accept::kNo) return;
    ChainBuild& chain = chain_for(a.chain);
    ResidueBuild& r = residue_for(chain, a, accept);
    if (r.residue.name != a.residue) return;  // microheterogeneity: the first residue name is kept
    if (a.alt != ' ') {                       // alternate locations: the first id seen is kept
      if (r.alt == ' ') r.alt = a.alt;
      if (a.alt != r.alt) return;
    }
    if (++chain.atoms > kMaxChainAtoms)
      fail(path_, line, "chain " + chain_label(chain.id) + " has more than " + std::to_string(kMaxChainAtoms) +
                            " atom records, expected a protein chain (far fewer)");
    const int slot = atom_slot(a.atom);
    if (slot >= 0 && !r.have[slot]) {  // a repeated atom name: the first is kept
      r.have[slot] = true;
      r.atoms[slot] = a.xyz;
    }
    if (chain.entity.empty() && chain.label_asym.empty()) {
      chain.entity.assign(a.entity);
      chain.label_asym.assign(a.label_asym);
    }
  }

  // The chains with amino acids, their residues with points; residues of unknown name without CA dropped.
  std::vector<ChainBuild> finish() {
    std::vector<ChainBuild> out;
    for (ChainBuild& c : chains_) {
      auto& rs = c.residues;
      const auto not_amino_acid = [](const ResidueBuild& r) { return r.needs_calpha && !r.have[kCA]; };
      rs.erase(std::remove_if(rs.begin(), rs.end(), not_amino_acid), rs.end());
      for (ResidueBuild& r : rs) place_point(r);
      if (!rs.empty()) out.push_back(std::move(c));
    }
    return out;
  }

 private:
  ChainBuild& chain_for(std::string_view id) {
    auto [it, added] = chain_index_.try_emplace(std::string(id), chains_.size());
    if (added) chains_.push_back(ChainBuild{std::string(id), {}, {}, 0, {}, {}});
    return chains_[it->second];
  }

  static ResidueBuild& residue_for(ChainBuild& chain, const AtomRecord& a, Accept accept) {
    auto [it, added] = chain.index.try_emplace({a.number, a.insertion}, chain.residues.size());
    if (added) {
      ResidueBuild r;
      r.residue.name.assign(a.residue);
      const char code = amino_acid_code(a.residue);
      r.residue.code = code ? code : 'X';
      r.residue.number = a.number;
      r.residue.insertion = a.insertion;
      r.residue.hetatm = a.group == Group::kHetatm ||
                         (a.group == Group::kUnknown && !standard_code(a.residue) && a.residue != kUnknownResidue);
      r.needs_calpha = accept == Accept::kIfCalpha;
      chain.residues.push_back(std::move(r));
    }
    return chain.residues[it->second];
  }

  std::string path_;
  std::vector<ChainBuild> chains_;
  std::unordered_map<std::string, size_t> chain_index_;
};

// Chain id -> full sequence, from SEQRES or the mmCIF sequence categories.
using Sequences = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------------------------------------
// PDB: fixed columns (wwPDB format 3.3), counted from 1 as the format's documentation does

constexpr size_t kPdbAtomMinColumns = 54;  // ATOM/HETATM up to the z coordinate
constexpr size_t kPdbSeqresFirstName = 20;

// Columns first..last of a line (1-based, inclusive), cut short where the line ends.
std::string_view columns(std::string_view line, size_t first, size_t last) {
  if (line.size() < first) return {};
  return line.substr(first - 1, std::min(last, line.size()) - first + 1);
}

// The record name, columns 1-6 without trailing blanks ("ATOM", "HETATM", "END").
std::string_view record_name(std::string_view line) {
  std::string_view name = columns(line, 1, 6);
  while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
  return name;
}

char column_char(std::string_view line, size_t col) { return line.size() >= col ? line[col - 1] : ' '; }

double pdb_coordinate(std::string_view line, size_t first, const char* axis, std::string_view record,
                      const std::string& path, long long line_no) {
  const std::string_view field = columns(line, first, first + 7);
  double value = 0;
  if (!parse_double(field, value))
    fail(path, line_no,
         std::string(record) + " record: " + axis + " coordinate '" + std::string(trim(field)) + "' (columns " +
             std::to_string(first) + "-" + std::to_string(first + 7) + ") is not a number");
  return value;
}

AtomRecord parse_pdb_atom(std::string_view line, std::string_view record, const std::string& path,
                          long long line_no) {
  if (line.size() < kPdbAtomMinColumns)
    fail(path, line_no,
         std::string(record) + " record has " + std::to_string(line.size()) + " columns, expected at least " +
             std::to_string(kPdbAtomMinColumns) + " (x, y, z in columns 31-54)");
  AtomRecord a;
  a.group = record == "HETATM" ? Group::kHetatm : Group::kAtom;
  a.atom = trim(columns(line, 13, 16));
  a.alt = column_char(line, 17);
  a.residue = trim(columns(line, 18, 20));
  a.chain = trim(columns(line, 22, 22));
  if (!parse_int(columns(line, 23, 26), a.number))
    fail(path, line_no,
         std::string(record) + " record: residue number '" + std::string(trim(columns(line, 23, 26))) +
             "' (columns 23-26) is not an integer");
  a.insertion = column_char(line, 27);
  a.xyz = {pdb_coordinate(line, 31, "x", record, path, line_no), pdb_coordinate(line, 39, "y", record, path, line_no),
           pdb_coordinate(line, 47, "z", record, path, line_no)};
  a.element = trim(columns(line, 77, 78));
  return a;
}

// SEQRES: chain id in column 12, residue names from column 20, separated by blanks.
void add_seqres(std::string_view line, Sequences& out) {
  std::string& seq = out[std::string(trim(columns(line, 12, 12)))];
  std::string_view rest = line.size() >= kPdbSeqresFirstName ? line.substr(kPdbSeqresFirstName - 1) : "";
  while (!(rest = trim(rest)).empty()) {
    const size_t end = std::min(rest.find_first_of(kSpaces), rest.size());
    const char code = amino_acid_code(rest.substr(0, end));
    seq += code ? code : 'X';
    rest.remove_prefix(end);
  }
}

// Reads atom records of the first model (up to the first ENDMDL, a second MODEL, or END) and SEQRES.
Sequences read_pdb(Lines& lines, ChainCollector& out) {
  Sequences seqres;
  std::string_view line;
  int models = 0;
  while (lines.next(line)) {
    const std::string_view record = record_name(line);
    if (record == "ATOM" || record == "HETATM")
      out.add(parse_pdb_atom(line, record, lines.path(), lines.line_number()), lines.line_number());
    else if (record == "SEQRES")
      add_seqres(line, seqres);
    else if ((record == "MODEL" && ++models > 1) || record == "ENDMDL" || record == "END")
      break;
  }
  return seqres;
}

// ---------------------------------------------------------------------------------------------------------
// mmCIF: tokens

constexpr size_t kMaxTextFieldBytes = size_t(64) << 20;  // a ';' text field longer than this is refused

struct CifToken {
  std::string text;
  long long line = 0;
  bool quoted = false;  // a quoted string or a text field: always a value, never a keyword, name or null
};

bool is_tag(const CifToken& t) { return !t.quoted && !t.text.empty() && t.text.front() == '_'; }
bool is_keyword(const CifToken& t) {
  return !t.quoted && (starts_with_nocase(t.text, "loop_") || starts_with_nocase(t.text, "data_") ||
                       starts_with_nocase(t.text, "save_") || starts_with_nocase(t.text, "global_") ||
                       starts_with_nocase(t.text, "stop_"));
}
bool is_value(const CifToken& t) { return !is_tag(t) && !is_keyword(t); }
// '?' (unknown) and '.' (not applicable), unquoted.
bool is_null(const CifToken& t) { return !t.quoted && (t.text == "?" || t.text == "."); }

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// CIF 1.1 tokens: whitespace-separated words; 'single' or "double" quoted strings, whose closing quote is
// followed by whitespace or the end of the line (so 'it's' is one string); text fields from a line starting
// with ';' to the next line starting with ';'; '#' comments where a token could start.
class CifTokenizer {
 public:
  explicit CifTokenizer(Lines& lines) : lines_(lines) {}

  // The next token without taking it; nullptr at the end of the file.
  const CifToken* peek() {
    if (!has_next_) has_next_ = read(next_);
    return has_next_ ? &next_ : nullptr;
  }
  CifToken take() {
    peek();
    has_next_ = false;
    return std::move(next_);
  }

 private:
  bool next_line() {
    std::string_view line;
    if (!lines_.next(line)) return false;
    line_.assign(line);
    pos_ = 0;
    line_no_ = lines_.line_number();
    at_line_start_ = true;
    return true;
  }

  bool read(CifToken& t) {
    for (;;) {
      if (pos_ >= line_.size() && !next_line()) return false;
      if (at_line_start_ && !line_.empty() && line_.front() == ';') {
        read_text_field(t);
        return true;
      }
      at_line_start_ = false;
      while (pos_ < line_.size() && is_blank(line_[pos_])) ++pos_;
      if (pos_ >= line_.size()) continue;
      if (line_[pos_] == '#') {
        pos_ = line_.size();
        continue;
      }
      t.line = line_no_;
      if (line_[pos_] == '\'' || line_[pos_] == '"') {
        read_quoted(t);
      } else {
        const size_t begin = pos_;
        while (pos_ < line_.size() && !is_blank(line_[pos_])) ++pos_;
        t.text.assign(line_, begin, pos_ - begin);
        t.quoted = false;
      }
      return true;
    }
  }

  void read_quoted(CifToken& t) {
    const char quote = line_[pos_];
    size_t close = line_.find(quote, pos_ + 1);
    while (close != std::string::npos && close + 1 < line_.size() && !is_blank(line_[close + 1]))
      close = line_.find(quote, close + 1);
    if (close == std::string::npos)
      fail(lines_.path(), line_no_,
           "quoted string " + line_.substr(pos_, 20) + (line_.size() - pos_ > 20 ? "..." : "") +
               " is not closed: expected a closing " + quote + " followed by a space or the end of the line");
    t.text.assign(line_, pos_ + 1, close - pos_ - 1);
    t.quoted = true;
    pos_ = close + 1;
  }

  // From a line starting with ';' to the next such line; the text is what lies between the two ';'.
  void read_text_field(CifToken& t) {
    const long long start = line_no_;
    t.text.assign(line_, 1);
    t.line = start;
    t.quoted = true;
    for (;;) {
      if (!next_line())
        fail(lines_.path(), start,
             "text field (opened by ';' at the start of this line) is not closed: expected a line starting "
             "with ';' before the end of the file");
      if (!line_.empty() && line_.front() == ';') break;
      if (t.text.size() + line_.size() > kMaxTextFieldBytes)
        fail(lines_.path(), start,
             "text field is longer than " + std::to_string(kMaxTextFieldBytes >> 20) +
                 " MB: expected a ';' line closing it");
      t.text += '\n';
      t.text += line_;
    }
    pos_ = 1;  // what follows the closing ';' is read as further tokens
    at_line_start_ = false;
  }

  Lines& lines_;
  std::string line_;
  size_t pos_ = 0;
  long long line_no_ = 0;
  bool at_line_start_ = false;
  CifToken next_;
  bool has_next_ = false;
};

// ---------------------------------------------------------------------------------------------------------
// mmCIF: categories

// "_atom_site.Cartn_x" -> category "_atom_site", item "cartn_x" (names are case-insensitive: lower case).
std::string category_of(const std::string& tag) { return lower(tag.substr(0, tag.find('.'))); }
std::string item_of(const std::string& tag) {
  const size_t dot = tag.find('.');
  return dot == std::string::npos ? std::string() : lower(tag.substr(dot + 1));
}

// One category as read: item names and rows of values, for the small categories the sequence comes from.
struct CifTable {
  std::vector<std::string> items;
  std::vector<std::vector<CifToken>> rows;
  long long line = 0;  // where the category starts (its loop_ or first name)

  int column(std::string_view item) const {
    const auto it = std::find(items.begin(), items.end(), item);
    return it == items.end() ? -1 : static_cast<int>(it - items.begin());
  }
};
using CifTables = std::map<std::string, CifTable>;

// The categories kept whole (none of them grows with the atom count).
constexpr std::string_view kSequenceCategories[] = {"_entity_poly_seq", "_entity_poly", "_pdbx_poly_seq_scheme",
                                                    "_struct_asym"};
constexpr std::string_view kAtomSite = "_atom_site";

bool keep_category(const std::string& category) {
  return category == kAtomSite ||
         std::find(std::begin(kSequenceCategories), std::end(kSequenceCategories), category) !=
             std::end(kSequenceCategories);
}

// The value of column `col` in `row`; nullptr when the column is absent or the value is null.
const CifToken* value_at(const std::vector<CifToken>& row, int col) {
  return col < 0 || is_null(row[col]) ? nullptr : &row[col];
}

// The one-character code of a value (alternate location, insertion code); ' ' when null or empty.
char first_char(const CifToken* t) { return t && !t->text.empty() ? t->text.front() : ' '; }

// Turns _atom_site rows into atom records, one row at a time (the atom loop is never held whole).
class AtomSiteReader {
 public:
  AtomSiteReader(const std::vector<std::string>& items, const std::string& path, long long line,
                 ChainCollector& out)
      : items_(items), path_(path), line_(line), out_(out) {
    group_ = find("group_pdb");
    atom_ = required("label_atom_id", "auth_atom_id", "atom names");
    comp_ = required("label_comp_id", "auth_comp_id", "residue names");
    chain_ = required("auth_asym_id", "label_asym_id", "chain ids");
    label_asym_ = find("label_asym_id");
    seq_ = required("auth_seq_id", "label_seq_id", "residue numbers");
    label_seq_ = find("label_seq_id");
    alt_ = find("label_alt_id");
    ins_ = find("pdbx_pdb_ins_code");
    for (int k = 0; k < 3; ++k) xyz_[k] = required(kCartn[k], nullptr, "coordinates");
    model_ = find("pdbx_pdb_model_num");
    element_ = find("type_symbol");
    entity_ = find("label_entity_id");
  }

  void row(const std::vector<CifToken>& v) {
    if (model_ >= 0) {  // the first model only
      if (first_model_.empty()) first_model_ = v[model_].text;
      if (v[model_].text != first_model_) return;
    }
    AtomRecord a;
    a.group = group(v);
    a.atom = v[atom_].text;
    a.residue = v[comp_].text;
    const CifToken* chain = value_at(v, chain_);
    if (!chain) chain = value_at(v, label_asym_);
    a.chain = chain ? std::string_view(chain->text) : std::string_view();
    a.alt = first_char(value_at(v, alt_));
    a.insertion = first_char(value_at(v, ins_));
    for (int k = 0; k < 3; ++k) a.xyz[k] = coordinate(v[xyz_[k]], k);
    if (const CifToken* e = value_at(v, element_)) a.element = e->text;
    if (const CifToken* e = value_at(v, entity_)) a.entity = e->text;
    if (const CifToken* l = value_at(v, label_asym_)) a.label_asym = l->text;
    if (!number(v, a)) return;
    out_.add(a, v[xyz_[0]].line);
  }

 private:
  static constexpr const char* kCartn[3] = {"Cartn_x", "Cartn_y", "Cartn_z"};
  static constexpr const char* kAxis[3] = {"x", "y", "z"};

  int find(std::string_view item) const {
    const auto it = std::find(items_.begin(), items_.end(), item);
    return it == items_.end() ? -1 : static_cast<int>(it - items_.begin());
  }
  // The column of `item`, else of `fallback` (names as the dictionary spells them, compared in lower case).
  int required(const char* item, const char* fallback, const char* what) const {
    int col = find(lower(item));
    if (col < 0 && fallback) col = find(lower(fallback));
    if (col < 0)
      fail(path_, line_,
           std::string("_atom_site has no ") + item + " column: expected _atom_site." + item +
               (fallback ? std::string(" or _atom_site.") + fallback : std::string()) + " (" + what + ")");
    return col;
  }

  Group group(const std::vector<CifToken>& v) const {
    if (group_ < 0) return Group::kUnknown;
    if (v[group_].text == "ATOM") return Group::kAtom;
    if (v[group_].text == "HETATM") return Group::kHetatm;
    return Group::kUnknown;
  }

  double coordinate(const CifToken& t, int axis) const {
    double value = 0;
    if (t.quoted || !parse_double(t.text, value))
      fail(path_, t.line,
           std::string("_atom_site: ") + kAxis[axis] + " coordinate '" + t.text + "' (_atom_site." + kCartn[axis] +
               ") is not a number");
    return value;
  }

  // The author residue number, else label_seq_id; false (row skipped) when neither is given and the
  // residue is no amino acid (waters and ligands have no label_seq_id).
  bool number(const std::vector<CifToken>& v, AtomRecord& a) const {
    const CifToken* n = value_at(v, seq_);
    if (!n) n = value_at(v, label_seq_);
    if (!n) {
      if (accept_residue(a.group, a.residue) == Accept::kNo) return false;
      fail(path_, v[seq_].line,
           "_atom_site: residue " + std::string(a.residue) + " has no number: expected auth_seq_id or label_seq_id");
    }
    if (!parse_int(n->text, a.number))
      fail(path_, n->line, "_atom_site: residue number '" + n->text + "' is not an integer");
    return true;
  }

  const std::vector<std::string>& items_;
  const std::string& path_;
  long long line_;
  ChainCollector& out_;
  int group_, atom_, comp_, chain_, label_asym_, seq_, label_seq_, alt_, ins_, xyz_[3], model_, element_, entity_;
  std::string first_model_;
};

// Reads the first data block: streams _atom_site into `out`, keeps the sequence categories.
class CifReader {
 public:
  CifReader(Lines& lines, ChainCollector& out) : tokens_(lines), path_(lines.path()), out_(out) {}

  CifTables read() {
    bool in_block = false;
    while (const CifToken* t = tokens_.peek()) {
      if (!t->quoted && starts_with_nocase(t->text, "data_")) {
        if (in_block) break;  // the first data block only
        in_block = true;
        tokens_.take();
      } else if (!t->quoted && starts_with_nocase(t->text, "loop_")) {
        read_loop();
      } else if (is_tag(*t)) {
        read_pair();
      } else if (is_keyword(*t)) {
        tokens_.take();  // save_ frames, global_, stop_: not used by coordinate files, nothing to read
      } else {
        fail(path_, t->line, "value '" + t->text + "' without a name before it: expected _category.item or loop_");
      }
    }
    if (const auto it = tables_.find(std::string(kAtomSite)); it != tables_.end()) {
      AtomSiteReader atoms(it->second.items, path_, it->second.line, out_);  // a single atom, as name-value pairs
      for (const auto& row : it->second.rows) atoms.row(row);
    }
    return std::move(tables_);
  }

 private:
  void read_loop() {
    const long long loop_line = tokens_.take().line;
    std::vector<std::string> items;
    std::string category;
    while (const CifToken* t = tokens_.peek()) {
      if (!is_tag(*t)) break;
      const CifToken tag = tokens_.take();
      if (items.empty()) category = category_of(tag.text);
      items.push_back(item_of(tag.text));
    }
    if (items.empty()) fail(path_, loop_line, "loop_ is not followed by any _category.item names");

    std::optional<AtomSiteReader> atoms;
    CifTable* table = nullptr;
    if (category == kAtomSite) {
      atoms.emplace(items, path_, loop_line, out_);
    } else if (keep_category(category)) {
      table = &tables_[category];
      table->items = items;
      table->line = loop_line;
    }
    std::vector<CifToken> row;
    row.reserve(items.size());
    size_t values = 0;
    while (const CifToken* t = tokens_.peek()) {
      if (!is_value(*t)) break;
      row.push_back(tokens_.take());
      ++values;
      if (row.size() < items.size()) continue;
      if (atoms) atoms->row(row);
      if (table) table->rows.push_back(row);
      row.clear();
    }
    if (!row.empty())
      fail(path_, row.front().line,
           "loop of " + category + " (" + std::to_string(items.size()) + " columns, loop_ at line " +
               std::to_string(loop_line) + ") has " + std::to_string(values) + " values, not a multiple of " +
               std::to_string(items.size()) + ": the row starting here has only " + std::to_string(row.size()) +
               " (a value missing or one too many)");
  }

  // "_category.item value" outside a loop: a category with one row.
  void read_pair() {
    const CifToken tag = tokens_.take();
    const CifToken* value = tokens_.peek();
    if (!value || !is_value(*value)) fail(path_, tag.line, tag.text + " has no value: expected a value after it");
    CifToken v = tokens_.take();
    const std::string category = category_of(tag.text);
    if (!keep_category(category)) return;
    CifTable& table = tables_[category];
    if (table.rows.empty()) {
      table.rows.emplace_back();
      table.line = tag.line;
    }
    table.items.push_back(item_of(tag.text));
    table.rows.front().push_back(std::move(v));
  }

  CifTokenizer tokens_;
  const std::string& path_;
  ChainCollector& out_;
  CifTables tables_;
};

// ---------------------------------------------------------------------------------------------------------
// mmCIF: sequences per chain

// Entity id -> one-letter sequence: _entity_poly_seq (the first monomer of each position: microheterogeneity
// lists several), else _entity_poly.pdbx_seq_one_letter_code_can.
std::map<std::string, std::string> entity_sequences(const CifTables& tables) {
  std::map<std::string, std::string> out;
  if (const auto it = tables.find("_entity_poly_seq"); it != tables.end()) {
    const CifTable& t = it->second;
    const int entity = t.column("entity_id"), num = t.column("num"), mon = t.column("mon_id");
    std::map<std::string, std::string> last_num;
    for (const auto& row : t.rows) {
      const CifToken* e = value_at(row, entity);
      const CifToken* m = value_at(row, mon);
      if (!e || !m) continue;
      if (const CifToken* n = value_at(row, num)) {
        auto [prev, added] = last_num.try_emplace(e->text, n->text);
        if (!added && prev->second == n->text) continue;
        prev->second = n->text;
      }
      const char code = amino_acid_code(m->text);
      out[e->text] += code ? code : 'X';
    }
  }
  if (const auto it = tables.find("_entity_poly"); it != tables.end()) {
    const CifTable& t = it->second;
    const int entity = t.column("entity_id"), can = t.column("pdbx_seq_one_letter_code_can");
    for (const auto& row : t.rows) {
      const CifToken* e = value_at(row, entity);
      const CifToken* s = value_at(row, can);
      if (!e || !s || out.count(e->text)) continue;
      std::string& seq = out[e->text];
      for (char c : s->text)
        if (!std::isspace(static_cast<unsigned char>(c))) seq += alphabet_letter(c);
    }
  }
  return out;
}

// The entity of a chain: its atoms' label_entity_id, else _struct_asym (by label_asym_id), else
// _pdbx_poly_seq_scheme or _entity_poly.pdbx_strand_id (by author chain id).
std::string chain_entity(const ChainBuild& chain, const CifTables& tables) {
  if (!chain.entity.empty()) return chain.entity;
  const auto lookup = [&](const char* category, const char* key_item, const std::string& key,
                          const char* entity_item) -> std::string {
    const auto it = tables.find(category);
    if (it == tables.end() || key.empty()) return "";
    const int k = it->second.column(key_item), e = it->second.column(entity_item);
    for (const auto& row : it->second.rows) {
      const CifToken* kv = value_at(row, k);
      const CifToken* ev = value_at(row, e);
      if (kv && ev && kv->text == key) return ev->text;
    }
    return "";
  };
  std::string entity = lookup("_struct_asym", "id", chain.label_asym, "entity_id");
  if (entity.empty()) entity = lookup("_pdbx_poly_seq_scheme", "pdb_strand_id", chain.id, "entity_id");
  if (!entity.empty()) return entity;
  if (const auto it = tables.find("_entity_poly"); it != tables.end()) {
    const int e = it->second.column("entity_id"), strands = it->second.column("pdbx_strand_id");
    for (const auto& row : it->second.rows) {
      const CifToken* ev = value_at(row, e);
      const CifToken* sv = value_at(row, strands);
      if (!ev || !sv) continue;
      std::string_view list = sv->text;  // "A,B"
      while (!list.empty()) {
        const size_t comma = std::min(list.find(','), list.size());
        if (trim(list.substr(0, comma)) == chain.id) return ev->text;
        list.remove_prefix(std::min(comma + 1, list.size()));
      }
    }
  }
  return "";
}

Sequences cif_sequences(const CifTables& tables, const std::vector<ChainBuild>& chains) {
  const auto by_entity = entity_sequences(tables);
  Sequences out;
  for (const ChainBuild& c : chains) {
    const auto it = by_entity.find(chain_entity(c, tables));
    if (it != by_entity.end()) out[c.id] = it->second;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Whole files

struct ParsedFile {
  std::string path;
  std::vector<StructureChain> chains;  // the chains with amino acids, in file order
};

ParsedFile parse_file(const std::string& path) {
  Lines lines(path);
  ParsedFile file{lines.path(), {}};
  ChainCollector collector(file.path);
  Sequences sequences;
  std::vector<ChainBuild> chains;
  if (is_mmcif(lines)) {
    const CifTables tables = CifReader(lines, collector).read();
    chains = collector.finish();
    sequences = cif_sequences(tables, chains);
  } else {
    sequences = read_pdb(lines, collector);
    chains = collector.finish();
  }
  for (ChainBuild& c : chains) {
    StructureChain out{file.path, c.id, {}, sequences[c.id]};
    out.residues.reserve(c.residues.size());
    for (ResidueBuild& r : c.residues) out.residues.push_back(std::move(r.residue));
    file.chains.push_back(std::move(out));
  }
  return file;
}

std::string chain_list(const std::vector<StructureChain>& chains) {
  std::string out;
  for (const StructureChain& c : chains) out += (out.empty() ? "" : ", ") + chain_label(c.chain);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Alignment

constexpr int kMatchScore = 2, kMismatchScore = -1, kGapScore = -1, kUnknownScore = 0;

// The states of an alignment cell (Gotoh): residue i paired with position j; residue i skipped (a gap in the
// sequence); position j skipped (a residue not observed).
enum State : unsigned char { kPair, kSkipResidue, kSkipPosition, kStates };
using Cell = std::array<int64_t, kStates>;
constexpr int64_t kImpossible = std::numeric_limits<int64_t>::min() / 4;  // room to add scores without overflow
constexpr Cell kStart = {0, kImpossible, kImpossible};  // row and column 0: leading gaps are free

char upper(char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); }

int pair_score(char residue, char position) {
  if (residue == 'X' || position == 'X') return kUnknownScore;
  return residue == position ? kMatchScore : kMismatchScore;
}

// The best of a cell's states after adding `add` to each, and which state it was (the first among equals).
std::pair<int64_t, State> best_of(const Cell& cell, const Cell& add) {
  std::pair<int64_t, State> best{kImpossible, kPair};
  for (int s = 0; s < kStates; ++s)
    if (cell[s] != kImpossible && cell[s] + add[s] > best.first) best = {cell[s] + add[s], State(s)};
  return best;
}

// Aligns `residues` to `sequence` (both upper case) with the scores of structure.h. Among alignments of equal
// score the one opening the fewest gaps wins (a missing loop is one gap, not two around a chance match): the
// scores are multiplied by `scale`, more than the number of gaps there can be, and opening a gap costs 1 more.
// For each sequence position, the residue index paired with it, or -1.
std::vector<int64_t> align_residues(const std::string& residues, const std::string& sequence) {
  const size_t n = residues.size(), m = sequence.size();
  const int64_t scale = static_cast<int64_t>(n + m + 1), extend = kGapScore * scale, open = extend - 1;
  std::vector<Cell> prev(m + 1, kStart), cur(m + 1, kStart);
  std::vector<unsigned char> from((n + 1) * (m + 1), 0);  // per cell and state, the state it came from (2 bits)
  std::pair<int64_t, State> best{kImpossible, kPair};
  size_t best_i = 0, best_j = 0;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = kStart;
    for (size_t j = 1; j <= m; ++j) {
      const auto pair = best_of(prev[j - 1], {0, 0, 0});
      const auto skip_residue = best_of(prev[j], {open, extend, open});
      const auto skip_position = best_of(cur[j - 1], {open, open, extend});
      cur[j] = {pair.first + pair_score(residues[i - 1], sequence[j - 1]) * scale, skip_residue.first,
                skip_position.first};
      from[i * (m + 1) + j] = static_cast<unsigned char>(pair.second | skip_residue.second << 2 |
                                                         skip_position.second << 4);
      if (i < n && j < m) continue;  // trailing gaps are free: the alignment may end in the last row or column
      const auto end = best_of(cur[j], {0, 0, 0});
      if (end.first > best.first) best = end, best_i = i, best_j = j;
    }
    std::swap(prev, cur);
  }
  std::vector<int64_t> out(m, -1);
  State state = best.second;
  for (size_t i = best_i, j = best_j; i > 0 && j > 0;) {
    const State came_from = State(from[i * (m + 1) + j] >> (2 * state) & 3);
    if (state == kPair) out[--j] = static_cast<int64_t>(--i);
    else if (state == kSkipResidue) --i;
    else --j;
    state = came_from;
  }
  return out;
}

}  // namespace

char amino_acid_code(std::string_view residue_name) {
  if (const char c = standard_code(residue_name)) return c;
  if (const char c = table_code(residue_name, std::begin(kModifiedResidues), std::end(kModifiedResidues))) return c;
  return residue_name == kUnknownResidue ? 'X' : '\0';
}

std::string StructureChain::observed() const {
  std::string out;
  out.reserve(residues.size());
  for (const StructureResidue& r : residues) out += r.code;
  return out;
}

StructureChain read_structure(const std::string& path, const std::string& chain) {
  ParsedFile file = parse_file(path);
  if (file.chains.empty())
    throw Error(file.path + ": no amino-acid residues in the first model: expected ATOM records of a protein chain");
  if (chain.empty()) {
    if (file.chains.size() == 1) return std::move(file.chains.front());
    throw Error(file.path + ": " + std::to_string(file.chains.size()) + " protein chains (" + chain_list(file.chains) +
                "): name the chain to read");
  }
  for (StructureChain& c : file.chains)
    if (c.chain == chain) return std::move(c);
  throw Error(file.path + ": no protein chain " + chain_label(chain) + "; chains with amino acids: " +
              chain_list(file.chains));
}

std::vector<std::string> structure_chains(const std::string& path) {
  std::vector<std::string> out;
  for (const StructureChain& c : parse_file(path).chains) out.push_back(c.chain);
  return out;
}

std::vector<int64_t> align_to_sequence(const StructureChain& chain, const std::string& sequence) {
  const std::string residues = chain.observed();
  const size_t n = residues.size(), m = sequence.size();
  std::vector<int64_t> out(m, -1);
  if (n == 0 || m == 0) return out;
  if (static_cast<double>(n) * static_cast<double>(m) > static_cast<double>(kMaxAlignmentCells))
    throw Error(chain.path + ": chain " + chain_label(chain.chain) + ": " + std::to_string(n) +
                " residues against a sequence of " + std::to_string(m) + " are too many to align (at most " +
                std::to_string(kMaxAlignmentCells) + " pairs)");
  std::string upper_sequence = sequence;
  for (char& c : upper_sequence) c = upper(c);
  out = align_residues(residues, upper_sequence);
  int64_t identical = 0;
  for (size_t j = 0; j < m; ++j)
    if (out[j] >= 0 && residues[out[j]] != 'X' && residues[out[j]] == upper_sequence[j]) ++identical;
  if (2 * identical < static_cast<int64_t>(n))
    throw Error(chain.path + ": chain " + chain_label(chain.chain) + " does not match the sequence given: " +
                std::to_string(identical) + " of its " + std::to_string(n) +
                " observed residues are identical to their aligned position, expected at least half");
  for (int64_t& k : out)
    if (k >= 0 && !chain.residues[k].has_point) k = -1;
  return out;
}

double residue_distance(const StructureResidue& a, const StructureResidue& b) {
  for (const StructureResidue* r : {&a, &b})
    if (!r->has_point)
      throw Error("residue " + r->name + " " + std::to_string(r->number) + " has no point (no C-beta, C-alpha or "
                  "backbone to place one): expected a residue with has_point");
  double sum = 0;
  for (int k = 0; k < 3; ++k) sum += (a.point[k] - b.point[k]) * (a.point[k] - b.point[k]);
  return std::sqrt(sum);
}

}  // namespace performer
