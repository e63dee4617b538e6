/*
 * layers_pool.c - max-pooling, forward and backward.
 *
 * Forward is the kernel set's pool (nn_kernels.h: vector pools for strides
 * 1 and 2 in avx2 and avx512, the scalar pool in generic), which also
 * applies the bias and ReLU the conv before it deferred (PLAN_DEFER_BIAS)
 * and records each window's winner.  Backward scatters the gradient to the
 * winners, and (PLAN_POOL_GRAD) applies the conv's ReLU mask and sums the
 * conv's bias gradient per plane on the way.
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
		NULL, NULL, NULL, 0, p->b, NULL, NULL};

	if (i > 0 && (plan->choice[i - 1] & PLAN_DEFER_BIAS))
	{
		a.bias = net->params + net->layers[i - 1].b_off;
		a.relu = net->layers[i - 1].act == ACT_RELU;
	}
	nn_parallel_for((size_t) p->l->ic * p->b, 4, plan->kern->pool_forward, &a);
}

static void
pool_backward_planes(void *p, size_t begin, size_t end)
{
	PoolArgs   *a = p;
	const Layer *l = a->l;
	size_t		plane = (size_t) l->ih * l->iw;
	size_t		oplane = (size_t) l->oh * l->ow;

	/* each plane cleared just before its scatter, while it is in cache */
	if (a->psum == NULL)
	{
		for (size_t pl = begin; pl < end; pl++)
		{
			memset(a->dx + pl * plane, 0, sizeof(float) * plane);
			for (size_t o = 0; o < oplane; o++)
				a->dx[pl * plane + a->arg[pl * oplane + o]] += a->dy[pl * oplane + o];
		}
		return;
	}
	/* the conv's ReLU backward and its bias gradient, on the way */
	for (size_t pl = begin; pl < end; pl++)
	{
		const float *z = a->z + pl * plane;
		const float *dy = a->dy + pl * oplane;
		const int32_t *arg = a->arg + pl * oplane;
		float	   *dx = a->dx + pl * plane;
		float		thr = a->bias ? -a->bias[pl / (size_t) a->b] : 0.0f;
		double		sum = 0;

		memset(dx, 0, sizeof(float) * plane);
		for (size_t o = 0; o < oplane; o++)
		{
			float		g = dy[o];

			if (a->relu && !(z[arg[o]] > thr))
				g = 0.0f;
			dx[arg[o]] += g;
			sum += g;
		}
		a->psum[pl] = (float) sum;
	}
}


void
nn_pool_backward(const LayerPass *p)
{
	const IcemlNet *net = p->net;
	Plan	   *plan = p->plan;
	int			i = p->i;
	PoolArgs	a = {p->l, NULL, NULL, (int32_t *) plan->aux[i], p->dy, p->dx, NULL, 0, p->b,
	NULL, NULL};

	if (p->dx == NULL)
		return;
	if (plan->choice[i] & PLAN_POOL_GRAD)
	{
		a.z = plan->out[i - 1];
		a.psum = plan->aux2[i];
		a.relu = net->layers[i - 1].act == ACT_RELU;
		if (plan->choice[i - 1] & PLAN_DEFER_BIAS)
			a.bias = net->params + net->layers[i - 1].b_off;
	}
	nn_parallel_for((size_t) p->l->ic * p->b, 4, pool_backward_planes, &a);
}
