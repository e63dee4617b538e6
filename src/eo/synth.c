/*
 * synth.c - synthetic SAR chips in the Statoil/C-CORE layout.
 *
 * Plain C, no PostgreSQL headers.  A chip is a function of (seed, index)
 * only.  The physics, kept simple:
 *   - sea clutter: a backscatter level in dB that falls with incidence angle
 *     (30-46 degrees), modulated by a spatially correlated texture (blurred
 *     noise, about 1 dB) and multiplied in linear power by gamma-distributed
 *     speckle (3 looks HH, 4 looks HV), so the background is correlated and
 *     speckled, not white;
 *   - band_2 (HV) 4-9 dB darker than band_1 (HH) and lower in contrast;
 *   - a target near the centre: ships are elongated (length 8-22 px, width
 *     2-5 px, any heading) with a few bright point scatterers and a weak HV
 *     return; icebergs are compact and rounded with a smooth profile and a
 *     relatively stronger HV return (volume scattering).  Size, contrast and
 *     HH/HV ratio overlap between the classes, so no single number tells
 *     them apart well; shape does;
 *   - 47% icebergs; inc_angle missing (NaN) for about 16% of ships, never
 *     for icebergs, as in train.json.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "iceml_synth.h"

typedef struct Rng
{
	uint64_t	s;
} Rng;

static uint64_t
next(Rng *r)
{
	uint64_t	z = (r->s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* uniform in (0, 1) */
