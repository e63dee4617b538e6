/*
 * layers_conv.c - 2-d convolution, forward and backward.
 *
 * Im2col + one sgemm over the whole batch, in the C x B x H x W layout (see
 * nn_internal.h), with bias and activation in one pass over the result
 * (or left to the max-pool after it, PLAN_DEFER_BIAS); or, for a small K,
 * the kernel set's direct convolution (PLAN_DIRECT).  Backward: the bias
 * gradient (or the pool's per-plane sums, PLAN_POOL_GRAD), the weight
 * gradient (sgemm against the col matrix, or the direct kernel), and the
 * input gradient a few images at a time through col2im.
 */
#include <math.h>
#include <string.h>

#include "nn_layers.h"

typedef struct ColArgs
{
	const Layer *l;
	const float *x;
	float	   *col;
	int			b;
} ColArgs;

static void
im2col_rows(void *p, size_t begin, size_t end)
{
	ColArgs    *a = p;
	const Layer *l = a->l;
	const float *x = a->x;
	float	   *col = a->col;
	int			b = a->b;
	int			P = l->oh * l->ow;
	size_t		N = (size_t) b * P;
	size_t		plane = (size_t) l->ih * l->iw;

	for (size_t r = begin; r < end; r++)
			{
				int			c = (int) (r / (size_t) (l->kh * l->kw));
				int			i = (int) (r / (size_t) l->kw) % l->kh;
				int			j = (int) (r % (size_t) l->kw);
				float	   *row = col + r * N;

				for (int k = 0; k < b; k++)
				{
					const float *src = x + ((size_t) c * b + k) * plane;
					float	   *dst = row + (size_t) k * P;

					for (int oy = 0; oy < l->oh; oy++)
					{
						int			iy = oy * l->stride + i - l->pad_top;
						float	   *d = dst + oy * l->ow;

						if (iy < 0 || iy >= l->ih)
						{
							memset(d, 0, sizeof(float) * l->ow);
							continue;
						}
						if (l->stride == 1 && l->pad_left == 0 && j + l->ow <= l->iw)
						{
							memcpy(d, src + (size_t) iy * l->iw + j, sizeof(float) * l->ow);
							continue;
						}
						for (int ox = 0; ox < l->ow; ox++)
						{
							int			ix = ox * l->stride + j - l->pad_left;

							d[ox] = (ix >= 0 && ix < l->iw) ? src[(size_t) iy * l->iw + ix] : 0.0f;
						}
					}
				}
			}
}

static void
im2col(const Layer *l, const float *x, int b, float *col)
{
	ColArgs		a = {l, x, col, b};

	nn_parallel_for((size_t) l->ic * l->kh * l->kw, 1, im2col_rows, &a);
}

/*
 * d(col) back to d(input) for channels [c0, c1) of images [k0, k0 + kc):
 * image k0 + k's columns start at row + k * P in rows of rowlen floats.
 * Each plane is cleared just before it is accumulated, while in cache.
 */
static void
col2im_part(const Layer *l, const float *col, size_t rowlen, int b, int k0, int kc,
			int c0, int c1, float *dx)
{
	int			P = l->oh * l->ow;
	size_t		plane = (size_t) l->ih * l->iw;

	for (int c = c0; c < c1; c++)
	{
		memset(dx + ((size_t) c * b + k0) * plane, 0, sizeof(float) * plane * kc);
		for (int i = 0; i < l->kh; i++)
			for (int j = 0; j < l->kw; j++)
			{
				const float *row = col + ((size_t) (c * l->kh + i) * l->kw + j) * rowlen;
				int			st = l->stride,
							off = j - l->pad_left;

				/* the outputs ox whose input column ox * st + off is inside */
				int			lo = off >= 0 ? 0 : (-off + st - 1) / st;
				int			hi = l->iw - off <= 0 ? 0 : (l->iw - off + st - 1) / st;

				if (hi > l->ow)
					hi = l->ow;
				for (int k = 0; k < kc; k++)
				{
					float	   *dst = dx + ((size_t) c * b + k0 + k) * plane;
					const float *src = row + (size_t) k * P;

					for (int oy = 0; oy < l->oh; oy++)
					{
						int			iy = oy * l->stride + i - l->pad_top;
						const float *s = src + oy * l->ow;

						if (iy < 0 || iy >= l->ih)
							continue;
						if (l->stride == 1)
						{
							float	   *d = dst + (size_t) iy * l->iw + off;

							for (int ox = lo; ox < hi; ox++)
								d[ox] += s[ox];
						}
						else
							for (int ox = lo; ox < hi; ox++)
								dst[(size_t) iy * l->iw + ox * l->stride + off] += s[ox];
					}
				}
			}
	}
}

