/*
 * kernels_template.h - the vector kernels, written once for any width.
 *
 * Included by kernels_generic.c, kernels_avx2.c and kernels_avx512.c after
 * they define:
 *   KT(name)    the name of a kernel in this set (name ## _avx2, ...)
 *   KT_TARGET   the function attribute that enables the instruction set
 *   VT, VI, VTU float vector, int vector, unaligned float vector of V lanes
 *   V           lanes per vector
 *   KT_EVEN(a, b)  the even lanes of a then b (stride-2 pooling), only when
 *               KT_VECTOR_POOL is defined
 *   KT_ODD(a, b)   the odd lanes (optional: the Winograd input gathers its
 *               tiles' columns with both, else one value at a time)
 * Every output is summed in the same order whatever the thread count.
 */

/*
 * ---- direct convolution for a small K (the first layer) ----------------
 *
 * im2col + sgemm is a poor fit when K = C * kh * kw is small (27 for a 3x3
 * conv on 3 bands): the col matrix is K times the input and sgemm's packing
 * is not amortised.  Here each output row (image k, row oy) of DIRECT_FB
 * filters is accumulated in vector registers over the K taps, with bias and
 * ReLU applied before the one store.  Stride 1, no padding.  Reads may run
 * up to one vector past a row's end (into the next row, or the plan's
 * slack): those lanes are never stored.
 *
 * One block: NV vectors of V outputs from ox0 for filters f0 .. f0+fb-1; a
 * macro so that each NV compiles to straight-line code with the
 * accumulators in registers.  At most KT_DIRECT_NV vectors a block (4;
 * 3 where the set defines it so: AVX2's 16 registers hold 12 accumulators,
 * 3 inputs and a broadcast, not 16 of them and more).
 */
