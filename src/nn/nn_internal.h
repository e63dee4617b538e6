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

/* Buffers for one batch size; made once, reused for every batch. */
typedef struct Plan
{
	int			batch;
	int			training;
	float	   *block;			/* everything below points into it */
	size_t		block_floats;
	float	   *input;			/* C x B x H x W */
	float	  **out;			/* per layer: its output */
	float	  **grad;			/* per layer: gradient w.r.t. its input (training) */
	float	  **col;			/* per conv layer: im2col matrix */
	float	  **aux;			/* per layer: dropout mask, BN x-hat, pool argmax */
	float	  **aux2;			/* BN: per-channel batch mean, inv std */
	float	   *dout;			/* gradient w.r.t. the logits, B */
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

/* spec.c */
extern IcemlNet *nn_build(const char *spec_json, char *err, size_t errlen);
/* the same without parameters (iceml_net_describe) */
extern IcemlNet *nn_build_shapes(const char *spec_json, char *err, size_t errlen);

/* engine.c */
extern void nn_set_work_threads(int threads);
/* acc[2i], acc[2i+1] += layer i's forward, backward seconds; NULL: off */
extern void nn_set_profile(double *acc);
/*
 * Direct convolution for small K and the vector max-pool: 1 on, widest
 * vectors (default); 0 off (im2col + sgemm, scalar pool); 2 portable direct
 * convolution and scalar pool, 3 AVX2 direct convolution (tests compare)
 */
extern void nn_set_direct_conv(int on);
extern Plan *nn_plan_create(const IcemlNet *net, int batch, int training);
extern void nn_plan_free(Plan *plan);
extern void nn_gather(const IcemlNet *net, Plan *plan, const float *x,
					  const int64_t *index, int b, const uint8_t *aug);
extern const float *nn_forward(IcemlNet *net, Plan *plan, int b, int training,
							   uint64_t dropout_seed);
extern int	nn_backward(IcemlNet *net, Plan *plan, int b, float *grads);
/* the floats nn_plan_create(net, batch, training) allocates in its block */
extern size_t nn_plan_floats(const IcemlNet *net, int batch, int training);
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

/* rng.c-style helpers (static inline) */
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
