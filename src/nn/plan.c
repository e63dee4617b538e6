/*
 * plan.c - memory plans: every buffer a pass over a batch uses, made once
 * per (net, batch size), and the choices that decide those buffers.
 *
 * A plan records the kernel set it was made with and, per layer, whether a
 * conv is direct (no col matrix in its forward pass), whether it leaves its
 * bias and activation to the max-pool after it, and whether that pool does
 * the conv's activation backward.  The passes (engine.c, layers_*.c) read
 * these from the plan only, so a plan's buffers always fit the way it runs,
 * whatever the kernel set new plans take later.
 */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nn_kernels.h"

/*
 * A plan's block, the bulk of a model's memory in a backend (13 MB for the
 * reference CNN's 32-image inference plan), is mapped from the system and
 * unmapped when the plan is freed, not taken from malloc: glibc raises its
 * mmap threshold after such a block is freed once and serves the next ones
 * from the heap, which a backend then keeps at its largest size whenever a
 * smaller allocation sits above the freed hole, so a backend that switched
 * models would hold the memory of the ones it dropped.  Under
 * AddressSanitizer blocks come from malloc so that its leak check sees them.
 */
#if defined(__SANITIZE_ADDRESS__)
#define PLAN_BLOCK_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PLAN_BLOCK_MALLOC 1
#endif
#endif

#ifndef PLAN_BLOCK_MALLOC
/*
 * A large block is laid on 2 MB boundaries and offered to the kernel's
 * transparent huge pages (MADV_HUGEPAGE: Debian's default THP mode is
 * "madvise", so nothing uses them unasked).  The passes stream through
 * tens of MB per batch: with 4 kB pages a process's first 64-image call of
 * the reference CNN took 330 ms against 100 ms with huge pages (each first
 * touch a page fault, costly in a VM), and every pass missed the TLB more.
 * Where THP is off the advice is ignored and the block is an ordinary
 * mapping.
 */
#define PLAN_HUGE_PAGE ((size_t) 2 << 20)

static float *
plan_block_map_huge(size_t bytes)
{
	size_t		len = bytes + PLAN_HUGE_PAGE;
	size_t		page = (size_t) sysconf(_SC_PAGESIZE);
	char	   *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char	   *b,
			   *end;

	if (raw == MAP_FAILED)
		return NULL;
	b = (char *) (((uintptr_t) raw + PLAN_HUGE_PAGE - 1) & ~(uintptr_t) (PLAN_HUGE_PAGE - 1));
	end = (char *) (((uintptr_t) b + bytes + page - 1) & ~(uintptr_t) (page - 1));
	if (b > raw)
		munmap(raw, (size_t) (b - raw));
	if (raw + len > end)
		munmap(end, (size_t) (raw + len - end));
	(void) madvise(b, bytes, MADV_HUGEPAGE);
	return (float *) b;
}
#endif

static float *
plan_block_alloc(size_t bytes)
{
	void	   *b;

#ifdef PLAN_BLOCK_MALLOC
	if (posix_memalign(&b, 64, bytes) != 0)
		return NULL;
	memset(b, 0, bytes);
#else
	/* page aligned and zeroed; pages are touched as the passes first use them */
	if (bytes >= 2 * PLAN_HUGE_PAGE)
		return plan_block_map_huge(bytes);
	b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
#endif
	return b;
}

