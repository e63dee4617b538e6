/*
 * engine.c - memory plans, forward and backward passes.
 *
 * Convolutions are im2col + one sgemm over the whole batch, in the
 * C x B x H x W layout (see nn_internal.h), with bias and ReLU fused into
 * the pass over the sgemm result.  Nothing here allocates: every buffer
 * comes from the plan made once per (net, batch size).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <cblas.h>

#include "nn_internal.h"

/* ---- a parallel for over the work between sgemm calls ---------------- */

static int	nn_threads = 1;

/* per layer [forward, backward] seconds accumulated when set (benchmarks) */
static double *nn_profile_acc;

/*
 * The caller's interrupt check (iceml_nn_set_interrupt_check), asked between
 * the layers of a pass; never from the engine's worker threads.
 */
static IcemlInterruptCheck nn_interrupt_check;

void
iceml_nn_set_interrupt_check(IcemlInterruptCheck check)
{
	nn_interrupt_check = check;
}

int
nn_interrupted(void)
{
	return nn_interrupt_check != NULL && nn_interrupt_check() != 0;
}

void
nn_set_profile(double *acc)
{
	nn_profile_acc = acc;
}

static double
nn_clock(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

void
nn_set_work_threads(int threads)
{
	nn_threads = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
}

typedef void (*RangeFn) (void *arg, size_t begin, size_t end);

typedef struct RangeJob
{
	RangeFn		fn;
	void	   *arg;
	size_t		begin,
				end;
} RangeJob;

static void *
range_thread(void *p)
{
	RangeJob   *j = p;

	j->fn(j->arg, j->begin, j->end);
	return NULL;
}

/*
 * fn over [0, n) split into one contiguous chunk per thread; results must
 * not depend on the split (each item is computed the same way whatever the
 * thread count).
 */
static void
parallel_for(size_t n, size_t min_chunk, RangeFn fn, void *arg)
{
	int			t = nn_threads;
	pthread_t	tid[64];
	RangeJob	job[64];
	int			started = 0;

	if (t > 1 && n / (size_t) t < min_chunk)
		t = (int) (n / (min_chunk ? min_chunk : 1));
	if (t <= 1)
	{
		fn(arg, 0, n);
		return;
	}
	for (int k = 0; k < t; k++)
	{
		job[k].fn = fn;
		job[k].arg = arg;
		job[k].begin = n * (size_t) k / (size_t) t;
		job[k].end = n * (size_t) (k + 1) / (size_t) t;
	}
	for (int k = 1; k < t; k++)
		if (pthread_create(&tid[k], NULL, range_thread, &job[k]) == 0)
			started = k;
		else
			break;
	fn(arg, job[0].begin, job[0].end);
	for (int k = 1; k <= started; k++)
		pthread_join(tid[k], NULL);
	/* chunks whose thread could not start run here */
	for (int k = started + 1; k < t; k++)
		fn(arg, job[k].begin, job[k].end);
}

/* ---- sgemm split over the engine's threads ---------------------------- */

/*
 * OpenBLAS runs single-threaded (iceml_nn_set_threads); a big sgemm is cut
 * here into one part per thread, by columns of C (SPLIT_N) or by rows
 * (SPLIT_M), each part an ordinary sgemm on its own core.  Two single-
 * threaded sgemms on halves beat OpenBLAS's own threading on these shapes,
 * and no OpenBLAS worker spins between calls while the engine's other
 * passes run.  Every element of C is summed by one call over the whole K,
 * in an order that depends only on the thread count.
 */
typedef enum GemmSplit
{
	SPLIT_N,
	SPLIT_M
} GemmSplit;

typedef struct GemmArgs
{
	enum CBLAS_TRANSPOSE ta,
				tb;
	int			M,
				N,
				K;
	const float *A;
	int			lda;
	const float *B;
	int			ldb;
	float		beta;
	float	   *C;
	int			ldc;
	GemmSplit	split;
	int			parts;
} GemmArgs;

static void
gemm_parts(void *p, size_t begin, size_t end)
{
	GemmArgs   *g = p;

	for (size_t part = begin; part < end; part++)
	{
		int			total = g->split == SPLIT_N ? g->N : g->M;
		/* part boundaries on multiples of 16 (whole cache lines of C) */
		int			lo = (int) ((size_t) total * part / g->parts) & ~15,
					hi = part + 1 == (size_t) g->parts ? total :
			(int) ((size_t) total * (part + 1) / g->parts) & ~15;

		if (hi <= lo)
			continue;
		if (g->split == SPLIT_N)
			cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->M, hi - lo, g->K, 1.0f, g->A, g->lda,
						g->B + (g->tb == CblasNoTrans ? (size_t) lo : (size_t) lo * g->ldb), g->ldb,
						g->beta, g->C + lo, g->ldc);
		else
			cblas_sgemm(CblasRowMajor, g->ta, g->tb, hi - lo, g->N, g->K, 1.0f,
						g->A + (g->ta == CblasNoTrans ? (size_t) lo * g->lda : (size_t) lo), g->lda,
						g->B, g->ldb, g->beta, g->C + (size_t) lo * g->ldc, g->ldc);
	}
}

static void
gemm_split(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
		   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
		   GemmSplit split)
{
	GemmArgs	g = {ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, split, nn_threads};
	int			total = split == SPLIT_N ? N : M;

	/* small products are not worth a thread */
	if ((double) M * N * K < 4e6 || total < 32 * nn_threads)
		g.parts = 1;
	parallel_for((size_t) g.parts, 1, gemm_parts, &g);
}

static size_t
in_size(const Layer *l)
{
	return (size_t) l->ic * l->ih * l->iw;
}

static size_t
out_size(const Layer *l)
{
	return (size_t) l->oc * l->oh * l->ow;
}

static size_t
col_rows(const Layer *l)
{
	return (size_t) l->ic * l->kh * l->kw;
}

