// The kernels for AVX-512 with VNNI (vpdpbusd / vpdpwssd in the quantized dot products).
#define INFERD_KNS avx512vnni
#define INFERD_KNS_NAME "avx512vnni"
#include "backend/cpu/kernels_impl.inc"
