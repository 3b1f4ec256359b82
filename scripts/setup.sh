#!/usr/bin/env bash
# Install performer's build dependencies (Debian/Ubuntu) and build it into <root>/build.
#
# Usage: scripts/setup.sh [extra cmake args...]
#
#   TORCH_DIR=/opt/libtorch/share/cmake/Torch scripts/setup.sh      # use a CUDA LibTorch
#   CMAKE_PREFIX_PATH=/opt/libtorch scripts/setup.sh                 # same, via the prefix path
#   SKIP_APT=1 scripts/setup.sh                                      # don't touch apt at all
#   SKIP_BUILD=1 scripts/setup.sh                                    # dependencies only
#   WITH_LIBTORCH_DEV=0 scripts/setup.sh                             # don't install Debian's libtorch-dev
#                                     (default: 0 when TORCH_DIR or CMAKE_PREFIX_PATH is set, else 1)
#
# Idempotent: apt is skipped entirely when every package is already installed, and a second
# build only recompiles what changed. Any arguments are passed on to the cmake configure step.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd -- "${SCRIPT_DIR}/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-${ROOT}/build}"

log() { printf '[setup] %s\n' "$*" >&2; }

PACKAGES=(build-essential cmake ninja-build pkg-config libhdf5-dev libyaml-cpp-dev libspdlog-dev
          libfmt-dev libcli11-dev libgtest-dev libpng-dev zlib1g-dev libopenblas0-openmp
          libgoogle-perftools-dev nlohmann-json3-dev)
# Debian's CPU LibTorch, unless the caller brings their own (TORCH_DIR or CMAKE_PREFIX_PATH set);
# WITH_LIBTORCH_DEV=1/0 forces it on/off.
if [[ -z "${WITH_LIBTORCH_DEV:-}" ]]; then
  if [[ -n "${TORCH_DIR:-}" || -n "${CMAKE_PREFIX_PATH:-}" ]]; then WITH_LIBTORCH_DEV=0; else WITH_LIBTORCH_DEV=1; fi
fi
if [[ "${WITH_LIBTORCH_DEV}" == 1 ]]; then PACKAGES+=(libtorch-dev); fi

SUDO=()
can_admin=1
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else can_admin=0; fi
fi

# --------------------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
  st="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
  [[ "${st}" == ii* ]] || missing+=("$p")
done

if [[ "${SKIP_APT:-0}" == 1 ]]; then
  log "SKIP_APT=1: not installing packages${missing[*]:+ (missing: ${missing[*]})}"
elif [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#PACKAGES[@]} packages already installed"
elif [[ ${can_admin} -eq 0 ]]; then
  log "not root and no sudo; please install as root:"
  log "  apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
else
  log "installing: ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi

# --------------------------------------------------------------------------- BLAS
# Debian's reference BLAS/LAPACK makes LibTorch CPU matmuls ~12x slower; select OpenBLAS (OpenMP).
MULTIARCH="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
select_openblas() {
  local name="$1-${MULTIARCH}" want cur
  command -v update-alternatives >/dev/null 2>&1 || return 0
  want="$(update-alternatives --list "${name}" 2>/dev/null | grep '/openblas-openmp/' | head -n 1 || true)"
  [[ -n "${want}" ]] || return 0
  cur="$(readlink -f "/etc/alternatives/${name}" 2>/dev/null || true)"
  if [[ "${cur}" == "$(readlink -f "${want}")" ]]; then
    log "${name}: already ${want}"
  elif [[ ${can_admin} -eq 1 ]]; then
    log "${name}: selecting ${want}"
    "${SUDO[@]}" update-alternatives --set "${name}" "${want}" >/dev/null
  else
    log "${name}: run as root: update-alternatives --set ${name} ${want}"
  fi
}
select_openblas libblas.so.3
select_openblas liblapack.so.3

# --------------------------------------------------------------------------- build
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  log "SKIP_BUILD=1: not configuring/building"
  exit 0
fi

CMAKE_ARGS=(-S "${ROOT}" -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=Release)
if [[ -n "${TORCH_DIR:-}" ]]; then CMAKE_ARGS+=("-DTorch_DIR=${TORCH_DIR}"); fi
if [[ -n "${CMAKE_PREFIX_PATH:-}" ]]; then CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH}"); fi
CMAKE_ARGS+=("$@")

JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
log "cmake ${CMAKE_ARGS[*]}"
cmake "${CMAKE_ARGS[@]}"
log "cmake --build ${BUILD_DIR} -j${JOBS}"
cmake --build "${BUILD_DIR}" -j"${JOBS}"
log "done: ${BUILD_DIR}/performer"