static int	conv_is_direct(const Layer *l);
static int	pool_takes_conv_grad(const IcemlNet *net, int i);

/* ---- plans ----------------------------------------------------------------- */

/*
 * The sizes, in floats, of a plan's pieces ([i*5 + 0] out, 1 grad, 2 col,
 * 3 aux, 4 aux2 per layer, then input, dout, the shared col matrix) into
 * sz (n * 5 + 3 of them), and their total with alignment slack.
 */
static size_t
plan_sizes(const IcemlNet *net, int batch, int training, size_t *sz, size_t *max_col_out)
{
	int			n = net->nlayers;
	size_t		total = 0,
				max_col = 0;

	for (int i = 0; i < n; i++)
	{
		const Layer *l = &net->layers[i];
		size_t		o = out_size(l) * batch;

		sz[i * 5 + 0] = o;
		if (training && i > 0)
			sz[i * 5 + 1] = in_size(l) * batch;
		if (l->type == L_CONV)
		{
			size_t		c = col_rows(l) * l->oh * l->ow * batch;

			/* a direct conv needs its col matrix only as room for d(col) */
			if (training && (i > 0 || !conv_is_direct(l)))
				sz[i * 5 + 2] = c;
			else if (c > max_col && !conv_is_direct(l))
				max_col = c;
		}
		if (l->type == L_POOL || (training && (l->type == L_DROPOUT || l->type == L_BATCHNORM)))
			sz[i * 5 + 3] = o;
		if (l->type == L_BATCHNORM)
			sz[i * 5 + 4] = 2 * (size_t) l->oc;
		if (l->type == L_SIDE)	/* the gathered side features (side.c) */
			sz[i * 5 + 3] = (size_t) (l->oc - l->ic) * batch;
		if (training && pool_takes_conv_grad(net, i))
			sz[i * 5 + 4] = (size_t) l->ic * batch;	/* per-plane bias gradient sums */
	}
	sz[n * 5] = (size_t) net->c * net->h * net->w * batch;	/* input */
	sz[n * 5 + 1] = (size_t) batch;	/* dout */
	sz[n * 5 + 2] = max_col;	/* the col matrix inference layers share */
	for (int i = 0; i < n * 5 + 3; i++)
		total += (sz[i] + 64 + 15) & ~(size_t) 15;	/* 64-byte aligned pieces */

	*max_col_out = max_col;
	return total;
}

/* The floats a plan for this batch takes (iceml_net_memory). */
size_t
nn_plan_floats(const IcemlNet *net, int batch, int training)
{
	size_t	   *sz = calloc((size_t) net->nlayers * 5 + 3, sizeof(size_t));
	size_t		max_col,
				total;

	if (sz == NULL)
		return SIZE_MAX;		/* cannot even plan: as good as too big */
	total = plan_sizes(net, batch, training, sz, &max_col);
	free(sz);
	return total;
}

Plan *
nn_plan_create(const IcemlNet *net, int batch, int training)
{
	int			n = net->nlayers;
	Plan	   *p = calloc(1, sizeof(Plan));
	size_t		total = 0,
				max_col = 0;
	size_t	   *sz;
	float	   *cursor;

	if (p == NULL)
		return NULL;
	p->batch = batch;
	p->training = training;
	p->out = calloc((size_t) n, sizeof(float *));
	p->grad = calloc((size_t) n, sizeof(float *));
	p->col = calloc((size_t) n, sizeof(float *));
	p->aux = calloc((size_t) n, sizeof(float *));
	p->aux2 = calloc((size_t) n, sizeof(float *));
	sz = calloc((size_t) n * 5 + 3, sizeof(size_t));
	if (!p->out || !p->grad || !p->col || !p->aux || !p->aux2 || !sz)
	{
		free(sz);
		nn_plan_free(p);
		return NULL;
	}

	total = plan_sizes(net, batch, training, sz, &max_col);

	p->block_floats = total;
	if (posix_memalign((void **) &p->block, 64, total * sizeof(float)) != 0)
	{
		p->block = NULL;
		free(sz);
		nn_plan_free(p);
		return NULL;
	}
	memset(p->block, 0, total * sizeof(float));
	cursor = p->block;
	/*
	 * 64-byte aligned pieces with at least 64 floats of slack after each:
	 * vector kernels may read up to two vectors (and a window) past the end
	 * of their input
	 */
#define TAKE(dst, count) do { size_t c_ = (count); (dst) = c_ ? cursor : NULL; cursor += (c_ + 64 + 15) & ~(size_t) 15; } while (0)
	for (int i = 0; i < n; i++)
	{
		TAKE(p->out[i], sz[i * 5 + 0]);
		TAKE(p->grad[i], sz[i * 5 + 1]);
		TAKE(p->col[i], sz[i * 5 + 2]);
		TAKE(p->aux[i], sz[i * 5 + 3]);
		TAKE(p->aux2[i], sz[i * 5 + 4]);
	}
	TAKE(p->input, sz[n * 5]);
	TAKE(p->dout, (size_t) batch);
	if (!training && max_col > 0)
	{
		float	   *shared;

		TAKE(shared, max_col);
		for (int i = 0; i < n; i++)
			if (net->layers[i].type == L_CONV)
				p->col[i] = shared;
	}
#undef TAKE
	free(sz);
	return p;
}

void
nn_plan_free(Plan *p)
{
	if (p == NULL)
		return;
	free(p->block);
	free(p->out);
	free(p->grad);
	free(p->col);
	free(p->aux);
	free(p->aux2);
	free(p);
}

/* ---- input ----------------------------------------------------------------- */

/*
 * Copy images index[0..b) of x (N x C x H x W, raw) into the plan's input
 * (C x B x H x W), standardised; aug[k] (optional) selects flips (bits 0,
 * 1) and quarter turns (bits 2-3, square images) for image k.
 */
