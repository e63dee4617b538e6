/*
 * nn_layers.h - one forward and one backward function per layer type
 * (layers_*.c), called by the passes in engine.c with everything a layer
 * reads and writes in one LayerPass.
 */
#ifndef ICEML_NN_LAYERS_H
#define ICEML_NN_LAYERS_H

#include "nn_kernels.h"

typedef struct LayerPass
{
	IcemlNet   *net;
	Plan	   *plan;
	int			i;				/* the layer's index */
	const Layer *l;
	int			b;				/* images in the batch */
	int			training;
	Activation	act;			/* its activation (none for the last layer) */
	const float *x;				/* its input */
	float	   *y;				/* its output */
	const float *W;				/* weights (batch norm: gamma) */
	const float *bias;			/* biases (batch norm: beta) */
	uint64_t	seed;			/* forward: dropout masks */
	/* backward */
	float	   *dy;				/* gradient w.r.t. y, may be changed in place */
	float	   *dx;				/* gradient w.r.t. x; NULL for the first layer */
	float	   *gW;
	float	   *gb;
} LayerPass;

/* layers_conv.c */
extern void nn_conv_forward(const LayerPass *p);
extern void nn_conv_backward(const LayerPass *p);

/* layers_pool.c: max-pool */
extern void nn_pool_forward(const LayerPass *p);
extern void nn_pool_backward(const LayerPass *p);
/* the scatter of pool i's backward pass, for it or the conv before it */
extern void nn_pool_scatter_args(const IcemlNet *net, const Plan *plan, int i, PoolScatter *s);

/* layers_dense.c */
extern void nn_dense_forward(const LayerPass *p);
extern void nn_dense_backward(const LayerPass *p);

/* layers_norm.c: batch normalisation */
extern void nn_batchnorm_forward(const LayerPass *p);
extern void nn_batchnorm_backward(const LayerPass *p);

/* layers_simple.c: relu, sigmoid, dropout, flatten, global average pool */
extern void nn_relu_forward(const LayerPass *p);
extern void nn_relu_backward(const LayerPass *p);
extern void nn_sigmoid_forward(const LayerPass *p);
extern void nn_sigmoid_backward(const LayerPass *p);
extern void nn_dropout_forward(const LayerPass *p);
extern void nn_dropout_backward(const LayerPass *p);
extern void nn_flatten_forward(const LayerPass *p);
extern void nn_flatten_backward(const LayerPass *p);
extern void nn_gap_forward(const LayerPass *p);
extern void nn_gap_backward(const LayerPass *p);

/* the values in a layer's output (forward) or input (backward) for b images */
static inline size_t
nn_out_values(const Layer *l, int b)
{
	return (size_t) l->oc * l->oh * l->ow * b;
}

static inline size_t
nn_in_values(const Layer *l, int b)
{
	return (size_t) l->ic * l->ih * l->iw * b;
}

#endif							/* ICEML_NN_LAYERS_H */
