#define INFERD_KNS avx512
#define INFERD_KNS_NAME "avx512"
#include "backend/cpu/kernels_impl.inc"