void
nn_gather(const IcemlNet *net, Plan *plan, const float *x, const int64_t *index,
		  int b, const uint8_t *aug)
{
	int			C = net->c,
				H = net->h,
				W = net->w;
	size_t		hw = (size_t) H * W;

	for (int k = 0; k < b; k++)
	{
		const float *img = x + (size_t) (index ? index[k] : k) * C * hw;
		int			a = aug ? aug[k] : 0;

		for (int c = 0; c < C; c++)
		{
			const float *src = img + c * hw;
			float	   *dst = plan->input + ((size_t) c * b + k) * hw;
			float		m = net->mean[c];
			float		inv = 1.0f / net->std[c];

			if (a == 0)
			{
				for (size_t i = 0; i < hw; i++)
					dst[i] = (src[i] - m) * inv;
				continue;
			}
			for (int y = 0; y < H; y++)
				for (int xx = 0; xx < W; xx++)
				{
					int			sy = y,
								sx = xx,
								t;

					for (int r = 0; r < ((a >> 2) & 3); r++)
					{
						t = sy;
						sy = sx;
						sx = W - 1 - t;
					}
					if (a & 1)
						sx = W - 1 - sx;
					if (a & 2)
						sy = H - 1 - sy;
					dst[y * W + xx] = (src[sy * W + sx] - m) * inv;
				}
		}
	}
}

/* ---- layers ---------------------------------------------------------------- */

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

	parallel_for((size_t) l->ic * l->kh * l->kw, 1, im2col_rows, &a);
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
	int			K = (int) col_rows(l),
				P = l->oh * l->ow,
				N = a->b * P;
	float	   *scratch = a->col + begin * (size_t) a->chunk * K * P;

	for (size_t ch = begin; ch < end; ch++)
	{
		int			k0 = (int) ch * a->chunk,
					kc = a->b - k0 < a->chunk ? a->b - k0 : a->chunk;

		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, kc * P, l->filters,
					1.0f, a->W, K, a->dy + (size_t) k0 * P, N, 0.0f, scratch, kc * P);
		col2im_part(l, scratch, (size_t) kc * P, a->b, k0, kc, 0, l->ic, a->dx);
	}
}

static void
conv_input_grad(const Layer *l, const float *W, const float *dy, float *col, int b, float *dx)
{
	int			P = l->oh * l->ow;
	DcolArgs	a = {l, W, dy, col, dx, b, 0};

	a.chunk = 1024 / P < 1 ? 1 : (1024 / P > b ? b : 1024 / P);
	/* at least one chunk per thread (conv4: 25 columns per image) */
	if ((b + a.chunk - 1) / a.chunk < nn_threads)
		a.chunk = (b + nn_threads - 1) / nn_threads;
	parallel_for((size_t) (b + a.chunk - 1) / a.chunk, 1, dcol_chunks, &a);
}

/* ---- direct convolution for a small K (the first layer) ------------------- */

/*
 * im2col + sgemm is a poor fit when K = C * kh * kw is small (27 for a 3x3
 * conv on 3 bands): the col matrix is K times the input and sgemm's packing
 * is not amortised.  Here each output row (image k, row oy) of FB filters is
 * accumulated in vector registers over the K taps, with bias and ReLU applied
 * before the one store.  Stride 1, no padding.  Reads may run up to one
 * vector past a row's end (into the next row, or the plan's slack): those
 * lanes are never stored.  Each output is summed in the same tap order
 * whatever the thread count.
 */
#define DIRECT_FB 4				/* filters per register block */
#define DIRECT_MAX_K 64			/* direct convolution up to this K */

typedef struct DirectArgs
{
	const Layer *l;
	const float *x;
	const float *w;
	const float *bias;
	float	   *y;
	int			b;
	int			relu;
} DirectArgs;

static int	nn_direct = 1;

void
nn_set_direct_conv(int on)
{
	nn_direct = on;
}

static int
conv_is_direct(const Layer *l)
{
	return nn_direct && l->stride == 1 && l->pad_top == 0 && l->pad_left == 0 &&
		col_rows(l) <= DIRECT_MAX_K && l->act != ACT_SIGMOID;
}

/*
 * One block: NV vectors of V outputs from ox0 for filters f0 .. f0+fb-1.
 * A macro so that each (vector type, NV) pair compiles to straight-line
 * code with the accumulators in registers.
 */
#define DIRECT_BLOCK(VT, VI, VTU, V, NV) \
	do { \
		VT			acc_[DIRECT_FB][NV]; \
		float		tmp_[(NV) * (V)]; \
		_Pragma("GCC unroll 4") for (int q_ = 0; q_ < DIRECT_FB; q_++) \
			_Pragma("GCC unroll 4") for (int v_ = 0; v_ < (NV); v_++) \
				acc_[q_][v_] = (VT) {0}; \
		for (int c_ = 0; c_ < l->ic; c_++) \
			for (int i_ = 0; i_ < l->kh; i_++) \
			{ \
				const float *row_ = x + (((size_t) c_ * b + k) * l->ih + oy + i_) * l->iw + ox0; \
				const float *wt_ = w + (size_t) (c_ * l->kh + i_) * l->kw; \
				for (int j_ = 0; j_ < l->kw; j_++) \
				{ \
					VT			in_[NV]; \
					_Pragma("GCC unroll 4") for (int v_ = 0; v_ < (NV); v_++) \
						in_[v_] = *(const VTU *) (row_ + j_ + v_ * (V)); \
					_Pragma("GCC unroll 4") for (int q_ = 0; q_ < DIRECT_FB; q_++) \
					{ \
						VT			wv_ = (VT) {0} + wt_[(size_t) wq[q_] * K + j_]; \
						_Pragma("GCC unroll 4") for (int v_ = 0; v_ < (NV); v_++) \
							acc_[q_][v_] += wv_ * in_[v_]; \
					} \
				} \
			} \
		for (int q_ = 0; q_ < fb; q_++) \
		{ \
			float	   *dst_ = y + (((size_t) (f0 + q_) * b + k) * l->oh + oy) * l->ow + ox0; \
			VT			bv_ = (VT) {0} + bias[f0 + q_]; \
			_Pragma("GCC unroll 4") for (int v_ = 0; v_ < (NV); v_++) \
			{ \
				VT			r_ = acc_[q_][v_] + bv_; \
				if (relu) \
					r_ = (VT) ((VI) r_ & (VI) (r_ > (VT) {0})); \
				if (ox0 + (v_ + 1) * (V) <= l->ow) \
					*(VTU *) (dst_ + v_ * (V)) = r_; \
				else \
				{ \
					*(VTU *) (tmp_ + v_ * (V)) = r_; \
					memcpy(dst_ + v_ * (V), tmp_ + v_ * (V), sizeof(float) * (l->ow - ox0 - v_ * (V))); \
				} \
			} \
		} \
	} while (0)

