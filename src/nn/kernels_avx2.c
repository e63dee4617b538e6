/*
 * kernels_avx2.c - the kernel set for AVX2 + FMA CPUs (8 floats a vector).
 * Only reached through nn_kernels_avx2, which kernels.c hands out when the
 * CPU runs AVX2 and FMA.
 */
#include <string.h>

#include "nn_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));

#define KT(name) name ## _avx2
#define KT_TARGET __attribute__((target("avx2,fma")))
#define VT v8f
#define VI v8i
#define VTU v8fu
#define V 8
#define KT_VECTOR_POOL
#define KT_DIRECT_NV 3			/* 16 registers */
#define KT_EVEN(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6, 8, 10, 12, 14)
#define KT_ODD(a, b) __builtin_shufflevector((a), (b), 1, 3, 5, 7, 9, 11, 13, 15)
#include "kernels_template.h"

const NnKernels nn_kernels_avx2 = {
	"avx2", direct_rows_avx2, direct_grad_avx2, pool_forward_avx2,
	wino_input_avx2, wino_output_avx2, wino_dy_avx2,
	wino4_input_avx2, wino4_output_avx2, dropout_avx2
};

#else
/* not an x86-64 build: never supported (kernels.c), never called */
const NnKernels nn_kernels_avx2 = {"avx2", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
#endif
