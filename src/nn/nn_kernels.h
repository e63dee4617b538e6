/*
 * nn_kernels.h - the engine's instruction-set kernels behind one table.
 *
 * Three kernel sets fill the same table: generic (portable C, GCC vectors
 * lowered to whatever the build targets), avx2 (AVX2 + FMA) and avx512
 * (AVX-512F).  kernels.c picks the widest set the CPU runs once, at the
 * engine's initialisation (ICEML_KERNELS=generic|avx2|avx512 forces one, and
 * is refused when the CPU lacks it); a plan records the set it was made with
 * (plan.c), so its buffers and its kernels always agree.  Only what gains
 * from wide vectors lives here: the direct convolution of a small-K conv,
 * its weight gradient, and the max-pool's forward pass.
 */
#ifndef ICEML_NN_KERNELS_H
#define ICEML_NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn_internal.h"

/* a direct convolution: rows r = image * oh + oy of the output */
typedef struct DirectArgs
{
	const Layer *l;
	const float *x;
	const float *w;
	const float *bias;
	float	   *y;
	int			b;
	int			relu;
} DirectArgs;

/*
 * A max-pool's backward scatter, plane pl = channel * b + image at a time:
 * its output gradient dy (times the dropout mask after it, PLAN_DROP_GRAD),
 * zeroed where the ReLU of the conv before it was off (the pool's own
 * output y not positive, PLAN_POOL_GRAD), added to the window winners arg
 * of the input plane.  layers_pool.c, and a direct conv's weight gradient
 * that takes its output gradient straight from the pool (PLAN_POOL_DGRAD).
 */
typedef struct PoolScatter
{
	const Layer *l;				/* the pool */
	const int32_t *arg;
	const float *dy;
	const float *mask;			/* or NULL */
	const float *y;				/* with relu */
	int			relu;
} PoolScatter;

/*
 * Plane pl's input gradient into dx (cleared first), returning
 * the sum of what it scatters (the conv's bias gradient) in a fixed order:
 * eight partial sums, which break the add chain
 */
static inline double
nn_pool_scatter(const PoolScatter *s, size_t pl, float *dx)
{
	size_t		oplane = (size_t) s->l->oh * s->l->ow;
	const float *dy = s->dy + pl * oplane,
			   *mask = s->mask ? s->mask + pl * oplane : NULL,
			   *y = s->relu ? s->y + pl * oplane : NULL;
	const int32_t *arg = s->arg + pl * oplane;
	double		acc[8] = {0, 0, 0, 0, 0, 0, 0, 0},
				sum = 0;

	memset(dx, 0, sizeof(float) * s->l->ih * s->l->iw);
	for (size_t o = 0; o < oplane; o++)
	{
		float		g = mask ? dy[o] * mask[o] : dy[o];

		if (y && !(y[o] > 0.0f))
			g = 0.0f;
		dx[arg[o]] += g;
		acc[o & 7] += g;
	}
	for (int u = 0; u < 8; u++)
		sum += acc[u];
	return sum;
}

/*
 * its weight gradient: blocks of DGRAD_FB filters; with ps (PLAN_POOL_DGRAD)
 * dy is not read: each block scatters the pool's gradient of its filters,
 * one image at a time, into its own DGRAD_FB planes of scratch (at
 * nn_dgrad_scratch_floats per block), and writes their sums to psum
 */
typedef struct DirectGradArgs
{
	const Layer *l;
	const float *x;
	const float *dy;
	float	   *gW;
	int			b;
	const PoolScatter *ps;
	float	   *scratch;
	float	   *psum;			/* with ps: the sum of each plane it made */
} DirectGradArgs;

/* max-pool forward over planes (channel, image); no winners kept with arg NULL */
typedef struct PoolArgs
{
	const Layer *l;
	const float *x;
	float	   *y;
	int32_t    *arg;
	/* the previous conv's bias (per channel) and ReLU, deferred */
	const float *bias;
	int			relu;
	int			b;
} PoolArgs;

/*
 * a Winograd convolution F(m x m, 3x3), m 2 or 4 (see layers_conv.c): the
 * input and output transforms of images [k0, k0 + kc), th x tw tiles each,
 * between the layer's planes and (m + 2)^2 matrices of kc th tw columns
 * (one per point of the (m + 2) x (m + 2) input tile)
 */
typedef struct WinoArgs
{
	const Layer *l;
	const float *x;				/* input, C x B x ih x iw */
	const float *bias;			/* NULL: left to the pool (PLAN_DEFER_BIAS) */
	float	   *y;				/* output, F x B x oh x ow */
	int			b;
	int			relu;
	int			m;				/* outputs per tile side: 2 or 4 */
	int			th;
	int			tw;
} WinoArgs;
/* V: the chunk's V[P][C][T]; M: its M[P][F][T] (each scratch for the other) */
typedef void (*NnWinoFn) (const WinoArgs *a, int k0, int kc, float *Vb, float *Mb);

