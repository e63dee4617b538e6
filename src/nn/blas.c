/*
 * blas.c - OpenBLAS: its core chosen for the CPU, and sgemms split over the
 * engine's threads.
 *
 * Choosing the core.  Debian's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its
 * kernels ("core") when it is loaded, from OPENBLAS_CORETYPE or its own CPU
 * table, and that table is behind the CPUs iceml runs on: an AVX-512 EPYC of
 * AMD family 1Ah (Zen 5) gets the Haswell kernels, at half the sgemm rate
 * of SkylakeX's (README, "Speed"), and a machine may even set
 * OPENBLAS_CORETYPE=Haswell for the whole server.  So the engine chooses
 * itself, once (nn_init), for the kernel set it runs:
 *   avx512  SkylakeX, also over Cooperlake (SkylakeX with BF16; its sgemm
 *           blocks differently, so its results differ in the last bits from
 *           the SkylakeX ones every test and figure was made with).  On AMD
 *           family 19h (Zen 4)
 *           the Haswell kernels measured as fast or 5-15% faster on one
 *           core, but they give a column of a product another rounding
 *           depending on where it falls in the matrix, so one image and the
 *           same image in a batch would differ in the last bits (serving
 *           promises the same value both ways): SkylakeX there too;
 *   avx2    Haswell (or Zen, the same sgemm kernels);
 *   generic whatever OpenBLAS chose.
 * ICEML_BLAS_CORE=<name> asks for another core (benchmarks).  A different
 * core is installed with OpenBLAS's own dynamic-architecture entry points:
 * gotoblas_dynamic_quit() forgets the core, gotoblas_dynamic_init() picks
 * again from OPENBLAS_CORETYPE, which is set for that call only.  This is
 * the selection OpenBLAS makes at load time, run again before the engine's
 * first sgemm; it changes the core for every user of OpenBLAS in the
 * process.  An OpenBLAS without those entry points (not built with
 * DYNAMIC_ARCH) keeps its core, and iceml.version() says so.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cblas.h>

#include "nn_kernels.h"

/* OpenBLAS's own entry points: weak, so a BLAS without them leaves NULL */
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static char blas_core[32] = "unknown";

static const char *
current_core(void)
{
	return openblas_get_corename ? openblas_get_corename() : NULL;
}