static double
unif(Rng *r)
{
	return ((next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
uniform(Rng *r, double lo, double hi)
{
	return lo + (hi - lo) * unif(r);
}

static double
gauss(Rng *r)
{
	return sqrt(-2.0 * log(unif(r))) * cos(6.283185307179586 * unif(r));
}

/* unit-mean gamma speckle of L looks (L exponentials averaged) */
static double
speckle(Rng *r, int looks)
{
	double		p = 1.0;

	for (int k = 0; k < looks; k++)
		p *= unif(r);
	return -log(p) / looks;
}

#define N ICEML_CHIP_SIDE

/* correlated texture: white noise blurred twice by a 5x5 box, unit variance */
static void
texture(Rng *r, float *out)
{
	static const int R = 2;
	float		a[ICEML_CHIP_PIXELS],
				b[ICEML_CHIP_PIXELS];
	double		s2 = 0;

	for (int i = 0; i < ICEML_CHIP_PIXELS; i++)
		a[i] = (float) gauss(r);
	for (int pass = 0; pass < 2; pass++)
	{
		for (int y = 0; y < N; y++)
			for (int x = 0; x < N; x++)
			{
				double		s = 0;
				int			n = 0;

				for (int d = -R; d <= R; d++)
					if (x + d >= 0 && x + d < N)
					{
						s += a[y * N + x + d];
						n++;
					}
				b[y * N + x] = (float) (s / n);
			}
		for (int y = 0; y < N; y++)
			for (int x = 0; x < N; x++)
			{
				double		s = 0;
				int			n = 0;

				for (int d = -R; d <= R; d++)
					if (y + d >= 0 && y + d < N)
					{
						s += b[(y + d) * N + x];
						n++;
					}
				a[y * N + x] = (float) (s / n);
			}
	}
	for (int i = 0; i < ICEML_CHIP_PIXELS; i++)
		s2 += (double) a[i] * a[i];
	s2 = sqrt(s2 / ICEML_CHIP_PIXELS);
	for (int i = 0; i < ICEML_CHIP_PIXELS; i++)
		out[i] = (float) (a[i] / (s2 > 0 ? s2 : 1));
}

/* background: texture amplitude (dB) per band, looks before the blur */
#define PSF_TEX_HH	1.3
#define PSF_TEX_HV	1.15
#define PSF_LOOKS	2
#define PSF_SIDE	0.12

/* in-place separable [a, 1 - 2a, a] blur, edges renormalised */
static void
SpreadPsf(double *img)
{
	double		tmp[ICEML_CHIP_PIXELS];
	const double a = PSF_SIDE,
				b = 1.0 - 2.0 * PSF_SIDE;

	for (int y = 0; y < N; y++)
		for (int x = 0; x < N; x++)
		{
			double		s = b * img[y * N + x],
						w = b;

			if (x > 0)
				s += a * img[y * N + x - 1], w += a;
			if (x < N - 1)
				s += a * img[y * N + x + 1], w += a;
			tmp[y * N + x] = s / w;
		}
	for (int y = 0; y < N; y++)
		for (int x = 0; x < N; x++)
		{
			double		s = b * tmp[y * N + x],
						w = b;

			if (y > 0)
				s += a * tmp[(y - 1) * N + x], w += a;
			if (y < N - 1)
				s += a * tmp[(y + 1) * N + x], w += a;
			img[y * N + x] = s / w;
		}
}

/*
 * The id: a bijection of the low 32 bits of the index, keyed by the seed, so
 * ids look random (as the real ones do) but never repeat within a stream of
 * up to 2^32 chips and can serve as a primary key.
 */
static unsigned
ChipId(uint32_t seed, uint64_t index)
{
	uint32_t	h = (uint32_t) index ^ (seed * 0x9E3779B9u);

	h ^= h >> 16;
	h *= 0x7FEB352Du;
	h ^= h >> 15;
	h *= 0x846CA68Bu;
	h ^= h >> 16;
	return h;
}

void
iceml_synth_chip(uint32_t seed, uint64_t index, IcemlChip *out)
{
	Rng			r = {((uint64_t) seed << 32) ^ (index * 0xD1B54A32D192ED03ULL) ^ 0x1CE3u};
	float		tex[ICEML_CHIP_PIXELS];
	double		lin_hh[ICEML_CHIP_PIXELS],
				lin_hv[ICEML_CHIP_PIXELS];
	double		angle,
				bg_hh,
				bg_hv;
	int			iceberg;
	double		cx,
				cy,
				len,
				wid,
				heading,
				peak_hh,
				peak_hv;
	double		pts[4][3];
	int			npts = 0;

	next(&r);
	next(&r);					/* formerly the id; kept so chips stay the same */
	snprintf(out->id, sizeof(out->id), "%08x", ChipId(seed, index));
	iceberg = unif(&r) < 0.47;
	out->is_iceberg = iceberg;

	angle = uniform(&r, 30.0, 46.0);
	/* clutter falls about 0.6 dB per degree, with weather/sea-state spread */
	bg_hh = -15.5 - 0.6 * (angle - 30.0) + 2.3 * gauss(&r);
	bg_hv = bg_hh - uniform(&r, 4.0, 9.0);
	out->inc_angle = (!iceberg && unif(&r) < 0.156) ? NAN : (float) angle;

	/* the target */
	cx = (N - 1) / 2.0 + uniform(&r, -6, 6);
	cy = (N - 1) / 2.0 + uniform(&r, -6, 6);
	heading = uniform(&r, 0, 3.141592653589793);
	if (iceberg)
	{
		double		d = uniform(&r, 3.0, 9.0);

		len = d * uniform(&r, 1.0, 1.9);
		wid = d;
		peak_hh = uniform(&r, 9.0, 20.0);
		peak_hv = peak_hh - uniform(&r, 4.0, 10.0);
	}
	else
	{
		len = uniform(&r, 7.0, 22.0);
		wid = uniform(&r, 2.0, 5.5);
		peak_hh = uniform(&r, 10.0, 22.0);
		peak_hv = peak_hh - uniform(&r, 5.0, 11.0);
		npts = 2 + (int) (unif(&r) * 3);
		for (int k = 0; k < npts; k++)
		{
			double		t = uniform(&r, -0.45, 0.45) * len;

			pts[k][0] = cx + t * cos(heading);
			pts[k][1] = cy + t * sin(heading);
			pts[k][2] = uniform(&r, 3.0, 8.0);	/* dB above the hull */
		}
	}

	texture(&r, tex);
	for (int y = 0; y < N; y++)
		for (int x = 0; x < N; x++)
		{
			int			i = y * N + x;
			double		dx = x - cx,
						dy = y - cy;
			double		u = (dx * cos(heading) + dy * sin(heading)) / (len / 2.0);
			double		v = (-dx * sin(heading) + dy * cos(heading)) / (wid / 2.0);
			double		rr = u * u + v * v;
			double		prof;
			double		hh,
						hv;

			/* icebergs fall off smoothly; hulls have a sharper edge */
			prof = iceberg ? exp(-1.2 * rr) : (rr < 1.0 ? 1.0 - 0.5 * rr : exp(-3.0 * (rr - 1.0)) * 0.5);
			hh = pow(10.0, (bg_hh + PSF_TEX_HH * tex[i]) / 10.0) * speckle(&r, PSF_LOOKS);
			hv = pow(10.0, (bg_hv + PSF_TEX_HV * tex[i]) / 10.0) * speckle(&r, PSF_LOOKS);
			if (prof > 1e-3)
			{
				hh += prof * pow(10.0, (bg_hh + peak_hh) / 10.0) * speckle(&r, 2);
				hv += prof * pow(10.0, (bg_hv + peak_hv - (bg_hv - bg_hh) * 0.3) / 10.0) * speckle(&r, 2);
			}
			for (int k = 0; k < npts; k++)
			{
				double		ex = x - pts[k][0],
							ey = y - pts[k][1];
				double		g = exp(-(ex * ex + ey * ey) / 1.2);

				if (g > 1e-3)
				{
					hh += g * pow(10.0, (bg_hh + peak_hh + pts[k][2]) / 10.0);
					hv += g * pow(10.0, (bg_hv + peak_hv + pts[k][2] - 1.0) / 10.0);
				}
			}
			lin_hh[i] = hh;
			lin_hv[i] = hv;
		}

	/*
	 * The sensor's impulse response and the resampling to the 75 x 75 grid
	 * spread each scatterer over its neighbours: the real chips' speckle is
	 * correlated (lag-1 autocorrelation about 0.5) and lower in spread (about
	 * 2.1 dB) than independent 2-look speckle.  A light separable blur in
	 * linear power, [a, 1 - 2a, a] with a = 0.12, gives both.
	 */
	SpreadPsf(lin_hh);
	SpreadPsf(lin_hv);
	for (int i = 0; i < ICEML_CHIP_PIXELS; i++)
	{
		double		hh = 10.0 * log10(lin_hh[i]);
		double		hv = 10.0 * log10(lin_hv[i]);

		out->band_1[i] = (float) (hh < -45.0 ? -45.0 : (hh > 35.0 ? 35.0 : hh));
		out->band_2[i] = (float) (hv < -48.0 ? -48.0 : (hv > 30.0 ? 30.0 : hv));
	}
}
