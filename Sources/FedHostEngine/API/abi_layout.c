// Compile-time guard on the engine ABI's layout (LP64): a change that moves a v1 member fails
// the build here instead of breaking callers compiled against an older header.
#include "fedhost_engine.h"

_Static_assert(offsetof(fhe_info, parameter_count) == 16, "fhe_info.parameter_count moved");
_Static_assert(sizeof(fhe_info) == 32, "fhe_info v1 size");
_Static_assert(sizeof(fhe_metric) == 72, "fhe_metric v1 size");
_Static_assert(sizeof(fhe_score) == 24, "fhe_score v1 size");
_Static_assert(sizeof(fhe_error) == 512, "fhe_error v1 size");
