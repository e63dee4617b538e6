/*
 * kernels_avx512.c - the kernel set for AVX-512F CPUs (16 floats a vector).
 * Only reached through nn_kernels_avx512, which kernels.c hands out when the
 * CPU runs AVX-512F.
 */
#include <string.h>

#include "nn_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef float v16fu __attribute__((vector_size(64), aligned(4), may_alias));

#define KT(name) name ## _avx512
#define KT_TARGET __attribute__((target("avx512f,fma")))
#define VT v16f
#define VI v16i
#define VTU v16fu
#define V 16
#define KT_VECTOR_POOL
#define KT_DIRECT_NV5			/* 32 registers: 4 x 5 accumulators fit */
#define KT_EVEN(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6, 8, 10, 12, 14, \
											  16, 18, 20, 22, 24, 26, 28, 30)
#define KT_ODD(a, b) __builtin_shufflevector((a), (b), 1, 3, 5, 7, 9, 11, 13, 15, \
											 17, 19, 21, 23, 25, 27, 29, 31)
#include "kernels_template.h"

const NnKernels nn_kernels_avx512 = {
	"avx512", direct_rows_avx512, direct_grad_avx512, pool_forward_avx512,
	wino_input_avx512, wino_output_avx512, wino_dy_avx512,
	wino4_input_avx512, wino4_output_avx512, dropout_avx512
};

#else
/* not an x86-64 build: never supported (kernels.c), never called */
const NnKernels nn_kernels_avx512 = {"avx512", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
#endif
