# performer with a CUDA LibTorch, for GPU users: the same toolchain CI tests (`TORCH=pip scripts/setup.sh`:
# pip's torch 2.11.0, built for CUDA 13.0), on the matching CUDA 13.0 development image.
#
# NOTE: no Docker engine runs on the development machine, so this file has been checked by reading only,
# never built; the commands it runs are those of scripts/setup.sh, which CI runs on every change.
#
#   docker build -t performer .
#   docker run --rm --gpus all -v "$PWD/data:/opt/performer/data" -v "$PWD/runs:/opt/performer/runs" \
#       performer train --config configs/trembl-concat-8192.yaml
#
# Build arguments:
#   TORCH_VERSION          pip's torch version (its wheel's CUDA must match the base image's major version)
#   TORCH_CUDA_ARCH_LIST   GPU architectures LibTorch's CMake config assumes (no GPU is visible while building)
FROM nvidia/cuda:13.0.2-devel-ubuntu24.04

ARG TORCH_VERSION=2.11.0
ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;10.0;12.0"

ENV DEBIAN_FRONTEND=noninteractive \
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    TORCH_VERSION=${TORCH_VERSION} \
    TORCH_VENV=/opt/torch2

# The packages scripts/setup.sh installs (it would install them itself; done here in one cached layer),
# without Debian's CPU libtorch-dev, plus Python's venv for pip's torch.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config \
        libhdf5-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev nlohmann-json3-dev \
        libpng-dev zlib1g-dev libopenblas0-openmp libgoogle-perftools-dev libgloo-dev liblinear-dev \
        python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/performer
COPY . /opt/performer

# pip's torch into /opt/torch2, then configure and build build-torch2/ against it (CUDA compiled in).
# A build folder copied from the host would carry a foreign CMake cache: start clean.
RUN rm -rf build build-torch2 \
 && TORCH=pip scripts/setup.sh -DPERFORMER_BUILD_TESTS=OFF

ENTRYPOINT ["/opt/performer/build-torch2/performer"]
CMD ["--help"]