/*
 * d(input) of a conv, a few images at a time: d(col) of a chunk of images
 * (W^T dy, one single-threaded sgemm) goes to a scratch area of about 2 MB
 * and straight back through col2im while it is still in cache, instead of
 * writing the whole batch's d(col) (85 MB for conv2 at batch 32) and
 * reading it back.  The scratch is the spent col matrix: each thread uses
 * the area of the first chunk of its range.  A chunk's result does not
 * depend on the thread count.
 */
typedef struct DcolArgs
{
	const Layer *l;
	const float *W;
	const float *dy;
	float	   *col;
	float	   *dx;
	int			b;
	int			chunk;
} DcolArgs;

static void
dcol_chunks(void *p, size_t begin, size_t end)
{
	DcolArgs   *a = p;
	const Layer *l = a->l;
	int			K = l->ic * l->kh * l->kw,
				P = l->oh * l->ow,
				N = a->b * P;
	float	   *scratch = a->col + begin * (size_t) a->chunk * K * P;

	for (size_t ch = begin; ch < end; ch++)
	{
		int			k0 = (int) ch * a->chunk,
					kc = a->b - k0 < a->chunk ? a->b - k0 : a->chunk;

		nn_sgemm(1, 0, K, kc * P, l->filters,
				 a->W, K, a->dy + (size_t) k0 * P, N, 0.0f, scratch, kc * P);
		col2im_part(l, scratch, (size_t) kc * P, a->b, k0, kc, 0, l->ic, a->dx);
	}
}

static void
conv_input_grad(const Layer *l, const float *W, const float *dy, float *col, int b, float *dx)
{
	int			P = l->oh * l->ow;
	DcolArgs	a = {l, W, dy, col, dx, b, 0};
	int			threads = nn_work_threads();

	a.chunk = 1024 / P < 1 ? 1 : (1024 / P > b ? b : 1024 / P);
	/* at least one chunk per thread (conv4: 25 columns per image) */
	if ((b + a.chunk - 1) / a.chunk < threads)
		a.chunk = (b + threads - 1) / threads;
	nn_parallel_for((size_t) (b + a.chunk - 1) / a.chunk, 1, dcol_chunks, &a);
}

typedef struct EwArgs
{
	float	   *y;
	const float *bias;
	const float *x;
	size_t		len;
	Activation	act;
} EwArgs;

static void
bias_act_range(void *p, size_t begin, size_t end)
{
	EwArgs	   *a = p;
	float	   *y = a->y;
	const float *bias = a->bias;
	size_t		len = a->len;
	Activation	act = a->act;

	for (size_t r = begin; r < end; r++)
	{
		float	   *v = y + (size_t) r * len;
		float		bv = bias[r];

		if (act == ACT_RELU)
			for (size_t i = 0; i < len; i++)
			{
				float		t = v[i] + bv;

				v[i] = t > 0.0f ? t : 0.0f;
			}
		else if (act == ACT_SIGMOID)
			for (size_t i = 0; i < len; i++)
				v[i] = 1.0f / (1.0f + expf(-(v[i] + bv)));
		else
			for (size_t i = 0; i < len; i++)
				v[i] += bv;
	}
}

/* bias and activation over `rows` rows of `len` values, row r getting bias[r] */
static void
bias_act_rows(float *y, const float *bias, int rows, size_t len, Activation act)
{
	EwArgs		a = {y, bias, NULL, len, act};

	nn_parallel_for((size_t) rows, 1, bias_act_range, &a);
}

typedef struct BiasGradArgs
{
	float	   *dy;
	const float *y;
	float	   *gb;
	const float *bias;			/* y is before bias (deferred to the pool) */
	size_t		len;
	Activation	act;
} BiasGradArgs;

/*
 * Per filter row: dy *= act'(y) and gb = sum of dy, in one pass.  Eight
 * partial sums break the add latency chain; their order is fixed, so the
 * result does not depend on the thread count.
 */