#define WINO_MIN_C 16			/* Winograd from this many input channels */
#ifndef WINO_TILES
#define WINO_TILES 512			/* F(2x2, 3x3): tiles per chunk (images whole) */
#endif
/*
 * F(4x4, 3x3): tiles per chunk (images whole).  One image of statoil_cnn's
 * conv2 (81 tiles) a chunk keeps its 36 matrices of inputs (0.75 MB) near
 * L2; training epochs on a Zen 5 EPYC, best of three alternated runs:
 * 2.97 s at 96 tiles, 2.92 s at 128, 3.01 s at 160, 3.08 s at 256.
 */
#ifndef WINO4_TILES
#define WINO4_TILES 128
#endif

/* tiles per image of a Winograd conv with m x m outputs a tile */
static inline int
nn_wino_tiles(const Layer *l, int m)
{
	return ((l->oh + m - 1) / m) * ((l->ow + m - 1) / m);
}

/* the products of a tile, (m + 2)^2: 16 or 36 */
static inline int
nn_wino_points(int m)
{
	return (m + 2) * (m + 2);
}

/*
 * The tile a Winograd conv's passes take (forward, and the input gradient
 * as a conv of its own), by the layer's shape alone: F(4x4, 3x3) when its
 * 36 products a tile come to at most 0.8 of F(2x2, 3x3)'s 16 a tile over
 * the plane (tiles past the edges count: 4x4 tiles on a 15 x 15 output do
 * 576 against 1024); else F(2x2, 3x3), whose transforms are cheaper a
 * product.  Per output F(4x4) does 2.25 products against 4, and its
 * transformed input is 2.25 values a pixel against 4.  The weight gradient
 * stays F(2x2, 3x3) (layers_conv.c).
 */
static inline int
nn_wino_m(const Layer *l)
{
	return 45 * nn_wino_tiles(l, 4) <= 16 * nn_wino_tiles(l, 2) ? 4 : 2;
}

/* images per chunk: fixed by the layer, tile and batch, never by the threads */
static inline int
nn_wino_chunk(const Layer *l, int b, int m)
{
	int			c = (m == 4 ? WINO4_TILES : WINO_TILES) / nn_wino_tiles(l, m);

	return c < 1 ? 1 : (c > b ? b : c);
}

/*
 * The input gradient of a 3x3 conv (stride 1) is itself a 3x3 conv: over
 * the output gradient (the filters as channels), padded by 2 - pad, with
 * each filter turned 180 degrees and channels and filters swapped.  Its
 * shape, for the Winograd path of nn_conv_backward (PLAN_WINO_DX).
 */
static inline Layer
nn_wino_dx_layer(const Layer *l)
{
	Layer		t = *l;

	t.ic = l->filters;
	t.filters = t.oc = l->ic;
	t.ih = l->oh;
	t.iw = l->ow;
	t.oh = l->ih;
	t.ow = l->iw;
	t.pad_top = 2 - l->pad_top;
	t.pad_left = 2 - l->pad_left;
	return t;
}

/*
 * Floats between the matrices of a Winograd conv's transformed weights
 * U[p][f][c]: F C plus one cache line, so that the values of a filter
 * and channel, written together, do not all fall in one cache set (F C
 * floats apart is a multiple of 4 kB: 16 stores to one set of an 8-way
 * cache made the transform of conv3's weights take longer than its sgemms)
 */
static inline size_t
nn_wino_ustride(const Layer *l)
{
	return (size_t) l->filters * l->ic + 16;
}

/*
 * F(4x4, 3x3)'s input transform copies each plane into a zero frame first
 * (kernels_template.h): 4 th + 2 rows of fw floats, fw covering the
 * columns of whole vectors of 16 tiles and the 4 floats a vector's
 * gather reads past them
 */
static inline int
nn_wino4_frame_width(int tw)
{
	return 4 * ((tw + 15) & ~15) + 4 + 16;
}

static inline size_t
nn_wino4_frame_floats(int tw, int th)
{
	return (size_t) (4 * th + 2) * nn_wino4_frame_width(tw);
}

/*
 * one thread's scratch for tile m: V and M of a chunk, room after them for
 * the output gradient's gathered tiles (wino_dy), or for F(4x4)'s gathered
 * input rows (36 of tiles + 16 floats) and frame, and slack for vector reads
 */
static inline size_t
nn_wino_slot_floats(const Layer *l, int b, int m)
{
	size_t		T = (size_t) nn_wino_chunk(l, b, m) * nn_wino_tiles(l, m),
				extra = 4 * (T + 64);

	if (m == 4)
	{
		int			th = (l->oh + 3) / 4,
					tw = (l->ow + 3) / 4;

		extra = 36 * ((size_t) th * tw + 16) + 16 + nn_wino4_frame_floats(tw, th);
	}
	return ((nn_wino_points(m) * (size_t) (l->ic + l->filters) * T + extra + 64) + 15) &
		~(size_t) 15;
}

