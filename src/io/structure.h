// Protein chains from PDB and mmCIF coordinate files (plain or gzip), for contact maps: the observed residues
// of one chain of the first model, one point per residue (C-beta; C-alpha for glycine), and the chain's full
// sequence when the file gives it (SEQRES, _entity_poly_seq). The format is told by the content (mmCIF when
// the first line that is neither empty nor a comment starts with "data_"), not by the name. A malformed file
// is an Error "path:line: what is wrong, what was expected", never a silent zero.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace performer {

struct StructureResidue {
  std::string name;        // 3-letter residue name as in the file ("MSE")
  char code = 'X';         // one-letter code in the 20-letter alphabet ACDEFGHIKLMNPQRSTVWY, or 'X' (unknown /
                           // non-standard without a parent)
  int64_t number = 0;      // author residue number (PDB resSeq, mmCIF auth_seq_id)
  char insertion = ' ';    // insertion code (' ' when none)
  bool hetatm = false;     // the residue came from HETATM records (modified residue like MSE)
  bool has_point = false;  // `point` holds coordinates
  // C-beta; C-alpha for glycine; for a non-glycine residue without CB: the virtual C-beta from N, CA, C;
  // has_point false when neither is possible.
  std::array<double, 3> point{};
  bool has_ca = false;          // `ca` holds the C-alpha (for chain breaks: consecutive C-alphas are 3.8 A apart)
  std::array<double, 3> ca{};
};

struct StructureChain {
  std::string path, chain;                 // file and chain id
  std::vector<StructureResidue> residues;  // observed residues in file order (first model only)
  // The chain's full sequence from SEQRES (PDB) or _entity_poly_seq / _entity_poly.pdbx_seq_one_letter_code_can
  // (mmCIF), one-letter codes; empty when the file has none.
  std::string seqres;
  std::string observed() const;  // one-letter codes of `residues`
};

// Reads chain `chain` of the first model; chain "" = the only protein chain in the file (an Error listing the
// chain ids when there are several). An unknown chain id is an Error listing the chains present. A blank PDB
// chain id (column 22) is the id "".
StructureChain read_structure(const std::string& path, const std::string& chain = "");

// The chain ids with at least one amino-acid residue, in file order.
std::vector<std::string> structure_chains(const std::string& path);

// Global alignment of the observed residues to `sequence`: for each position of `sequence`, the index into
// chain.residues aligned to it, or -1 (residue not observed or no coordinates). Residues align in order;
// mismatches allowed (match +2, mismatch -1, gap -1 inside, end gaps free; 'X' on either side scores 0; among
// equal scores the alignment opening the fewest gaps).
// Throws Error naming the file when fewer than half of the observed residues find an identical partner
// ("does not match the sequence given"), or when the two are too long to align (kMaxAlignmentCells).
std::vector<int64_t> align_to_sequence(const StructureChain& chain, const std::string& sequence);

// Euclidean distance of two residues' points (both must have has_point; an Error otherwise).
double residue_distance(const StructureResidue& a, const StructureResidue& b);

// The one-letter code of a residue name: the 20 standard amino acids, modified ones by their parent
// ("MSE" -> 'M', "SEP" -> 'S', D-amino acids ...), 'X' for "UNK"; '\0' for anything else (water, ligands,
// nucleotides, names not in the table).
char amino_acid_code(std::string_view residue_name);

constexpr double kContactCutoff = 8.0;  // Angstrom, C-beta to C-beta

// Memory guards, far above any protein chain (one of 5,000 residues has some 40,000 heavy atoms).
constexpr int64_t kMaxChainAtoms = 1'000'000;        // non-hydrogen atom records kept for one chain
constexpr int64_t kMaxAlignmentCells = 100'000'000;  // observed residues x sequence length (1 byte each)

}  // namespace performer
