#!/usr/bin/env bash
# Install performer's build dependencies (Debian/Ubuntu) and build it.
#
# Usage: scripts/setup.sh [extra cmake args...]
#
# Two LibTorch toolchains:
#   scripts/setup.sh                  Debian's CPU LibTorch 1.13.1 (libtorch-dev), built into build/
#   TORCH=pip scripts/setup.sh        pip's torch wheel (LibTorch 2.11.0, CUDA 13.0), installed into a
#                                     virtual environment outside the checkout (TORCH_VENV, default
#                                     ~/.cache/performer/torch2, reused when it already has that version),
#                                     built into build-torch2/ with CUDA enabled (needs the CUDA toolkit:
#                                     nvcc on PATH or CUDA_HOME). This is the build for GPUs.
#
#   TORCH_DIR=/opt/libtorch/share/cmake/Torch scripts/setup.sh      # any other LibTorch (e.g. an unpacked zip)
#   CMAKE_PREFIX_PATH=/opt/libtorch scripts/setup.sh                 # same, via the prefix path
#   TORCH_VERSION=2.11.0 TORCH=pip scripts/setup.sh                  # the pip torch version (default 2.11.0)
#   BUILD_DIR=/path/to/build scripts/setup.sh                        # another build folder
#   SKIP_APT=1 scripts/setup.sh                                      # don't touch apt at all
#   SKIP_BUILD=1 scripts/setup.sh                                    # dependencies only
#   WITH_LIBTORCH_DEV=0 scripts/setup.sh                             # don't install Debian's libtorch-dev
#                                     (default: 0 with TORCH=pip, TORCH_DIR or CMAKE_PREFIX_PATH, else 1)
#
# Idempotent: apt is skipped entirely when every package is already installed, the virtual environment
# is reused, and a second build only recompiles what changed. Arguments are passed on to cmake's
# configure step (CI adds -DPERFORMER_WERROR=ON).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd -- "${SCRIPT_DIR}/.." && pwd)"
TORCH="${TORCH:-debian}"
case "${TORCH}" in
  debian) BUILD_DIR="${BUILD_DIR:-${ROOT}/build}" ;;
  pip) BUILD_DIR="${BUILD_DIR:-${ROOT}/build-torch2}" ;;
  *) printf '[setup] error: TORCH=%s: expected debian or pip\n' "${TORCH}" >&2; exit 2 ;;
esac
# pip's torch 2.11.0 is what the GPU machines we measure on run, and its wheel is built for CUDA 13.0,
# the toolkit version installed beside it; CI tests this version, and the Dockerfile uses it.
TORCH_VERSION="${TORCH_VERSION:-2.11.0}"
TORCH_VENV="${TORCH_VENV:-${XDG_CACHE_HOME:-${HOME}/.cache}/performer/torch2}"
# The interop tests' reference implementation, pinned (installed into TORCH_VENV with TORCH=pip).
TRANSFORMERS_VERSION="${TRANSFORMERS_VERSION:-5.24.0}"
SAFETENSORS_VERSION="${SAFETENSORS_VERSION:-0.8.0}"
# The contact regression's reference (tests/test_contacts.cpp): scikit-learn's LogisticRegression.
SKLEARN_VERSION="${SKLEARN_VERSION:-1.9.1}"
TEST_PYTHON=""

log() { printf '[setup] %s\n' "$*" >&2; }

PACKAGES=(build-essential cmake ninja-build pkg-config libhdf5-dev libyaml-cpp-dev libspdlog-dev
          libfmt-dev libcli11-dev libgtest-dev libpng-dev zlib1g-dev libopenblas0-openmp
          libgoogle-perftools-dev nlohmann-json3-dev libgloo-dev liblinear-dev iproute2)
# Debian's CPU LibTorch, unless the caller brings their own (TORCH_DIR or CMAKE_PREFIX_PATH set);
# WITH_LIBTORCH_DEV=1/0 forces it on/off.
if [[ -z "${WITH_LIBTORCH_DEV:-}" ]]; then
  if [[ "${TORCH}" == pip || -n "${TORCH_DIR:-}" || -n "${CMAKE_PREFIX_PATH:-}" ]]; then WITH_LIBTORCH_DEV=0; else WITH_LIBTORCH_DEV=1; fi
