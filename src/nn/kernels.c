/*
 * kernels.c - the engine's initialisation: which kernel set runs here, and
 * which OpenBLAS core goes with it (blas.c).
 *
 * Once per process (nn_init, from iceml_net_create and iceml_net_load): the
 * widest set the CPU runs, unless ICEML_KERNELS names another, which must
 * be one the CPU runs (a forced set the CPU lacks is refused, not quietly
 * replaced).  Plans take the current set when they are made (plan.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_kernels.h"

const NnKernels *const nn_kernel_sets[] = {
	&nn_kernels_generic, &nn_kernels_avx2, &nn_kernels_avx512, NULL
};

static const NnKernels *nn_current = &nn_kernels_generic;
static pthread_once_t nn_once = PTHREAD_ONCE_INIT;
static char nn_init_error[ICEML_NN_ERRLEN];
static char nn_runtime_text[512];

int
nn_kernels_supported(const NnKernels *k)
{
	if (k == &nn_kernels_generic)
		return 1;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (k == &nn_kernels_avx2)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	if (k == &nn_kernels_avx512)
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
	return 0;
}

const NnKernels *
nn_kernels_current(void)
{
	return nn_current;
}

/* "generic, avx2" - the sets this CPU runs */
static void
supported_list(char *buf, size_t len)
{
	buf[0] = '\0';
	for (int i = 0; nn_kernel_sets[i]; i++)
		if (nn_kernels_supported(nn_kernel_sets[i]))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
					 buf[0] ? ", " : "", nn_kernel_sets[i]->name);
}

int
nn_kernels_use(const char *name, char *err, size_t errlen)
{
	char		have[64];

	supported_list(have, sizeof(have));
	for (int i = 0; nn_kernel_sets[i]; i++)
		if (strcmp(name, nn_kernel_sets[i]->name) == 0)
		{
			if (!nn_kernels_supported(nn_kernel_sets[i]))
			{
				snprintf(err, errlen, "kernel set \"%s\" needs instructions this cpu lacks (it runs: %s)",
						 name, have);
				return -1;
			}
			nn_current = nn_kernel_sets[i];
			return 0;
		}
	snprintf(err, errlen, "\"%s\" is not a kernel set (generic, avx2 or avx512; this cpu runs: %s)",
			 name, have);
	return -1;
}

static void
nn_init_once(void)
{
	const char *forced = getenv("ICEML_KERNELS");
	char		blas[256];

	for (int i = 0; nn_kernel_sets[i]; i++)
		if (nn_kernels_supported(nn_kernel_sets[i]))
			nn_current = nn_kernel_sets[i];
	if (forced && forced[0])
	{
		char		why[ICEML_NN_ERRLEN - 32];

		if (nn_kernels_use(forced, why, sizeof(why)) != 0)
			snprintf(nn_init_error, sizeof(nn_init_error), "ICEML_KERNELS: %s", why);
	}
	nn_blas_choose_core(nn_current, blas, sizeof(blas));
	snprintf(nn_runtime_text, sizeof(nn_runtime_text), "kernels %s%s, %s",
			 nn_current->name, forced && forced[0] && !nn_init_error[0] ? " (ICEML_KERNELS)" : "",
			 blas);
	nn_pool_init();
}

int
nn_init(char *err, size_t errlen)
{
	pthread_once(&nn_once, nn_init_once);
	if (nn_init_error[0])
	{
		if (err)
			snprintf(err, errlen, "%s", nn_init_error);
		return -1;
	}
	return 0;
}

int
iceml_nn_init(char *err, size_t errlen)
{
	return nn_init(err, errlen);
}

const char *
iceml_nn_runtime(void)
{
	pthread_once(&nn_once, nn_init_once);
	return nn_init_error[0] ? nn_init_error : nn_runtime_text;
}
