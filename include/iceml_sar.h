/*
 * iceml_sar.h - numeric kernels for SAR bands (plain C, no PostgreSQL headers).
 *
 * Used by the SQL functions of src/featurestore/features.c, by the loader (band_avg), by
 * iceml_predict and by what-if analysis.  The kernels never allocate and never
 * report errors themselves: where an input can be out of their domain they
 * return the index of the first element at fault (or -1 when all is well), and
 * the caller words the error.  Arguments are assumed already checked by the
 * caller (n >= 1, values finite; see include/iceml_pgarray.h for the SQL edge).
 *
 * All accumulation is done in double; results are stored as float.
 */
#ifndef ICEML_SAR_H
#define ICEML_SAR_H

#include <stddef.h>

/* Summary statistics of a band; stddev is the POPULATION standard deviation
 * (divide by n, as stddev_pop), so a one-pixel band has stddev 0. */
typedef struct IcemlBandStats
{
	double		min;
	double		max;
	double		mean;
	double		stddev;
} IcemlBandStats;

/* out[i] = (a[i] + b[i]) / 2, the third channel of the usual Statoil models.
 * out may alias a or b. */
extern void iceml_band_avg(const float *a, const float *b, float *out, int n);

/* out[i] = 10^(db[i]/10).  Returns -1, or the index of the first element whose
 * result is not a finite float (db above about 385 dB).  out may alias db. */
extern int	iceml_to_linear(const float *db, float *out, int n);

/* out[i] = 10*log10(x[i]).  Returns -1, or the index of the first element
 * x[i] <= 0 (logarithm undefined); out is then partially written.
 * out may alias x. */
extern int	iceml_to_db(const float *x, float *out, int n);

/* min, max, mean and population stddev of x[0..n-1] (n >= 1). */
extern void iceml_band_stats(const float *x, int n, IcemlBandStats *st);

/* out[i] = (x[i] - mean) / stddev with the band's own mean and population
 * stddev.  A constant band (stddev 0) has no scale: it is mapped to all zeros
 * (centred, not scaled) rather than to NaN; the return value is then 1, else 0.
 * out may alias x. */
extern int	iceml_standardize(const float *x, float *out, int n);

/*
 * Classic Lee speckle filter (Lee 1980, additive-noise form) of a side x side
 * row-major image with an odd square window (1 <= window <= side):
 *
 *     out = m + k (x - m),   k = max(0, v - s2) / v   (k = 0 where v = 0)
 *
 * where m and v are the local mean and population variance over the window and
 * s2, the noise variance, is estimated from the image itself as the mean of
 * the local variances over all pixels (homogeneous areas dominate a chip, so
 * this approximates the speckle variance; a constant image is returned as is).
 *
 * Edges: the window is clipped to the image (no padding, no reflection): near
 * a border m and v are taken over the pixels of the window that lie inside.
 *
 * Cost O(side^2) whatever the window (sliding column sums, two passes); work
 * must point to iceml_lee_work_len(side) doubles.  Returns 0, or -1 when side
 * or window is out of range (nothing written).  out must not alias in.
 */
extern size_t iceml_lee_work_len(int side);
extern int	iceml_lee_filter(const float *in, float *out, int side, int window,
							 double *work);

#endif							/* ICEML_SAR_H */