fi
if [[ "${WITH_LIBTORCH_DEV}" == 1 ]]; then PACKAGES+=(libtorch-dev); fi
# pip's torch goes into a virtual environment: Debian's python3 needs python3-venv for that.
if [[ "${TORCH}" == pip ]] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then PACKAGES+=(python3-venv); fi

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

# --------------------------------------------------------------------------- pip's LibTorch 2.x
# The venv holds torch and its CUDA libraries (~4.6 GB); only its LibTorch (headers, libraries, CMake
# config) is used: Python is not needed at run time, the binaries find the libraries through their RPATH.
if [[ "${TORCH}" == pip ]]; then
  venv_torch() { "${TORCH_VENV}/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null || true; }
  have="$(venv_torch)"
  if [[ "${have%%+*}" == "${TORCH_VERSION}" ]]; then
    log "reusing ${TORCH_VENV} (torch ${have})"
  else
    log "installing torch==${TORCH_VERSION} into ${TORCH_VENV} (about 4.6 GB with its CUDA libraries)"
    python3 -m venv "${TORCH_VENV}"
    "${TORCH_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION}"
    have="$(venv_torch)"
    [[ "${have%%+*}" == "${TORCH_VERSION}" ]] || { log "error: torch ${TORCH_VERSION} did not install into ${TORCH_VENV}"; exit 1; }
  fi
  # The interop tests (tests/test_interop.cpp) check our models against HuggingFace transformers itself.
  if ! "${TORCH_VENV}/bin/python" -c "import transformers, safetensors, sys; sys.exit(transformers.__version__ != '${TRANSFORMERS_VERSION}' or safetensors.__version__ != '${SAFETENSORS_VERSION}')" >/dev/null 2>&1; then
    log "installing transformers==${TRANSFORMERS_VERSION} safetensors==${SAFETENSORS_VERSION} into ${TORCH_VENV} (the interop tests' reference)"
    "${TORCH_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
      "transformers==${TRANSFORMERS_VERSION}" "safetensors==${SAFETENSORS_VERSION}" \
      || log "warning: transformers did not install; the interop tests against it will skip"
  fi
  if ! "${TORCH_VENV}/bin/python" -c "import sklearn, sys; sys.exit(sklearn.__version__ != '${SKLEARN_VERSION}')" >/dev/null 2>&1; then
    log "installing scikit-learn==${SKLEARN_VERSION} into ${TORCH_VENV} (the contact regression's reference)"
    "${TORCH_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "scikit-learn==${SKLEARN_VERSION}" \
      || log "warning: scikit-learn did not install; the contact regression test against it will skip"
  fi
  TEST_PYTHON="${TORCH_VENV}/bin/python"
  # The torch package folder is the prefix: its lib/ is searched before the system's, so Debian's
  # libtorch.so (when also installed) can never be picked up by mistake.
  TORCH_PREFIX="$("${TORCH_VENV}/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)"
  CMAKE_PREFIX_PATH="${TORCH_PREFIX}${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH}}"
  if ! command -v nvcc >/dev/null 2>&1 && [[ -n "${CUDA_HOME:-}" ]]; then export PATH="${CUDA_HOME}/bin:${PATH}"; fi
  command -v nvcc >/dev/null 2>&1 || log "warning: nvcc not found (set CUDA_HOME); the CUDA LibTorch needs the CUDA toolkit to configure"
fi

# --------------------------------------------------------------------------- build
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  log "SKIP_BUILD=1: not configuring/building"
  exit 0
fi

CMAKE_ARGS=(-S "${ROOT}" -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=Release)
if [[ -n "${TORCH_DIR:-}" ]]; then CMAKE_ARGS+=("-DTorch_DIR=${TORCH_DIR}"); fi
if [[ -n "${CMAKE_PREFIX_PATH:-}" ]]; then CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH}"); fi
CMAKE_ARGS+=("-DPERFORMER_TEST_PYTHON=${TEST_PYTHON}")
CMAKE_ARGS+=("$@")

JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
log "cmake ${CMAKE_ARGS[*]}"
cmake "${CMAKE_ARGS[@]}"
log "cmake --build ${BUILD_DIR} -j${JOBS}"
cmake --build "${BUILD_DIR}" -j"${JOBS}"
log "done: ${BUILD_DIR}/performer"
