/*
 * layers_simple.c - the layers without parameters: ReLU, sigmoid, dropout,
 * flatten (C x B x H x W to B x CHW) and global average pooling, forward
 * and backward.
 */
#include <math.h>
#include <string.h>

#include "nn_layers.h"

void
nn_relu_forward(const LayerPass *p)
{
	size_t		n = nn_out_values(p->l, p->b);

	for (size_t k = 0; k < n; k++)
		p->y[k] = p->x[k] > 0.0f ? p->x[k] : 0.0f;
}

void
nn_relu_backward(const LayerPass *p)
{
	size_t		n = nn_in_values(p->l, p->b);

	if (p->dx)
		for (size_t k = 0; k < n; k++)
			p->dx[k] = p->y[k] > 0.0f ? p->dy[k] : 0.0f;
}

void
nn_sigmoid_forward(const LayerPass *p)
{
	size_t		n = nn_out_values(p->l, p->b);

	for (size_t k = 0; k < n; k++)
		p->y[k] = 1.0f / (1.0f + expf(-p->x[k]));
}

void
nn_sigmoid_backward(const LayerPass *p)
{
	size_t		n = nn_in_values(p->l, p->b);

	if (p->dx)
		for (size_t k = 0; k < n; k++)
			p->dx[k] = p->dy[k] * p->y[k] * (1.0f - p->y[k]);
}

void
nn_dropout_forward(const LayerPass *p)
{
	const Layer *l = p->l;
	float	   *mask = p->plan->aux[p->i];
	size_t		n = nn_out_values(l, p->b);

	if (p->training && l->rate > 0.0f)
	{
		DropArgs	a = {p->x, p->y, mask, l->rate, nn_mix(p->seed, (uint64_t) p->i + 1)};

		nn_parallel_for(n, 65536, p->plan->kern->dropout, &a);
		return;
	}
	if (p->training)
		for (size_t k = 0; k < n; k++)
			mask[k] = 1.0f;
	/* an inference plan passes the input on as the output (plan.c) */
	if (p->y != p->x)
		memcpy(p->y, p->x, sizeof(float) * n);
}

void
nn_dropout_backward(const LayerPass *p)
{
	size_t		n = nn_in_values(p->l, p->b);
	const float *mask = p->plan->aux[p->i];

	/* the pool before applies the mask as it reads dy (PLAN_DROP_GRAD) */
	if (p->i > 0 && (p->plan->choice[p->i - 1] & PLAN_DROP_GRAD))
		return;
	if (p->dx)
		for (size_t k = 0; k < n; k++)
			p->dx[k] = p->dy[k] * mask[k];
}

void
nn_flatten_forward(const LayerPass *p)
{
	const Layer *l = p->l;
	size_t		hw = (size_t) l->ih * l->iw;

	for (int c = 0; c < l->ic; c++)
		for (int k = 0; k < p->b; k++)
			memcpy(p->y + (size_t) k * l->oc + c * hw,
				   p->x + ((size_t) c * p->b + k) * hw, sizeof(float) * hw);
}

void
nn_flatten_backward(const LayerPass *p)
{
	const Layer *l = p->l;
	size_t		hw = (size_t) l->ih * l->iw;

	if (p->dx)
		for (int c = 0; c < l->ic; c++)
			for (int k = 0; k < p->b; k++)
				memcpy(p->dx + ((size_t) c * p->b + k) * hw,
					   p->dy + (size_t) k * l->oc + c * hw, sizeof(float) * hw);
}

void
nn_gap_forward(const LayerPass *p)
{
	const Layer *l = p->l;
	size_t		hw = (size_t) l->ih * l->iw;

	for (int c = 0; c < l->ic; c++)
		for (int k = 0; k < p->b; k++)
		{
			const float *src = p->x + ((size_t) c * p->b + k) * hw;
			double		s = 0;

			for (size_t q = 0; q < hw; q++)
				s += src[q];
			p->y[(size_t) k * l->ic + c] = (float) (s / hw);
		}
}

void
nn_gap_backward(const LayerPass *p)
{
	const Layer *l = p->l;
	size_t		hw = (size_t) l->ih * l->iw;

	if (p->dx)
		for (int c = 0; c < l->ic; c++)
			for (int k = 0; k < p->b; k++)
			{
				float		g = p->dy[(size_t) k * l->ic + c] / (float) hw;
				float	   *d = p->dx + ((size_t) c * p->b + k) * hw;

				for (size_t q = 0; q < hw; q++)
					d[q] = g;
			}
}
