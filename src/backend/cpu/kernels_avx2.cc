#define INFERD_KNS avx2
#define INFERD_KNS_NAME "avx2"
#include "backend/cpu/kernels_impl.inc"
