/*
 * layers_dense.c - fully connected layers, forward and backward: one sgemm
 * each way over the batch (B x F activations), bias and activation in one
 * pass.
 */
#include <math.h>
#include <string.h>

#include "nn_layers.h"

typedef struct EwArgs
{
	float	   *dy;
	const float *y;
	Activation	act;
} EwArgs;

static void
act_backward_range(void *p, size_t begin, size_t end)
{
	EwArgs	   *a = p;
	float	   *dy = a->dy;
	const float *y = a->y;

	if (a->act == ACT_RELU)
	{
		for (size_t i = begin; i < end; i++)
			if (y[i] <= 0.0f)
				dy[i] = 0.0f;
	}
	else if (a->act == ACT_SIGMOID)
		for (size_t i = begin; i < end; i++)
			dy[i] *= y[i] * (1.0f - y[i]);
}

/* dY *= act'(y), in place, given the activation's output y */
static void
act_backward(float *dy, const float *y, size_t n, Activation act)
{
	EwArgs		a = {dy, y, act};

	if (act != ACT_NONE)
		nn_parallel_for(n, 65536, act_backward_range, &a);
}


void
nn_dense_forward(const LayerPass *p)
{
	const Layer *l = p->l;
	int			K = l->ic,
				b = p->b;
	float	   *y = p->y;

	nn_sgemm(0, 1, b, l->units, K, p->x, K, p->W, K, 0.0f, y, l->units);
	for (int k = 0; k < b; k++)
	{
		float	   *row = y + (size_t) k * l->units;

		for (int u = 0; u < l->units; u++)
		{
			float		t = row[u] + p->bias[u];

			row[u] = p->act == ACT_RELU ? (t > 0.0f ? t : 0.0f) :
				p->act == ACT_SIGMOID ? 1.0f / (1.0f + expf(-t)) : t;
		}
	}
}

void
nn_dense_backward(const LayerPass *p)
{
	const Layer *l = p->l;
	int			K = l->ic,
				b = p->b;

	act_backward(p->dy, p->y, nn_out_values(l, b), p->act);
	nn_sgemm(1, 0, l->units, K, b, p->dy, l->units, p->x, K, 0.0f, p->gW, K);
	for (int u = 0; u < l->units; u++)
	{
		double		s = 0;

		for (int k = 0; k < b; k++)
			s += p->dy[(size_t) k * l->units + u];
		p->gb[u] = (float) s;
	}
	if (p->dx)
		nn_sgemm(0, 0, b, K, l->units, p->dy, l->units, p->W, K, 0.0f, p->dx, K);
}
