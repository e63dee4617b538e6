/*
 * engine.c - the forward and backward passes: one loop over the layers
 * each way, calling the layer's own forward or backward function
 * (layers_*.c) with a LayerPass.  Every buffer comes from the plan
 * (plan.c), made once per (net, batch size): a pass allocates nothing.
 * The caller's interrupt check runs between layers.
 */
#include <time.h>

#include "nn_layers.h"

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

/* what layer i reads and writes in a pass over b images */
static LayerPass
layer_pass(IcemlNet *net, Plan *plan, int i, int b, int training)
{
	Layer	   *l = &net->layers[i];
	LayerPass	p = {0};

	p.net = net;
	p.plan = plan;
	p.i = i;
	p.l = l;
	p.b = b;
	p.training = training;
	p.act = (i == net->nlayers - 1) ? ACT_NONE : l->act;
	p.x = i == 0 ? plan->input : plan->out[i - 1];
	p.y = plan->out[i];
	p.W = net->params + l->w_off;
	p.bias = net->params + l->b_off;
	return p;
}

/*
 * Run the net on the b images in plan->input.  Returns the b logits, or
 * NULL when the interrupt check stopped it.
 * training: batch statistics, dropout masks from dropout_seed.
 */
const float *
nn_forward(IcemlNet *net, Plan *plan, int b, int training, uint64_t dropout_seed)
{
	for (int i = 0; i < net->nlayers; i++)
	{
		LayerPass	p = layer_pass(net, plan, i, b, training);
		double		t0 = nn_profile_acc ? nn_clock() : 0;

		p.seed = dropout_seed;
		switch (p.l->type)
		{
			case L_CONV:
				nn_conv_forward(&p);
				break;
			case L_DENSE:
				nn_dense_forward(&p);
				break;
			case L_POOL:
				nn_pool_forward(&p);
				break;
			case L_RELU:
				nn_relu_forward(&p);
				break;
			case L_SIGMOID:
				nn_sigmoid_forward(&p);
				break;
			case L_DROPOUT:
				nn_dropout_forward(&p);
				break;
			case L_BATCHNORM:
				nn_batchnorm_forward(&p);
				break;
			case L_FLATTEN:
				nn_flatten_forward(&p);
				break;
			case L_GAP:
				nn_gap_forward(&p);
				break;
			case L_SIDE:
				nn_side_forward(p.l, p.x, plan->aux[i], p.y, b);
				break;
		}
		if (nn_profile_acc)
			nn_profile_acc[2 * i] += nn_clock() - t0;
		/* between layers: a long pass stops when the caller asks */
		if (i + 1 < net->nlayers && nn_interrupted())
			return NULL;
	}
	return plan->out[net->nlayers - 1];
}

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
		LayerPass	p = layer_pass(net, plan, i, b, 1);
		double		t0 = nn_profile_acc ? nn_clock() : 0;

		p.dy = (i == net->nlayers - 1) ? plan->dout : plan->grad[i + 1];
		p.dx = plan->grad[i];	/* NULL for the first layer */
		p.gW = grads + p.l->w_off;
		p.gb = grads + p.l->b_off;
		switch (p.l->type)
		{
			case L_CONV:
				nn_conv_backward(&p);
				break;
			case L_DENSE:
				nn_dense_backward(&p);
				break;
			case L_POOL:
				nn_pool_backward(&p);
				break;
			case L_RELU:
				nn_relu_backward(&p);
				break;
			case L_SIGMOID:
				nn_sigmoid_backward(&p);
				break;
			case L_DROPOUT:
				nn_dropout_backward(&p);
				break;
			case L_BATCHNORM:
				nn_batchnorm_backward(&p);
				break;
			case L_FLATTEN:
				nn_flatten_backward(&p);
				break;
			case L_GAP:
				nn_gap_backward(&p);
				break;
			case L_SIDE:
				if (p.dx)
					nn_side_backward(p.l, p.dy, p.dx, b);
				break;
		}
		if (nn_profile_acc)
			nn_profile_acc[2 * i + 1] += nn_clock() - t0;
		if (i > 0 && nn_interrupted())
			return -1;
	}
	return 0;
}
