#!/usr/bin/env bash
# Fetch real protein sequence data for performer from Debian packages (no other network access).
#
# Usage: scripts/get-data.sh [--uniprot-486k] [--structures] [--dest DIR]
#
#   (always)        trembl-sample: DB.fasta.gz + QUERY.fasta.gz from the Debian package
#                   mmseqs2-examples (UniProt/TrEMBL excerpts shipped as MMseqs2 example data),
#                   plus blosum62.out into DIR/cache/.
#   --uniprot-486k  uniprot-486k: every sequence of the BLAST database dataset_201401/BPO/goasp
#                   in the Debian package metastudent-data (225 MB .deb), dumped with blastdbcmd.
#   --structures    structures/dssp: 50 real protein chains (PDB, gzip) of the PyPI package
#                   mdanalysistests 2.11.0 (MDAnalysisTests/data/dssp; 1mr1D_failing and wrong_hydrogens
#                   left out), for performer contacts (data/contacts-fit.txt, data/contacts-eval.txt).
#   --dest DIR      where to put it all (default: <project root>/data).
#
# Idempotent: finished outputs (non-empty) are not rebuilt; downloaded .debs are kept in
# DIR/cache/debs and reused. Outputs are written to temporary names and renamed at the end,
# so an interrupted run leaves nothing half-written under its final name.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd -- "${SCRIPT_DIR}/.." && pwd)"

