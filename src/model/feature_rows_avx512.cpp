// model/feature_rows.h compiled for AVX-512 (-mavx512f -mfma, set in CMakeLists.txt).
#if defined(__AVX512F__)
#define FEATURE_ROWS_ISA isa_avx512
#define FEATURE_ROWS_VECTOR_BYTES 64
#include "model/feature_rows_impl.h"
#endif