#ifndef KT_DIRECT_NV
#define KT_DIRECT_NV 4
#endif
#define KT_DIRECT_BLOCK(NV) \
	do { \
		VT			acc_[DIRECT_FB][NV]; \
		float		tmp_[(NV) * (V)]; \
		_Pragma("GCC unroll 4") for (int q_ = 0; q_ < DIRECT_FB; q_++) \
			_Pragma("GCC unroll 8") for (int v_ = 0; v_ < (NV); v_++) \
				acc_[q_][v_] = (VT) {0}; \
		for (int c_ = 0; c_ < l->ic; c_++) \
			for (int i_ = 0; i_ < l->kh; i_++) \
			{ \
				const float *row_ = x + (((size_t) c_ * b + k) * l->ih + oy + i_) * l->iw + ox0; \
				const float *wt_ = w + (size_t) (c_ * l->kh + i_) * l->kw; \
				for (int j_ = 0; j_ < l->kw; j_++) \
				{ \
					VT			in_[NV]; \
					_Pragma("GCC unroll 8") for (int v_ = 0; v_ < (NV); v_++) \
						in_[v_] = *(const VTU *) (row_ + j_ + v_ * (V)); \
					_Pragma("GCC unroll 4") for (int q_ = 0; q_ < DIRECT_FB; q_++) \
					{ \
						VT			wv_ = (VT) {0} + wt_[(size_t) wq[q_] * K + j_]; \
						_Pragma("GCC unroll 8") for (int v_ = 0; v_ < (NV); v_++) \
							acc_[q_][v_] += wv_ * in_[v_]; \
					} \
				} \
			} \
		for (int q_ = 0; q_ < fb; q_++) \
		{ \
			float	   *dst_ = y + (((size_t) (f0 + q_) * b + k) * l->oh + oy) * l->ow + ox0; \
			VT			bv_ = (VT) {0} + bias[f0 + q_]; \
			_Pragma("GCC unroll 8") for (int v_ = 0; v_ < (NV); v_++) \
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

static KT_TARGET void
KT(direct_rows) (void *p, size_t begin, size_t end)
{
	DirectArgs *a = p;
	const Layer *l = a->l;
	const float *x = a->x,
			   *w = a->w,
			   *bias = a->bias;
	float	   *y = a->y;
	int			b = a->b,
				relu = a->relu,
				K = l->ic * l->kh * l->kw;

	for (size_t r = begin; r < end; r++)
	{
		int			k = (int) (r / (size_t) l->oh),
					oy = (int) (r % (size_t) l->oh);

		for (int f0 = 0; f0 < l->filters; f0 += DIRECT_FB)
		{
			int			fb = l->filters - f0 < DIRECT_FB ? l->filters - f0 : DIRECT_FB;
			int			wq[DIRECT_FB];

			/* a short last block repeats its last filter, not stored */
			for (int q = 0; q < DIRECT_FB; q++)
				wq[q] = f0 + (q < fb ? q : fb - 1);
			for (int ox0 = 0, nv; ox0 < l->ow; ox0 += nv * (V))
			{
				nv = (l->ow - ox0 + (V) - 1) / (V);
#ifdef KT_DIRECT_NV5
				/* a row of 65-80 outputs (73: conv1) in one block, not 4 + 1 */
				if (nv == 5)
				{
					KT_DIRECT_BLOCK(5);
					continue;
				}
#endif
				if (nv >= KT_DIRECT_NV)
				{
					nv = KT_DIRECT_NV;
					KT_DIRECT_BLOCK(KT_DIRECT_NV);
				}
				else if (nv == 3)
					KT_DIRECT_BLOCK(3);
				else if (nv == 2)
					KT_DIRECT_BLOCK(2);
				else
					KT_DIRECT_BLOCK(1);
			}
		}
	}
}

#undef KT_DIRECT_BLOCK
#undef KT_DIRECT_NV

/*
 * ---- the weight gradient of a direct convolution, without a col matrix --
 *
 * gW[f][c,i,j] = sum over images k and outputs (oy, ox) of
 * dy[f][k][oy][ox] * x[c][k][oy + i][ox + j].  A block of DGRAD_FB filters
 * and DGRAD_TAPS taps keeps 24 vector accumulators over one image's rows
 * (8 dy rows and 3 shifted x rows per step, both in L2); each image's lanes
 * are then added into double sums in a fixed order.  Split by filter block,
 * so a filter's gradient is the same whatever the thread count.  dy lanes
 * past a row's end are masked to zero (the x lanes they meet are finite).
 * With a pool's scatter (PLAN_POOL_DGRAD) the block's dy planes of each
 * image are made from the pool's gradient just before they are read, in
 * the block's own scratch, instead of being read from a batch-sized
 * buffer the pool wrote.
 */
static KT_TARGET void
KT(direct_grad) (void *p, size_t begin, size_t end)
{
	DirectGradArgs *a = p;
	const Layer *l = a->l;
	int			b = a->b,
				K = l->ic * l->kh * l->kw,
				ow = l->ow,
				nv = (ow + (V) - 1) / (V);
	size_t		oplane = (size_t) l->oh * ow;
	VI			lane;

	for (int u = 0; u < (V); u++)
		lane[u] = u;
	for (size_t blk = begin; blk < end; blk++)
	{
		int			f0 = (int) blk * DGRAD_FB,
					fb = l->filters - f0 < DGRAD_FB ? l->filters - f0 : DGRAD_FB;
		double		g[DGRAD_FB][DIRECT_MAX_K];
		const float *dyq[DGRAD_FB];

		memset(g, 0, sizeof(g));
		for (int k = 0; k < b; k++)
		{
			/* a short block repeats its last filter, not stored */
			for (int q = 0; q < DGRAD_FB; q++)
				dyq[q] = a->dy + ((size_t) (f0 + (q < fb ? q : fb - 1)) * b + k) * oplane;
			if (a->ps)
			{
				/* the pool's gradient of this image, made here in cache */
				float	   *sc = a->scratch + blk * nn_dgrad_scratch_floats(l);

				for (int q = 0; q < DGRAD_FB; q++)
				{
					dyq[q] = sc + (size_t) (q < fb ? q : fb - 1) * nn_dgrad_plane_floats(l);
					if (q < fb)
						a->psum[(size_t) (f0 + q) * b + k] = (float)
							nn_pool_scatter(a->ps, (size_t) (f0 + q) * b + k, (float *) dyq[q]);
				}
			}
			for (int c = 0; c < l->ic; c++)
				for (int i = 0; i < l->kh; i++)
					for (int j0 = 0; j0 < l->kw; j0 += DGRAD_TAPS)
					{
						int			jn = l->kw - j0 < DGRAD_TAPS ? l->kw - j0 : DGRAD_TAPS;
						int			tj[DGRAD_TAPS];
						VT			acc[DGRAD_FB][DGRAD_TAPS];

						for (int t = 0; t < DGRAD_TAPS; t++)
							tj[t] = j0 + (t < jn ? t : jn - 1);
						_Pragma("GCC unroll 8") for (int q = 0; q < DGRAD_FB; q++)
							_Pragma("GCC unroll 3") for (int t = 0; t < DGRAD_TAPS; t++)
								acc[q][t] = (VT) {0};
						for (int oy = 0; oy < l->oh; oy++)
						{
							const float *xr = a->x + (((size_t) c * b + k) * l->ih + oy + i) * l->iw;

							for (int v = 0; v < nv; v++)
							{
								VI			keep = lane < ow - v * (V);
								VT			xv[DGRAD_TAPS];

								_Pragma("GCC unroll 3") for (int t = 0; t < DGRAD_TAPS; t++)
									xv[t] = *(const VTU *) (xr + tj[t] + v * (V));
								_Pragma("GCC unroll 8") for (int q = 0; q < DGRAD_FB; q++)
								{
									VT			dv = *(const VTU *) (dyq[q] + (size_t) oy * ow + v * (V));

									dv = (VT) ((VI) dv & keep);
									_Pragma("GCC unroll 3") for (int t = 0; t < DGRAD_TAPS; t++)
										acc[q][t] += dv * xv[t];
								}
							}
						}
						for (int q = 0; q < fb; q++)
							for (int t = 0; t < jn; t++)
							{
								double		sum = 0;

								for (int u = 0; u < (V); u++)
									sum += acc[q][t][u];
								g[q][(c * l->kh + i) * l->kw + j0 + t] += sum;
							}
					}
		}
		for (int q = 0; q < fb; q++)
			for (int t = 0; t < K; t++)
				a->gW[(size_t) (f0 + q) * K + t] = (float) g[q][t];
	}
}

#ifdef KT_VECTOR_POOL
/*
 * ---- max-pool forward, V outputs of a row at a time --------------------
 *
 * Strides 1 and 2 (a stride-2 window column is two loads and the even
 * lanes of both); other strides take the scalar pool.  Ties go to the first
 * element in window order, as in the scalar pool (the winners are not
 * kept when arg is NULL: inference).  The deferred bias and
 * ReLU of the conv before (see plan.c) are applied to the V maxima.  Loads
 * may run past a row's end into the plan's slack; those lanes are not
 * stored.
 */
static KT_TARGET inline __attribute__((always_inline)) void
KT(pool_planes) (PoolArgs *a, size_t begin, size_t end, const int keep)
{
	const Layer *l = a->l;
	size_t		plane = (size_t) l->ih * l->iw;
	size_t		oplane = (size_t) l->oh * l->ow;
	int			kh = l->kh,
				kw = l->kw,
				iw = l->iw,
				ow = l->ow,
				st = l->stride;
	VI			lane;

	for (int u = 0; u < (V); u++)
		lane[u] = u;
	for (size_t pl = begin; pl < end; pl++)
	{
		const float *src = a->x + pl * plane;
		float	   *dst = a->y + pl * oplane;
		int32_t    *arg = keep ? a->arg + pl * oplane : NULL;
		VT			badd = (VT) {0} + (a->bias ? a->bias[pl / (size_t) a->b] : 0.0f);

		for (int oy = 0; oy < l->oh; oy++)
			for (int ox0 = 0; ox0 < ow; ox0 += (V))
			{
				VT			m = {0},
							out;
				VI			best = {0};
				float		tf[V];
				int32_t		ti[V];

				for (int dy = 0; dy < kh; dy++)
					for (int dx = 0; dx < kw; dx++)
					{
						int			at0 = (oy * st + dy) * iw + ox0 * st + dx;
						const float *r = src + at0;
						VT			v;
						VI			at = lane * st + at0;

						if (st == 1)
							v = *(const VTU *) r;
						else
							v = KT_EVEN(*(const VTU *) r, *(const VTU *) (r + (V)));
						if (dy == 0 && dx == 0)
						{
							m = v;
							best = at;
						}
						else
						{
							VI			gt = v > m;

							m = (VT) (((VI) v & gt) | ((VI) m & ~gt));
							if (keep)
								best = (at & gt) | (best & ~gt);
						}
					}
				out = m + badd;
				if (a->relu)
					out = (VT) ((VI) out & (out > (VT) {0}));
				if (ox0 + (V) <= ow)
				{
					*(VTU *) (dst + oy * ow + ox0) = out;
					if (keep)
						memcpy(arg + oy * ow + ox0, &best, sizeof(best));
				}
				else
				{
					memcpy(tf, &out, sizeof(tf));
					memcpy(ti, &best, sizeof(ti));
					memcpy(dst + oy * ow + ox0, tf, sizeof(float) * (ow - ox0));
					if (keep)
						memcpy(arg + oy * ow + ox0, ti, sizeof(int32_t) * (ow - ox0));
				}
			}
	}
}

/* the window winners kept (training) or not (inference: arg NULL) */
static KT_TARGET void
KT(pool_forward) (void *p, size_t begin, size_t end)
{
	PoolArgs   *a = p;

	if (a->l->stride != 1 && a->l->stride != 2)
		nn_pool_forward_scalar(p, begin, end);
	else if (a->arg)
		KT(pool_planes) (a, begin, end, 1);
	else
		KT(pool_planes) (a, begin, end, 0);
}
#endif

/*
 * The 16 vectors v of tiles n .. n+V-1 to their 16 matrices (ps floats
 * apart) at dst, only the first `left` lanes when fewer tiles are left
 */
static KT_TARGET inline void
KT(wino_store16) (float *dst, size_t ps, const VT *v, int left)
{
	float		tmp[V];

	if (left >= (V))
		for (int q = 0; q < 16; q++)
			*(VTU *) (dst + q * ps) = v[q];
	else
		for (int q = 0; q < 16; q++)
		{
			memcpy(tmp, &v[q], sizeof(tmp));
			memcpy(dst + q * ps, tmp, sizeof(float) * left);
		}
}

/*
 * ---- Winograd F(2x2, 3x3): the input and output transforms -------------
 *
 * A 3x3 convolution (stride 1) computed per 2x2 block of outputs ("tile")
 * from the 4x4 block of inputs under it: Y = A^T [(G g G^T) . (B^T d B)] A
 * (Lavin and Gray, 2015).  The 16 products of a tile, summed over input
 * channels, are 16 matrix products done by sgemm (layers_conv.c); here are
 * the transforms on either side, V tiles at a time.
 *
 * Input: per channel and image, the 16 values d[i][j] of every tile are
 * gathered into 16 rows of D (zero outside the plane: padding, and the
 * tiles past the right and bottom edges), then transformed V tiles at a
 * time into V[p][c][t], p = 4 i + j the point of the 4x4 tile, t = (image -
 * k0) th tw + ty tw + tx.  D lives in the M area (free until the sgemms),
 * whose slack takes the vector reads past its end.  A value is the same
 * whatever the chunk.
 */
static KT_TARGET void
KT(wino_input) (const WinoArgs *a, int k0, int kc, float *Vb, float *Mb)
{
	const Layer *l = a->l;
	int			th = a->th,
				tw = a->tw,
				tiles = th * tw,
				pt = l->pad_top,
				pl = l->pad_left,
				iw = l->iw,
				ih = l->ih;
	size_t		T = (size_t) kc * tiles,
				ps = (size_t) l->ic * T,	/* between the 16 matrices */
				plane = (size_t) ih * iw;
	float	   *D = Mb;

	/* the tiles whose 4 columns are all inside: tx in [xlo, xhi) */
	int			xlo = (pl + 1) / 2,
				xhi = (iw - 4 + pl) / 2 + 1;

	if (xhi > tw)
		xhi = tw;
	if (xhi < xlo)
		xhi = xlo;
	for (int c = 0; c < l->ic; c++)
		for (int kk = 0; kk < kc; kk++)
		{
			const float *src = a->x + ((size_t) c * a->b + k0 + kk) * plane;
			float	   *dst = Vb + (size_t) c * T + (size_t) kk * tiles;

			for (int ty = 0; ty < th; ty++)
				for (int i = 0; i < 4; i++)
				{
					int			iy = 2 * ty + i - pt;
					float	   *d0 = D + (size_t) (4 * i) * tiles + (size_t) ty * tw,
							   *d1 = d0 + tiles,
							   *d2 = d1 + tiles,
							   *d3 = d2 + tiles;
					const float *row;
					int			in;

					if (iy < 0 || iy >= ih)
					{
						for (int tx = 0; tx < tw; tx++)
							d0[tx] = d1[tx] = d2[tx] = d3[tx] = 0.0f;
						continue;
					}
					row = src + (size_t) iy * iw - pl;
					for (int tx = 0; tx < xlo; tx++)
					{
						int			x0 = 2 * tx - pl;

						d0[tx] = x0 >= 0 && x0 < iw ? row[2 * tx] : 0.0f;
						d1[tx] = x0 + 1 >= 0 && x0 + 1 < iw ? row[2 * tx + 1] : 0.0f;
						d2[tx] = x0 + 2 >= 0 && x0 + 2 < iw ? row[2 * tx + 2] : 0.0f;
						d3[tx] = x0 + 3 >= 0 && x0 + 3 < iw ? row[2 * tx + 3] : 0.0f;
					}
					in = xlo;
#ifdef KT_ODD
					/*
					 * V tiles at a time: their columns 2t .. 2t + 3 are the
					 * even and odd lanes of two pairs of loads, all inside
					 */
					for (; in + (V) <= xhi; in += (V))
					{
						VT			e0 = *(const VTU *) (row + 2 * in),
									e1 = *(const VTU *) (row + 2 * in + (V)),
									f0 = *(const VTU *) (row + 2 * in + 2),
									f1 = *(const VTU *) (row + 2 * in + 2 + (V));

						*(VTU *) (d0 + in) = KT_EVEN(e0, e1);
						*(VTU *) (d1 + in) = KT_ODD(e0, e1);
						*(VTU *) (d2 + in) = KT_EVEN(f0, f1);
						*(VTU *) (d3 + in) = KT_ODD(f0, f1);
					}
#endif
					for (; in < xhi; in++)
					{
						d0[in] = row[2 * in];
						d1[in] = row[2 * in + 1];
						d2[in] = row[2 * in + 2];
						d3[in] = row[2 * in + 3];
					}
					for (int tx = xhi; tx < tw; tx++)
					{
						int			x0 = 2 * tx - pl;

						d0[tx] = x0 >= 0 && x0 < iw ? row[2 * tx] : 0.0f;
						d1[tx] = x0 + 1 >= 0 && x0 + 1 < iw ? row[2 * tx + 1] : 0.0f;
						d2[tx] = x0 + 2 >= 0 && x0 + 2 < iw ? row[2 * tx + 2] : 0.0f;
						d3[tx] = x0 + 3 >= 0 && x0 + 3 < iw ? row[2 * tx + 3] : 0.0f;
					}
				}
			for (int n = 0; n < tiles; n += (V))
			{
				VT			d[16],
							t[16],
							v[16];

				for (int q = 0; q < 16; q++)
					d[q] = *(const VTU *) (D + (size_t) q * tiles + n);
				/* B^T d: rows */
				for (int j = 0; j < 4; j++)
				{
					t[j] = d[j] - d[8 + j];
					t[4 + j] = d[4 + j] + d[8 + j];
					t[8 + j] = d[8 + j] - d[4 + j];
					t[12 + j] = d[4 + j] - d[12 + j];
				}
				/* (B^T d) B: columns */
				for (int i = 0; i < 4; i++)
				{
					v[4 * i + 0] = t[4 * i] - t[4 * i + 2];
					v[4 * i + 1] = t[4 * i + 1] + t[4 * i + 2];
					v[4 * i + 2] = t[4 * i + 2] - t[4 * i + 1];
					v[4 * i + 3] = t[4 * i + 1] - t[4 * i + 3];
				}
				KT(wino_store16) (dst + n, ps, v, tiles - n);
			}
		}
}

/*
 * Output: M[p][f][t] back to the 2x2 outputs of each tile, V tiles at a
 * time, plus the bias and ReLU unless the pool after takes them; the 4
 * outputs of every tile go to 4 rows of R (the area passed as Vb, free
 * after the sgemms) and from there to their places in the plane, the
 * parts past its edge dropped.  Loads may run up to V - 1 floats past a matrix row: into
 * the next row, or the slack after the scratch (plan.c).
 */
static KT_TARGET void
KT(wino_output) (const WinoArgs *a, int k0, int kc, float *Vb, float *Mb)
{
	const Layer *l = a->l;
	int			th = a->th,
				tw = a->tw,
				tiles = th * tw,
				oh = l->oh,
				ow = l->ow;
	size_t		T = (size_t) kc * tiles,
				ps = (size_t) l->filters * T,
				oplane = (size_t) oh * ow;
	float	   *R = Vb;

	for (int f = 0; f < l->filters; f++)
	{
		VT			bv = (VT) {0} + (a->bias ? a->bias[f] : 0.0f);

		for (int kk = 0; kk < kc; kk++)
		{
			float	   *dst = a->y + ((size_t) f * a->b + k0 + kk) * oplane;
			const float *src = Mb + (size_t) f * T + (size_t) kk * tiles;

			for (int n = 0; n < tiles; n += (V))
			{
				VT			m[16],
							s0[4],
							s1[4],
							r[4];

				for (int q = 0; q < 16; q++)
					m[q] = *(const VTU *) (src + q * ps + n);
				/* A^T m: rows */
				for (int j = 0; j < 4; j++)
				{
					s0[j] = m[j] + m[4 + j] + m[8 + j];
					s1[j] = m[4 + j] - m[8 + j] - m[12 + j];
				}
				/* (A^T m) A: columns */
				r[0] = s0[0] + s0[1] + s0[2];
				r[1] = s0[1] - s0[2] - s0[3];
				r[2] = s1[0] + s1[1] + s1[2];
				r[3] = s1[1] - s1[2] - s1[3];
				for (int u = 0; u < 4; u++)
				{
					if (a->bias)
						r[u] += bv;
					if (a->relu)
						r[u] = (VT) ((VI) r[u] & (VI) (r[u] > (VT) {0}));
					*(VTU *) (R + (size_t) u * (tiles + (V)) + n) = r[u];
				}
			}
			for (int ty = 0; ty < th; ty++)
			{
				const float *r0 = R + (size_t) ty * tw,
						   *r1 = r0 + tiles + (V),
						   *r2 = r1 + tiles + (V),
						   *r3 = r2 + tiles + (V);
				float	   *y0 = dst + (size_t) (2 * ty) * ow,
						   *y1 = y0 + ow;
				int			full = ow / 2;

				for (int tx = 0; tx < full; tx++)
				{
					y0[2 * tx] = r0[tx];
					y0[2 * tx + 1] = r1[tx];
				}
				if (ow & 1)
					y0[ow - 1] = r0[full];
				if (2 * ty + 1 >= oh)
					continue;
				for (int tx = 0; tx < full; tx++)
				{
					y1[2 * tx] = r2[tx];
					y1[2 * tx + 1] = r3[tx];
				}
				if (ow & 1)
					y1[ow - 1] = r2[full];
			}
		}
	}
}

/*
 * The weight gradient's side of the output gradient: for each tile, the
 * 2x2 block dY of the output gradient under it (zero past the plane's
 * edge) becomes A dY A^T, the gradient of the 16 products of the tile
 * (since Y = A^T Z A); M[p][f][t] as wino_output reads it.  The gathered
 * blocks go to 4 rows of D after M (nn_wino_slot_floats).  A value is the
 * same whatever the chunk.
 */
static KT_TARGET void
KT(wino_dy) (const WinoArgs *a, int k0, int kc, float *Vb, float *Mb)
{
	const Layer *l = a->l;
	int			th = a->th,
				tw = a->tw,
				tiles = th * tw,
				oh = l->oh,
				ow = l->ow,
				full = ow / 2;
	size_t		T = (size_t) kc * tiles,
				ps = (size_t) l->filters * T,
				oplane = (size_t) oh * ow;
	float	   *D = Mb + 16 * ps;

	for (int f = 0; f < l->filters; f++)
		for (int kk = 0; kk < kc; kk++)
		{
			const float *src = a->x + ((size_t) f * a->b + k0 + kk) * oplane;
			float	   *dst = Mb + (size_t) f * T + (size_t) kk * tiles;

			for (int ty = 0; ty < th; ty++)
				for (int u = 0; u < 2; u++)
				{
					float	   *de = D + (size_t) (2 * u) * (tiles + (V)) + (size_t) ty * tw,
							   *dd = de + tiles + (V);
					const float *row = src + (size_t) (2 * ty + u) * ow;

					if (2 * ty + u >= oh)
					{
						for (int tx = 0; tx < tw; tx++)
							de[tx] = dd[tx] = 0.0f;
						continue;
					}
					for (int tx = 0; tx < full; tx++)
					{
						de[tx] = row[2 * tx];
						dd[tx] = row[2 * tx + 1];
					}
					if (ow & 1)
					{
						de[full] = row[ow - 1];
						dd[full] = 0.0f;
					}
				}
			for (int n = 0; n < tiles; n += (V))
			{
				VT			d00 = *(const VTU *) (D + n),
							d01 = *(const VTU *) (D + (size_t) (tiles + (V)) + n),
							d10 = *(const VTU *) (D + (size_t) 2 * (tiles + (V)) + n),
							d11 = *(const VTU *) (D + (size_t) 3 * (tiles + (V)) + n),
							r[4][2],
							z[16];

				/* A dY: rows */
				r[0][0] = d00;
				r[0][1] = d01;
				r[1][0] = d00 + d10;
				r[1][1] = d01 + d11;
				r[2][0] = d00 - d10;
				r[2][1] = d01 - d11;
				r[3][0] = -d10;
				r[3][1] = -d11;
				/* (A dY) A^T: columns */
				for (int i = 0; i < 4; i++)
				{
					z[4 * i + 0] = r[i][0];
					z[4 * i + 1] = r[i][0] + r[i][1];
					z[4 * i + 2] = r[i][0] - r[i][1];
					z[4 * i + 3] = -r[i][1];
				}
				KT(wino_store16) (dst + n, ps, z, tiles - n);
			}
		}
}

/*
 * ---- Winograd F(4x4, 3x3): the input and output transforms -------------
 *
 * As F(2x2, 3x3) above, with 4x4 outputs a tile from its 6x6 inputs and
 * 36 products (Lavin and Gray's points 0, 1, -1, 2, -2 and infinity):
 *   B^T = [4  0 -5  0 1 0; 0 -4 -4  1 1 0; 0  4 -4 -1 1 0;
 *          0 -2 -1  2 1 0; 0  2 -1 -2 1 0; 0  4  0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * (G is in layers_conv.c).  Per output this does 36/16 products where
 * F(2x2) does 16/4, and its transformed input is 2.25 values a pixel
 * against 4: less for the sgemms and less memory for the transforms.
 * fp32 loses a little more to rounding (up to 1e-5 of the outputs' scale
 * here, 1e-6 with F(2x2)).
 *
 * The 1-d transforms, of 6 values (B^T) and to 4 (A^T); t may be the
 * inputs' array (every input is read before the first store):
 */
#define KT_BT6(d0, d1, d2, d3, d4, d5, t) \
	do { \
		VT			p_ = (d4) - 4.0f * (d2), \
					q_ = (d3) - 4.0f * (d1), \
					r_ = (d4) - (d2), \
					s_ = 2.0f * ((d3) - (d1)), \
					t0_ = 4.0f * (d0) - 5.0f * (d2) + (d4), \
					t5_ = 4.0f * (d1) - 5.0f * (d3) + (d5); \
		(t)[0] = t0_; \
		(t)[1] = p_ + q_; \
		(t)[2] = p_ - q_; \
		(t)[3] = r_ + s_; \
		(t)[4] = r_ - s_; \
		(t)[5] = t5_; \
	} while (0)
#define KT_AT6(m0, m1, m2, m3, m4, m5, y) \
	do { \
		VT			a_ = (m1) + (m2), \
					b_ = (m1) - (m2), \
					c_ = (m3) + (m4), \
					d_ = (m3) - (m4); \
		(y)[0] = (m0) + a_ + c_; \
		(y)[1] = b_ + 2.0f * d_; \
		(y)[2] = a_ + 4.0f * c_; \
		(y)[3] = b_ + 8.0f * d_ + (m5); \
	} while (0)

/*
 * Input: per channel and image, the plane is copied into a zero-framed
 * copy (nn_wino4_frame: the padding and the tiles past the edges become
 * zeros there), from which the 36 values of every tile are gathered into
 * 36 rows of D (rows ds floats apart: a vector may run past a row of
 * tiles), then transformed V tiles at a time into V[p][c][t], p = 6 i + j.
 * Where the set has KT_ODD, V tiles' columns 4t .. 4t + 5 come from two
 * runs of 4 loads split into every fourth lane; the lanes past the last
 * tile are overwritten by the next row of tiles or never read.  D and the
 * frame live in the M area (free until the sgemms) and the slot's slack.
 */
static KT_TARGET void
KT(wino4_input) (const WinoArgs *a, int k0, int kc, float *Vb, float *Mb)
{
	const Layer *l = a->l;
	int			th = a->th,
				tw = a->tw,
				tiles = th * tw,
				iw = l->iw,
				ih = l->ih,
				fw = nn_wino4_frame_width(tw);
	size_t		T = (size_t) kc * tiles,
				ps = (size_t) l->ic * T,	/* between the 36 matrices */
				plane = (size_t) ih * iw,
				ds = (size_t) tiles + 16;	/* between D's rows */
	float	   *D = Mb,
			   *frame = Mb + ((36 * ds + 15) & ~(size_t) 15);

	/* the frame's zeros, once: every plane is copied to the same place */
	memset(frame, 0, sizeof(float) * nn_wino4_frame_floats(tw, th));
	for (int c = 0; c < l->ic; c++)
		for (int kk = 0; kk < kc; kk++)
		{
			const float *src = a->x + ((size_t) c * a->b + k0 + kk) * plane;
			float	   *dst = Vb + (size_t) c * T + (size_t) kk * tiles;

			/*
			 * the next plane (planes of one image are b planes apart) is
			 * fetched while this one is transformed: reading the planes
			 * from memory was a third of this kernel's time
			 */
			if (c + 1 < l->ic || kk + 1 < kc)
			{
				const float *next = kk + 1 < kc ? src + plane : a->x + ((size_t) (c + 1) * a->b + k0) * plane;

				for (size_t o = 0; o < plane; o += 16)
					__builtin_prefetch(next + o);
			}
			/* the rows and columns of the plane that tiles cover */
			for (int y = 0; y < 4 * th + 2; y++)
			{
				int			iy = y - l->pad_top,
							x0 = l->pad_left,
							n = iw < 4 * tw + 2 - x0 ? iw : 4 * tw + 2 - x0;

				if (iy >= 0 && iy < ih && n > 0)
				{
					const float *from = src + (size_t) iy * iw;
					float	   *to = frame + (size_t) y * fw + x0;
					int			x = 0;

					/* a row of a few vectors: no call to memcpy */
					for (; x + (V) <= n; x += (V))
						*(VTU *) (to + x) = *(const VTU *) (from + x);
					for (; x < n; x++)
						to[x] = from[x];
				}
			}
			for (int ty = 0; ty < th; ty++)
				for (int i = 0; i < 6; i++)
				{
					const float *row = frame + (size_t) (4 * ty + i) * fw;
					float	   *d0 = D + (size_t) (6 * i) * ds + (size_t) ty * tw;
					int			in = 0;

#ifdef KT_ODD
					for (; in < tw; in += (V))
					{
						const float *r0 = row + 4 * in;
						VT			a0 = *(const VTU *) r0,
									a1 = *(const VTU *) (r0 + (V)),
									a2 = *(const VTU *) (r0 + 2 * (V)),
									a3 = *(const VTU *) (r0 + 3 * (V)),
									b0 = *(const VTU *) (r0 + 4),
									b1 = *(const VTU *) (r0 + 4 + (V)),
									b2 = *(const VTU *) (r0 + 4 + 2 * (V)),
									b3 = *(const VTU *) (r0 + 4 + 3 * (V)),
									e01 = KT_EVEN(a0, a1),
									e23 = KT_EVEN(a2, a3),
									o01 = KT_ODD(a0, a1),
									o23 = KT_ODD(a2, a3);

						*(VTU *) (d0 + in) = KT_EVEN(e01, e23);
						*(VTU *) (d0 + ds + in) = KT_EVEN(o01, o23);
						*(VTU *) (d0 + 2 * ds + in) = KT_ODD(e01, e23);
						*(VTU *) (d0 + 3 * ds + in) = KT_ODD(o01, o23);
						*(VTU *) (d0 + 4 * ds + in) = KT_EVEN(KT_EVEN(b0, b1), KT_EVEN(b2, b3));
						*(VTU *) (d0 + 5 * ds + in) = KT_EVEN(KT_ODD(b0, b1), KT_ODD(b2, b3));
					}
#endif
					for (; in < tw; in++)
						for (int j = 0; j < 6; j++)
							d0[j * ds + in] = row[4 * in + j];
				}
			for (int n = 0; n < tiles; n += (V))
			{
				VT			t[36],
							v[36];
				float		tmp[V];

				/* B^T d: down the columns */
				for (int j = 0; j < 6; j++)
				{
					VT			r[6];

					for (int i = 0; i < 6; i++)
						r[i] = *(const VTU *) (D + (size_t) (6 * i + j) * ds + n);
					KT_BT6(r[0], r[1], r[2], r[3], r[4], r[5], r);
					for (int i = 0; i < 6; i++)
						t[6 * i + j] = r[i];
				}
				/* (B^T d) B: along the rows */
				for (int i = 0; i < 6; i++)
					KT_BT6(t[6 * i], t[6 * i + 1], t[6 * i + 2], t[6 * i + 3], t[6 * i + 4],
						   t[6 * i + 5], v + 6 * i);
				if (tiles - n >= (V))
					for (int q = 0; q < 36; q++)
						*(VTU *) (dst + n + q * ps) = v[q];
				else
					for (int q = 0; q < 36; q++)
					{
						memcpy(tmp, &v[q], sizeof(tmp));
						memcpy(dst + n + q * ps, tmp, sizeof(float) * (tiles - n));
					}
			}
		}
}

/*
 * Output: M[p][f][t] back to the 4x4 outputs of each tile, V tiles at a
 * time, plus the bias and ReLU unless the pool after takes them, through
 * 16 rows of R (the area passed as Vb) to their places in the plane.  Loads may run
 * up to V - 1 floats past a matrix row (into the next, or the slack).
 */
static KT_TARGET void
KT(wino4_output) (const WinoArgs *a, int k0, int kc, float *Vb, float *Mb)
{
	const Layer *l = a->l;
	int			th = a->th,
				tw = a->tw,
				tiles = th * tw,
				oh = l->oh,
				ow = l->ow,
				full = ow / 4;
	size_t		T = (size_t) kc * tiles,
				ps = (size_t) l->filters * T,
				oplane = (size_t) oh * ow,
				rs = (size_t) tiles + (V);	/* between R's rows */
	float	   *R = Vb;

	for (int f = 0; f < l->filters; f++)
	{
		VT			bv = (VT) {0} + (a->bias ? a->bias[f] : 0.0f);

		for (int kk = 0; kk < kc; kk++)
		{
			float	   *dst = a->y + ((size_t) f * a->b + k0 + kk) * oplane;
			const float *src = Mb + (size_t) f * T + (size_t) kk * tiles;

			for (int n = 0; n < tiles; n += (V))
			{
				VT			s[4][6],
							r[4];

				/* A^T m: down the columns */
				for (int j = 0; j < 6; j++)
				{
					VT			m[6],
								y4[4];

					for (int i = 0; i < 6; i++)
						m[i] = *(const VTU *) (src + (size_t) (6 * i + j) * ps + n);
					KT_AT6(m[0], m[1], m[2], m[3], m[4], m[5], y4);
					for (int u = 0; u < 4; u++)
						s[u][j] = y4[u];
				}
				/* (A^T m) A: along the rows */
				for (int u = 0; u < 4; u++)
				{
					KT_AT6(s[u][0], s[u][1], s[u][2], s[u][3], s[u][4], s[u][5], r);
					for (int w = 0; w < 4; w++)
					{
						VT			o = r[w];

						if (a->bias)
							o += bv;
						if (a->relu)
							o = (VT) ((VI) o & (VI) (o > (VT) {0}));
						*(VTU *) (R + (size_t) (4 * u + w) * rs + n) = o;
					}
				}
			}
			for (int ty = 0; ty < th; ty++)
				for (int u = 0; u < 4 && 4 * ty + u < oh; u++)
				{
					const float *r0 = R + (size_t) (4 * u) * rs + (size_t) ty * tw,
							   *r1 = r0 + rs,
							   *r2 = r1 + rs,
							   *r3 = r2 + rs;
					float	   *y = dst + (size_t) (4 * ty + u) * ow;

					for (int tx = 0; tx < full; tx++)
					{
						y[4 * tx] = r0[tx];
						y[4 * tx + 1] = r1[tx];
						y[4 * tx + 2] = r2[tx];
						y[4 * tx + 3] = r3[tx];
					}
					for (int w = 0; w < ow - 4 * full; w++)
						y[4 * full + w] = r0[(size_t) w * rs + full];
				}
		}
	}
}
#undef KT_BT6
#undef KT_AT6

/*
 * ---- dropout: the mask and the product, in one pass ---------------------
 *
 * Each element's keep/drop depends only on (seed, index), so the mask is
 * the same whatever the threads and the kernel set; a loop the compiler
 * vectorises (the 64-bit hash included) where the set has the width.
 */
static KT_TARGET void
KT(dropout) (void *p, size_t begin, size_t end)
{
	DropArgs   *a = p;
	const float *x = a->x;
	float	   *y = a->y,
			   *mask = a->mask;
	float		rate = a->rate,
				keep = 1.0f / (1.0f - rate);
	uint64_t	seed = a->seed;

	for (size_t k = begin; k < end; k++)
	{
		uint64_t	h = nn_mix(seed, (uint64_t) k);
		float		u = (float) (int32_t) (h >> 40) * (1.0f / 16777216.0f);
		float		m = u >= rate ? keep : 0.0f;

		mask[k] = m;
		y[k] = x[k] * m;
	}
}