static void
bias_grad_rows(void *p, size_t begin, size_t end)
{
	BiasGradArgs *a = p;
	size_t		len = a->len;

	for (size_t f = begin; f < end; f++)
	{
		float	   *d = a->dy + f * len;
		const float *y = a->y + f * len;
		double		acc[8] = {0, 0, 0, 0, 0, 0, 0, 0},
					s = 0;
		size_t		i = 0;

		float		zero = a->bias ? -a->bias[f] : 0.0f;

		if (a->act == ACT_RELU)
			for (size_t k = 0; k < len; k++)
				d[k] = y[k] > zero ? d[k] : 0.0f;
		else if (a->act == ACT_SIGMOID)
			for (size_t k = 0; k < len; k++)
				d[k] *= y[k] * (1.0f - y[k]);
		for (; i + 8 <= len; i += 8)
			for (int u = 0; u < 8; u++)
				acc[u] += d[i + u];
		for (; i < len; i++)
			acc[0] += d[i];
		for (int u = 0; u < 8; u++)
			s += acc[u];
		a->gb[f] = (float) s;
	}
}


/*
 * ---- Winograd forward: F(2x2, 3x3) and F(4x4, 3x3) ------------------------
 *
 * U[p][f][c] = (G g G^T)[p] for filter f, channel c; per chunk of images
 * the kernel set transforms the input into V[p][c][t], P sgemms make
 * M[p] = U[p] V[p] (F x T, the sum over channels), and the kernel set
 * transforms M back into m x m outputs per tile (kernels_template.h).
 * With 2x2 tiles (P = 16) the sgemms do 16 C F T multiply-adds where
 * im2col + sgemm does 9 C F 4T, 2.25x fewer; with 4x4 tiles (P = 36)
 * 36 C F T against 9 C F 16T, 4x fewer.  The tile comes from the layer's
 * shape (nn_wino_m).  An inference plan keeps U from one pass to the next
 * while the parameters are unchanged (Plan.wino_made): at one image,
 * transforming the weights took about as long as the rest of the layer.
 * Chunks are a fixed number of images, whatever the threads; each thread
 * takes every slots-th chunk into its own scratch area, the spare threads
 * (more than the plan has areas for) idle.
 */
static void
wino_weights(const Layer *l, const float *W, int flip, int m, float *U)
{
	size_t		FC = nn_wino_ustride(l);

	for (int f = 0; f < l->filters; f++)
		for (int c = 0; c < l->ic; c++)
		{
			float		g[9],
						t[6][3];
			float	   *u = U + (size_t) f * l->ic + c;

			/* flip: W is [c][f][3][3] (l is nn_wino_dx_layer), turned */
			for (int k = 0; k < 9; k++)
				g[k] = flip ? W[((size_t) c * l->filters + f) * 9 + 8 - k]
					: W[((size_t) f * l->ic + c) * 9 + k];
			if (m == 4)
			{
				/*
				 * G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
				 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]: G g down the
				 * columns, then (G g) G^T along the rows
				 */
				for (int j = 0; j < 3; j++)
				{
					float		g0 = g[j],
								g1 = g[3 + j],
								g2 = g[6 + j];

					t[0][j] = 0.25f * g0;
					t[1][j] = -(g0 + g1 + g2) / 6.0f;
					t[2][j] = -(g0 - g1 + g2) / 6.0f;
					t[3][j] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
					t[4][j] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
					t[5][j] = g2;
				}
				for (int i = 0; i < 6; i++)
				{
					float		g0 = t[i][0],
								g1 = t[i][1],
								g2 = t[i][2];

					u[(6 * i + 0) * FC] = 0.25f * g0;
					u[(6 * i + 1) * FC] = -(g0 + g1 + g2) / 6.0f;
					u[(6 * i + 2) * FC] = -(g0 - g1 + g2) / 6.0f;
					u[(6 * i + 3) * FC] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
					u[(6 * i + 4) * FC] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
					u[(6 * i + 5) * FC] = g2;
				}
				continue;
			}
			/* G g, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
			for (int j = 0; j < 3; j++)
			{
				t[0][j] = g[j];
				t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
				t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
				t[3][j] = g[6 + j];
			}
			/* (G g) G^T */
			for (int i = 0; i < 4; i++)
			{
				u[(4 * i + 0) * FC] = t[i][0];
				u[(4 * i + 1) * FC] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
				u[(4 * i + 2) * FC] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
				u[(4 * i + 3) * FC] = t[i][2];
			}
		}
}