/*
 * What a Winograd conv's plan buffer holds, for its forward pass alone or
 * (dx: PLAN_WINO_DX in training) also its input gradient (nn_wino_dx_layer,
 * at its own tile) and its weight gradient (F(2x2, 3x3)): the floats of the
 * transformed weights (the larger tile's), of one thread's scratch, and the
 * most chunks of any of those passes (more threads than that idle).  One
 * place, so that plan.c and layers_conv.c agree.
 */
static inline size_t
nn_wino_ufloats(const Layer *l, int dx)
{
	int			p = nn_wino_points(nn_wino_m(l));

	if (dx)
	{
		Layer		t = nn_wino_dx_layer(l);

		if (nn_wino_points(nn_wino_m(&t)) > p)
			p = nn_wino_points(nn_wino_m(&t));
	}
	return (size_t) p * nn_wino_ustride(l);
}

static inline size_t
nn_wino_slot_stride(const Layer *l, int b, int dx)
{
	size_t		s = nn_wino_slot_floats(l, b, nn_wino_m(l));

	if (dx)
	{
		Layer		t = nn_wino_dx_layer(l);
		size_t		st = nn_wino_slot_floats(&t, b, nn_wino_m(&t)),
					sg = nn_wino_slot_floats(l, b, 2);

		s = st > s ? st : s;
		s = sg > s ? sg : s;
	}
	return s;
}

static inline int
nn_wino_chunks(const Layer *l, int b, int m)
{
	return (b + nn_wino_chunk(l, b, m) - 1) / nn_wino_chunk(l, b, m);
}

static inline int
nn_wino_max_chunks(const Layer *l, int b, int dx)
{
	int			n = nn_wino_chunks(l, b, nn_wino_m(l));

	if (dx)
	{
		Layer		t = nn_wino_dx_layer(l);
		int			nt = nn_wino_chunks(&t, b, nn_wino_m(&t)),
					ng = nn_wino_chunks(l, b, 2);

		n = nt > n ? nt : n;
		n = ng > n ? ng : n;
	}
	return n;
}

/* dropout: y = x * mask over [begin, end) of a layer's values */
typedef struct DropArgs
{
	const float *x;
	float	   *y;
	float	   *mask;
	float		rate;
	uint64_t	seed;
} DropArgs;

#define DIRECT_FB 4				/* filters per register block */
#define DIRECT_MAX_K 64			/* direct convolution up to this K */
#define DGRAD_FB 8				/* filters per weight-gradient block */
#define DGRAD_TAPS 3			/* kernel columns per weight-gradient step */

/* one plane of a direct conv's output, with slack for vector reads */
static inline size_t
nn_dgrad_plane_floats(const Layer *l)
{
	return ((size_t) l->oh * l->ow + 64 + 15) & ~(size_t) 15;
}

/* PLAN_POOL_DGRAD: a weight-gradient block's scratch planes */
static inline size_t
nn_dgrad_scratch_floats(const Layer *l)
{
	return DGRAD_FB * nn_dgrad_plane_floats(l);
}

typedef struct NnKernels
{
	const char *name;			/* "generic", "avx2", "avx512" */
	NnRangeFn	direct_rows;	/* DirectArgs */
	NnRangeFn	direct_grad;	/* DirectGradArgs */
	NnRangeFn	pool_forward;	/* PoolArgs */
	NnWinoFn	wino_input;		/* F(2x2): planes -> V[16][C][T] (D in M) */
	NnWinoFn	wino_output;	/* F(2x2): M[16][F][T] -> planes, bias, ReLU (R in Vb) */
	NnWinoFn	wino_dy;		/* F(2x2): output gradient planes -> M[16][F][T] */
	NnWinoFn	wino4_input;	/* F(4x4): planes -> V[36][C][T] (D in M) */
	NnWinoFn	wino4_output;	/* F(4x4): M[36][F][T] -> planes, bias, ReLU (R in Vb) */
	NnRangeFn	dropout;		/* DropArgs */
} NnKernels;

/* kernels_generic.c, kernels_avx2.c, kernels_avx512.c */
extern const NnKernels nn_kernels_generic;
extern const NnKernels nn_kernels_avx2;
extern const NnKernels nn_kernels_avx512;

/* the scalar max-pool (generic; the vector pools use it for other strides) */
extern void nn_pool_forward_scalar(void *p, size_t begin, size_t end);

/* kernels.c */
/* every set, widest last; NULL-terminated */
extern const NnKernels *const nn_kernel_sets[];
/* whether this CPU runs the set */
extern int	nn_kernels_supported(const NnKernels *k);
/* the set new plans take (after nn_init); never NULL */
extern const NnKernels *nn_kernels_current(void);
/*
 * The set new plans take from now on, by name (tests and benchmarks); 0,
 * or -1 with err when unknown or not supported here.  Plans already made
 * keep theirs.
 */
extern int	nn_kernels_use(const char *name, char *err, size_t errlen);

/* blas.c: OpenBLAS's core for kernel set k; what was done, into buf */
extern void nn_blas_choose_core(const NnKernels *k, char *buf, size_t len);

#endif							/* ICEML_NN_KERNELS_H */
