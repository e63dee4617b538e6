/*
 * nn_internal.h - the engine's private structures.
 *
 * Activation layout.  Between convolutional layers a batch lives as
 * C x B x H x W ("spatial"): a convolution is then one sgemm per batch
 * (W[F x K] * col[K x B*H*W]) whose result is already in that layout, and
 * batch normalisation sees each channel as one contiguous run.  After
 * flatten or global average pooling it is B x F ("flat").  Inputs arrive as
 * N x C x H x W and are gathered into the spatial layout, standardised and
 * augmented on the way in.
 */
#ifndef ICEML_NN_INTERNAL_H
#define ICEML_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "iceml_nn.h"

typedef enum LayerType
{
	L_CONV,
	L_POOL,
	L_DENSE,
	L_RELU,
	L_SIGMOID,
	L_DROPOUT,
	L_BATCHNORM,
	L_FLATTEN,
	L_GAP,
	L_SIDE						/* flat features + the side inputs (side.c) */
} LayerType;

typedef enum Activation
{
	ACT_NONE,
	ACT_RELU,
	ACT_SIGMOID
} Activation;

typedef struct Layer
{
	LayerType	type;
	char		name[64];
	char		group[64];
	Activation	act;

	/* conv2d: filters, kernel kh x kw, stride; maxpool: kh x kw window, stride */
	int			filters;
	int			kh,
				kw;
	int			stride;
	int			same;			/* padding "same" (else "valid") */
	int			pad_top,
				pad_left;
	int			units;			/* dense */
	float		rate;			/* dropout */
	float		bn_momentum,
				bn_epsilon;

	/* shapes: spatial c x h x w, or flat (h = w = 1, c = features) */
	int			ic,
				ih,
				iw,
				in_flat;
	int			oc,
				oh,
				ow,
				out_flat;

	/* offsets into the parameter block (weights, biases / gamma, beta) */
	size_t		w_off,
				nw,
				b_off,
				nb;
	/* batch norm: running mean and variance, in the state block */
	size_t		s_off;
	int			he_init;		/* followed by ReLU: He, else Glorot */
} Layer;

/*
 * A plan's choices per layer (plan.c), made once with the plan, so that its
 * buffers and the passes that use them always agree.
 */
#define PLAN_DIRECT		0x1		/* conv: direct convolution, no col matrix forward */
#define PLAN_DEFER_BIAS	0x2		/* conv: bias and activation left to the next pool */
#define PLAN_POOL_GRAD	0x4		/* pool: the previous conv's activation backward
								 * and bias gradient done while scattering */
#define PLAN_WINOGRAD	0x8		/* conv: Winograd forward (F(4x4) or F(2x2)), no col matrix */
#define PLAN_WINO_DX	0x10	/* conv: and its input gradient the same way */
#define PLAN_DROP_GRAD	0x20	/* pool: the next dropout's backward (its mask)
								 * applied as the pool reads its gradient */
#define PLAN_POOL_DGRAD	0x40	/* direct first conv: its weight gradient
								 * scatters the next pool's gradient itself */

struct NnKernels;

/* Buffers for one batch size; made once, reused for every batch. */
typedef struct Plan
{
	int			batch;
	int			training;
	const struct NnKernels *kern;	/* the kernel set the plan runs (nn_kernels.h) */
	uint8_t    *choice;			/* per layer: PLAN_* bits */
	float	   *block;			/* everything below points into it */
	size_t		block_floats;
	float	   *input;			/* C x B x H x W */
	float	  **out;			/* per layer: its output */
	float	  **grad;			/* per layer: gradient w.r.t. its input (training) */
	float	  **col;			/* per conv layer: im2col matrix */
	float	  **aux;			/* per layer: dropout mask, BN x-hat, pool argmax,
								 * Winograd weights and scratch */
	float	  **aux2;			/* BN: per-channel batch mean, inv std */
	float	  **wscratch;		/* Winograd conv: its scratch areas (after U in aux
								 * in training plans, one shared area in inference) */
	float	   *dout;			/* gradient w.r.t. the logits, B */
	int			wino_slots;		/* Winograd scratch areas per conv (threads) */
	/*
	 * inference plans: per Winograd conv, 1 + the net's params_version its
	 * transformed weights (in aux) were made from, 0 for never: they are
	 * made again only when the parameters have changed since
	 */
	uint64_t   *wino_made;
} Plan;

struct IcemlNet
{
	char	   *spec;			/* canonical JSON */
	int			nlayers;
	Layer	   *layers;
	int			c,
				h,
				w;
	float	   *params;			/* trainable parameters */
	size_t		nparams;
	/*
	 * bumped by whatever writes params (nn_params_changed): plans that keep
	 * something made from them (Winograd weights) compare it
	 */
	uint64_t	params_version;
	float	   *state;			/* non-trainable: batch norm running statistics */
	size_t		nstate;
	float	   *mean;			/* per input channel standardisation */
	float	   *std;
	int			has_norm;
	/* side inputs (side.c): the one "side" layer, names, standardisation */
	int			side_layer;		/* its index, -1 when the net has none */
	int			nside;
	char		side_name[ICEML_NN_MAX_SIDE][64];
	float		side_mean[ICEML_NN_MAX_SIDE];
	float		side_std[ICEML_NN_MAX_SIDE];
	int			has_side_norm;
	int			final_sigmoid;	/* last layer's sigmoid folded into loss / predict */
	Plan	   *infer;			/* inference plan, made on first predict */
};