/* whether core is one of the names in list (" "-separated) */
static int
core_in(const char *core, const char *list)
{
	size_t		n = strlen(core);

	for (const char *p = list; *p;)
	{
		size_t		w = strcspn(p, " ");

		if (w == n && strncasecmp(p, core, n) == 0)
			return 1;
		p += w;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/*
 * Choose OpenBLAS's core for kernel set k (see the head of this file);
 * describe the result in buf ("OpenBLAS core SkylakeX, chosen for avx512
 * (OpenBLAS had chosen Haswell)").  Sets OpenBLAS to one thread: the
 * engine splits its sgemms itself.
 */
void
nn_blas_choose_core(const NnKernels *k, char *buf, size_t len)
{
	const char *had = current_core();
	const char *forced = getenv("ICEML_BLAS_CORE");
	const char *want = NULL,
			   *same = NULL,
			   *why = "";
	char		reason[64] = "";

	if (openblas_set_num_threads)
		openblas_set_num_threads(1);
	if (had == NULL)
	{
		snprintf(buf, len, "BLAS core unknown (not OpenBLAS)");
		return;
	}
	if (forced && forced[0])
	{
		want = same = forced;
		why = " (ICEML_BLAS_CORE)";
	}
	else if (k == &nn_kernels_avx512)
	{
		want = "SkylakeX";
		same = "SkylakeX";
		snprintf(reason, sizeof(reason), ", chosen for avx512");
	}
	else if (k == &nn_kernels_avx2)
	{
		want = "Haswell";
		same = "Haswell Zen";
		snprintf(reason, sizeof(reason), ", chosen for avx2");
	}
	snprintf(blas_core, sizeof(blas_core), "%s", had);
	if (want && !core_in(had, same))
	{
		if (gotoblas_dynamic_init && gotoblas_dynamic_quit)
		{
			const char *env = getenv("OPENBLAS_CORETYPE");
			char	   *saved = env ? strdup(env) : NULL;

			setenv("OPENBLAS_CORETYPE", want, 1);
			gotoblas_dynamic_quit();
			gotoblas_dynamic_init();
			if (saved)
				setenv("OPENBLAS_CORETYPE", saved, 1);
			else
				unsetenv("OPENBLAS_CORETYPE");
			free(saved);
			snprintf(blas_core, sizeof(blas_core), "%s", current_core());
			if (core_in(blas_core, same))
				snprintf(buf, len, "OpenBLAS core %s%s%s (OpenBLAS had chosen %s)",
						 blas_core, reason, why, had);
			else
				snprintf(buf, len, "OpenBLAS core %s (OpenBLAS refused %s%s)",
						 blas_core, want, why);
		}
		else
			snprintf(buf, len, "OpenBLAS core %s (not switchable to %s: OpenBLAS built without DYNAMIC_ARCH)",
					 had, want);
		return;
	}
	snprintf(buf, len, "OpenBLAS core %s%s%s", had, want ? reason : "", why);
}

/* ---- sgemm split over the engine's threads ---------------------------- */

/*
 * OpenBLAS runs single-threaded; a big sgemm is cut here into one part per
 * thread, by columns of C (SPLIT_N) or by rows (SPLIT_M), each part an
 * ordinary sgemm on its own core.  Two single-threaded sgemms on halves
 * beat OpenBLAS's own threading on these shapes, and no OpenBLAS worker
 * spins between calls while the engine's other passes run.  Every element
 * of C is summed by one call over the whole K, in an order that depends
 * only on the thread count.
 */
typedef struct GemmArgs
{
	int			ta,
				tb;
	int			M,
				N,
				K;
	const float *A;
	int			lda;
	const float *B;
	int			ldb;
	float		beta;
	float	   *C;
	int			ldc;
	NnGemmSplit split;
	int			parts;
} GemmArgs;

void
nn_sgemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
		 const float *B, int ldb, float beta, float *C, int ldc)
{
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
				M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void
gemm_parts(void *p, size_t begin, size_t end)
{
	GemmArgs   *g = p;

	for (size_t part = begin; part < end; part++)
	{
		int			total = g->split == SPLIT_N ? g->N : g->M;

		/* part boundaries on multiples of 16 (whole cache lines of C) */
		int			lo = (int) ((size_t) total * part / g->parts) & ~15,
					hi = part + 1 == (size_t) g->parts ? total :
			(int) ((size_t) total * (part + 1) / g->parts) & ~15;

		if (hi <= lo)
			continue;
		if (g->split == SPLIT_N)
			nn_sgemm(g->ta, g->tb, g->M, hi - lo, g->K, g->A, g->lda,
					 g->B + (!g->tb ? (size_t) lo : (size_t) lo * g->ldb), g->ldb,
					 g->beta, g->C + lo, g->ldc);
		else
			nn_sgemm(g->ta, g->tb, hi - lo, g->N, g->K,
					 g->A + (!g->ta ? (size_t) lo * g->lda : (size_t) lo), g->lda,
					 g->B, g->ldb, g->beta, g->C + (size_t) lo * g->ldc, g->ldc);
	}
}

void
nn_gemm_split(int ta, int tb, int M, int N, int K, const float *A, int lda,
			  const float *B, int ldb, float beta, float *C, int ldc, NnGemmSplit split)
{
	int			threads = nn_work_threads();
	GemmArgs	g = {ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, split, threads};
	int			total = split == SPLIT_N ? N : M;

	/* small products are not worth a thread */
	if ((double) M * N * K < 4e6 || total < 32 * threads)
		g.parts = 1;
	nn_parallel_for((size_t) g.parts, 1, gemm_parts, &g);
}
