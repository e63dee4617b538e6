/*
 * score.c - images scored by a model: the mean over a deployment's members
 * and its test-time augmentation views (PredictScore), one chip with its
 * angle (PredictRun), and the image buffers a backend keeps.
 *
 * Test-time augmentation (a deployment's tta) scores each chip as its 8
 * flips and quarter turns (the dihedral group of the square: valid for SAR
 * chips, which have no up or down) and averages the probabilities; an
 * ensemble averages its members'.  For a chunk the views are laid out
 * image by image, so each member runs once per chunk of views.
 */
#include "postgres.h"

#include "iceml.h"
#include "iceml_predict.h"

static int	threads_set = 0;

/*
 * Scratch buffers of this backend, kept for its life and grown as needed:
 * freeing and allocating megabytes per call (or per deployment switch)
 * makes malloc keep ever more of them, so a busy backend's memory grows.
 * views: the views of one chunk (test-time augmentation, inside
 * PredictScore, which runs no SQL).  input: the images a batched call
 * builds; a call nested in another's scan (a relation that itself runs
 * predict_table) takes a palloc'd buffer instead.
 */
static PredictScratch views_scratch;

float *
PredictScratchGet(PredictScratch *s, size_t floats)
{
	if (s->floats < floats)
	{
		float	   *b = malloc(sizeof(float) * floats);

		if (b == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory for %zu MB of image buffers", sizeof(float) * floats >> 20)));
		free(s->buf);
		s->buf = b;
		s->floats = floats;
	}
	return s->buf;
}

/* ---- the views of test-time augmentation --------------------------------- */

/*
 * View v of an image of c channels of h x w: 0 itself, 1 left-right flip,
 * 2 top-bottom flip, 3 half turn, and on a square image 4 a quarter turn
 * clockwise, 5 three quarter turns, 6 the transpose, 7 the anti-transpose
 * (quarter turns of the flips).  out[r][c] = in[source of (r, c)].
 */
static void
MakeView(const float *src, float *dst, int c, int h, int w, int v)
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

/* ---- scoring ---------------------------------------------------------------- */

static void
SetThreads(int threads)
{
	if (threads_set != threads)
	{
		iceml_nn_set_threads(threads);
		threads_set = threads;
	}
}

/* member k on n images; side: their angles (NaN missing, NULL all missing) */
static void
RunNet(IcemlModel *m, int k, const float *x, const float *side, int64 n, float *prob,
	   const char *fn)
{
	char		err[ICEML_NN_ERRLEN];
	int			rc;

	if (n > 1)
		m->batched = true;		/* the engine makes its batch workspace */
	if (iceml_net_side_count(m->members[k]) > 0)	/* inc_angle only (AddMember) */
		rc = iceml_net_predict_side(m->members[k], x, side, n, prob, err, sizeof(err));
	else
		rc = iceml_net_predict(m->members[k], x, n, prob, err, sizeof(err));

	if (rc == ICEML_NN_INTERRUPTED)
		IcemlEngineInterrupted(fn);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("%s with model %lld failed: %s", fn, (long long) m->member_ids[k], err)));
}

void
PredictScore(IcemlModel *m, const float *x, const float *angles, int64 n, float *prob,
			 int threads, const char *fn)
{
	size_t		img = (size_t) m->c * m->h * m->w;
	int			per = ICEML_PREDICT_CHUNK / m->views;	/* images per chunk */
	float	   *views = NULL;

	SetThreads(threads);
	if (m->nmembers == 1 && m->views == 1)
	{
		/* a single model: the engine's own batches, exactly as before */
		RunNet(m, 0, x, angles, n, prob, fn);
		return;
	}
	if (m->views > 1)
		views = PredictScratchGet(&views_scratch, img * ICEML_PREDICT_CHUNK);
	for (int64 at = 0; at < n; at += per)
	{
		int			b = (int) Min(n - at, per);
		int			cnt = b * m->views;
		const float *in = x + at * img;
		const float *side = angles ? angles + at : NULL;
		float		sidev[ICEML_PREDICT_CHUNK];	/* each view takes its chip's angle */
		float		p[ICEML_PREDICT_CHUNK];
		double		sum[ICEML_PREDICT_CHUNK];

		if (m->views > 1)
		{
			for (int i = 0; i < b; i++)
				for (int v = 0; v < m->views; v++)
					MakeView(x + (at + i) * img, views + ((size_t) i * m->views + v) * img,
							 m->c, m->h, m->w, v);
			in = views;
			if (angles)
			{
				for (int i = 0; i < b; i++)
					for (int v = 0; v < m->views; v++)
						sidev[i * m->views + v] = angles[at + i];
				side = sidev;
			}
		}
		for (int i = 0; i < b; i++)
			sum[i] = 0;
		for (int k = 0; k < m->nmembers; k++)
		{
			if (n == 1)
			{
				/* one chip (iceml_predict): its views one at a time */
				for (int v = 0; v < cnt; v++)
					RunNet(m, k, in + v * img, side ? side + v : NULL, 1, p + v, fn);
			}
			else
				RunNet(m, k, in, side, cnt, p, fn);
			for (int i = 0; i < b; i++)
				for (int v = 0; v < m->views; v++)
					sum[i] += p[i * m->views + v];
		}
		for (int i = 0; i < b; i++)
			prob[at + i] = (float) (sum[i] / ((double) m->nmembers * m->views));
	}
}

/* One image x with the call's angle (m->angle). */
float
PredictRun(IcemlModel *m, const float *x)
{
	float		p;

	/* m->angle: the call's inc_angle, for members that take it */
	PredictScore(m, x, &m->angle, 1, &p, iceml_predict_threads, "iceml_predict");
	return p;
}