#define DIRECT_ROWS(NAME, TARGET, VT, VI, VTU, V) \
static TARGET void \
NAME(void *p, size_t begin, size_t end) \
{ \
	DirectArgs *a = p; \
	const Layer *l = a->l; \
	const float *x = a->x, \
			   *w = a->w, \
			   *bias = a->bias; \
	float	   *y = a->y; \
	int			b = a->b, \
				relu = a->relu, \
				K = (int) col_rows(l); \
\
	for (size_t r = begin; r < end; r++) \
	{ \
		int			k = (int) (r / (size_t) l->oh), \
					oy = (int) (r % (size_t) l->oh); \
\
		for (int f0 = 0; f0 < l->filters; f0 += DIRECT_FB) \
		{ \
			int			fb = l->filters - f0 < DIRECT_FB ? l->filters - f0 : DIRECT_FB; \
			int			wq[DIRECT_FB]; \
\
			/* a short last block repeats its last filter, not stored */ \
			for (int q = 0; q < DIRECT_FB; q++) \
				wq[q] = f0 + (q < fb ? q : fb - 1); \
			for (int ox0 = 0; ox0 < l->ow; ox0 += 4 * (V)) \
			{ \
				int			nv = (l->ow - ox0 + (V) - 1) / (V); \
\
				if (nv >= 4) \
					DIRECT_BLOCK(VT, VI, VTU, V, 4); \
				else if (nv == 3) \
					DIRECT_BLOCK(VT, VI, VTU, V, 3); \
				else if (nv == 2) \
					DIRECT_BLOCK(VT, VI, VTU, V, 2); \
				else \
					DIRECT_BLOCK(VT, VI, VTU, V, 1); \
			} \
		} \
	} \
}

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef float v16fu __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));

#if defined(__x86_64__) && defined(__GNUC__)
DIRECT_ROWS(direct_rows_avx512, __attribute__((target("avx512f,fma"))), v16f, v16i, v16fu, 16)
DIRECT_ROWS(direct_rows_avx2, __attribute__((target("avx2,fma"))), v8f, v8i, v8fu, 8)
#endif
DIRECT_ROWS(direct_rows_generic, , v8f, v8i, v8fu, 8)

/* the widest variant this CPU runs, picked once */
static RangeFn
direct_rows_fn(void)
{
	static RangeFn fn;

	if (fn == NULL)
	{
		RangeFn		pick = direct_rows_generic;

#if defined(__x86_64__) && defined(__GNUC__)
		__builtin_cpu_init();
		if (__builtin_cpu_supports("avx512f"))
			pick = direct_rows_avx512;
		else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
			pick = direct_rows_avx2;
#endif
		fn = pick;
	}
	return fn;
}

/*
 * The weight gradient of a direct convolution without its col matrix:
 * gW[f][c,i,j] = sum over images k and outputs (oy, ox) of
 * dy[f][k][oy][ox] * x[c][k][oy + i][ox + j].  A block of 8 filters and 3
 * taps keeps 24 vector accumulators over one image's rows (8 dy rows and
 * 3 shifted x rows per step, both in L2); each image's lanes are then added
 * into double sums in a fixed order.  Split by filter block, so a filter's
 * gradient is the same whatever the thread count.  dy lanes past a row's
 * end are masked to zero (the x lanes they meet are finite).
 */
#define DGRAD_FB 8
#define DGRAD_TAPS 3

typedef struct DirectGradArgs
{
	const Layer *l;
	const float *x;
	const float *dy;
	float	   *gW;
	int			b;
} DirectGradArgs;

