/*
 * layers_pool.c - max-pooling, forward and backward.
 *
 * Forward is the kernel set's pool (nn_kernels.h: vector pools for strides
 * 1 and 2 in avx2 and avx512, the scalar pool in generic), which also
 * applies the bias and ReLU the conv before it deferred (PLAN_DEFER_BIAS)
 * and records each window's winner.  Backward scatters the gradient to the
 * winners, and (PLAN_POOL_GRAD) applies the conv's ReLU mask and sums the
 * conv's bias gradient per plane on the way; (PLAN_DROP_GRAD) it also
 * does the backward pass of the dropout after it, reading that layer's
 * output gradient times its mask (the same products the dropout would
 * have written, without the pass over them).
 */
#include <string.h>

#include "nn_layers.h"

void
nn_pool_forward(const LayerPass *p)
{
	const IcemlNet *net = p->net;
	Plan	   *plan = p->plan;
	int			i = p->i;
	PoolArgs	a = {p->l, p->x, p->y, (int32_t *) plan->aux[i], NULL, NULL, NULL, 0, p->b,
	NULL, NULL};

	if (i > 0 && (plan->choice[i - 1] & PLAN_DEFER_BIAS))
	{
		a.bias = net->params + net->layers[i - 1].b_off;
		a.relu = net->layers[i - 1].act == ACT_RELU;
	}
	nn_parallel_for((size_t) p->l->ic * p->b, 4, plan->kern->pool_forward, &a);
}

/* the pool's backward arguments, and the dropout mask it applies (or NULL) */
typedef struct PoolGradArgs
{
	PoolArgs	a;
	const float *mask;
} PoolGradArgs;

static void
pool_backward_planes(void *p, size_t begin, size_t end)
{
	PoolGradArgs *ga = p;
	PoolArgs   *a = &ga->a;
	const Layer *l = a->l;
	size_t		plane = (size_t) l->ih * l->iw;
	size_t		oplane = (size_t) l->oh * l->ow;

	/* each plane cleared just before its scatter, while it is in cache */
	if (a->psum == NULL)
	{
		for (size_t pl = begin; pl < end; pl++)
		{
			const float *mask = ga->mask ? ga->mask + pl * oplane : NULL;

			memset(a->dx + pl * plane, 0, sizeof(float) * plane);
			for (size_t o = 0; o < oplane; o++)
				a->dx[pl * plane + a->arg[pl * oplane + o]] +=
					mask ? a->dy[pl * oplane + o] * mask[o] : a->dy[pl * oplane + o];
		}
		return;
	}
	/*
	 * The conv's ReLU backward and its bias gradient, on the way.  The
	 * window's winner z passed the ReLU (z > -bias, or z > 0) exactly when
	 * the pool's own output relu(z + bias) (or z) is positive: with
	 * gradual underflow z + bias is 0 only when z = -bias.  So the mask
	 * reads the pool's output in order instead of gathering the conv's
	 * output, 4-9 times larger, at the winners.  Eight partial sums (fixed
	 * order) break the add chain.
	 */
	for (size_t pl = begin; pl < end; pl++)
	{
		const float *y = a->z + pl * oplane;
		const float *dy = a->dy + pl * oplane;
		const int32_t *arg = a->arg + pl * oplane;
		const float *mask = ga->mask ? ga->mask + pl * oplane : NULL;
		float	   *dx = a->dx + pl * plane;
		double		acc[8] = {0, 0, 0, 0, 0, 0, 0, 0},
					sum = 0;

		memset(dx, 0, sizeof(float) * plane);
		for (size_t o = 0; o < oplane; o++)
		{
			float		g = mask ? dy[o] * mask[o] : dy[o];

			if (a->relu && !(y[o] > 0.0f))
				g = 0.0f;
			dx[arg[o]] += g;
			acc[o & 7] += g;
		}
		for (int u = 0; u < 8; u++)
			sum += acc[u];
		a->psum[pl] = (float) sum;
	}
}

void
nn_pool_backward(const LayerPass *p)
{
	const IcemlNet *net = p->net;
	Plan	   *plan = p->plan;
	int			i = p->i;
	PoolGradArgs ga = {{p->l, NULL, NULL, (int32_t *) plan->aux[i], p->dy, p->dx, NULL, 0, p->b,
	NULL, NULL}, NULL};

	if (p->dx == NULL)
		return;
	if (plan->choice[i] & PLAN_DROP_GRAD)
	{
		/* the dropout's output gradient and mask; it makes no pass itself */
		ga.a.dy = plan->grad[i + 2];
		ga.mask = plan->aux[i + 1];
	}
	if (plan->choice[i] & PLAN_POOL_GRAD)
	{
		ga.a.z = plan->out[i];
		ga.a.psum = plan->aux2[i];
		ga.a.relu = net->layers[i - 1].act == ACT_RELU;
	}
	nn_parallel_for((size_t) p->l->ic * p->b, 4, pool_backward_planes, &ga);
}
