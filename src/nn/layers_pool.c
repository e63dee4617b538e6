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
	/* the window winners are for backward: an inference plan has none */
	PoolArgs	a = {p->l, p->x, p->y, plan->training ? (int32_t *) plan->aux[i] : NULL,
		NULL, 0, p->b};

	if (i > 0 && (plan->choice[i - 1] & PLAN_DEFER_BIAS))
	{
		a.bias = net->params + net->layers[i - 1].b_off;
		a.relu = net->layers[i - 1].act == ACT_RELU;
	}
	nn_parallel_for((size_t) p->l->ic * p->b, 4, plan->kern->pool_forward, &a);
}

/*
 * The scatter of pool i's backward pass (nn_kernels.h): its output
 * gradient, or (PLAN_DROP_GRAD) the dropout's after it times the
 * dropout's mask, which then makes no pass of its own; (PLAN_POOL_GRAD)
 * the conv's ReLU mask.  The window's winner z passed the ReLU (z > -bias,
 * or z > 0) exactly when the pool's own output relu(z + bias) (or z) is
 * positive: with gradual underflow z + bias is 0 only when z = -bias.  So
 * the mask reads the pool's output in order instead of gathering the
 * conv's output, 4-9 times larger, at the winners.
 */
void
nn_pool_scatter_args(const IcemlNet *net, const Plan *plan, int i, PoolScatter *s)
{
	memset(s, 0, sizeof(*s));
	s->l = &net->layers[i];
	s->arg = (const int32_t *) plan->aux[i];
	s->dy = i + 1 < net->nlayers ? plan->grad[i + 1] : plan->dout;
	if (plan->choice[i] & PLAN_DROP_GRAD)
	{
		s->dy = plan->grad[i + 2];
		s->mask = plan->aux[i + 1];
	}
	if ((plan->choice[i] & PLAN_POOL_GRAD) && net->layers[i - 1].act == ACT_RELU)
	{
		s->relu = 1;
		s->y = plan->out[i];
	}
}

typedef struct PoolGradArgs
{
	PoolScatter s;
	float	   *dx;
	float	   *psum;			/* PLAN_POOL_GRAD: per-plane sums, or NULL */
} PoolGradArgs;

/* planes [begin, end), each cleared just before its scatter, in cache */
static void
pool_backward_planes(void *p, size_t begin, size_t end)
{
	PoolGradArgs *a = p;
	size_t		plane = (size_t) a->s.l->ih * a->s.l->iw;

	for (size_t pl = begin; pl < end; pl++)
	{
		double		sum = nn_pool_scatter(&a->s, pl, a->dx + pl * plane);

		if (a->psum)
			a->psum[pl] = (float) sum;
	}
}

void
nn_pool_backward(const LayerPass *p)
{
	Plan	   *plan = p->plan;
	int			i = p->i;
	PoolGradArgs a = {{0}, p->dx, NULL};

	/* PLAN_POOL_DGRAD: the conv before scatters and sums, block by block */
	if (p->dx == NULL || (i > 0 && (plan->choice[i - 1] & PLAN_POOL_DGRAD)))
		return;
	nn_pool_scatter_args(p->net, plan, i, &a.s);
	if (plan->choice[i] & PLAN_POOL_GRAD)
		a.psum = plan->aux2[i];
	nn_parallel_for((size_t) p->l->ic * p->b, 4, pool_backward_planes, &a);
}
