/*
 * views.c - the eight views of an image that test-time augmentation averages
 * over (issue 16): the flips and quarter turns, under which a SAR chip's
 * label does not change.  src/serving/score.c (deploy(..., tta => true)) and the
 * quality benchmark (test/bench/parity.c --tta) both take their views here,
 * so the benchmark's recipe figure is the deployment's.
 */
#include "nn_internal.h"

int
iceml_nn_view_count(int h, int w)
{
	/* flips keep a non-square image's shape; quarter turns need a square */
	return h == w ? 8 : 4;
}

/*
 * View v of an image of c channels of h x w: 0 itself, 1 left-right flip,
 * 2 top-bottom flip, 3 half turn, and on a square image 4 a quarter turn
 * clockwise, 5 three quarter turns, 6 the transpose, 7 the anti-transpose
 * (quarter turns of the flips).  out[r][c] = in[source of (r, c)].
 */
void
iceml_nn_view(const float *src, float *dst, int c, int h, int w, int v)
{
	size_t		hw = (size_t) h * w;

	for (int ch = 0; ch < c; ch++)
	{
		const float *s = src + ch * hw;
		float	   *d = dst + ch * hw;

		for (int r = 0; r < h; r++)
			for (int col = 0; col < w; col++)
			{
				int			sr,
							sc;

				switch (v)
				{
					case 1:
						sr = r, sc = w - 1 - col;
						break;
					case 2:
						sr = h - 1 - r, sc = col;
						break;
					case 3:
						sr = h - 1 - r, sc = w - 1 - col;
						break;
					case 4:
						sr = w - 1 - col, sc = r;
						break;
					case 5:
						sr = col, sc = w - 1 - r;
						break;
					case 6:
						sr = col, sc = r;
						break;
					case 7:
						sr = w - 1 - col, sc = h - 1 - r;
						break;
					default:
						sr = r, sc = col;
						break;
				}
				d[(size_t) r * w + col] = s[(size_t) sr * w + sc];
			}
	}
}
