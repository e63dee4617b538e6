/*
 * predict_input.c - where a chip becomes a model's input: band arguments
 * checked, the input image built from the model's channels (the one place,
 * used by iceml_predict, predict_table and predict_batch alike).
 */
#include "postgres.h"

#include <math.h>

#include "iceml_pgarray.h"
#include "iceml_predict.h"
#include "iceml_sar.h"

/* ---- arguments ------------------------------------------------------------ */

/*
 * A band argument: one-dimensional real[] of exactly n finite values
 * without NULLs.  Returns a pointer into the (detoasted) array.
 */
const float *
PredictCheckBand(ArrayType *arr, const char *fn, const char *argname, int n)
{
	int			len;
	const float *v = IcemlRealArrayArg(arr, fn, argname, &len);

	if (len != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s must have %d values, not %d", fn, argname, n, len),
				 errdetail("The model takes %dx%d images, one real[] of %d values per band in row-major order.",
						   (int) sqrt((double) n), (int) sqrt((double) n), n)));
	return v;
}

float
PredictCheckAngle(float angle, const char *fn, const char *argname)
{
	if (!isfinite(angle) || angle < 0 || angle > 90)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s must be between 0 and 90 degrees, not %g", fn, argname, angle)));
	return angle;
}

/*
 * The one place where a chip becomes the net's input: the model's channels
 * say what to build from the two bands.
 */
void
PredictFillImage(IcemlModel *m, float *dst, const float *b1, const float *b2)
{
	int			hw = m->h * m->w;

	for (int c = 0; c < m->c; c++)
	{
		float	   *ch = dst + (size_t) c * hw;

		switch ((PredictChannel) m->channel[c])
		{
			case CH_BAND_1:
				memcpy(ch, b1, sizeof(float) * hw);
				break;
			case CH_BAND_2:
				memcpy(ch, b2, sizeof(float) * hw);
				break;
			case CH_BAND_AVG:
				/* as training and the loader compute it */
				iceml_band_avg(b1, b2, ch, hw);
				break;
		}
	}
}

void
PredictFillInput(IcemlModel *m, const float *b1, const float *b2)
{
	PredictFillImage(m, m->input, b1, b2);
}
