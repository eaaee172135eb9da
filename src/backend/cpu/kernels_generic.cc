#define INFERD_KNS generic
#define INFERD_KNS_NAME "generic"
#include "backend/cpu/kernels_impl.inc"