typedef struct WinoRun
{
	WinoArgs	w;
	const NnKernels *kern;
	const float *U;
	float	   *scratch;
	size_t		slot_floats;
	int			chunk;
	int			nchunks;
	int			slots;
} WinoRun;

/* the weight gradient's run (wino_weight_grad) */
typedef struct WinoGradRun
{
	WinoRun		r;
	const float *dy;
	float	   *parts;
	float	   *gW;
} WinoGradRun;

/*
 * Thread slots [begin, end): each takes every slots-th chunk into its own
 * scratch; forward (g NULL): input transform, 16 sgemms, output transform;
 * weight gradient (g): input and output-gradient transforms, 16 sgemms
 * into the chunk's part
 */
static void
wino_chunks(WinoRun *r, WinoGradRun *g, size_t begin, size_t end)
{
	const Layer *l = r->w.l;
	int			C = l->ic,
				F = l->filters,
				tiles = r->w.th * r->w.tw;
	WinoArgs	dya = r->w;

	if (g)
		dya.x = g->dy;
	for (size_t s = begin; s < end; s++)
	{
		float	   *Vb = r->scratch + s * r->slot_floats;

		for (int ch = (int) s; ch < r->nchunks; ch += r->slots)
		{
			int			k0 = ch * r->chunk,
						kc = r->w.b - k0 < r->chunk ? r->w.b - k0 : r->chunk,
						T = kc * tiles;
			float	   *Mb = Vb + (size_t) nn_wino_points(r->w.m) * C * T;

			if (g)
			{
				float	   *part = g->parts + (size_t) ch * 16 * F * C;

				r->kern->wino_input(&r->w, k0, kc, Vb, Mb);
				r->kern->wino_dy(&dya, k0, kc, Vb, Mb);
				for (int q = 0; q < 16; q++)
					nn_sgemm(0, 1, F, C, T, Mb + (size_t) q * F * T, T,
							 Vb + (size_t) q * C * T, T, 0.0f, part + (size_t) q * F * C, C);
				continue;
			}
			if (r->w.m == 4)
				r->kern->wino4_input(&r->w, k0, kc, Vb, Mb);
			else
				r->kern->wino_input(&r->w, k0, kc, Vb, Mb);
			for (int q = 0; q < nn_wino_points(r->w.m); q++)
				nn_sgemm(0, 0, F, T, C, r->U + (size_t) q * nn_wino_ustride(l), C,
						 Vb + (size_t) q * C * T, T, 0.0f, Mb + (size_t) q * F * T, T);
			if (r->w.m == 4)
				r->kern->wino4_output(&r->w, k0, kc, Vb, Mb);
			else
				r->kern->wino_output(&r->w, k0, kc, Vb, Mb);
		}
	}
}

static void
wino_slots(void *p, size_t begin, size_t end)
{
	wino_chunks(p, NULL, begin, end);
}

/*
 * A Winograd pass of layer i (the net's layer, orig) by tiles of m x m
 * outputs: the conv l (orig, or its input gradient as a conv) of x (b
 * images) into y, with layer i's plan buffer holding U and one scratch
 * area per thread, sized by plan.c for every pass the layer makes
 * (nn_wino_slot_stride)
 */
static void
wino_setup(WinoRun *r, Plan *plan, int i, const Layer *orig, const Layer *l, int m,
		   const float *x, const float *bias, int relu, float *y, int b)
{
	int			threads = nn_work_threads();

	memset(r, 0, sizeof(*r));
	r->w.l = l;
	r->w.x = x;
	r->w.bias = bias;
	r->w.y = y;
	r->w.b = b;
	r->w.relu = relu;
	r->w.m = m;
	r->w.th = (l->oh + m - 1) / m;
	r->w.tw = (l->ow + m - 1) / m;
	r->kern = plan->kern;
	r->U = plan->aux[i];
	r->scratch = plan->wscratch[i];
	r->slot_floats = nn_wino_slot_stride(orig, plan->batch,
										 plan->training && (plan->choice[i] & PLAN_WINO_DX));
	r->chunk = nn_wino_chunk(l, plan->batch, m);
	r->nchunks = (b + r->chunk - 1) / r->chunk;
	r->slots = plan->wino_slots < r->nchunks ? plan->wino_slots : r->nchunks;
	if (r->slots > threads)
		r->slots = threads;
}