#define DIRECT_GRAD(NAME, TARGET, VT, VI, VTU, V) \
static TARGET void \
NAME(void *p, size_t begin, size_t end) \
{ \
	DirectGradArgs *a = p; \
	const Layer *l = a->l; \
	int			b = a->b, \
				K = (int) col_rows(l), \
				ow = l->ow, \
				nv = (ow + (V) - 1) / (V); \
	size_t		oplane = (size_t) l->oh * ow; \
	VI			lane; \
\
	for (int u = 0; u < (V); u++) \
		lane[u] = u; \
	for (size_t blk = begin; blk < end; blk++) \
	{ \
		int			f0 = (int) blk * DGRAD_FB, \
					fb = l->filters - f0 < DGRAD_FB ? l->filters - f0 : DGRAD_FB; \
		double		g[DGRAD_FB][DIRECT_MAX_K]; \
		const float *dyq[DGRAD_FB]; \
\
		memset(g, 0, sizeof(g)); \
		for (int k = 0; k < b; k++) \
		{ \
			/* a short block repeats its last filter, not stored */ \
			for (int q = 0; q < DGRAD_FB; q++) \
				dyq[q] = a->dy + ((size_t) (f0 + (q < fb ? q : fb - 1)) * b + k) * oplane; \
			for (int c = 0; c < l->ic; c++) \
				for (int i = 0; i < l->kh; i++) \
					for (int j0 = 0; j0 < l->kw; j0 += DGRAD_TAPS) \
					{ \
						int			jn = l->kw - j0 < DGRAD_TAPS ? l->kw - j0 : DGRAD_TAPS; \
						int			tj[DGRAD_TAPS]; \
						VT			acc[DGRAD_FB][DGRAD_TAPS]; \
\
						for (int t = 0; t < DGRAD_TAPS; t++) \
							tj[t] = j0 + (t < jn ? t : jn - 1); \
						_Pragma("GCC unroll 8") for (int q = 0; q < DGRAD_FB; q++) \
							_Pragma("GCC unroll 3") for (int t = 0; t < DGRAD_TAPS; t++) \
								acc[q][t] = (VT) {0}; \
						for (int oy = 0; oy < l->oh; oy++) \
						{ \
							const float *xr = a->x + (((size_t) c * b + k) * l->ih + oy + i) * l->iw; \
\
							for (int v = 0; v < nv; v++) \
							{ \
								VI			keep = lane < ow - v * (V); \
								VT			xv[DGRAD_TAPS]; \
\
								_Pragma("GCC unroll 3") for (int t = 0; t < DGRAD_TAPS; t++) \
									xv[t] = *(const VTU *) (xr + tj[t] + v * (V)); \
								_Pragma("GCC unroll 8") for (int q = 0; q < DGRAD_FB; q++) \
								{ \
									VT			dv = *(const VTU *) (dyq[q] + (size_t) oy * ow + v * (V)); \
\
									dv = (VT) ((VI) dv & keep); \
									_Pragma("GCC unroll 3") for (int t = 0; t < DGRAD_TAPS; t++) \
										acc[q][t] += dv * xv[t]; \
								} \
							} \
						} \
						for (int q = 0; q < fb; q++) \
							for (int t = 0; t < jn; t++) \
							{ \
								double		sum = 0; \
\
								for (int u = 0; u < (V); u++) \
									sum += acc[q][t][u]; \
								g[q][(c * l->kh + i) * l->kw + j0 + t] += sum; \
							} \
					} \
		} \
		for (int q = 0; q < fb; q++) \
			for (int t = 0; t < K; t++) \
				a->gW[(size_t) (f0 + q) * K + t] = (float) g[q][t]; \
	} \
}

#if defined(__x86_64__) && defined(__GNUC__)
DIRECT_GRAD(direct_grad_avx512, __attribute__((target("avx512f,fma"))), v16f, v16i, v16fu, 16)
DIRECT_GRAD(direct_grad_avx2, __attribute__((target("avx2,fma"))), v8f, v8i, v8fu, 8)
#endif
DIRECT_GRAD(direct_grad_generic, , v8f, v8i, v8fu, 8)

