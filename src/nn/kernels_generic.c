/*
 * kernels_generic.c - the portable kernel set: the vector kernels on GCC's
 * 8-float vectors without a target (the compiler lowers them to what the
 * build allows), and the scalar max-pool.  Runs on every CPU.
 */
#include <string.h>

#include "nn_kernels.h"

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));

#define KT(name) name ## _generic
#define KT_TARGET
#define VT v8f
#define VI v8i
#define VTU v8fu
#define V 8
#include "kernels_template.h"

/*
 * Max-pool forward, one output at a time: selects, not branches (which
 * element wins is data).  Ties go to the first element in window order.
 * The deferred bias and ReLU of the conv before are applied to the maximum.
 */
void
nn_pool_forward_scalar(void *p, size_t begin, size_t end)
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
		int32_t    *arg = a->arg ? a->arg + pl * oplane : NULL;

		for (int oy = 0; oy < l->oh; oy++)
			for (int ox = 0; ox < l->ow; ox++)
			{
				int			best = oy * st * iw + ox * st;
				float		m = src[best];

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
				if (arg)
					arg[oy * l->ow + ox] = best;
			}
	}
}

const NnKernels nn_kernels_generic = {
	"generic", direct_rows_generic, direct_grad_generic, nn_pool_forward_scalar,
	wino_input_generic, wino_output_generic, wino_dy_generic,
	wino4_input_generic, wino4_output_generic, dropout_generic
};
