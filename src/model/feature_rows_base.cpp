// model/feature_rows.h compiled for the baseline instruction set of the build.
#if 1
#define FEATURE_ROWS_ISA isa_base
#define FEATURE_ROWS_VECTOR_BYTES 16
#include "model/feature_rows_impl.h"
#endif