static void
conv_direct_grad(const Layer *l, const float *x, const float *dy, float *gW, int b)
{
	DirectGradArgs a = {l, x, dy, gW, b};
	RangeFn		fn = direct_grad_generic;

#if defined(__x86_64__) && defined(__GNUC__)
	if (nn_direct != 2 && __builtin_cpu_supports("avx512f") && nn_direct != 3)
		fn = direct_grad_avx512;
	else if (nn_direct != 2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		fn = direct_grad_avx2;
#endif
	parallel_for((size_t) (l->filters + DGRAD_FB - 1) / DGRAD_FB, 1, fn, &a);
}

/*
 * A conv (im2col + sgemm) followed by a max-pool leaves its bias and ReLU
 * to the pool, which adds the channel's bias to the window's maximum and
 * applies ReLU to its 4-9x fewer outputs: max(relu(z + b)) = relu(max(z) + b).
 * The conv's output then holds z without bias; its backward pass masks
 * with z > -b.
 */
static int
conv_defers_bias(const IcemlNet *net, int i)
{
	const Layer *l = &net->layers[i];

	return l->type == L_CONV && !conv_is_direct(l) && i + 1 < net->nlayers &&
		net->layers[i + 1].type == L_POOL && (l->act == ACT_RELU || l->act == ACT_NONE);
}

/*
 * A max-pool after a conv with ReLU (or none) does the conv's activation
 * backward while it scatters its gradient to the window maxima (the only
 * non-zero entries), and sums it per plane for the conv's bias gradient:
 * the conv then makes no pass of its own over its output gradient.
 */
static int
pool_takes_conv_grad(const IcemlNet *net, int i)
{
	const Layer *l = &net->layers[i];

	return l->type == L_POOL && i > 0 && net->layers[i - 1].type == L_CONV &&
		(net->layers[i - 1].act == ACT_RELU || net->layers[i - 1].act == ACT_NONE);
}

static void
conv_direct(const Layer *l, const float *x, const float *w, const float *bias,
			float *y, int b, Activation act)
{
	DirectArgs	a = {l, x, w, bias, y, b, act == ACT_RELU};
	RangeFn		fn = direct_rows_fn();

#if defined(__x86_64__) && defined(__GNUC__)
	if (nn_direct == 3 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		fn = direct_rows_avx2;
#endif
	if (nn_direct == 2)
		fn = direct_rows_generic;
	parallel_for((size_t) b * l->oh, 4, fn, &a);
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

	parallel_for((size_t) rows, 1, bias_act_range, &a);
}

static void
act_backward_range(void *p, size_t begin, size_t end)
{
	EwArgs	   *a = p;
	float	   *dy = a->y;
	const float *y = a->x;

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
	EwArgs		a = {dy, NULL, y, n, act};

	if (act != ACT_NONE)
		parallel_for(n, 65536, act_backward_range, &a);
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

/* batch norm over channel c's values: base + c * cs + k * ks, k < n */
static void
bn_forward(const Layer *l, const float *x, float *y, int b, int training,
		   float *gamma, float *beta, float *running, float *xhat, float *stats)
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

/* ---- pooling and dropout ---------------------------------------------------- */

typedef struct PoolArgs
{
	const Layer *l;
	const float *x;
	float	   *y;
	int32_t    *arg;
	const float *dy;
	float	   *dx;
	/*
	 * forward: the previous conv's bias (per channel) and ReLU, deferred;
	 * backward: its output z, ReLU mask z > -bias (or 0), per-plane sums
	 */
	const float *bias;
	int			relu;
	int			b;
	const float *z;
	float	   *psum;
} PoolArgs;

static void
pool_forward_planes(void *p, size_t begin, size_t end)
{
	PoolArgs   *a = p;
	const Layer *l = a->l;
	size_t		plane = (size_t) l->ih * l->iw;
	size_t		oplane = (size_t) l->oh * l->ow;
	int			kh = l->kh,
				kw = l->kw,
				iw = l->iw,
				st = l->stride;

	for (size_t pl = begin; pl < end; pl++)
	{
		const float *src = a->x + pl * plane;
		float	   *dst = a->y + pl * oplane;
		int32_t    *arg = a->arg + pl * oplane;

		for (int oy = 0; oy < l->oh; oy++)
			for (int ox = 0; ox < l->ow; ox++)
			{
				int			best = oy * st * iw + ox * st;
				float		m = src[best];

				/* selects, not branches: which element wins is data */
				for (int dy = 0; dy < kh; dy++)
				{
					const float *r = src + (oy * st + dy) * iw + ox * st;
					int			at0 = (oy * st + dy) * iw + ox * st;

					for (int dx = 0; dx < kw; dx++)
					{
						float		v = r[dx];
						int			gt = v > m;

						best = gt ? at0 + dx : best;
						m = gt ? v : m;
					}
				}
				if (a->bias)
				{
					m += a->bias[pl / (size_t) a->b];
					if (a->relu && !(m > 0.0f))
						m = 0.0f;
				}
				dst[oy * l->ow + ox] = m;
				arg[oy * l->ow + ox] = best;
			}
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
/*
 * The same, 16 outputs of a row at a time (strides 1 and 2; a stride-2
 * window column is two loads and a shuffle of the even lanes).  Ties go to
 * the first element in window order, as above.
 */
static __attribute__((target("avx512f"))) void
pool_forward_planes_avx512(void *p, size_t begin, size_t end)
{
	PoolArgs   *a = p;
	const Layer *l = a->l;
	size_t		plane = (size_t) l->ih * l->iw;
	size_t		oplane = (size_t) l->oh * l->ow;
	int			kh = l->kh,
				kw = l->kw,
				iw = l->iw,
				ow = l->ow,
				st = l->stride;
	const v16i	lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

	if (st != 1 && st != 2)
	{
		pool_forward_planes(p, begin, end);
		return;
	}
	for (size_t pl = begin; pl < end; pl++)
	{
		const float *src = a->x + pl * plane;
		float	   *dst = a->y + pl * oplane;
		int32_t    *arg = a->arg + pl * oplane;
		v16f		badd = (v16f) {0} + (a->bias ? a->bias[pl / (size_t) a->b] : 0.0f);

		for (int oy = 0; oy < l->oh; oy++)
			for (int ox0 = 0; ox0 < ow; ox0 += 16)
			{
				v16f		m = {0},
							out;
				v16i		best = {0};
				float		tf[16];
				int32_t		ti[16];

				for (int dy = 0; dy < kh; dy++)
					for (int dx = 0; dx < kw; dx++)
					{
						int			at0 = (oy * st + dy) * iw + ox0 * st + dx;
						const float *r = src + at0;
						v16f		v;
						v16i		at = lane * st + at0;

						if (st == 1)
							v = *(const v16fu *) r;
						else
							v = __builtin_shufflevector(*(const v16fu *) r, *(const v16fu *) (r + 16),
																0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
						if (dy == 0 && dx == 0)
						{
							m = v;
							best = at;
						}
						else
						{
							v16i		gt = v > m;

							m = (v16f) (((v16i) v & gt) | ((v16i) m & ~gt));
							best = (at & gt) | (best & ~gt);
						}
					}
				out = m + badd;
				if (a->relu)
					out = (v16f) ((v16i) out & (out > (v16f) {0}));
				if (ox0 + 16 <= ow)
				{
					*(v16fu *) (dst + oy * ow + ox0) = out;
					memcpy(arg + oy * ow + ox0, &best, sizeof(best));
				}
				else
				{
					memcpy(tf, &out, sizeof(tf));
					memcpy(ti, &best, sizeof(ti));
					memcpy(dst + oy * ow + ox0, tf, sizeof(float) * (ow - ox0));
					memcpy(arg + oy * ow + ox0, ti, sizeof(int32_t) * (ow - ox0));
				}
			}
	}
}
#endif

static RangeFn
pool_forward_fn(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && nn_direct != 0 && nn_direct != 2)
		return pool_forward_planes_avx512;
#endif
	return pool_forward_planes;
}

static void
pool_backward_planes(void *p, size_t begin, size_t end)
{
	PoolArgs   *a = p;
	const Layer *l = a->l;
	size_t		plane = (size_t) l->ih * l->iw;
	size_t		oplane = (size_t) l->oh * l->ow;

	/* each plane cleared just before its scatter, while it is in cache */
	if (a->psum == NULL)
	{
		for (size_t pl = begin; pl < end; pl++)
		{
			memset(a->dx + pl * plane, 0, sizeof(float) * plane);
			for (size_t o = 0; o < oplane; o++)
				a->dx[pl * plane + a->arg[pl * oplane + o]] += a->dy[pl * oplane + o];
		}
		return;
	}
	/* the conv's ReLU backward and its bias gradient, on the way */
	for (size_t pl = begin; pl < end; pl++)
	{
		const float *z = a->z + pl * plane;
		const float *dy = a->dy + pl * oplane;
		const int32_t *arg = a->arg + pl * oplane;
		float	   *dx = a->dx + pl * plane;
		float		thr = a->bias ? -a->bias[pl / (size_t) a->b] : 0.0f;
		double		sum = 0;

		memset(dx, 0, sizeof(float) * plane);
		for (size_t o = 0; o < oplane; o++)
		{
			float		g = dy[o];

			if (a->relu && !(z[arg[o]] > thr))
				g = 0.0f;
			dx[arg[o]] += g;
			sum += g;
		}
		a->psum[pl] = (float) sum;
	}
}

typedef struct DropArgs
{
	const float *x;
	float	   *y;
	float	   *mask;
	float		rate;
	uint64_t	seed;
} DropArgs;

/* each element's keep/drop depends only on (seed, index): thread-count free */
static void
dropout_range(void *p, size_t begin, size_t end)
{
	DropArgs   *a = p;
	float		keep = 1.0f / (1.0f - a->rate);

	for (size_t k = begin; k < end; k++)
	{
		uint64_t	h = nn_mix(a->seed, (uint64_t) k);
		float		u = (float) (h >> 40) * (1.0f / 16777216.0f);

		a->mask[k] = u >= a->rate ? keep : 0.0f;
		a->y[k] = a->x[k] * a->mask[k];
	}
}

/* ---- forward ---------------------------------------------------------------- */

/*
 * Run the net on the b images in plan->input.  Returns the b logits, or
 * NULL when the interrupt check stopped it.
 * training: batch statistics, dropout masks from dropout_seed.
 */
const float *
nn_forward(IcemlNet *net, Plan *plan, int b, int training, uint64_t dropout_seed)
{
	const float *x = plan->input;

	for (int i = 0; i < net->nlayers; i++)
	{
		Layer	   *l = &net->layers[i];
		float	   *y = plan->out[i];
		float	   *W = net->params + l->w_off;
		float	   *bias = net->params + l->b_off;
		Activation	act = (i == net->nlayers - 1) ? ACT_NONE : l->act;
		size_t		osz = out_size(l) * b;
		double		t0 = nn_profile_acc ? nn_clock() : 0;

		switch (l->type)
		{
			case L_CONV:
				{
					int			P = l->oh * l->ow;
					int			N = b * P;
					int			K = (int) col_rows(l);

					if (conv_is_direct(l))
					{
						/* the col matrix is made in backward, when needed */
						conv_direct(l, x, W, bias, y, b, act);
						break;
					}
					im2col(l, x, b, plan->col[i]);
					gemm_split(CblasNoTrans, CblasNoTrans, l->filters, N, K,
							   W, K, plan->col[i], N, 0.0f, y, N, SPLIT_N);
					if (!conv_defers_bias(net, i))
						bias_act_rows(y, bias, l->filters, (size_t) N, act);
					break;
				}
			case L_DENSE:
				{
					int			K = l->ic;

					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, l->units, K,
								1.0f, x, K, W, K, 0.0f, y, l->units);
					for (int k = 0; k < b; k++)
					{
						float	   *row = y + (size_t) k * l->units;

						for (int u = 0; u < l->units; u++)
						{
							float		t = row[u] + bias[u];

							row[u] = act == ACT_RELU ? (t > 0.0f ? t : 0.0f) :
								act == ACT_SIGMOID ? 1.0f / (1.0f + expf(-t)) : t;
						}
					}
					break;
				}
			case L_POOL:
				{
					PoolArgs	a = {l, x, y, (int32_t *) plan->aux[i], NULL, NULL, NULL, 0, b,
					NULL, NULL};

					if (i > 0 && conv_defers_bias(net, i - 1))
					{
						a.bias = net->params + net->layers[i - 1].b_off;
						a.relu = net->layers[i - 1].act == ACT_RELU;
					}
					parallel_for((size_t) l->ic * b, 4, pool_forward_fn(), &a);
					break;
				}
			case L_RELU:
				for (size_t k = 0; k < osz; k++)
					y[k] = x[k] > 0.0f ? x[k] : 0.0f;
				break;
			case L_SIGMOID:
				for (size_t k = 0; k < osz; k++)
					y[k] = 1.0f / (1.0f + expf(-x[k]));
				break;
			case L_DROPOUT:
				if (training && l->rate > 0.0f)
				{
					DropArgs	a = {x, y, plan->aux[i], l->rate,
					nn_mix(dropout_seed, (uint64_t) i + 1)};

					parallel_for(osz, 65536, dropout_range, &a);
				}
				else
				{
					if (training)
						for (size_t k = 0; k < osz; k++)
							plan->aux[i][k] = 1.0f;
					memcpy(y, x, sizeof(float) * osz);
				}
				break;
			case L_BATCHNORM:
				bn_forward(l, x, y, b, training, W, bias, net->state + l->s_off,
						   training ? plan->aux[i] : NULL, plan->aux2[i]);
				break;
			case L_FLATTEN:
				{
					size_t		hw = (size_t) l->ih * l->iw;

					for (int c = 0; c < l->ic; c++)
						for (int k = 0; k < b; k++)
							memcpy(y + (size_t) k * l->oc + c * hw,
								   x + ((size_t) c * b + k) * hw, sizeof(float) * hw);
					break;
				}
			case L_GAP:
				{
					size_t		hw = (size_t) l->ih * l->iw;

					for (int c = 0; c < l->ic; c++)
						for (int k = 0; k < b; k++)
						{
							const float *src = x + ((size_t) c * b + k) * hw;
							double		s = 0;

							for (size_t p = 0; p < hw; p++)
								s += src[p];
							y[(size_t) k * l->ic + c] = (float) (s / hw);
						}
					break;
				}
			case L_SIDE:
				nn_side_forward(l, x, plan->aux[i], y, b);
				break;
		}
		if (nn_profile_acc)
			nn_profile_acc[2 * i] += nn_clock() - t0;
		x = y;
		/* between layers: a long pass stops when the caller asks */
		if (i + 1 < net->nlayers && nn_interrupted())
			return NULL;
	}
	return x;
}

/* ---- backward --------------------------------------------------------------- */

/*
 * Gradients of the loss for the batch just run forward (training) w.r.t.
 * every parameter, written to grads (same layout as net->params).  The
 * gradient w.r.t. the logits must be in plan->dout.  Returns 0, or -1 when
 * the interrupt check stopped it (grads then incomplete).
 */
int
nn_backward(IcemlNet *net, Plan *plan, int b, float *grads)
{
	for (int i = net->nlayers - 1; i >= 0; i--)
	{
		Layer	   *l = &net->layers[i];
		float	   *dy = (i == net->nlayers - 1) ? plan->dout : plan->grad[i + 1];
		float	   *dx = plan->grad[i];	/* NULL for the first layer */
		const float *x = i == 0 ? plan->input : plan->out[i - 1];
		const float *y = plan->out[i];
		float	   *W = net->params + l->w_off;
		float	   *gW = grads + l->w_off;
		float	   *gb = grads + l->b_off;
		Activation	act = (i == net->nlayers - 1) ? ACT_NONE : l->act;
		size_t		isz = in_size(l) * b;
		size_t		osz = out_size(l) * b;
		double		t0 = nn_profile_acc ? nn_clock() : 0;

		switch (l->type)
		{
			case L_CONV:
				{
					int			N = b * l->oh * l->ow;
					int			K = (int) col_rows(l);
					BiasGradArgs ga = {dy, y, gb, conv_defers_bias(net, i) ? net->params + l->b_off : NULL,
					(size_t) N, act};

					if (i + 1 < net->nlayers && pool_takes_conv_grad(net, i + 1))
					{
						const float *psum = plan->aux2[i + 1];

						for (int f = 0; f < l->filters; f++)
						{
							double		sum = 0;

							for (int k = 0; k < b; k++)
								sum += psum[(size_t) f * b + k];
							gb[f] = (float) sum;
						}
					}
					else
						parallel_for((size_t) l->filters, 1, bias_grad_rows, &ga);
					if (conv_is_direct(l))
						conv_direct_grad(l, x, dy, gW, b);
					else
						gemm_split(CblasNoTrans, CblasTrans, l->filters, K, N,
								   dy, N, plan->col[i], N, 0.0f, gW, K, SPLIT_M);
					if (dx)
					{
						/* the column matrix is spent: room for d(col) */
						conv_input_grad(l, W, dy, plan->col[i], b, dx);
					}
					break;
				}
			case L_DENSE:
				{
					int			K = l->ic;

					act_backward(dy, y, osz, act);
					cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->units, K, b,
								1.0f, dy, l->units, x, K, 0.0f, gW, K);
					for (int u = 0; u < l->units; u++)
					{
						double		s = 0;

						for (int k = 0; k < b; k++)
							s += dy[(size_t) k * l->units + u];
						gb[u] = (float) s;
					}
					if (dx)
						cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, K, l->units,
									1.0f, dy, l->units, W, K, 0.0f, dx, K);
					break;
				}
			case L_POOL:
				if (dx)
				{
					PoolArgs	a = {l, NULL, NULL, (int32_t *) plan->aux[i], dy, dx, NULL, 0, b,
					NULL, NULL};

					if (pool_takes_conv_grad(net, i))
					{
						a.z = plan->out[i - 1];
						a.psum = plan->aux2[i];
						a.relu = net->layers[i - 1].act == ACT_RELU;
						if (conv_defers_bias(net, i - 1))
							a.bias = net->params + net->layers[i - 1].b_off;
					}

					parallel_for((size_t) l->ic * b, 4, pool_backward_planes, &a);
				}
				break;
			case L_RELU:
				if (dx)
					for (size_t k = 0; k < isz; k++)
						dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
				break;
			case L_SIGMOID:
				if (dx)
					for (size_t k = 0; k < isz; k++)
						dx[k] = dy[k] * y[k] * (1.0f - y[k]);
				break;
			case L_DROPOUT:
				if (dx)
					for (size_t k = 0; k < isz; k++)
						dx[k] = dy[k] * plan->aux[i][k];
				break;
			case L_BATCHNORM:
				bn_backward(l, dy, dx, b, W, plan->aux[i], plan->aux2[i], gW, gb);
				break;
			case L_FLATTEN:
				if (dx)
				{
					size_t		hw = (size_t) l->ih * l->iw;

					for (int c = 0; c < l->ic; c++)
						for (int k = 0; k < b; k++)
							memcpy(dx + ((size_t) c * b + k) * hw,
								   dy + (size_t) k * l->oc + c * hw, sizeof(float) * hw);
				}
				break;
			case L_GAP:
				if (dx)
				{
					size_t		hw = (size_t) l->ih * l->iw;

					for (int c = 0; c < l->ic; c++)
						for (int k = 0; k < b; k++)
						{
							float		g = dy[(size_t) k * l->ic + c] / (float) hw;
							float	   *d = dx + ((size_t) c * b + k) * hw;

							for (size_t p = 0; p < hw; p++)
								d[p] = g;
						}
				}
				break;			case L_SIDE:
				if (dx)
					nn_side_backward(l, dy, dx, b);
				break;
		}
		if (nn_profile_acc)
			nn_profile_acc[2 * i + 1] += nn_clock() - t0;
		if (i > 0 && nn_interrupted())
			return -1;
	}
	return 0;
}