DEST="${ROOT}/data"
WANT_486K=0
WANT_STRUCTURES=0

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --uniprot-486k) WANT_486K=1; shift ;;
    --structures) WANT_STRUCTURES=1; shift ;;
    --dest) [[ $# -ge 2 ]] || { echo "get-data.sh: --dest needs a directory" >&2; exit 2; }
            DEST="$2"; shift 2 ;;
    --dest=*) DEST="${1#--dest=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "get-data.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

mkdir -p "${DEST}"
DEST="$(cd -- "${DEST}" && pwd)"
CACHE="${DEST}/cache"
DEBS="${CACHE}/debs"
mkdir -p "${DEBS}"

log() { printf '[get-data] %s\n' "$*" >&2; }
die() { printf '[get-data] error: %s\n' "$*" >&2; exit 1; }
nonempty() { [[ -s "$1" ]]; }

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

# Install Debian packages (only called when something is actually missing).
apt_install() {
  if [[ "$(id -u)" -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
    die "need root or sudo to install: $* (run: apt-get install $*)"
  fi
  log "installing: $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs a Debian/Ubuntu system"
command -v dpkg-deb >/dev/null 2>&1 || apt_install dpkg

# apt-cache knows the package? If not, refresh the package lists once.
APT_UPDATED=0
has_candidate() {  # (capture first: grep -q closing the pipe early would trip pipefail)
  local out
  out="$(apt-cache policy "$1" 2>/dev/null || true)"
  grep -Eq 'Candidate: [^(]' <<<"${out}"
}
ensure_candidate() {
  local pkg="$1"
  if ! has_candidate "${pkg}"; then
    if [[ ${APT_UPDATED} -eq 0 ]]; then
      log "no apt candidate for ${pkg}; running apt-get update"
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      APT_UPDATED=1
    fi
    has_candidate "${pkg}" || die "package ${pkg} is not available from the configured apt sources"
  fi
}

# Echo the path of a .deb for package $1 in DEBS, downloading it if none is there yet.
fetch_deb() {
  local pkg="$1" deb
  deb="$(find "${DEBS}" -maxdepth 1 -name "${pkg}_*.deb" -size +0 2>/dev/null | sort | tail -n 1)"
  if [[ -z "${deb}" ]]; then
    ensure_candidate "${pkg}"
    log "downloading ${pkg} (apt-get download)"
    # apt-get download as root warns that the _apt sandbox cannot be used; harmless.
    # Download into a scratch folder so a partial file never looks like a finished .deb.
    local tmpd="${DEBS}/.partial-${pkg}"
    rm -rf "${tmpd}"; mkdir -p "${tmpd}"
    (cd "${tmpd}" && apt-get download -q "${pkg}") >&2
    deb="$(find "${tmpd}" -maxdepth 1 -name "${pkg}_*.deb" -size +0 | head -n 1)"
    [[ -n "${deb}" ]] || die "apt-get download ${pkg} produced no .deb"
    mv "${deb}" "${DEBS}/"
    rm -rf "${tmpd}"
    deb="${DEBS}/$(basename "${deb}")"
  else
    log "reusing ${deb}"
  fi
  printf '%s\n' "${deb}"
}

# Unpack .deb $1 into folder $2 (unless already unpacked; a marker file records completion).
unpack_deb() {
  local deb="$1" out="$2"
  if [[ -f "${out}/.unpacked" ]]; then return 0; fi
  log "unpacking $(basename "${deb}") -> ${out}"
  rm -rf "${out}"; mkdir -p "${out}"
  dpkg -x "${deb}" "${out}"
  touch "${out}/.unpacked"
}

# Copy $1 to $2 via a temporary name.
copy_atomic() {
  cp -- "$1" "$2.tmp-$$"
  mv -f -- "$2.tmp-$$" "$2"
}

human_size() { du -h -- "$1" | cut -f1; }
count_fasta() {  # sequence count of a (possibly gzipped) FASTA
  case "$1" in
    *.gz) gzip -dc -- "$1" | grep -c '^>' || true ;;
    *)    grep -c '^>' -- "$1" || true ;;
  esac
}

SECONDS=0

# ---------------------------------------------------------------- trembl-sample (always)
TS_DIR="${DEST}/trembl-sample"
MM_EX="usr/share/doc/mmseqs2/example-data"
mkdir -p "${TS_DIR}"
if nonempty "${TS_DIR}/DB.fasta.gz" && nonempty "${TS_DIR}/QUERY.fasta.gz" && nonempty "${CACHE}/blosum62.out"; then
  log "trembl-sample: already present"
else
  deb="$(fetch_deb mmseqs2-examples)"
  unpack_deb "${deb}" "${CACHE}/mmseqs2-examples"
  src="${CACHE}/mmseqs2-examples/${MM_EX}"
  for f in DB.fasta.gz QUERY.fasta.gz blosum62.out; do
    [[ -s "${src}/${f}" ]] || die "${f} not found in ${deb} (expected at ${MM_EX}/${f})"
  done
  copy_atomic "${src}/DB.fasta.gz" "${TS_DIR}/DB.fasta.gz"
  copy_atomic "${src}/QUERY.fasta.gz" "${TS_DIR}/QUERY.fasta.gz"
  copy_atomic "${src}/blosum62.out" "${CACHE}/blosum62.out"
  gzip -t "${TS_DIR}/DB.fasta.gz" "${TS_DIR}/QUERY.fasta.gz" || die "corrupt gzip in ${TS_DIR}"
  log "trembl-sample: done"
fi

# ---------------------------------------------------------------- trembl-sample clusters (mmseqs2)
# Held-out splits by cluster (performer prepare --clusters): the DB proteins clustered at 50% and 30%
# identity (80% coverage), as DB.clusters50.tsv / DB.clusters30.tsv ("representative<TAB>member").
for id in 50 30; do
  tsv="${TS_DIR}/DB.clusters${id}.tsv"
  if nonempty "${tsv}"; then
    log "trembl-sample clusters at ${id}%: already present"
    continue
  fi
  command -v mmseqs >/dev/null 2>&1 || apt_install mmseqs2
  work="$(mktemp -d)"
  gzip -dc "${TS_DIR}/DB.fasta.gz" > "${work}/DB.fasta"
  mmseqs easy-cluster "${work}/DB.fasta" "${work}/c" "${work}/tmp" --min-seq-id "0.${id}" -c 0.8 \
    --threads "$(nproc 2>/dev/null || echo 2)" -v 1 > "${work}/mmseqs.log" 2>&1 || { cat "${work}/mmseqs.log" >&2; die "mmseqs easy-cluster failed"; }
  [[ -s "${work}/c_cluster.tsv" ]] || die "mmseqs wrote no cluster file"
  copy_atomic "${work}/c_cluster.tsv" "${tsv}"
  rm -rf "${work}"
  log "trembl-sample clusters at ${id}%: $(cut -f1 "${tsv}" | sort -u | wc -l) clusters of $(wc -l < "${tsv}") proteins"
done

# ---------------------------------------------------------------- structures (optional)
# Real protein structures for the contact analysis, from the package index (the sdist is ~60 MB; only the
# dssp/*.pdb.gz files are kept).
S_DIR="${DEST}/structures/dssp"
MDAT_VERSION=2.11.0
if [[ ${WANT_STRUCTURES} -eq 1 ]]; then
  if [[ -f "${S_DIR}/.complete" ]]; then
    log "structures: already present"
  else
    mkdir -p "${CACHE}/pypi"  # find on a missing folder fails, and set -e -o pipefail ended the script there
    sdist="$(find "${CACHE}/pypi" -maxdepth 1 -name "mdanalysistests-${MDAT_VERSION}.tar.gz" -size +0 | head -n 1)"
    if [[ -z "${sdist}" ]]; then
      command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
      log "downloading mdanalysistests==${MDAT_VERSION} (pip download, ~60 MB)"
      rm -rf "${CACHE}/pypi/.partial"; mkdir -p "${CACHE}/pypi/.partial"
      python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        -d "${CACHE}/pypi/.partial" "mdanalysistests==${MDAT_VERSION}" >&2 || die "pip download mdanalysistests failed"
      sdist="$(find "${CACHE}/pypi/.partial" -maxdepth 1 -name "mdanalysistests-${MDAT_VERSION}.tar.gz" | head -n 1)"
      [[ -n "${sdist}" ]] || die "pip download produced no mdanalysistests-${MDAT_VERSION}.tar.gz"
      mv "${sdist}" "${CACHE}/pypi/"; rm -rf "${CACHE}/pypi/.partial"
      sdist="${CACHE}/pypi/$(basename "${sdist}")"
    fi
    work="$(mktemp -d)"
    tar -xzf "${sdist}" -C "${work}" --wildcards '*/MDAnalysisTests/data/dssp/*.pdb.gz'
    rm -rf "${S_DIR}"; mkdir -p "${S_DIR}"
    find "${work}" -path '*/data/dssp/*.pdb.gz' ! -name '*failing*' ! -name '*wrong_hydrogens*' -exec cp {} "${S_DIR}/" \;
    rm -rf "${work}"
    n="$(find "${S_DIR}" -name '*.pdb.gz' | wc -l)"
    [[ "${n}" -ge 40 ]] || die "only ${n} structures found in ${sdist}"
    touch "${S_DIR}/.complete"
    log "structures: ${n} chains in ${S_DIR}"
  fi
fi

# ---------------------------------------------------------------- uniprot-486k (optional)
U_DIR="${DEST}/uniprot-486k"
U_FASTA="${U_DIR}/uniprot-486k.fasta"
if [[ ${WANT_486K} -eq 1 ]]; then
  mkdir -p "${U_DIR}"
  if nonempty "${U_FASTA}"; then
    log "uniprot-486k: already present"
  else
    if ! command -v blastdbcmd >/dev/null 2>&1; then apt_install ncbi-blast+; fi
    deb="$(fetch_deb metastudent-data)"
    MS_DIR="${CACHE}/metastudent-data"
    unpack_deb "${deb}" "${MS_DIR}"
    # The BLAST database is split into goasp.fasta.{pin,phr,psq} (maybe more volumes/files);
    # blastdbcmd wants the path without those suffixes.
    idx="$(find "${MS_DIR}" -path '*dataset_201401/BPO/goasp.fasta*' \( -name '*.pin' -o -name '*.pal' \) | sort | head -n 1)"
    [[ -n "${idx}" ]] || die "BLAST database dataset_201401/BPO/goasp.fasta* not found in ${deb}"
    db="${idx%.*}"
    log "dumping ${db#"${MS_DIR}"/} with blastdbcmd"
    tmp="${U_FASTA}.tmp-$$"
    trap 'rm -f "${tmp}"' EXIT
    blastdbcmd -db "${db}" -entry all > "${tmp}"
    [[ -s "${tmp}" ]] || die "blastdbcmd produced no output"
    mv -f "${tmp}" "${U_FASTA}"
    trap - EXIT
    log "uniprot-486k: done; removing unpacked ${MS_DIR} (the .deb stays in ${DEBS})"
    rm -rf "${MS_DIR}"
  fi
fi

# ---------------------------------------------------------------- summary
echo
echo "Data under ${DEST}  (took ${SECONDS}s)"
printf '  %-52s %8s %10s\n' "file" "size" "sequences"
report() {
  local f="$1" n="$2"
  [[ -e "$f" ]] || return 0
  printf '  %-52s %8s %10s\n' "${f#"${DEST}"/}" "$(human_size "$f")" "$n"
}
report "${TS_DIR}/DB.fasta.gz" "$(count_fasta "${TS_DIR}/DB.fasta.gz")"
report "${TS_DIR}/QUERY.fasta.gz" "$(count_fasta "${TS_DIR}/QUERY.fasta.gz")"
report "${CACHE}/blosum62.out" "-"
if [[ -s "${U_FASTA}" ]]; then report "${U_FASTA}" "$(count_fasta "${U_FASTA}")"; fi
if [[ -f "${S_DIR}/.complete" ]]; then report "${S_DIR}" "$(find "${S_DIR}" -name '*.pdb.gz' | wc -l) chains"; fi
for d in "${DEBS}"/*.deb; do [[ -e "$d" ]] && report "$d" "-"; done
