/*
 * sar.c - numeric kernels for SAR bands; see include/iceml_sar.h.
 *
 * Plain C (no PostgreSQL headers), so the kernels can be unit-tested and
 * benchmarked alone.  Accumulation in double, storage in float.
 */
#include <float.h>
#include <math.h>

#include "iceml_sar.h"

void
iceml_band_avg(const float *a, const float *b, float *out, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = a[i] * 0.5f + b[i] * 0.5f;	/* halves first: no overflow near FLT_MAX */
}

int
iceml_to_linear(const float *db, float *out, int n)
{
	for (int i = 0; i < n; i++)
	{
		double		v = pow(10.0, (double) db[i] / 10.0);

		if (!(v <= FLT_MAX))
			return i;
		out[i] = (float) v;
	}
	return -1;
}

int
iceml_to_db(const float *x, float *out, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (!(x[i] > 0.0f))
			return i;
		out[i] = (float) (10.0 * log10((double) x[i]));
	}
	return -1;
}

void
iceml_band_stats(const float *x, int n, IcemlBandStats *st)
{
	double		mn = x[0],
				mx = x[0],
				sum = 0.0,
				mean,
				ss = 0.0;

	for (int i = 0; i < n; i++)
	{
		double		v = x[i];

		if (v < mn)
			mn = v;
		if (v > mx)
			mx = v;
		sum += v;
	}
	mean = sum / n;
	/* second pass about the mean: no cancellation for large offsets */
	for (int i = 0; i < n; i++)
	{
		double		d = x[i] - mean;

		ss += d * d;
	}
	st->min = mn;
	st->max = mx;
	st->mean = mean;
	st->stddev = sqrt(ss / n);
}

int
iceml_standardize(const float *x, float *out, int n)
{
	IcemlBandStats st;

	iceml_band_stats(x, n, &st);
	if (st.stddev == 0.0)
	{
		for (int i = 0; i < n; i++)
			out[i] = 0.0f;
		return 1;
	}
	for (int i = 0; i < n; i++)
		out[i] = (float) (((double) x[i] - st.mean) / st.stddev);
	return 0;
}

size_t
iceml_lee_work_len(int side)
{
	return 2 * (size_t) (side > 0 ? side : 0);
}

/*
 * One sweep of the window over the image: column sums over the rows of the
 * window are kept for every column and moved down one row at a time, and a
 * horizontal running sum over them gives each pixel's window sum, so the cost
 * per pixel does not depend on the window.  Values are shifted by the image
 * mean first so that E[x^2] - E[x]^2 does not lose the variance to
 * cancellation.  With out == NULL the sweep only returns the mean local
 * variance (the noise estimate); otherwise it applies the filter with s2.
 */
static double
LeeSweep(const float *in, float *out, int side, int half, double shift,
		 double s2, double *colsum, double *colsq)
{
	double		vtotal = 0.0;

	for (int c = 0; c < side; c++)
	{
		colsum[c] = 0.0;
		colsq[c] = 0.0;
	}
	/* rows 0 .. half-1 first; each row r then adds row r + half */
	for (int r = 0; r < half && r < side; r++)
		for (int c = 0; c < side; c++)
		{
			double		v = in[(size_t) r * side + c] - shift;

			colsum[c] += v;
			colsq[c] += v * v;
		}

	for (int r = 0; r < side; r++)
	{
		int			radd = r + half,
					rdel = r - half - 1;
		int			r0 = r - half < 0 ? 0 : r - half;
		int			r1 = r + half >= side ? side - 1 : r + half;
		int			nr = r1 - r0 + 1;
		double		hs = 0.0,
					hq = 0.0;

		if (radd < side)
			for (int c = 0; c < side; c++)
			{
				double		v = in[(size_t) radd * side + c] - shift;

				colsum[c] += v;
				colsq[c] += v * v;
			}
		if (rdel >= 0)
			for (int c = 0; c < side; c++)
			{
				double		v = in[(size_t) rdel * side + c] - shift;

				colsum[c] -= v;
				colsq[c] -= v * v;
			}

		for (int c = 0; c < half && c < side; c++)
		{
			hs += colsum[c];
			hq += colsq[c];
		}
		for (int c = 0; c < side; c++)
		{
			int			cadd = c + half,
						cdel = c - half - 1;
			int			c0 = c - half < 0 ? 0 : c - half;
			int			c1 = c + half >= side ? side - 1 : c + half;
			double		cnt = (double) nr * (c1 - c0 + 1);
			double		m,
						var;

			if (cadd < side)
			{
				hs += colsum[cadd];
				hq += colsq[cadd];
			}
			if (cdel >= 0)
			{
				hs -= colsum[cdel];
				hq -= colsq[cdel];
			}
			m = hs / cnt;
			var = hq / cnt - m * m;
			if (var < 0.0)
				var = 0.0;		/* rounding of a (near) constant window */

			if (out == NULL)
				vtotal += var;
			else
			{
				size_t		i = (size_t) r * side + c;
				double		k = var > s2 ? (var - s2) / var : 0.0;

				out[i] = (float) (shift + m + k * ((in[i] - shift) - m));
			}
		}
	}
	return vtotal / ((double) side * side);
}

int
iceml_lee_filter(const float *in, float *out, int side, int window,
				 double *work)
{
	double		shift = 0.0;
	double		s2;
	size_t		npix;
	int			half;

	if (side < 1 || window < 1 || window % 2 == 0 || window > side)
		return -1;
	npix = (size_t) side * side;
	half = window / 2;
	for (size_t i = 0; i < npix; i++)
		shift += in[i];
	shift /= (double) npix;

	s2 = LeeSweep(in, NULL, side, half, shift, 0.0, work, work + side);
	LeeSweep(in, out, side, half, shift, s2, work, work + side);
	return 0;
}
