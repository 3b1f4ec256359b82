# performer with a CUDA LibTorch, for GPU users.
#
# NOTE: no Docker engine runs on the development machine, so this file has been checked by
# reading only, never built. Please report anything that fails.
#
#   docker build -t performer .
#   docker run --rm --gpus all -v "$PWD/data:/opt/performer/data" -v "$PWD/runs:/opt/performer/runs" \
#       performer --help
#
# Build arguments:
#   LIBTORCH_VERSION / LIBTORCH_CUDA  pick the LibTorch build (must match the CUDA of the base image)
#   LIBTORCH_URL                      or give the full zip URL directly (cxx11 ABI, shared-with-deps)
#   TORCH_CUDA_ARCH_LIST              GPU architectures LibTorch's CMake config should assume
#                                     (no GPU is visible during `docker build`)
# Ubuntu 22.04's spdlog (1.9), CLI11 (2.1), yaml-cpp (0.7), HDF5 (1.10), GoogleTest (1.11) and
# CMake (3.22) are recent enough for this project.
FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04

ARG LIBTORCH_VERSION=2.4.1
ARG LIBTORCH_CUDA=cu124
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/${LIBTORCH_CUDA}/libtorch-cxx11-abi-shared-with-deps-${LIBTORCH_VERSION}%2B${LIBTORCH_CUDA}.zip
ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0"

ENV DEBIAN_FRONTEND=noninteractive \
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST}

# The same packages scripts/setup.sh installs, minus libtorch-dev (the CUDA LibTorch replaces it),
# plus what is needed to fetch and unpack LibTorch.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config \
        libhdf5-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev nlohmann-json3-dev \
        libpng-dev zlib1g-dev libopenblas0-openmp libgoogle-perftools-dev \
        ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*

RUN curl -fL --retry 3 -o /tmp/libtorch.zip "${LIBTORCH_URL}" \
 && unzip -q /tmp/libtorch.zip -d /opt \
 && rm /tmp/libtorch.zip \
 && test -f /opt/libtorch/share/cmake/Torch/TorchConfig.cmake

WORKDIR /opt/performer
COPY . /opt/performer

# Packages are all present already, so setup.sh skips apt (and needs no sudo: we are root);
# it selects OpenBLAS via update-alternatives, then configures and builds into build/.
# A build/ copied from the host would carry a foreign CMake cache: start clean.
RUN rm -rf build \
 && TORCH_DIR=/opt/libtorch/share/cmake/Torch scripts/setup.sh

ENTRYPOINT ["/opt/performer/build/performer"]
CMD ["--help"]