/* every writer of net->params calls this after writing */
static inline void
nn_params_changed(IcemlNet *net)
{
	net->params_version++;
}

/* spec.c */
extern IcemlNet *nn_build(const char *spec_json, char *err, size_t errlen);
/* the same without parameters (iceml_net_describe) */
extern IcemlNet *nn_build_shapes(const char *spec_json, char *err, size_t errlen);
/* the spec's name of each LayerType */
extern const char *const nn_layer_type_names[];

/* spec_canonical.c: the canonical spec of a built net (malloc'd) */
extern char *nn_spec_canonical(const IcemlNet *net);

/* kernels.c: the kernel set and BLAS core, once; 0 or -1 with err */
extern int	nn_init(char *err, size_t errlen);

/* pool.c: the engine's threads */
typedef void (*NnRangeFn) (void *arg, size_t begin, size_t end);
extern void nn_set_work_threads(int threads);
extern int	nn_work_threads(void);
/*
 * fn over [0, n) split into one contiguous chunk per thread (fewer when a
 * chunk would be under min_chunk items); results must not depend on the
 * split (each item is computed the same way whatever the thread count).
 */
extern void nn_parallel_for(size_t n, size_t min_chunk, NnRangeFn fn, void *arg);
extern void nn_pool_init(void);
extern void nn_pool_shutdown(void);
extern int	nn_pool_size(void);	/* threads that exist, with the caller */

/* blas.c: sgemm (row-major, alpha 1), and split over the engine's threads */
typedef enum NnGemmSplit
{
	SPLIT_N,					/* by columns of C */
	SPLIT_M						/* by rows of C */
} NnGemmSplit;
extern void nn_sgemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
					 const float *B, int ldb, float beta, float *C, int ldc);
extern void nn_gemm_split(int ta, int tb, int M, int N, int K, const float *A, int lda,
						  const float *B, int ldb, float beta, float *C, int ldc,
						  NnGemmSplit split);

/* plan.c */
extern Plan *nn_plan_create(const IcemlNet *net, int batch, int training);
/* the same with a kernel set (NULL: the current one) and direct conv on/off */
extern Plan *nn_plan_create_with(const IcemlNet *net, int batch, int training,
								 const struct NnKernels *kern, int direct);
extern void nn_plan_free(Plan *plan);
/* the floats nn_plan_create(net, batch, training) allocates in its block */
extern size_t nn_plan_floats(const IcemlNet *net, int batch, int training);
extern void nn_gather(const IcemlNet *net, Plan *plan, const float *x,
					  const int64_t *index, int b, const uint8_t *aug);

/* engine.c: the passes over the layers */
extern const float *nn_forward(IcemlNet *net, Plan *plan, int b, int training,
							   uint64_t dropout_seed);
extern int	nn_backward(IcemlNet *net, Plan *plan, int b, float *grads);
/* acc[2i], acc[2i+1] += layer i's forward, backward seconds; NULL: off */
extern void nn_set_profile(double *acc);
/* whether the caller's interrupt check asks to stop (between layers) */
extern int	nn_interrupted(void);

/* side.c */
/*
 * Side inputs of images index[0..b) (or 0..b) of side (N x nside, raw, NaN
 * missing) into the side layer's plan buffer, standardised, with the
 * missing indicators; side NULL: all missing.  No-op for a net without one.
 */
extern void nn_gather_side(const IcemlNet *net, Plan *plan, const float *side,
						   const int64_t *index, int b);
/* y (B x oc) = x (B x ic) joined with the gathered feat (B x 2 nside) */
extern void nn_side_forward(const Layer *l, const float *x, const float *feat,
							float *y, int b);
/* dx = the first ic columns of dy (the side inputs take no gradient) */
extern void nn_side_backward(const Layer *l, const float *dy, float *dx, int b);

/* random numbers: splitmix64 (static inline) */
static inline uint64_t
nn_splitmix64(uint64_t *s)
{
	uint64_t	z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) with 24 bits */
static inline float
nn_uniform(uint64_t *s)
{
	return (float) (nn_splitmix64(s) >> 40) * (1.0f / 16777216.0f);
}

static inline uint64_t
nn_mix(uint64_t a, uint64_t b)
{
	uint64_t	s = a ^ (b * 0xD1B54A32D192ED03ULL);

	return nn_splitmix64(&s);
}

/* crc32 (IEEE) for the blob formats */
extern uint32_t nn_crc32(const void *data, size_t len);

#endif							/* ICEML_NN_INTERNAL_H */
