// model/feature_rows.h compiled for AVX2 (-mavx2 -mfma, set in CMakeLists.txt).
#if defined(__AVX2__) && defined(__FMA__)
#define FEATURE_ROWS_ISA isa_avx2
#define FEATURE_ROWS_VECTOR_BYTES 32
#include "model/feature_rows_impl.h"
#endif
