/*
 * layers_norm.c - batch normalisation, forward and backward, over spatial
 * (per channel, C x B x H x W) or flat (per feature, B x F) activations.
 * Training uses the batch's statistics and moves the running ones; inference
 * uses the running ones.
 */
#include <math.h>

#include "nn_layers.h"

/* batch norm over channel c's values: base + c * cs + k * ks, k < n */
static void
bn_forward(const Layer *l, const float *x, float *y, int b, int training,
		   const float *gamma, const float *beta, float *running, float *xhat, float *stats)
{
	int			C = l->ic;
	size_t		n = l->in_flat ? (size_t) b : (size_t) b * l->ih * l->iw;
	size_t		cs = l->in_flat ? 1 : n;
	size_t		ks = l->in_flat ? (size_t) C : 1;

	for (int c = 0; c < C; c++)
	{
		const float *xc = x + c * cs;
		float	   *yc = y + c * cs;
		double		mean,
					var;
		float		inv;

		if (training)
		{
			double		s = 0,
						s2 = 0;

			for (size_t k = 0; k < n; k++)
				s += xc[k * ks];
			mean = s / n;
			for (size_t k = 0; k < n; k++)
			{
				double		d = xc[k * ks] - mean;

				s2 += d * d;
			}
			var = s2 / n;
			running[c] = l->bn_momentum * running[c] + (1.0f - l->bn_momentum) * (float) mean;
			running[C + c] = l->bn_momentum * running[C + c] +
				(1.0f - l->bn_momentum) * (float) (n > 1 ? var * n / (n - 1) : var);
		}
		else
		{
			mean = running[c];
			var = running[C + c];
		}
		inv = (float) (1.0 / sqrt(var + l->bn_epsilon));
		if (stats)
		{
			stats[c] = (float) mean;
			stats[C + c] = inv;
		}
		for (size_t k = 0; k < n; k++)
		{
			float		h = (xc[k * ks] - (float) mean) * inv;

			if (xhat)
				xhat[c * cs + k * ks] = h;
			yc[k * ks] = gamma[c] * h + beta[c];
		}
	}
}

static void
bn_backward(const Layer *l, const float *dy, float *dx, int b, const float *gamma,
			const float *xhat, const float *stats, float *dgamma, float *dbeta)
{
	int			C = l->ic;
	size_t		n = l->in_flat ? (size_t) b : (size_t) b * l->ih * l->iw;
	size_t		cs = l->in_flat ? 1 : n;
	size_t		ks = l->in_flat ? (size_t) C : 1;

	for (int c = 0; c < C; c++)
	{
		double		sg = 0,
					sb = 0;
		float		inv = stats[C + c];

		for (size_t k = 0; k < n; k++)
		{
			size_t		at = c * cs + k * ks;

			sg += dy[at] * xhat[at];
			sb += dy[at];
		}
		dgamma[c] = (float) sg;
		dbeta[c] = (float) sb;
		if (dx)
		{
			float		scale = gamma[c] * inv / (float) n;

			for (size_t k = 0; k < n; k++)
			{
				size_t		at = c * cs + k * ks;

				dx[at] = scale * ((float) n * dy[at] - (float) sb - xhat[at] * (float) sg);
			}
		}
	}
}


void
nn_batchnorm_forward(const LayerPass *p)
{
	const Layer *l = p->l;
	Plan	   *plan = p->plan;

	bn_forward(l, p->x, p->y, p->b, p->training, p->W, p->bias, p->net->state + l->s_off,
			   p->training ? plan->aux[p->i] : NULL, plan->aux2[p->i]);
}

void
nn_batchnorm_backward(const LayerPass *p)
{
	bn_backward(p->l, p->dy, p->dx, p->b, p->W, p->plan->aux[p->i], p->plan->aux2[p->i],
				p->gW, p->gb);
}
