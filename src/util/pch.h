// Precompiled header shared by every target: LibTorch's headers dominate compile time.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
