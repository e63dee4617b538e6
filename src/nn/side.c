/*
 * side.c - scalar side inputs (issue 16): numbers that come with each image,
 * such as the radar's incidence angle, joined to the flat image features by
 * a "side" layer so that the dense layers after it see both.
 *
 * Each side input becomes two features: its value standardised with the
 * training split's mean and standard deviation (stored with the model), and
 * a missing indicator.  A missing value (NaN) is standardised to 0, the
 * training mean, with the indicator 1: the dense layer learns what "no
 * angle" means (in the Statoil data, only ships lack an angle) instead of
 * being fed a made-up angle.  The side inputs themselves take no gradient.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn_internal.h"

int
iceml_net_side_count(const IcemlNet *net)
{
	return net->nside;
}

const char *
iceml_net_side_name(const IcemlNet *net, int i)
{
	return (i >= 0 && i < net->nside) ? net->side_name[i] : NULL;
}

void
iceml_nn_side_stats(const float *side, int64_t n, int nside, float *mean, float *std)
{
	for (int k = 0; k < nside; k++)
	{
		double		s = 0,
					s2 = 0,
					m;
		int64_t		cnt = 0;

		for (int64_t i = 0; i < n; i++)
		{
			float		v = side[(size_t) i * nside + k];

			if (isfinite(v))
			{
				s += v;
				cnt++;
			}
		}
		m = cnt > 0 ? s / (double) cnt : 0.0;
		for (int64_t i = 0; i < n; i++)
		{
			float		v = side[(size_t) i * nside + k];

			if (isfinite(v))
				s2 += (v - m) * (v - m);
		}
		mean[k] = (float) m;
		std[k] = cnt > 0 ? (float) sqrt(s2 / (double) cnt) : 1.0f;
		/* a constant input carries nothing: keep it at 0 without blowing up */
		if (!(std[k] > 1e-6f))
			std[k] = 1.0f;
	}
}

int
iceml_net_set_side_normalisation(IcemlNet *net, const float *mean, const float *std)
{
	for (int k = 0; k < net->nside; k++)
		if (!isfinite(mean[k]) || !isfinite(std[k]) || !(std[k] > 0.0f))
			return -1;
	memcpy(net->side_mean, mean, sizeof(float) * net->nside);
	memcpy(net->side_std, std, sizeof(float) * net->nside);
	net->has_side_norm = 1;
	return 0;
}

const float *
iceml_net_side_mean(const IcemlNet *net)
{
	return net->has_side_norm && net->nside > 0 ? net->side_mean : NULL;
}

const float *
iceml_net_side_std(const IcemlNet *net)
{
	return net->has_side_norm && net->nside > 0 ? net->side_std : NULL;
}

void
nn_gather_side(const IcemlNet *net, Plan *plan, const float *side,
			   const int64_t *index, int b)
{
	int			S = net->nside;
	float	   *feat;

	if (net->side_layer < 0)
		return;
	feat = plan->aux[net->side_layer];
	for (int k = 0; k < b; k++)
	{
		const float *v = side ? side + (size_t) (index ? index[k] : k) * S : NULL;

		for (int j = 0; j < S; j++)
		{
			float	   *f = feat + (size_t) k * 2 * S + 2 * j;

			if (v != NULL && isfinite(v[j]))
			{
				f[0] = (v[j] - net->side_mean[j]) / net->side_std[j];
				f[1] = 0.0f;
			}
			else
			{
				f[0] = 0.0f;
				f[1] = 1.0f;
			}
		}
	}
}

void
nn_side_forward(const Layer *l, const float *x, const float *feat, float *y, int b)
{
	int			extra = l->oc - l->ic;

	for (int k = 0; k < b; k++)
	{
		memcpy(y + (size_t) k * l->oc, x + (size_t) k * l->ic, sizeof(float) * l->ic);
		memcpy(y + (size_t) k * l->oc + l->ic, feat + (size_t) k * extra, sizeof(float) * extra);
	}
}

void
nn_side_backward(const Layer *l, const float *dy, float *dx, int b)
{
	for (int k = 0; k < b; k++)
		memcpy(dx + (size_t) k * l->ic, dy + (size_t) k * l->oc, sizeof(float) * l->ic);
}