static void
plan_block_free(float *block, size_t bytes)
{
	if (block == NULL)
		return;
#ifdef PLAN_BLOCK_MALLOC
	(void) bytes;
	free(block);
#else
	munmap(block, bytes);
#endif
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

/*
 * The choices per layer (PLAN_* bits into ch):
 * - PLAN_DIRECT: a conv with K = C kh kw <= DIRECT_MAX_K, stride 1, no
 *   padding, not sigmoid, when direct is on: the kernel set's direct
 *   convolution instead of im2col + sgemm (see kernels_template.h);
 * - PLAN_WINOGRAD: a 3x3 conv with stride 1 and at least WINO_MIN_C input
 *   channels whose 2x2 tiles cover at most 1.2x its outputs (not 5x5: 36
 *   for 25), when direct is on: Winograd forward, by 4x4 or 2x2 tiles as
 *   the shape makes cheaper (nn_wino_m; 4x or 2.25x fewer multiplies in
 *   its sgemms; layers_conv.c), im2col only in backward.  Never by batch
 *   size: an image alone and in a batch take the same path and get the
 *   same bits;
 * - PLAN_WINO_DX: a Winograd conv whose input gradient (a 3x3 conv of the
 *   output gradient, nn_wino_dx_layer) fits the same rule: that and its
 *   weight gradient by Winograd too, instead of sgemm to d(col) and col2im
 *   and sgemm against the col matrix (so none is made);
 * - PLAN_DEFER_BIAS: a conv by im2col + sgemm or Winograd with ReLU (or none) followed
 *   by a max-pool leaves its bias and ReLU to the pool, which applies them
 *   to its 4-9x fewer outputs: max(relu(z + b)) = relu(max(z) + b); the
 *   conv's output then holds z without bias, and its backward pass masks
 *   with z > -b;
 * - PLAN_POOL_GRAD: a max-pool after a conv with ReLU (or none) does the
 *   conv's activation backward while it scatters its gradient to the
 *   window maxima (the only non-zero entries), and sums it per plane for
 *   the conv's bias gradient: the conv then makes no pass of its own over
 *   its output gradient.
 * Training only (plan_choose_backward):
 * - PLAN_DROP_GRAD: when direct is on, a max-pool followed by a dropout
 *   (and more layers) multiplies the dropout's output gradient by its mask
 *   as it reads it, instead of the dropout writing those products to a
 *   buffer the pool then reads: the same values, one pass fewer;
 * - PLAN_POOL_DGRAD: a direct first conv (no input gradient) followed by
 *   a max-pool doing its activation backward: its weight gradient makes
 *   each block of filters' output gradient for one image at a time from
 *   the pool's (nn_pool_scatter, in a scratch of DGRAD_FB planes per
 *   block) just before reading it, and the pool only sums per plane for
 *   the bias gradient: conv1's output gradient (44 MB at batch 32 for
 *   statoil_cnn) is neither written nor read, nor held in the plan.
 */
static void
plan_choose_backward(const IcemlNet *net, uint8_t *ch)
{
	for (int i = 0; i + 2 < net->nlayers; i++)
		if (net->layers[i].type == L_POOL && net->layers[i + 1].type == L_DROPOUT)
			ch[i] |= PLAN_DROP_GRAD;
	if (net->nlayers > 1 && (ch[0] & PLAN_DIRECT) && (ch[1] & PLAN_POOL_GRAD))
		ch[0] |= PLAN_POOL_DGRAD;
}

static void
plan_choose(const IcemlNet *net, int direct, uint8_t *ch)
{
	for (int i = 0; i < net->nlayers; i++)
	{
		const Layer *l = &net->layers[i];

		ch[i] = 0;
		if (l->type == L_CONV && direct && l->stride == 1 && l->pad_top == 0 &&
			l->pad_left == 0 && l->ic * l->kh * l->kw <= DIRECT_MAX_K &&
			l->act != ACT_SIGMOID)
			ch[i] |= PLAN_DIRECT;
		else if (l->type == L_CONV && direct && l->kh == 3 && l->kw == 3 && l->stride == 1 &&
				 l->ic >= WINO_MIN_C && l->act != ACT_SIGMOID &&
				 5 * 4 * nn_wino_tiles(l, 2) <= 6 * l->oh * l->ow)
		{
			Layer		t = nn_wino_dx_layer(l);

			ch[i] |= PLAN_WINOGRAD;
			if (t.ic >= WINO_MIN_C && t.filters >= WINO_MIN_C &&
				5 * 4 * nn_wino_tiles(&t, 2) <= 6 * t.oh * t.ow)
				ch[i] |= PLAN_WINO_DX;
		}
	}
	for (int i = 0; i < net->nlayers; i++)
	{
		const Layer *l = &net->layers[i];

		if (l->type == L_CONV && !(ch[i] & PLAN_DIRECT) && i + 1 < net->nlayers &&
			net->layers[i + 1].type == L_POOL && (l->act == ACT_RELU || l->act == ACT_NONE))
			ch[i] |= PLAN_DEFER_BIAS;
		if (l->type == L_POOL && i > 0 && net->layers[i - 1].type == L_CONV &&
			(net->layers[i - 1].act == ACT_RELU || net->layers[i - 1].act == ACT_NONE))
			ch[i] |= PLAN_POOL_GRAD;
	}
}

/*
 * The sizes, in floats, of a plan's pieces ([i*5 + 0] out, 1 grad, 2 col,
 * 3 aux, 4 aux2 per layer, then input, dout, the shared col matrix) into
 * sz (n * 5 + 3 of them), and their total with alignment slack.
 */
static size_t
plan_sizes(const IcemlNet *net, const uint8_t *ch, int batch, int training, int slots,
		   size_t *sz, size_t *max_col_out)
{
	int			n = net->nlayers;
	size_t		total = 0,
				max_col = 0;

	for (int i = 0; i < n; i++)
	{
		const Layer *l = &net->layers[i];
		size_t		o = out_size(l) * batch;
		int			direct = (ch[i] & (PLAN_DIRECT | PLAN_WINOGRAD)) != 0;

		sz[i * 5 + 0] = o;
		if (training && i > 0 && !(ch[i - 1] & PLAN_POOL_DGRAD))
			sz[i * 5 + 1] = in_size(l) * batch;
		if (l->type == L_CONV)
		{
			size_t		c = (size_t) l->ic * l->kh * l->kw * l->oh * l->ow * batch;

			/*
			 * a direct or Winograd conv needs its col matrix only in
			 * backward (the weight gradient, room for d(col))
			 */
			if (training && (ch[i] & PLAN_POOL_DGRAD))
				sz[i * 5 + 2] = (size_t) ((l->filters + DGRAD_FB - 1) / DGRAD_FB) *
					nn_dgrad_scratch_floats(l);
			else if (training && (ch[i] & PLAN_WINO_DX))
			{
				/* no col matrix: the weight gradient's parts per chunk */
				sz[i * 5 + 2] = 16 * (size_t) l->filters * l->ic * nn_wino_chunks(l, batch, 2);
			}
			else if (training && (i > 0 || !(ch[i] & PLAN_DIRECT)))
				sz[i * 5 + 2] = c;
			else if (c > max_col && !direct)
				max_col = c;
		}
		if (l->type == L_POOL || (training && (l->type == L_DROPOUT || l->type == L_BATCHNORM)))
			sz[i * 5 + 3] = o;
		if (l->type == L_BATCHNORM)
			sz[i * 5 + 4] = 2 * (size_t) l->oc;
		if (ch[i] & PLAN_WINOGRAD)
		{
			/*
			 * the transformed weights, then one scratch area per thread
			 * (forward, and in training the input and weight gradients')
			 */
			int			dx = training && (ch[i] & PLAN_WINO_DX),
						chunks = nn_wino_max_chunks(l, batch, dx);

			sz[i * 5 + 3] = nn_wino_ufloats(l, dx) +
				(size_t) (slots < chunks ? slots : chunks) * nn_wino_slot_stride(l, batch, dx);
		}
		if (l->type == L_SIDE)	/* the gathered side features (side.c) */
			sz[i * 5 + 3] = (size_t) (l->oc - l->ic) * batch;
		if (training && (ch[i] & PLAN_POOL_GRAD))
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

/*
 * Pieces of a plan's block: 64-byte aligned, with at least 64 floats of
 * slack after each (vector kernels may read up to two vectors, and a
 * window, past the end of their input).  TAKE gives dst the next piece of
 * count floats (NULL for none) when the plan p is there, and counts it.
 */
#define PIECE(count) (((count) + 64 + 15) & ~(size_t) 15)
#define TAKE(dst, count) \
	do { \
		size_t		c_ = (count); \
		if (p) \
			(dst) = c_ ? p->block + at : NULL; \
		at += PIECE(c_); \
	} while (0)

/* A training plan: every piece of plan_sizes, as it is. */
static void
plan_train_layout(const IcemlNet *net, Plan *p, const size_t *sz)
{
	int			n = net->nlayers;
	size_t		at = 0;

	for (int i = 0; i < n; i++)
	{
		TAKE(p->out[i], sz[i * 5 + 0]);
		TAKE(p->grad[i], sz[i * 5 + 1]);
		TAKE(p->col[i], sz[i * 5 + 2]);
		TAKE(p->aux[i], sz[i * 5 + 3]);
		TAKE(p->aux2[i], sz[i * 5 + 4]);
		if (p->choice[i] & PLAN_WINOGRAD)
			p->wscratch[i] = p->aux[i] +
				nn_wino_ufloats(&net->layers[i], (p->choice[i] & PLAN_WINO_DX) != 0);
	}
	TAKE(p->input, sz[n * 5]);
	TAKE(p->dout, sz[n * 5 + 1]);
}

/*
 * An inference plan (predictions) keeps only what a pass still needs.  A
 * layer's output is read by the next layer alone, so the outputs alternate
 * between two buffers (each the size of the largest output that goes to
 * it), and a dropout layer (the identity in inference) passes its input on
 * as its output.  The pools
 * keep no window winners (backward's).  The Winograd scratch and the col
 * matrix are one area each, shared by the layers in turn.  Kept per layer:
 * a Winograd conv's transformed weights (reused from pass to pass), the side
 * layer's gathered inputs, batch norm's statistics.  For statoil_cnn at 32
 * images this is about a fifth of a plan with every output (README).
 * Returns the floats; with p NULL only counts them (nn_plan_floats).
 */
static size_t
plan_infer_layout(const IcemlNet *net, const uint8_t *ch, const size_t *sz, Plan *p)
{
	int			n = net->nlayers,
				last = 1;		/* the buffer the last output went to */
	size_t		at = 0,
				act[2] = {0, 0},
				scratch = 0;
	float	   *buf[2] = {NULL, NULL},
			   *wscr = NULL,
			   *col = NULL;

	for (int i = 0; i < n; i++)
	{
		const Layer *l = &net->layers[i];

		/* each buffer as big as the outputs that go to it */
		if (l->type != L_DROPOUT)
		{
			last = 1 - last;
			if (sz[i * 5 + 0] > act[last])
				act[last] = sz[i * 5 + 0];
		}
		if ((ch[i] & PLAN_WINOGRAD) && sz[i * 5 + 3] - nn_wino_ufloats(l, 0) > scratch)
			scratch = sz[i * 5 + 3] - nn_wino_ufloats(l, 0);
	}
	TAKE(p->input, sz[n * 5]);
	TAKE(p->dout, sz[n * 5 + 1]);
	TAKE(buf[0], act[0]);
	TAKE(buf[1], act[1]);
	TAKE(wscr, scratch);
	TAKE(col, sz[n * 5 + 2]);
	last = 1;
	for (int i = 0; i < n; i++)
	{
		const Layer *l = &net->layers[i];

		if (ch[i] & PLAN_WINOGRAD)
			TAKE(p->aux[i], nn_wino_ufloats(l, 0));
		else if (l->type == L_SIDE)
			TAKE(p->aux[i], sz[i * 5 + 3]);
		TAKE(p->aux2[i], sz[i * 5 + 4]);
		if (p == NULL)
			continue;
		if (l->type == L_DROPOUT)
			p->out[i] = i > 0 ? p->out[i - 1] : p->input;
		else
		{
			last = 1 - last;
			p->out[i] = buf[last];
		}
		if (ch[i] & PLAN_WINOGRAD)
			p->wscratch[i] = wscr;
		if (l->type == L_CONV)
			p->col[i] = col;
	}
	return at;
}
#undef TAKE
#undef PIECE

/*
 * Scratch areas per Winograd conv: one per thread the engine runs now, and
 * at least 2 (a plan made at one thread may run at two; more threads than
 * areas leave the extra threads idle in that layer, same results)
 */
static int
plan_slots(void)
{
	int			t = nn_work_threads();

	return t < 2 ? 2 : t;
}

/* The floats a plan for this batch takes (iceml_net_memory). */
size_t
nn_plan_floats(const IcemlNet *net, int batch, int training)
{
	size_t	   *sz = calloc((size_t) net->nlayers * 5 + 3, sizeof(size_t));
	uint8_t    *ch = calloc((size_t) net->nlayers, 1);
	size_t		max_col,
				total = SIZE_MAX;	/* cannot even plan: as good as too big */

	if (sz && ch)
	{
		plan_choose(net, 1, ch);
		if (training)
			plan_choose_backward(net, ch);
		total = plan_sizes(net, ch, batch, training, plan_slots(), sz, &max_col);
		if (!training)
			total = plan_infer_layout(net, ch, sz, NULL);
	}
	free(sz);
	free(ch);
	return total;
}

Plan *
nn_plan_create(const IcemlNet *net, int batch, int training)
{
	return nn_plan_create_with(net, batch, training, NULL, 1);
}

Plan *
nn_plan_create_with(const IcemlNet *net, int batch, int training,
					const NnKernels *kern, int direct)
{
	int			n = net->nlayers;
	Plan	   *p = calloc(1, sizeof(Plan));
	size_t		total = 0,
				max_col = 0;
	size_t	   *sz;

	if (p == NULL)
		return NULL;
	p->batch = batch;
	p->training = training;
	p->kern = kern ? kern : nn_kernels_current();
	p->choice = calloc((size_t) n, 1);
	p->out = calloc((size_t) n, sizeof(float *));
	p->grad = calloc((size_t) n, sizeof(float *));
	p->col = calloc((size_t) n, sizeof(float *));
	p->aux = calloc((size_t) n, sizeof(float *));
	p->aux2 = calloc((size_t) n, sizeof(float *));
	p->wino_made = calloc((size_t) n, sizeof(uint64_t));
	p->wscratch = calloc((size_t) n, sizeof(float *));
	sz = calloc((size_t) n * 5 + 3, sizeof(size_t));
	if (!p->choice || !p->out || !p->grad || !p->col || !p->aux || !p->aux2 ||
		!p->wino_made || !p->wscratch || !sz)
	{
		free(sz);
		nn_plan_free(p);
		return NULL;
	}

	plan_choose(net, direct, p->choice);
	if (training && direct)
		plan_choose_backward(net, p->choice);
	p->wino_slots = plan_slots();
	total = plan_sizes(net, p->choice, batch, training, p->wino_slots, sz, &max_col);
	if (!training)
		total = plan_infer_layout(net, p->choice, sz, NULL);

	p->block_floats = total > 0 ? total : 1;
	p->block = plan_block_alloc(p->block_floats * sizeof(float));
	if (p->block == NULL)
	{
		free(sz);
		nn_plan_free(p);
		return NULL;
	}
	if (training)
		plan_train_layout(net, p, sz);
	else
		plan_infer_layout(net, p->choice, sz, p);
	free(sz);
	return p;
}

void
nn_plan_free(Plan *p)
{
	if (p == NULL)
		return;
	plan_block_free(p->block, p->block_floats * sizeof(float));
	free(p->choice);
	free(p->out);
	free(p->grad);
	free(p->col);
	free(p->aux);
	free(p->aux2);
	free(p->wino_made);
	free(p->wscratch);
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