/*
 * y = the 3x3 conv l of x (b images) by Winograd, at the tile its shape
 * takes (nn_wino_m), W as nn_conv_forward takes it or (flip: l is layer
 * i's input gradient) turned
 */
static void
wino_conv(const IcemlNet *net, Plan *plan, int i, const Layer *l, const float *x,
		  const float *W, int flip, const float *bias, int relu, float *y, int b)
{
	WinoRun		r;
	int			m = nn_wino_m(l);

	wino_setup(&r, plan, i, &net->layers[i], l, m, x, bias, relu, y, b);
	if (plan->training || plan->wino_made[i] != net->params_version + 1)
	{
		/* a training plan's U changes every step, and backward turns it */
		wino_weights(l, W, flip, m, plan->aux[i]);
		if (!plan->training)
			plan->wino_made[i] = net->params_version + 1;
	}
	nn_parallel_for((size_t) r.slots, 1, wino_slots, &r);
}

/*
 * The weight gradient of a Winograd conv, from the same transforms: with
 * Z = U . V per tile and Y = A^T Z A, dU = sum over tiles of (A dY A^T) . V
 * (16 sgemms per chunk, F x C each, summed over the chunk's tiles) and
 * dW = G^T dU G.  Each chunk's dU goes to its own part of the col matrix
 * (not needed otherwise: PLAN_WINO_DX), the parts are added in chunk
 * order: the same bits whatever the threads.  Needs no col matrix: the
 * sgemms do 16 C F T multiply-adds where im2col + sgemm does 9 C F 4T.
 * Always by 2x2 tiles (wino_input, wino_dy), whatever tile the forward
 * pass took: the gradient sums over every tile of the batch, where 4x4
 * tiles' larger transform coefficients would cost more of fp32's digits.
 */
static void
wino_grad_slots(void *p, size_t begin, size_t end)
{
	WinoGradRun *g = p;

	wino_chunks(&g->r, g, begin, end);
}

/*
 * filters [begin, end): the chunks' parts added in chunk order into the
 * first (row by row, in cache), then dW = G^T dU G
 */
static void
wino_grad_sum(void *p, size_t begin, size_t end)
{
	WinoGradRun *g = p;
	const Layer *l = g->r.w.l;
	int			C = l->ic,
				F = l->filters;
	size_t		FC = (size_t) F * C;

	for (size_t f = begin; f < end; f++)
	{
		for (int ch = 1; ch < g->r.nchunks; ch++)
			for (int q = 0; q < 16; q++)
			{
				float	   *acc = g->parts + (size_t) q * FC + f * C;
				const float *add = g->parts + ((size_t) ch * 16 + q) * FC + f * C;

				for (int c = 0; c < C; c++)
					acc[c] += add[c];
			}
		for (int c = 0; c < C; c++)
		{
			float		u[16],
						t[3][4];
			float	   *gw = g->gW + (f * C + c) * 9;

			for (int q = 0; q < 16; q++)
				u[q] = g->parts[(size_t) q * FC + f * C + c];
			/* G^T dU: G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1] */
			for (int j = 0; j < 4; j++)
			{
				t[0][j] = u[j] + 0.5f * (u[4 + j] + u[8 + j]);
				t[1][j] = 0.5f * (u[4 + j] - u[8 + j]);
				t[2][j] = 0.5f * (u[4 + j] + u[8 + j]) + u[12 + j];
			}
			/* (G^T dU) G */
			for (int i = 0; i < 3; i++)
			{
				gw[3 * i + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
				gw[3 * i + 1] = 0.5f * (t[i][1] - t[i][2]);
				gw[3 * i + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
			}
		}
	}
}

static void
wino_weight_grad(Plan *plan, int i, const Layer *l, const float *x, const float *dy,
				 float *gW, int b)
{
	WinoGradRun g;

	memset(&g, 0, sizeof(g));
	wino_setup(&g.r, plan, i, l, l, 2, x, NULL, 0, NULL, b);
	g.dy = dy;
	g.parts = plan->col[i];
	g.gW = gW;
	nn_parallel_for((size_t) g.r.slots, 1, wino_grad_slots, &g);
	nn_parallel_for((size_t) l->filters, 8, wino_grad_sum, &g);
}

void
nn_conv_forward(const LayerPass *p)
{
	const Layer *l = p->l;
	Plan	   *plan = p->plan;
	const NnKernels *kern = plan->kern;
	int			b = p->b,
				N = b * l->oh * l->ow,
				K = l->ic * l->kh * l->kw;
	uint8_t		ch = plan->choice[p->i];

	if (ch & PLAN_DIRECT)
	{
		/* the col matrix is made in backward, when needed */
		DirectArgs	a = {l, p->x, p->W, p->bias, p->y, b, p->act == ACT_RELU};

		nn_parallel_for((size_t) b * l->oh, 4, kern->direct_rows, &a);
		return;
	}
	if (ch & PLAN_WINOGRAD)
	{
		/* never sigmoid (plan.c): bias and ReLU in the output transform */
		int			defer = (ch & PLAN_DEFER_BIAS) != 0;

		wino_conv(p->net, plan, p->i, l, p->x, p->W, 0, defer ? NULL : p->bias,
				  !defer && p->act == ACT_RELU, p->y, b);
		return;
	}
	im2col(l, p->x, b, plan->col[p->i]);
	nn_gemm_split(0, 0, l->filters, N, K, p->W, K, plan->col[p->i], N, 0.0f, p->y, N, SPLIT_N);
	if (!(ch & PLAN_DEFER_BIAS))
		bias_act_rows(p->y, p->bias, l->filters, (size_t) N, p->act);
}

/*
 * the bias gradient: from the per-plane sums of the pool after the conv
 * (PLAN_POOL_GRAD: it did the activation backward), or a pass over dy
 */
static void
bias_grad(const LayerPass *p, BiasGradArgs *ga)
{
	const Layer *l = p->l;
	Plan	   *plan = p->plan;
	int			i = p->i,
				b = p->b;

	if (i + 1 < p->net->nlayers && (plan->choice[i + 1] & PLAN_POOL_GRAD))
	{
		const float *psum = plan->aux2[i + 1];

		for (int f = 0; f < l->filters; f++)
		{
			double		sum = 0;

			for (int k = 0; k < b; k++)
				sum += psum[(size_t) f * b + k];
			p->gb[f] = (float) sum;
		}
	}
	else
		nn_parallel_for((size_t) l->filters, 1, bias_grad_rows, ga);
}

void
nn_conv_backward(const LayerPass *p)
{
	const Layer *l = p->l;
	Plan	   *plan = p->plan;
	const NnKernels *kern = plan->kern;
	int			i = p->i,
				b = p->b,
				N = b * l->oh * l->ow,
				K = l->ic * l->kh * l->kw;
	uint8_t		ch = plan->choice[i];
	BiasGradArgs ga = {p->dy, p->y, p->gb, (ch & PLAN_DEFER_BIAS) ? p->bias : NULL,
	(size_t) N, p->act};

	/* PLAN_POOL_DGRAD: the pool's per-plane sums come with the weight gradient */
	if (!(ch & PLAN_POOL_DGRAD))
		bias_grad(p, &ga);
	if (ch & PLAN_DIRECT)
	{
		DirectGradArgs a = {l, p->x, p->dy, p->gW, b, NULL, NULL, NULL};
		PoolScatter ps;

		if (ch & PLAN_POOL_DGRAD)
		{
			/* the pool's gradient and its per-plane sums, made per block */
			nn_pool_scatter_args(p->net, plan, i + 1, &ps);
			a.ps = &ps;
			a.scratch = plan->col[i];
			a.psum = plan->aux2[i + 1];
		}
		nn_parallel_for((size_t) (l->filters + DGRAD_FB - 1) / DGRAD_FB, 1, kern->direct_grad, &a);
		if (ch & PLAN_POOL_DGRAD)
			bias_grad(p, &ga);
	}
	else if (ch & PLAN_WINO_DX)
		wino_weight_grad(plan, i, l, p->x, p->dy, p->gW, b);
	else
	{
		if (ch & PLAN_WINOGRAD)	/* the col matrix, not made forward */
			im2col(l, p->x, b, plan->col[i]);
		nn_gemm_split(0, 1, l->filters, K, N, p->dy, N, plan->col[i], N, 0.0f, p->gW, K, SPLIT_M);
	}
	if (p->dx && (ch & PLAN_WINO_DX))
	{
		Layer		t = nn_wino_dx_layer(l);

		wino_conv(p->net, plan, i, &t, p->dy, p->W, 1, NULL, 0, p->dx, b);
	}
	/* the column matrix is spent: room for d(col) */
	else if (p->dx)
		conv_input_grad(l, p->W, p->dy, plan->col[i], b, p->dx);
}
