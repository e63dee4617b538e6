/*
 * test_nn.c - the engine's unit tests (built with ASan and UBSan by
 * `make -C test/unit check`).
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/nn/nn_kernels.h"
#include "unit.h"
#include "model_v1.h"

#define ERR char err[ICEML_NN_ERRLEN] = ""

static float
frand(uint64_t *s)
{
	return 2.0f * nn_uniform(s) - 1.0f;
}

static IcemlNet *
make_net(const char *spec)
{
	ERR;
	IcemlNet   *net = iceml_net_create(spec, err, sizeof(err));

	if (net == NULL)
		printf("    spec refused: %s\n", err);
	return net;
}

/* mean BCE of the batch in plan->input under the current parameters */
static double
batch_loss(IcemlNet *net, Plan *plan, int b, const float *y, uint64_t seed, int set_dout)
{
	const float *z;
	double		loss = 0;

	z = nn_forward(net, plan, b, 1, seed);
	for (int k = 0; k < b; k++)
	{
		double		zk = z[k];

		loss += (zk > 0 ? zk : 0) - zk * y[k] + log1p(exp(-fabs(zk)));
		if (set_dout)
			plan->dout[k] = (float) ((1.0 / (1.0 + exp(-zk)) - y[k]) / b);
	}
	return loss / b;
}

/*
 * Central differences against the backward pass for up to `per_layer`
 * parameters of every parametric layer.  Batch norm running statistics
 * move in every training forward; they do not enter the training loss.
 */
static void gradient_check_side(const char *spec, int b, int per_layer, double max_bad,
								const float *side);

static void
gradient_check(const char *spec, int b, int per_layer, double max_bad)
{
	gradient_check_side(spec, b, per_layer, max_bad, NULL);
}

/* the same with side inputs (b x the net's side count, NaN missing) */
static void
gradient_check_side(const char *spec, int b, int per_layer, double max_bad, const float *side)
{
	IcemlNet   *net = make_net(spec);
	Plan	   *plan;
	float	   *x,
			   *y,
			   *grads;
	uint64_t	s = 12345;
	size_t		img;
	int			checked = 0,
				bad = 0;

	CHECK(net != NULL, "spec");
	if (net == NULL)
		return;
	iceml_net_init_params(net, 7);
	img = (size_t) net->c * net->h * net->w;
	x = malloc(sizeof(float) * img * b);
	y = malloc(sizeof(float) * b);
	grads = calloc(net->nparams, sizeof(float));
	for (size_t i = 0; i < img * b; i++)
		x[i] = frand(&s);
	for (int k = 0; k < b; k++)
		y[k] = (float) (k % 2);
	plan = nn_plan_create(net, b, 1);
	nn_gather(net, plan, x, NULL, b, NULL);
	nn_gather_side(net, plan, side, NULL, b);
	batch_loss(net, plan, b, y, 99, 1);
	nn_backward(net, plan, b, grads);

	for (int li = 0; li < net->nlayers; li++)
	{
		Layer	   *l = &net->layers[li];
		size_t		n = l->nw + l->nb;

		for (int t = 0; t < per_layer && n > 0; t++)
		{
			size_t		at = l->w_off + (size_t) (nn_splitmix64(&s) % n);
			float		keep = net->params[at];
			float		h = 1e-3f * fmaxf(1.0f, fabsf(keep));
			double		up,
						down,
						num;

			net->params[at] = keep + h;
			up = batch_loss(net, plan, b, y, 99, 0);
			net->params[at] = keep - h;
			down = batch_loss(net, plan, b, y, 99, 0);
			net->params[at] = keep;
			num = (up - down) / (2.0 * h);
			checked++;
			if (fabs(num - grads[at]) > 2e-3 + 5e-2 * fmax(fabs(num), fabs(grads[at])))
			{
				bad++;
				if (bad <= 3)
					printf("    layer %d param %zu: numeric %.6g analytic %.6g\n", li, at - l->w_off,
						   num, grads[at]);
			}
		}
	}
	/* a ReLU or max-pool kink crossed by the finite step may cost a sample */
	CHECK(bad <= max_bad * checked, "%d of %d gradient samples disagree", bad, checked);
	CHECK(checked > 0, "nothing checked");
	nn_plan_free(plan);
	free(x);
	free(y);
	free(grads);
	iceml_net_free(net);
}

TEST(gradients_conv_pool_bn_dropout_dense)
{
	gradient_check("{\"input\":[2,9,9],\"layers\":["
				   "{\"type\":\"conv2d\",\"filters\":3,\"kernel\":3,\"activation\":\"relu\"},"
				   "{\"type\":\"maxpool\",\"size\":3,\"stride\":2},"
				   "{\"type\":\"conv2d\",\"filters\":4,\"kernel\":[3,2],\"stride\":2,\"padding\":\"same\"},"
				   "{\"type\":\"batchnorm\"},{\"type\":\"relu\"},{\"type\":\"dropout\",\"rate\":0.3},"
				   "{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":5,\"activation\":\"sigmoid\"},"
				   "{\"type\":\"batchnorm\"},{\"type\":\"sigmoid\"},"
				   "{\"type\":\"dense\",\"units\":1,\"activation\":\"sigmoid\"}]}", 3, 40, 0.01);
}

TEST(gradients_same_padding_gap)
{
	gradient_check("{\"input\":[1,6,7],\"layers\":["
				   "{\"type\":\"conv2d\",\"filters\":2,\"kernel\":3,\"padding\":\"same\",\"activation\":\"sigmoid\"},"
				   "{\"type\":\"conv2d\",\"filters\":3,\"kernel\":2,\"stride\":2,\"activation\":\"relu\"},"
				   "{\"type\":\"gap\"},{\"type\":\"dense\",\"units\":4,\"activation\":\"relu\"},"
				   "{\"type\":\"dense\",\"units\":1}]}", 4, 40, 0.01);
}

/*
 * The Winograd convolution (16 or more input channels, 3x3): "same"
 * padding, odd sizes (tiles past the right and bottom edges), a bias and
 * ReLU of its own, and one left to the max-pool; the second conv's input
 * gradient by Winograd too (16 and 20 channels), the third's by sgemm and
 * col2im (6 filters).  These shapes take 4x4 tiles forward (nn_wino_m);
 * WINO_F2_SPEC's second and third convs take 2x2 tiles forward (6 x 6
 * outputs) while the second's input gradient (8 x 8) takes 4x4 (its plan
 * holds the larger transformed weights), and WINO_WIDE_SPEC's rows
 * of 18 tiles take more than one vector of AVX-512's gather, forward and
 * in the input gradient; their 70 and 66 filters are not a multiple of
 * any vector or sgemm block.  The weight gradients are F(2x2) throughout.  The
 * convs must take those paths, or this checks nothing new.
 */
#define WINO_SPEC "{\"input\":[16,10,11],\"layers\":[" \
	"{\"type\":\"conv2d\",\"filters\":16,\"kernel\":3,\"padding\":\"same\",\"activation\":\"relu\"}," \
	"{\"type\":\"conv2d\",\"filters\":20,\"kernel\":3,\"activation\":\"relu\"}," \
	"{\"type\":\"conv2d\",\"filters\":6,\"kernel\":3,\"activation\":\"relu\"}," \
	"{\"type\":\"maxpool\",\"size\":2,\"stride\":2}," \
	"{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}"
#define WINO_F2_SPEC "{\"input\":[16,8,8],\"layers\":[" \
	"{\"type\":\"conv2d\",\"filters\":18,\"kernel\":3,\"padding\":\"same\",\"activation\":\"relu\"}," \
	"{\"type\":\"conv2d\",\"filters\":70,\"kernel\":3,\"activation\":\"relu\"}," \
	"{\"type\":\"conv2d\",\"filters\":16,\"kernel\":3,\"padding\":\"same\"}," \
	"{\"type\":\"maxpool\",\"size\":2,\"stride\":2}," \
	"{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}"
#define WINO_WIDE_SPEC "{\"input\":[16,6,70],\"layers\":[" \
	"{\"type\":\"conv2d\",\"filters\":16,\"kernel\":3,\"padding\":\"same\",\"activation\":\"relu\"}," \
	"{\"type\":\"conv2d\",\"filters\":66,\"kernel\":3,\"padding\":\"same\",\"activation\":\"relu\"}," \
	"{\"type\":\"maxpool\",\"size\":2,\"stride\":2}," \
	"{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}"

/* layer i of net is a Winograd conv with m x m tiles forward, dxm in its input gradient */
static int
wino_tiles_are(const IcemlNet *net, const Plan *plan, int i, int m, int dxm)
{
	const Layer *l = &net->layers[i];
	Layer		t = nn_wino_dx_layer(l);

	return (plan->choice[i] & PLAN_WINOGRAD) && nn_wino_m(l) == m &&
		(dxm == 0 ? !(plan->choice[i] & PLAN_WINO_DX) :
		 (plan->choice[i] & PLAN_WINO_DX) && nn_wino_m(&t) == dxm);
}

TEST(gradients_winograd_same_padding_odd_sizes)
{
	IcemlNet   *net = make_net(WINO_SPEC);
	Plan	   *plan = nn_plan_create(net, 3, 1);
	uint8_t    *ch = plan->choice;

	CHECK((ch[0] & PLAN_WINOGRAD) && (ch[1] & PLAN_WINOGRAD) && (ch[2] & PLAN_WINOGRAD) &&
		  (ch[1] & PLAN_WINO_DX) && !(ch[2] & PLAN_WINO_DX) && (ch[2] & PLAN_DEFER_BIAS),
		  "the convs take the Winograd paths (%d, %d, %d)", ch[0], ch[1], ch[2]);
	CHECK(nn_wino_m(&net->layers[0]) == 4 && wino_tiles_are(net, plan, 1, 4, 4) &&
		  wino_tiles_are(net, plan, 2, 4, 0), "4x4 tiles");
	nn_plan_free(plan);
	iceml_net_free(net);
	gradient_check(WINO_SPEC, 3, 40, 0.01);

	net = make_net(WINO_F2_SPEC);
	plan = nn_plan_create(net, 3, 1);
	CHECK(nn_wino_m(&net->layers[0]) == 4 && wino_tiles_are(net, plan, 1, 2, 4) &&
		  wino_tiles_are(net, plan, 2, 2, 2) &&
		  (plan->choice[2] & PLAN_DEFER_BIAS), "2x2 tiles forward, 4x4 and 2x2 in input gradients");
	nn_plan_free(plan);
	iceml_net_free(net);
	gradient_check(WINO_F2_SPEC, 3, 40, 0.01);

	net = make_net(WINO_WIDE_SPEC);
	plan = nn_plan_create(net, 2, 1);
	CHECK(nn_wino_m(&net->layers[0]) == 4 && wino_tiles_are(net, plan, 1, 4, 4) &&
		  (net->layers[1].ow + 3) / 4 > 16, "4x4 tiles, more than 16 a row");
	nn_plan_free(plan);
	iceml_net_free(net);
	gradient_check(WINO_WIDE_SPEC, 2, 40, 0.01);
}

TEST(gradients_statoil_cnn_small_batch)
{
	/*
	 * The reference model, a few samples per layer: 15 ReLU and max-pool
	 * layers deep, so a finite step meets a kink now and then.
	 */
	gradient_check(iceml_nn_builtin_spec("statoil_cnn"), 2, 8, 0.05);
}

TEST(reference_model_has_560193_parameters)
{
	IcemlNet   *net = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	char	   *canon;
	IcemlNet   *again;
	ERR;

	CHECK(net != NULL, "built-in spec");
	if (!net)
		return;
	CHECK(iceml_net_param_count(net) == 560193, "%lld", (long long) iceml_net_param_count(net));
	CHECK(fabs(iceml_net_forward_flops(net) / 1e9 - 0.259) < 0.01, "%g GFLOP", iceml_net_forward_flops(net) / 1e9);
	/* the canonical spec builds the same net */
	canon = iceml_net_spec_json(net);
	again = iceml_net_create(canon, err, sizeof(err));
	CHECK(again && iceml_net_param_count(again) == 560193, "%s", err);
	CHECK(again && strcmp(canon, again->spec) == 0, "canonical form is stable");
	free(canon);
	iceml_net_free(again);
	iceml_net_free(net);
	CHECK(iceml_nn_builtin_spec("nope") == NULL, "unknown built-in");
}

/* a 3x3 convolution on a 4x4 image, computed by hand */
TEST(forward_conv_pool_dense_by_hand)
{
	IcemlNet   *net = make_net("{\"input\":[1,4,4],\"layers\":["
								"{\"type\":\"conv2d\",\"filters\":1,\"kernel\":3},"
								"{\"type\":\"maxpool\",\"size\":2},"
								"{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}");
	float		img[16],
				prob;
	ERR;
	Plan	   *plan;
	const float *z;

	if (!net)
		return;
	for (int i = 0; i < 16; i++)
		img[i] = (float) i;		/* 0..15 row-major */
	/* kernel: 1 at the centre, -1 at the top-left corner; bias 0.5 */
	memset(net->params, 0, sizeof(float) * net->nparams);
	net->params[4] = 1.0f;
	net->params[0] = -1.0f;
	net->params[9] = 0.5f;		/* conv bias */
	net->params[10] = 2.0f;		/* dense weight */
	net->params[11] = -1.0f;	/* dense bias */
	/*
	 * conv output (2x2): centre - corner + 0.5 = 5 + 0.5 at every position;
	 * a training plan run without training keeps every layer's output (an
	 * inference plan reuses them, plan.c)
	 */
	plan = nn_plan_create(net, 1, 1);
	nn_gather(net, plan, img, NULL, 1, NULL);
	z = nn_forward(net, plan, 1, 0, 0);
	CHECK(fabsf(plan->out[0][0] - 5.5f) < 1e-6f && fabsf(plan->out[0][3] - 5.5f) < 1e-6f,
		  "conv %g %g", plan->out[0][0], plan->out[0][3]);
	CHECK(fabsf(plan->out[1][0] - 5.5f) < 1e-6f, "pool %g", plan->out[1][0]);
	CHECK(fabsf(z[0] - 10.0f) < 1e-5f, "logit %g", z[0]);
	CHECK(iceml_net_predict(net, img, 1, &prob, err, sizeof(err)) == 0, "%s", err);
	CHECK(fabs(prob - 1.0 / (1.0 + exp(-10.0))) < 1e-6, "prob %g", prob);

	/* max-pool picks the largest of each window */
	{
		IcemlNet   *pn = make_net("{\"input\":[1,4,4],\"layers\":[{\"type\":\"maxpool\",\"size\":2},"
								  "{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}");
		Plan	   *pp = nn_plan_create(pn, 1, 1);

		nn_gather(pn, pp, img, NULL, 1, NULL);
		nn_forward(pn, pp, 1, 0, 0);
		CHECK(pp->out[0][0] == 5.0f && pp->out[0][1] == 7.0f && pp->out[0][2] == 13.0f &&
			  pp->out[0][3] == 15.0f, "pool %g %g %g %g", pp->out[0][0], pp->out[0][1],
			  pp->out[0][2], pp->out[0][3]);
		nn_plan_free(pp);
		iceml_net_free(pn);
	}
	nn_plan_free(plan);
	iceml_net_free(net);
}

/* one dense weight and bias on a 1x1x1 input: optimiser steps by hand */
static void
optimizer_case(IcemlOptimizer opt)
{
	IcemlNet   *net = make_net("{\"input\":[1,1,1],\"layers\":[{\"type\":\"flatten\"},"
								"{\"type\":\"dense\",\"units\":1,\"activation\":\"sigmoid\"}]}");
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	float		x = 2.0f,
				y = 1.0f;
	double		w = 0.5,
				b = 0.0,
				m1w = 0,
				m1b = 0,
				m2w = 0,
				m2b = 0,
				loss;
	ERR;

	if (!net)
		return;
	iceml_train_config_defaults(&cfg);
	cfg.optimizer = opt;
	cfg.learning_rate = 0.1f;
	cfg.batch_size = 1;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	net->params[0] = 0.5f;
	net->params[1] = 0.0f;
	for (int step = 1; step <= 3; step++)
	{
		double		z = w * x + b;
		double		dz = 1.0 / (1.0 + exp(-z)) - y;
		double		gw = dz * x,
					gb = dz;

		if (opt == ICEML_OPT_SGD)
		{
			m1w = 0.9 * m1w + gw;
			m1b = 0.9 * m1b + gb;
			w -= 0.1 * m1w;
			b -= 0.1 * m1b;
		}
		else
		{
			/* PyTorch's Adam: epsilon 1e-8 on the bias-corrected sqrt(v) */
			double		c1 = 1 - pow(0.9, step),
						c2 = 1 - pow(0.999, step);

			m1w = 0.9 * m1w + 0.1 * gw;
			m1b = 0.9 * m1b + 0.1 * gb;
			m2w = 0.999 * m2w + 0.001 * gw * gw;
			m2b = 0.999 * m2b + 0.001 * gb * gb;
			w -= 0.1 * (m1w / c1) / (sqrt(m2w / c2) + 1e-8);
			b -= 0.1 * (m1b / c1) / (sqrt(m2b / c2) + 1e-8);
		}
		CHECK(iceml_trainer_epoch(tr, &x, &y, 1, step, NULL, NULL, &loss, err, sizeof(err)) == 0, "%s", err);
		CHECK(fabs(net->params[0] - w) < 1e-5 && fabs(net->params[1] - b) < 1e-5,
			  "step %d: w %g (want %g) b %g (want %g)", step, net->params[0], w, net->params[1], b);
	}
	iceml_trainer_free(tr);
	iceml_net_free(net);
}

TEST(sgd_momentum_steps_by_hand)
{
	optimizer_case(ICEML_OPT_SGD);
}

TEST(adam_steps_by_hand)
{
	optimizer_case(ICEML_OPT_ADAM);
}

TEST(bce_is_stable_for_large_logits)
{
	IcemlNet   *net = make_net("{\"input\":[1,1,1],\"layers\":[{\"type\":\"flatten\"},"
								"{\"type\":\"dense\",\"units\":1}]}");
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	float		x = 1.0f,
				y = 0.0f;
	double		loss;
	ERR;

	iceml_train_config_defaults(&cfg);
	cfg.batch_size = 1;
	cfg.learning_rate = 1e-9f;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	net->params[0] = 200.0f;	/* z = 200, y = 0: loss 200, not inf */
	net->params[1] = 0.0f;
	CHECK(iceml_trainer_epoch(tr, &x, &y, 1, 1, NULL, NULL, &loss, err, sizeof(err)) == 0, "%s", err);
	CHECK(fabs(loss - 200.0) < 1e-3, "loss %g", loss);
	net->params[0] = -200.0f;	/* z = -200, y = 0: loss ~ 0 */
	CHECK(iceml_trainer_epoch(tr, &x, &y, 1, 2, NULL, NULL, &loss, err, sizeof(err)) == 0, "%s", err);
	CHECK(loss >= 0 && loss < 1e-30, "loss %g", loss);
	iceml_trainer_free(tr);
	iceml_net_free(net);
}

TEST(malformed_specs_are_refused_with_the_layer_at_fault)
{
	static const char *const cases[][2] = {
		{"", "not valid JSON"},
		{"[1,2]", "must be a JSON object"},
		{"{\"input\":[3,75],\"layers\":[]}", "\"input\" must be [channels, height, width]"},
		{"{\"input\":[3,75,75],\"layers\":[]}", "\"layers\" must be a non-empty array"},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"dense\",\"units\":1}],\"x\":1}", "unknown key \"x\""},
		{"{\"input\":[0,75,75],\"layers\":[{\"type\":\"dense\",\"units\":1}]}", "input channels"},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv3d\"}]}", "layer 0: unknown layer type \"conv3d\""},
		{"{\"input\":[3,75,75],\"layers\":[{\"units\":1}]}", "layer 0: \"type\" is missing"},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv2d\",\"kernel\":3}]}", "layer 0 (conv2d): needs \"filters\" and \"kernel\""},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv2d\",\"filters\":8,\"kernel\":\"$kernel\"}]}", "unresolved placeholder \"$kernel\""},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv2d\",\"filters\":8,\"kernel\":3,\"dilation\":2}]}", "layer 0 (conv2d): unknown key \"dilation\""},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv2d\",\"filters\":2.5,\"kernel\":3}]}", "\"filters\" must be an integer"},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv2d\",\"filters\":8,\"kernel\":3,\"padding\":\"full\"}]}", "\"padding\" must be \"same\" or \"valid\""},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"conv2d\",\"filters\":8,\"kernel\":3,\"activation\":\"tanh\"}]}", "unknown activation \"tanh\""},
		{"{\"input\":[3,75,75],\"layers\":[{\"type\":\"dropout\",\"rate\":1.0},{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}", "\"rate\" must be in [0, 1)"},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"maxpool\",\"size\":3,\"name\":\"pool2\"},{\"type\":\"maxpool\",\"size\":3}]}", "layer 1 (maxpool): input 3x1x1 is smaller than the 3x3 window"},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"conv2d\",\"filters\":8,\"kernel\":5,\"name\":\"c1\"}]}", "layer 0 (conv2d \"c1\"): input 3x4x4 is smaller than the 5x5 kernel"},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"dense\",\"units\":1}]}", "layer 0 (dense): input 3x4x4 is not flat; add a flatten or gap layer"},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"conv2d\",\"filters\":1,\"kernel\":1}]}", "layer 1 (conv2d): input is flat (48 features)"},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":2}]}", "layer 1 (dense): the last layer must be a dense layer with 1 unit"},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1,\"activation\":\"relu\"}]}", "activation must be \"sigmoid\" or \"linear\""},
		{"{\"input\":[3,4,4],\"layers\":[{\"type\":\"flatten\",\"name\":\"\"},{\"type\":\"dense\",\"units\":1}]}", "\"name\" must be a non-empty string"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		ERR;
		IcemlNet   *net = iceml_net_create(cases[i][0], err, sizeof(err));

		CHECK(net == NULL, "case %zu accepted: %s", i, cases[i][0]);
		CHECK(strstr(err, cases[i][1]) != NULL, "case %zu: got \"%s\", want \"%s\"", i, err, cases[i][1]);
		iceml_net_free(net);
	}
	{
		ERR;

		CHECK(iceml_net_create(NULL, err, sizeof(err)) == NULL, "NULL spec");
	}
}

TEST(serialisation_round_trip_and_malformed_blobs)
{
	IcemlNet   *net = make_net("{\"input\":[2,8,8],\"layers\":["
								"{\"type\":\"conv2d\",\"filters\":3,\"kernel\":3,\"activation\":\"relu\"},"
								"{\"type\":\"batchnorm\"},{\"type\":\"gap\"},{\"type\":\"dense\",\"units\":1}]}");
	IcemlNet   *back;
	void	   *blob;
	size_t		len;
	float		mean[2] = {-20.0f, -25.0f},
				sd[2] = {3.0f, 2.0f},
				x[2 * 64 * 3],
				p1[3],
				p2[3];
	uint64_t	s = 5;
	ERR;

	iceml_net_init_params(net, 3);
	for (size_t i = 0; i < net->nstate; i++)
		net->state[i] = 0.5f + (float) i;	/* running stats travel too */
	iceml_net_set_normalisation(net, mean, sd);
	for (int i = 0; i < 2 * 64 * 3; i++)
		x[i] = -20.0f + 5.0f * frand(&s);
	CHECK(iceml_net_save(net, &blob, &len) == 0, "save");
	back = iceml_net_load(blob, len, err, sizeof(err));
	CHECK(back != NULL, "%s", err);
	if (back)
	{
		iceml_net_predict(net, x, 3, p1, err, sizeof(err));
		iceml_net_predict(back, x, 3, p2, err, sizeof(err));
		CHECK(memcmp(p1, p2, sizeof(p1)) == 0, "predictions differ after a round trip");
		CHECK(memcmp(net->params, back->params, net->nparams * sizeof(float)) == 0, "params");
		CHECK(iceml_net_norm_mean(back)[1] == -25.0f, "normalisation");
		iceml_net_free(back);
	}
	/* every truncation, and a flipped bit anywhere, is refused */
	for (size_t cut = 0; cut < len; cut++)
	{
		back = iceml_net_load(blob, cut, err, sizeof(err));
		CHECK(back == NULL, "truncated to %zu accepted", cut);
		iceml_net_free(back);
	}
	for (int t = 0; t < 200; t++)
	{
		unsigned char *c = blob;
		size_t		at = (size_t) (nn_splitmix64(&s) % len);
		int			bit = (int) (nn_splitmix64(&s) % 8);

		c[at] ^= (unsigned char) (1 << bit);
		back = iceml_net_load(blob, len, err, sizeof(err));
		CHECK(back == NULL, "bit %d of byte %zu flipped and accepted", bit, at);
		iceml_net_free(back);
		c[at] ^= (unsigned char) (1 << bit);
	}
	memcpy(blob, "PNG\0\0\0\0\0", 8);
	CHECK(iceml_net_load(blob, len, err, sizeof(err)) == NULL && strstr(err, "bad magic"), "%s", err);
	CHECK(iceml_net_load(NULL, 0, err, sizeof(err)) == NULL, "NULL");
	free(blob);
	iceml_net_free(net);
}

TEST(checkpoints_resume_bit_identically)
{
	const char *spec = "{\"input\":[1,6,6],\"layers\":[{\"type\":\"conv2d\",\"filters\":2,\"kernel\":3,\"activation\":\"relu\"},"
		"{\"type\":\"dropout\",\"rate\":0.2},{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}";
	IcemlNet   *a = make_net(spec),
			   *b = make_net(spec);
	IcemlTrainConfig cfg;
	IcemlTrainer *ta,
			   *tb;
	float		x[10 * 36],
				y[10];
	double		loss;
	uint64_t	s = 77;
	void	   *ck;
	size_t		len;
	ERR;

	for (int i = 0; i < 360; i++)
		x[i] = frand(&s);
	for (int i = 0; i < 10; i++)
		y[i] = (float) (i % 2);
	iceml_train_config_defaults(&cfg);
	cfg.batch_size = 4;
	cfg.augment = ICEML_AUG_FLIP_H | ICEML_AUG_ROT90;
	iceml_net_init_params(a, 1);
	iceml_net_init_params(b, 99);
	ta = iceml_trainer_create(a, &cfg, err, sizeof(err));
	tb = iceml_trainer_create(b, &cfg, err, sizeof(err));
	iceml_trainer_epoch(ta, x, y, 10, 1, NULL, NULL, &loss, err, sizeof(err));
	CHECK(iceml_trainer_save(ta, &ck, &len) == 0, "save");
	CHECK(iceml_trainer_restore(tb, ck, len, err, sizeof(err)) == 0, "%s", err);
	iceml_trainer_epoch(ta, x, y, 10, 2, NULL, NULL, &loss, err, sizeof(err));
	iceml_trainer_epoch(tb, x, y, 10, 2, NULL, NULL, &loss, err, sizeof(err));
	CHECK(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0, "resumed run differs");
	((unsigned char *) ck)[len / 2] ^= 4;
	CHECK(iceml_trainer_restore(tb, ck, len, err, sizeof(err)) < 0 && strstr(err, "checksum"), "%s", err);
	CHECK(iceml_trainer_restore(tb, ck, 10, err, sizeof(err)) < 0, "truncated checkpoint");
	free(ck);
	iceml_trainer_free(ta);
	iceml_trainer_free(tb);
	iceml_net_free(a);
	iceml_net_free(b);
}

TEST(same_seed_same_weights_other_seed_other_weights)
{
	const char *spec = "{\"input\":[1,6,6],\"layers\":[{\"type\":\"conv2d\",\"filters\":2,\"kernel\":3},"
		"{\"type\":\"dropout\",\"rate\":0.5},{\"type\":\"gap\"},{\"type\":\"dense\",\"units\":1}]}";
	float		x[8 * 36],
				y[8];
	float	   *w[3];
	uint64_t	s = 3;
	uint64_t	seeds[3] = {42, 42, 43};

	for (int i = 0; i < 8 * 36; i++)
		x[i] = frand(&s);
	for (int i = 0; i < 8; i++)
		y[i] = (float) (i & 1);
	for (int r = 0; r < 3; r++)
	{
		IcemlNet   *net = make_net(spec);
		IcemlTrainConfig cfg;
		IcemlTrainer *tr;
		double		loss;
		ERR;

		iceml_train_config_defaults(&cfg);
		cfg.seed = seeds[r];
		cfg.batch_size = 3;
		iceml_net_init_params(net, seeds[r]);
		tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
		iceml_trainer_epoch(tr, x, y, 8, 1, NULL, NULL, &loss, err, sizeof(err));
		w[r] = malloc(net->nparams * sizeof(float));
		memcpy(w[r], net->params, net->nparams * sizeof(float));
		iceml_trainer_free(tr);
		iceml_net_free(net);
	}
	CHECK(memcmp(w[0], w[1], 2 * sizeof(float)) == 0, "same seed differs");
	CHECK(memcmp(w[0], w[2], 2 * sizeof(float)) != 0, "other seed same");
	for (int r = 0; r < 3; r++)
		free(w[r]);
}

TEST(metrics_by_hand)
{
	float		p[6] = {0.9f, 0.8f, 0.4f, 0.4f, 0.3f, 0.1f};
	float		y[6] = {1, 0, 1, 0, 1, 0};
	IcemlMetrics m;

	iceml_metrics_compute(p, y, 6, 0.5, &m);
	CHECK(m.tp == 1 && m.fp == 1 && m.fn == 2 && m.tn == 2, "confusion %lld %lld %lld %lld",
		  (long long) m.tp, (long long) m.fp, (long long) m.fn, (long long) m.tn);
	CHECK(fabs(m.accuracy - 0.5) < 1e-12 && fabs(m.precision - 0.5) < 1e-12 &&
		  fabs(m.recall - 1.0 / 3) < 1e-12 && fabs(m.f1 - 0.4) < 1e-12, "acc/prec/rec/f1");
	/* positive/negative pairs ranked right: (0.9 beats 0.8,0.4,0.1), (0.4 ties 0.4, beats 0.1), (0.3 beats 0.1): 3+1.5+1 = 5.5 of 9 */
	CHECK(fabs(m.auc - 5.5 / 9) < 1e-12, "auc %g", m.auc);
	CHECK(fabs(m.log_loss - (-(log(0.9) + log(0.2) + log(0.4) + log(0.6) + log(0.3) + log(0.9)) / 6)) < 1e-6,
		  "log loss %g", m.log_loss);
	iceml_metrics_compute(p, y, 1, 0.5, &m);
	CHECK(isnan(m.auc), "auc of one class");
}

/* images of a bright centre (iceberg) or not, on noise: 100% within seconds */
TEST(tiny_model_learns_a_separable_toy_set)
{
	IcemlNet   *net = make_net("{\"input\":[1,12,12],\"layers\":["
								"{\"type\":\"conv2d\",\"filters\":4,\"kernel\":3,\"activation\":\"relu\"},"
								"{\"type\":\"maxpool\",\"size\":2},{\"type\":\"flatten\"},"
								"{\"type\":\"dense\",\"units\":8,\"activation\":\"relu\"},"
								"{\"type\":\"dense\",\"units\":1,\"activation\":\"sigmoid\"}]}");
	enum
	{
	N = 64};
	float	   *x = malloc(sizeof(float) * N * 144),
				y[N],
				prob[N],
				mean,
				sd;
	uint64_t	s = 11;
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	IcemlMetrics m;
	double		loss;
	ERR;

	for (int i = 0; i < N; i++)
	{
		y[i] = (float) (i % 2);
		for (int p = 0; p < 144; p++)
		{
			int			r = p / 12,
						c = p % 12;
			int			centre = r >= 4 && r < 8 && c >= 4 && c < 8;

			x[i * 144 + p] = -25.0f + frand(&s) + (y[i] > 0 && centre ? 8.0f : 0.0f);
		}
	}
	iceml_nn_channel_stats(x, N, 1, 144, &mean, &sd);
	iceml_net_set_normalisation(net, &mean, &sd);
	iceml_net_init_params(net, 1);
	iceml_train_config_defaults(&cfg);
	cfg.batch_size = 8;
	cfg.learning_rate = 0.01f;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	for (int e = 1; e <= 30; e++)
		iceml_trainer_epoch(tr, x, y, N, e, NULL, NULL, &loss, err, sizeof(err));
	iceml_net_predict(net, x, N, prob, err, sizeof(err));
	iceml_metrics_compute(prob, y, N, 0.5, &m);
	CHECK(m.accuracy == 1.0, "accuracy %g, loss %g", m.accuracy, loss);
	iceml_trainer_free(tr);
	iceml_net_free(net);
	free(x);
}

static int
stop_after_two(void *arg, int64_t done, int64_t total, double loss)
{
	int		   *calls = arg;

	(void) done;
	(void) total;
	(void) loss;
	return ++*calls >= 2;
}

TEST(callback_stops_an_epoch_and_bad_configs_are_refused)
{
	IcemlNet   *net = make_net("{\"input\":[1,2,2],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}");
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	float		x[40] = {0},
				y[10] = {0};
	double		loss;
	int			calls = 0;
	ERR;

	iceml_train_config_defaults(&cfg);
	cfg.batch_size = 2;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	CHECK(iceml_trainer_epoch(tr, x, y, 10, 1, stop_after_two, &calls, &loss, err, sizeof(err)) == 1, "stopped");
	CHECK(calls == 2, "calls %d", calls);
	CHECK(iceml_trainer_epoch(tr, x, y, 0, 1, NULL, NULL, &loss, err, sizeof(err)) < 0, "empty epoch");
	iceml_trainer_free(tr);
	cfg.batch_size = 0;
	CHECK(iceml_trainer_create(net, &cfg, err, sizeof(err)) == NULL && strstr(err, "batch_size"), "%s", err);
	cfg.batch_size = 4;
	cfg.learning_rate = -1;
	CHECK(iceml_trainer_create(net, &cfg, err, sizeof(err)) == NULL && strstr(err, "learning_rate"), "%s", err);
	iceml_net_free(net);
}

/*
 * One training run (2 epochs) of a net big enough that the engine splits
 * its sgemms (conv2: 64 x 512 x 144) and its other passes at 2 threads.  Writes the
 * gradients of the first batch, the final weights and the predictions.
 */
#define THR_SPEC "{\"input\":[2,20,20],\"layers\":[" \
	"{\"type\":\"conv2d\",\"filters\":16,\"kernel\":3,\"activation\":\"relu\"}," \
	"{\"type\":\"maxpool\",\"size\":3,\"stride\":2},{\"type\":\"dropout\",\"rate\":0.3}," \
	"{\"type\":\"conv2d\",\"filters\":64,\"kernel\":3,\"padding\":\"same\",\"activation\":\"relu\"}," \
	"{\"type\":\"maxpool\",\"size\":2},{\"type\":\"flatten\"}," \
	"{\"type\":\"dense\",\"units\":16,\"activation\":\"relu\"}," \
	"{\"type\":\"dense\",\"units\":1,\"activation\":\"sigmoid\"}]}"
#define THR_N 24
#define THR_B 8

static void
threaded_run(int threads, const float *x, const float *y, float **grads,
			 float **weights, float *prob, float *prob1, size_t *nparams)
{
	IcemlNet   *net = make_net(THR_SPEC);
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	Plan	   *plan;
	float		mean[2],
				sd[2];
	double		loss;
	ERR;

	iceml_nn_set_threads(threads);
	iceml_nn_channel_stats(x, THR_N, 2, 400, mean, sd);
	iceml_net_set_normalisation(net, mean, sd);
	iceml_net_init_params(net, 42);
	*nparams = net->nparams;

	/* the gradients of one batch, straight from the engine */
	*grads = calloc(net->nparams, sizeof(float));
	plan = nn_plan_create(net, THR_B, 1);
	nn_gather(net, plan, x, NULL, THR_B, NULL);
	batch_loss(net, plan, THR_B, y, 5, 1);
	nn_backward(net, plan, THR_B, *grads);
	nn_plan_free(plan);

	iceml_train_config_defaults(&cfg);
	cfg.batch_size = THR_B;
	cfg.augment = ICEML_AUG_FLIP_H | ICEML_AUG_ROT90;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	for (int e = 1; e <= 2; e++)
		iceml_trainer_epoch(tr, x, y, THR_N, e, NULL, NULL, &loss, err, sizeof(err));
	*weights = malloc(net->nparams * sizeof(float));
	memcpy(*weights, net->params, net->nparams * sizeof(float));
	iceml_net_predict(net, x, 1, prob1, err, sizeof(err));
	iceml_net_predict(net, x, THR_N, prob, err, sizeof(err));
	iceml_trainer_free(tr);
	iceml_net_free(net);
	iceml_nn_set_threads(1);
}

/*
 * largest |a - b| / (scale * max|a| + |a| + |b|): entries summed with
 * cancellation (small results of large terms) are judged against the size
 * of the vector, not their own
 */
static double
max_rel_diff(const float *a, const float *b, size_t n, double scale)
{
	double		worst = 0,
				big = 0;

	for (size_t i = 0; i < n; i++)
		big = fmax(big, fabs(a[i]));
	scale *= big;
	for (size_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - b[i]) / (scale + fabs(a[i]) + fabs(b[i]));

		if (d > worst)
			worst = d;
	}
	return worst;
}

/*
 * Per thread count, a fixed seed gives bit-identical gradients, weights and
 * predictions; 1 and 2 threads agree to rounding (sgemm may sum in another
 * order when it splits its work).
 */
TEST(one_and_two_threads_agree_and_each_is_reproducible)
{
	float	   *x = malloc(sizeof(float) * THR_N * 800),
				y[THR_N],
				prob[2][2][THR_N],
				prob1[2][2];
	float	   *grads[2][2],
			   *weights[2][2];
	size_t		np = 0;
	uint64_t	s = 77;
	double		dg,
				dw,
				dp;

	for (int i = 0; i < THR_N * 800; i++)
		x[i] = -20.0f + 4.0f * frand(&s);
	for (int i = 0; i < THR_N; i++)
	{
		y[i] = (float) (i % 2);
		/* a bright centre on the positives, so the net has something to learn */
		for (int r = 8; r < 12 && y[i] > 0; r++)
			for (int c = 8; c < 12; c++)
				x[i * 800 + r * 20 + c] += 6.0f;
	}
	for (int t = 0; t < 2; t++)
		for (int rep = 0; rep < 2; rep++)
			threaded_run(t + 1, x, y, &grads[t][rep], &weights[t][rep], prob[t][rep],
						 &prob1[t][rep], &np);
	for (int t = 0; t < 2; t++)
	{
		CHECK(memcmp(grads[t][0], grads[t][1], np * sizeof(float)) == 0,
			  "%d thread(s): gradients differ between runs", t + 1);
		CHECK(memcmp(weights[t][0], weights[t][1], np * sizeof(float)) == 0,
			  "%d thread(s): weights differ between runs", t + 1);
		CHECK(memcmp(prob[t][0], prob[t][1], sizeof(prob[t][0])) == 0 &&
			  prob1[t][0] == prob1[t][1],
			  "%d thread(s): predictions differ between runs", t + 1);
	}
	dg = max_rel_diff(grads[0][0], grads[1][0], np, 0.1);
	dw = max_rel_diff(weights[0][0], weights[1][0], np, 0.1);
	dp = max_rel_diff(prob[0][0], prob[1][0], THR_N, 0.1);
	CHECK(dg < 1e-4, "1 vs 2 threads: gradients differ by %g (relative)", dg);
	CHECK(dw < 1e-4, "1 vs 2 threads: weights differ by %g (relative)", dw);
	CHECK(dp < 1e-4, "1 vs 2 threads: predictions differ by %g (relative)", dp);
	CHECK(fabs(prob1[0][0] - prob[0][0][0]) < 1e-5 && fabs(prob1[1][0] - prob[1][0][0]) < 1e-5,
		  "one image alone %g vs in a batch %g", prob1[0][0], prob[0][0][0]);
	printf("    1 vs 2 threads, largest relative difference: gradients %.2g, "
		   "weights %.2g, predictions %.2g\n", dg, dw, dp);
	for (int t = 0; t < 2; t++)
		for (int rep = 0; rep < 2; rep++)
		{
			free(grads[t][rep]);
			free(weights[t][rep]);
		}
	free(x);
}

/*
 * Every kernel set this CPU runs against the plain path (generic kernels,
 * no direct convolution: im2col + sgemm and the scalar pool): odd widths (a
 * partial last vector), rows wider than one register block, a filter count
 * that is not a multiple of the block, with and without ReLU, pool strides
 * 1 and 2, forward outputs and all gradients (the direct weight gradient
 * against the col matrix's), dropout's mask (in the training passes, and
 * in the pool before it that applies it in backward: PLAN_DROP_GRAD), the
 * direct conv's weight gradient from the pool's scatter (PLAN_POOL_DGRAD),
 * and the Winograd convolution (16 channels and more: forward, input and
 * weight gradients).  Each set runs with and without the direct and Winograd
 * convolutions.  A conv followed by a pool hands its bias to the pool
 * unless it is direct, so only the other layers' outputs compare.
 */
TEST(every_kernel_set_matches_the_plain_path)
{
	const char *specs[] = {
		"{\"input\":[3,13,21],\"layers\":[{\"type\":\"conv2d\",\"filters\":6,\"kernel\":3,\"activation\":\"relu\"},"
		"{\"type\":\"maxpool\",\"size\":3,\"stride\":2},{\"type\":\"dropout\",\"rate\":0.4},"
		"{\"type\":\"conv2d\",\"filters\":5,\"kernel\":[2,3]},{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}",
		"{\"input\":[2,5,90],\"layers\":[{\"type\":\"conv2d\",\"filters\":9,\"kernel\":[1,5]},"
		"{\"type\":\"conv2d\",\"filters\":7,\"kernel\":[2,5],\"activation\":\"relu\"},"
		"{\"type\":\"maxpool\",\"size\":2,\"stride\":1},{\"type\":\"maxpool\",\"size\":[1,3],\"stride\":2},"
		"{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}",
		"{\"input\":[1,40,40],\"layers\":[{\"type\":\"conv2d\",\"filters\":3,\"kernel\":3,\"activation\":\"relu\"},"
		"{\"type\":\"maxpool\",\"size\":2,\"stride\":2},{\"type\":\"maxpool\",\"size\":3,\"stride\":3},"
		"{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}",
		WINO_SPEC,
		/* a direct conv with rows of 73 outputs (one block of 5 vectors in avx512) */
		"{\"input\":[3,6,75],\"layers\":[{\"type\":\"conv2d\",\"filters\":6,\"kernel\":3,\"activation\":\"relu\"},"
		"{\"type\":\"maxpool\",\"size\":3,\"stride\":2},{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}",
		/* Winograd convs with rows of 19 and 20 tiles (the input's vector gather) */
		"{\"input\":[16,6,40],\"layers\":[{\"type\":\"conv2d\",\"filters\":16,\"kernel\":3,\"padding\":\"same\",\"activation\":\"relu\"},"
		"{\"type\":\"conv2d\",\"filters\":16,\"kernel\":3,\"activation\":\"relu\"},"
		"{\"type\":\"maxpool\",\"size\":2},{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}",
		WINO_F2_SPEC,
		WINO_WIDE_SPEC
	};
	int			ran = 0;

	for (int sp = 0; sp < 8; sp++)
	{
		IcemlNet   *net = make_net(specs[sp]);
		Plan	   *ref_plan,
				   *ref_ip,
				   *ref_tp;
		size_t		img = (size_t) net->c * net->h * net->w;
		float	   *x = malloc(sizeof(float) * img * 3);
		float	   *g0 = calloc(net->nparams, sizeof(float)),
				   *g1 = calloc(net->nparams, sizeof(float));
		float		y[3] = {0, 1, 1};
		uint64_t	s = 5;

		for (size_t i = 0; i < img * 3; i++)
			x[i] = frand(&s);
		iceml_net_init_params(net, 3);
		/*
		 * every layer's output: training plans (which keep them all) run as
		 * inference; and the logits of inference plans (which reuse them)
		 */
		ref_plan = nn_plan_create_with(net, 3, 1, &nn_kernels_generic, 0);
		nn_gather(net, ref_plan, x, NULL, 3, NULL);
		nn_forward(net, ref_plan, 3, 0, 0);
		ref_ip = nn_plan_create_with(net, 3, 0, &nn_kernels_generic, 0);
		nn_gather(net, ref_ip, x, NULL, 3, NULL);
		nn_forward(net, ref_ip, 3, 0, 0);
		ref_tp = nn_plan_create_with(net, 3, 1, &nn_kernels_generic, 0);
		nn_gather(net, ref_tp, x, NULL, 3, NULL);
		batch_loss(net, ref_tp, 3, y, 1, 1);
		nn_backward(net, ref_tp, 3, g0);
		for (int k = 0; nn_kernel_sets[k]; k++)
			for (int direct = 0; direct <= 1; direct++)
			{
				const NnKernels *ks = nn_kernel_sets[k];
				Plan	   *plan,
						   *ip,
						   *tp;
				const float *z0,
						   *z1;
				double		worst = 0,
							big = 0,
							diff = 0;

				if (!nn_kernels_supported(ks))
					continue;
				ran |= 1 << k;
				plan = nn_plan_create_with(net, 3, 1, ks, direct);
				nn_gather(net, plan, x, NULL, 3, NULL);
				nn_forward(net, plan, 3, 0, 0);
				for (int l = 0; l < net->nlayers; l++)
				{
					size_t		len = (size_t) net->layers[l].oc * net->layers[l].oh * net->layers[l].ow * 3;

					if (net->layers[l].type == L_CONV && l + 1 < net->nlayers &&
						net->layers[l + 1].type == L_POOL && direct)
						continue;
					for (size_t i = 0; i < len; i++)
						worst = fmax(worst, fabs(ref_plan->out[l][i] - plan->out[l][i]) /
									 (1.0 + fabs(ref_plan->out[l][i])));
				}
				CHECK(worst < 1e-5, "spec %d, %s, direct %d: differs from the plain path by %g",
					  sp, ks->name, direct, worst);
				ip = nn_plan_create_with(net, 3, 0, ks, direct);
				nn_gather(net, ip, x, NULL, 3, NULL);
				z1 = nn_forward(net, ip, 3, 0, 0);
				z0 = ref_ip->out[net->nlayers - 1];
				for (int b = 0; b < 3; b++)
					CHECK(fabs(z0[b] - z1[b]) <= 1e-5 * (1.0 + fabs(z0[b])),
						  "spec %d, %s, direct %d: inference plan's logit %d %.9g, plain %.9g",
						  sp, ks->name, direct, b, z1[b], z0[b]);
				nn_plan_free(ip);
				tp = nn_plan_create_with(net, 3, 1, ks, direct);
				/*
				 * spec 0's pool does its dropout's backward, and the direct
				 * conv's weight gradient the pool's scatter, unless plain
				 */
				CHECK(sp != 0 || (!(tp->choice[1] & PLAN_DROP_GRAD) == !direct &&
								  !(tp->choice[0] & PLAN_POOL_DGRAD) == !direct),
					  "spec 0, direct %d: choices %d, %d", direct, tp->choice[0], tp->choice[1]);
				nn_gather(net, tp, x, NULL, 3, NULL);
				batch_loss(net, tp, 3, y, 1, 1);
				nn_backward(net, tp, 3, g1);
				for (size_t i = 0; i < net->nparams; i++)
				{
					big = fmax(big, fabs(g0[i]));
					diff = fmax(diff, fabs(g0[i] - g1[i]));
				}
				CHECK(diff <= 1e-5 * big, "spec %d, %s, direct %d: gradients differ by %g of %g",
					  sp, ks->name, direct, diff, big);
				nn_plan_free(plan);
				nn_plan_free(tp);
			}
		free(g0);
		free(g1);
		free(x);
		nn_plan_free(ref_plan);
		nn_plan_free(ref_ip);
		nn_plan_free(ref_tp);
		iceml_net_free(net);
	}
	printf("    kernel sets compared with generic:");
	for (int k = 0; nn_kernel_sets[k]; k++)
		if (ran & (1 << k))
			printf(" %s", nn_kernel_sets[k]->name);
	printf("\n");
	CHECK(ran & 1, "the generic set ran");
}

/*
 * A plan keeps the kernel set and choices it was made with: switching the
 * set new plans take leaves an existing plan's passes (and its buffers)
 * alone, and predict remakes its inference plan for the new set.  Unknown
 * sets are refused by name.
 */
TEST(a_plan_keeps_its_kernels_when_the_current_set_changes)
{
	IcemlNet   *net = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	const NnKernels *was = nn_kernels_current();
	size_t		img = (size_t) net->c * net->h * net->w;
	float	   *x = malloc(sizeof(float) * img * 2);
	float		p0[2],
				p1[2],
				z0[2];
	float		mean[3] = {0, 0, 0},
				sd[3] = {1, 1, 1};
	Plan	   *plan;
	uint64_t	s = 9;
	ERR;

	for (size_t i = 0; i < img * 2; i++)
		x[i] = frand(&s);
	iceml_net_set_normalisation(net, mean, sd);
	iceml_net_init_params(net, 1);
	plan = nn_plan_create(net, 2, 1);
	CHECK(plan->kern == was && (plan->choice[0] & PLAN_DIRECT), "plan made with %s, direct first conv",
		  plan->kern->name);
	nn_gather(net, plan, x, NULL, 2, NULL);
	memcpy(z0, nn_forward(net, plan, 2, 0, 0), sizeof(z0));
	CHECK(iceml_net_predict(net, x, 2, p0, err, sizeof(err)) == 0, "%s", err);

	CHECK(nn_kernels_use("generic", err, sizeof(err)) == 0, "%s", err);
	CHECK(plan->kern == was, "the plan kept %s", plan->kern->name);
	{
		const float *z = nn_forward(net, plan, 2, 0, 0);

		CHECK(z && z[0] == z0[0] && z[1] == z0[1], "the old plan runs as before");
	}
	CHECK(iceml_net_predict(net, x, 2, p1, err, sizeof(err)) == 0, "%s", err);
	CHECK(net->infer->kern == &nn_kernels_generic, "predict remade its plan for generic");
	CHECK(fabsf(p0[0] - p1[0]) < 1e-5f && fabsf(p0[1] - p1[1]) < 1e-5f,
		  "generic %g %g vs %s %g %g", p1[0], p1[1], was->name, p0[0], p0[1]);

	CHECK(nn_kernels_use("avx9", err, sizeof(err)) < 0 && strstr(err, "\"avx9\" is not a kernel set"),
		  "%s", err);
	for (int k = 0; nn_kernel_sets[k]; k++)
		if (!nn_kernels_supported(nn_kernel_sets[k]))
			CHECK(nn_kernels_use(nn_kernel_sets[k]->name, err, sizeof(err)) < 0 &&
				  strstr(err, "this cpu lacks"), "%s", err);
	CHECK(nn_kernels_use(was->name, err, sizeof(err)) == 0, "%s", err);
	nn_plan_free(plan);
	iceml_net_free(net);
	free(x);
}

/* ---- the thread pool -------------------------------------------------- */

typedef struct PoolProbe
{
	int			blocked[64];	/* per chunk: all of SIGINT, SIGTERM, SIGUSR1 blocked */
	int			worker[64];		/* per chunk: not the calling thread */
	pthread_t	caller;
	int			sum[1000];
} PoolProbe;

static void
pool_probe(void *p, size_t begin, size_t end)
{
	PoolProbe  *a = p;
	sigset_t	cur;
	int			chunk = begin == 0 ? 0 : (int) (begin * 2 / 1000);	/* 2 threads */

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	a->blocked[chunk] = sigismember(&cur, SIGINT) && sigismember(&cur, SIGTERM) &&
		sigismember(&cur, SIGUSR1);
	a->worker[chunk] = !pthread_equal(pthread_self(), a->caller);
	for (size_t i = begin; i < end; i++)
		a->sum[i] += (int) i;
}

/*
 * The pool's workers are made once and kept, run with every signal blocked
 * (the caller's mask is its own), cover every item exactly once, and come
 * back after a shutdown.
 */
TEST(the_thread_pool_is_persistent_and_blocks_signals)
{
	PoolProbe	a;

	memset(&a, 0, sizeof(a));
	a.caller = pthread_self();
	iceml_nn_set_threads(2);
	for (int rep = 0; rep < 50; rep++)
		nn_parallel_for(1000, 1, pool_probe, &a);
	CHECK(nn_pool_size() == 2, "threads %d", nn_pool_size());
	for (int i = 0; i < 1000; i++)
		CHECK(a.sum[i] == 50 * i, "item %d: %d", i, a.sum[i]);
	CHECK(!a.worker[0] && a.worker[1], "chunk 0 on the caller, chunk 1 on a worker");
	CHECK(a.blocked[1], "a worker runs with the server's signals blocked");
	{
		sigset_t	cur;

		pthread_sigmask(SIG_BLOCK, NULL, &cur);
		CHECK(!sigismember(&cur, SIGINT), "the caller's own mask is left alone");
	}
	nn_pool_shutdown();
	CHECK(nn_pool_size() == 1, "after shutdown: %d", nn_pool_size());
	memset(a.sum, 0, sizeof(a.sum));
	nn_parallel_for(1000, 1, pool_probe, &a);
	CHECK(nn_pool_size() == 2 && a.sum[999] == 999 && a.sum[0] == 0 && a.sum[500] == 500,
		  "made again after shutdown");
	iceml_nn_set_threads(1);
}

/* ---- resources: describing a net, its memory, stopping a pass ------------- */

static int	interrupt_after;	/* calls of the check left before it says stop */
static int	interrupt_calls;

static int
count_down(void)
{
	interrupt_calls++;
	return interrupt_after-- <= 0;
}

TEST(describe_and_memory_without_allocating)
{
	/* 1.07e9 parameters: described, never allocated (ASan would see it) */
	const char *huge = "{\"input\":[1,128,128],\"layers\":[{\"type\":\"flatten\"},"
		"{\"type\":\"dense\",\"units\":65536},{\"type\":\"dense\",\"units\":1}]}";
	IcemlNet   *d = iceml_net_describe(huge, NULL, 0);
	IcemlNet   *ref = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	IcemlNet   *desc;
	IcemlNetMemory m;
	ERR;

	CHECK(d != NULL, "huge spec described");
	if (d)
	{
		CHECK(iceml_net_param_count(d) == 16384LL * 65536 + 65536 + 65536 + 1,
			  "%lld", (long long) iceml_net_param_count(d));
		CHECK(d->params == NULL, "no parameters allocated");
		iceml_net_memory(d, 32, &m);
		CHECK(m.parameters == iceml_net_param_count(d), "parameters");
		CHECK(m.model_bytes > 4.29e9 && m.model_bytes < 4.3e9, "model %g bytes", m.model_bytes);
		CHECK(m.train_bytes > 7 * m.model_bytes, "training takes weights, gradients, moments and copies: %g",
			  m.train_bytes);
		iceml_net_free(d);
	}
	/* a description refuses what create refuses, with the same message */
	CHECK(iceml_net_describe("{\"input\":[3,75,75],\"layers\":[{\"type\":\"gap\"},{\"type\":\"dense\",\"units\":2}]}",
							 err, sizeof(err)) == NULL && strstr(err, "last layer") != NULL, "%s", err);

	/* the figures are the plans' own sizes */
	if (!ref)
		return;
	desc = iceml_net_describe(iceml_nn_builtin_spec("statoil_cnn"), err, sizeof(err));
	CHECK(desc && strcmp(desc->spec, ref->spec) == 0 && iceml_net_param_count(desc) == 560193,
		  "described like created");
	for (int b = 1; b <= 64; b *= 4)
	{
		Plan	   *tp = nn_plan_create(ref, b, 1);
		Plan	   *ip = nn_plan_create(ref, 32, 0);
		IcemlNetMemory mm;
		double		f = sizeof(float);
		double		p = (double) ref->nparams,
					s = (double) ref->nstate;

		iceml_net_memory(desc ? desc : ref, b, &mm);
		CHECK(tp && nn_plan_floats(ref, b, 1) == tp->block_floats, "training plan of %d", b);
		CHECK(ip && nn_plan_floats(ref, 32, 0) == ip->block_floats, "inference plan");
		CHECK(tp && ip && fabs(mm.train_bytes - ((p + s + 2 * ref->c) * f + 3 * p * f + tp->block_floats * f +
												 ip->block_floats * f + (3 * p + s) * f + (p + s) * f)) < 1,
			  "train bytes %g", mm.train_bytes);
		CHECK(ip && fabs(mm.predict_bytes - ((p + s + 2 * ref->c) * f + ip->block_floats * f)) < 1,
			  "predict bytes %g", mm.predict_bytes);
		nn_plan_free(tp);
		nn_plan_free(ip);
	}
	iceml_net_free(desc);
	iceml_net_free(ref);
}

TEST(interrupt_check_stops_forward_backward_predict_and_epoch)
{
	IcemlNet   *net = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	float	   *x,
			   *y,
				prob[4];
	double		loss;
	uint64_t	s = 7;
	size_t		img = 3 * 75 * 75;
	Plan	   *plan;
	ERR;

	if (!net)
		return;
	iceml_net_init_params(net, 1);
	x = malloc(sizeof(float) * img * 4);
	y = malloc(sizeof(float) * 4);
	for (size_t i = 0; i < img * 4; i++)
		x[i] = frand(&s);
	for (int i = 0; i < 4; i++)
		y[i] = (float) (i % 2);

	/* stopped after the second layer: NULL, and the check was asked then */
	iceml_nn_set_interrupt_check(count_down);
	interrupt_after = 1;
	interrupt_calls = 0;
	plan = nn_plan_create(net, 2, 1);
	nn_gather(net, plan, x, NULL, 2, NULL);
	CHECK(nn_forward(net, plan, 2, 1, 1) == NULL && interrupt_calls == 2, "forward stopped, %d calls",
		  interrupt_calls);
	interrupt_after = 1000000;
	CHECK(nn_forward(net, plan, 2, 1, 1) != NULL, "forward runs when not asked to stop");
	{
		float	   *g = calloc(net->nparams, sizeof(float));

		interrupt_after = 2;
		CHECK(nn_backward(net, plan, 2, g) == -1, "backward stopped");
		free(g);
	}
	nn_plan_free(plan);

	interrupt_after = 0;
	CHECK(iceml_net_predict(net, x, 4, prob, err, sizeof(err)) == ICEML_NN_INTERRUPTED, "predict: %s", err);
	interrupt_after = 1000000;
	CHECK(iceml_net_predict(net, x, 4, prob, err, sizeof(err)) == 0, "predict after: %s", err);

	iceml_train_config_defaults(&cfg);
	cfg.batch_size = 2;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	CHECK(tr != NULL, "%s", err);
	if (tr)
	{
		float	   *before = malloc(sizeof(float) * net->nparams);

		memcpy(before, net->params, sizeof(float) * net->nparams);
		interrupt_after = 3;	/* inside the first batch */
		CHECK(iceml_trainer_epoch(tr, x, y, 4, 1, NULL, NULL, &loss, err, sizeof(err)) == ICEML_NN_INTERRUPTED,
			  "epoch: %s", err);
		CHECK(memcmp(before, net->params, sizeof(float) * net->nparams) == 0, "no step with the stopped batch");
		free(before);
		iceml_trainer_free(tr);
	}
	iceml_nn_set_interrupt_check(NULL);
	free(x);
	free(y);
	iceml_net_free(net);
}

/*
 * The default initialisation (PyTorch's kaiming_uniform_(a = sqrt(5))):
 * every conv and dense layer of statoil_cnn has weights and biases uniform
 * in +-1/sqrt(fan_in), so weight variance 1/(3 fan_in); the alternatives
 * he_normal (2/fan_in before a ReLU, Glorot for the logit, zero biases) and
 * glorot_uniform (2/(fan_in + fan_out)) have theirs.  A sample variance of
 * n uniform values has a relative standard error of sqrt(0.8/n), of n
 * normal values sqrt(2/n): the bound is five of them.
 */
static void
check_init_variance(IcemlInit scheme)
{
	IcemlNet   *net = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	int			layers = 0;

	if (net == NULL)
		return;
	iceml_net_init_params_scheme(net, 42, scheme);
	for (int li = 0; li < net->nlayers; li++)
	{
		Layer	   *l = &net->layers[li];
		double		fan_in,
					fan_out,
					want,
					s = 0,
					s2 = 0,
					se,
					bmax = 0,
					bound;
		int			normal = 0,
					last = li == net->nlayers - 1;

		if (l->type != L_CONV && l->type != L_DENSE)
			continue;
		layers++;
		fan_in = l->type == L_CONV ? (double) l->ic * l->kh * l->kw : l->ic;
		fan_out = l->type == L_CONV ? (double) l->filters * l->kh * l->kw : l->units;
		if (scheme == ICEML_INIT_TORCH_DEFAULT)
			want = 1.0 / (3.0 * fan_in);
		else if (scheme == ICEML_INIT_HE_NORMAL && !last)
		{
			want = 2.0 / fan_in;
			normal = 1;
		}
		else
			want = 2.0 / (fan_in + fan_out);
		for (size_t k = 0; k < l->nw; k++)
		{
			double		v = net->params[l->w_off + k];

			s += v;
			s2 += v * v;
		}
		s /= (double) l->nw;
		s2 = s2 / (double) l->nw - s * s;
		se = sqrt((normal ? 2.0 : 0.8) / (double) l->nw);
		CHECK(fabs(s2 / want - 1.0) < 5 * se, "%s %s: weight variance %.4g, want %.4g (fan_in %g)",
			  iceml_init_scheme_name(scheme), l->name, s2, want, fan_in);
		CHECK(fabs(s) < 5 * sqrt(want / (double) l->nw), "%s %s: weight mean %.4g",
			  iceml_init_scheme_name(scheme), l->name, s);
		bound = 1.0 / sqrt(fan_in);
		for (size_t k = 0; k < l->nb; k++)
			bmax = fmax(bmax, fabs(net->params[l->b_off + k]));
		if (scheme == ICEML_INIT_TORCH_DEFAULT)
			CHECK(bmax <= bound && bmax > 0.5 * bound, "%s: biases reach %g of the bound %g",
				  l->name, bmax, bound);
		else
			CHECK(bmax == 0.0, "%s %s: biases are not zero (%g)", iceml_init_scheme_name(scheme),
				  l->name, bmax);
	}
	CHECK(layers == 7, "%d conv and dense layers", layers);
	iceml_net_free(net);
}

TEST(default_initialisation_has_the_intended_variance_per_layer)
{
	CHECK(iceml_init_scheme_parse("torch_default") == ICEML_INIT_DEFAULT, "the default is torch_default");
	CHECK(iceml_init_scheme_parse("he_normal") == ICEML_INIT_HE_NORMAL &&
		  iceml_init_scheme_parse("glorot_uniform") == ICEML_INIT_GLOROT_UNIFORM &&
		  iceml_init_scheme_parse("kaiming") == -1 && iceml_init_scheme_parse(NULL) == -1, "names");
	/* iceml_net_init_params is the default scheme */
	{
		IcemlNet   *a = make_net(iceml_nn_builtin_spec("statoil_cnn"));
		IcemlNet   *b = make_net(iceml_nn_builtin_spec("statoil_cnn"));

		iceml_net_init_params(a, 9);
		iceml_net_init_params_scheme(b, 9, ICEML_INIT_DEFAULT);
		CHECK(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0, "default differs");
		iceml_net_free(a);
		iceml_net_free(b);
	}
	check_init_variance(ICEML_INIT_TORCH_DEFAULT);
	check_init_variance(ICEML_INIT_HE_NORMAL);
	check_init_variance(ICEML_INIT_GLOROT_UNIFORM);
}

/* learning-rate schedules, warm-up, by hand */
TEST(learning_rate_schedules_by_hand)
{
	IcemlTrainConfig cfg;
	float		lr;

	iceml_train_config_defaults(&cfg);
	cfg.learning_rate = 0.01f;
	CHECK(iceml_train_lr(&cfg, 1, 0.5) == 0.01f && iceml_train_lr(&cfg, 50, 1.0) == 0.01f, "constant");
	cfg.schedule = ICEML_SCHED_STEP;
	cfg.step_epochs = 3;
	cfg.step_gamma = 0.5f;
	CHECK(iceml_train_lr(&cfg, 3, 1.0) == 0.01f, "step, epoch 3");
	CHECK(fabsf(iceml_train_lr(&cfg, 4, 0.1) - 0.005f) < 1e-9f, "step, epoch 4");
	CHECK(fabsf(iceml_train_lr(&cfg, 7, 0.1) - 0.0025f) < 1e-9f, "step, epoch 7");
	cfg.schedule = ICEML_SCHED_COSINE;
	cfg.epochs = 10;
	CHECK(iceml_train_lr(&cfg, 1, 0.9) == 0.01f, "cosine starts at the rate");
	CHECK(fabsf(iceml_train_lr(&cfg, 6, 0.5) - 0.005f) < 1e-8f, "cosine half way: %g",
		  (double) iceml_train_lr(&cfg, 6, 0.5));
	lr = iceml_train_lr(&cfg, 10, 0.5);
	CHECK(lr > 0.0f && fabsf(lr - 0.01f * 0.5f * (1.0f + cosf(3.14159265f * 9 / 10))) < 1e-8f,
		  "cosine's last epoch %g", (double) lr);
	cfg.warmup_epochs = 2;
	CHECK(fabsf(iceml_train_lr(&cfg, 1, 0.5) - 0.0025f) < 1e-9f, "warm-up a quarter way");
	CHECK(fabsf(iceml_train_lr(&cfg, 2, 1.0) - 0.01f) < 1e-9f, "warm-up done");
	CHECK(iceml_train_lr(&cfg, 3, 0.1) == 0.01f, "cosine starts after the warm-up");
	CHECK(fabsf(iceml_train_lr(&cfg, 7, 0.1) - 0.005f) < 1e-8f, "cosine half way after warm-up: %g",
		  (double) iceml_train_lr(&cfg, 7, 0.1));
}

/*
 * Weight decay by hand: SGD adds wd * w to the gradient of conv and dense
 * weights (the gradient of loss + wd/2 |w|^2, checked against central
 * differences of that objective); Adam decays them decoupled (AdamW:
 * w -= lr * wd * w after the Adam step).  Biases are never decayed.
 */
TEST(weight_decay_by_hand_and_against_central_differences)
{
	for (int opt = 0; opt < 2; opt++)
	{
		IcemlNet   *net = make_net("{\"input\":[1,1,1],\"layers\":[{\"type\":\"flatten\"},"
									"{\"type\":\"dense\",\"units\":1}]}");
		IcemlTrainConfig cfg;
		IcemlTrainer *tr;
		float		x = 1.5f,
					y = 1.0f;
		double		w = 0.5,
					b = 0.2,
					m1w = 0,
					m1b = 0,
					m2w = 0,
					m2b = 0,
					wd = 0.1,
					loss;
		ERR;

		iceml_train_config_defaults(&cfg);
		cfg.optimizer = opt == 0 ? ICEML_OPT_SGD : ICEML_OPT_ADAM;
		cfg.learning_rate = 0.05f;
		cfg.batch_size = 1;
		cfg.weight_decay = (float) wd;
		tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
		net->params[0] = (float) w;
		net->params[1] = (float) b;
		for (int step = 1; step <= 3; step++)
		{
			double		z = w * x + b;
			double		dz = 1.0 / (1.0 + exp(-z)) - y;
			double		gw = dz * x,
						gb = dz;

			if (opt == 0)
			{
				/* the decayed gradient against central differences */
				double		h = 1e-5,
							num;
#define OBJ(ww) (log1p(exp(-((ww) * x + b))) + 0.5 * wd * (ww) * (ww))

				num = (OBJ(w + h) - OBJ(w - h)) / (2 * h);
#undef OBJ
				CHECK(fabs(num - (gw + wd * w)) < 1e-6, "step %d: numeric %g, decayed %g", step, num,
					  gw + wd * w);
				m1w = 0.9 * m1w + gw + wd * w;
				m1b = 0.9 * m1b + gb;
				w -= 0.05 * m1w;
				b -= 0.05 * m1b;
			}
			else
			{
				double		c1 = 1 - pow(0.9, step),
							c2 = 1 - pow(0.999, step);

				m1w = 0.9 * m1w + 0.1 * gw;
				m1b = 0.9 * m1b + 0.1 * gb;
				m2w = 0.999 * m2w + 0.001 * gw * gw;
				m2b = 0.999 * m2b + 0.001 * gb * gb;
				w -= 0.05 * (m1w / c1) / (sqrt(m2w / c2) + 1e-8);
				b -= 0.05 * (m1b / c1) / (sqrt(m2b / c2) + 1e-8);
				w -= 0.05 * wd * w;
			}
			CHECK(iceml_trainer_epoch(tr, &x, &y, 1, step, NULL, NULL, &loss, err, sizeof(err)) == 0, "%s", err);
			CHECK(fabs(net->params[0] - w) < 1e-5 && fabs(net->params[1] - b) < 1e-5,
				  "%s step %d: w %g (want %g) b %g (want %g)", opt == 0 ? "sgd" : "adam", step,
				  net->params[0], w, net->params[1], b);
		}
		iceml_trainer_free(tr);
		iceml_net_free(net);
	}
}


/*
 * Side inputs (issue 16): a "side" layer joins standardised scalars and
 * their missing indicators to the flat features.  Central differences
 * through the layers before and after it, with a missing value in the
 * batch; the side features take no gradient, the dense layer's weights on
 * them do.
 */
TEST(gradients_side_inputs)
{
	float		side[4 * 2] = {38.0f, 1.0f, NAN, 0.0f, 31.5f, NAN, 44.0f, 2.0f};

	gradient_check_side("{\"input\":[2,6,6],\"layers\":["
						"{\"type\":\"conv2d\",\"filters\":3,\"kernel\":3,\"activation\":\"relu\"},"
						"{\"type\":\"batchnorm\"},{\"type\":\"gap\"},"
						"{\"type\":\"side\",\"inputs\":[\"inc_angle\",\"other\"]},"
						"{\"type\":\"dense\",\"units\":4,\"activation\":\"relu\"},"
						"{\"type\":\"dropout\",\"rate\":0.25},"
						"{\"type\":\"dense\",\"units\":1}]}", 4, 40, 0.01, side);
	/* straight into the logit: every weight of the logit is checked */
	gradient_check_side("{\"input\":[1,4,4],\"layers\":["
						"{\"type\":\"conv2d\",\"filters\":2,\"kernel\":2,\"activation\":\"sigmoid\"},"
						"{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":[\"inc_angle\",\"other\"]},"
						"{\"type\":\"dense\",\"units\":1}]}", 4, 40, 0.0, side);
}

TEST(side_inputs_by_hand_and_malformed_side_layers)
{
	IcemlNet   *net = make_net("{\"input\":[1,2,2],\"layers\":[{\"type\":\"flatten\"},"
								"{\"type\":\"side\",\"name\":\"angle\",\"inputs\":[\"inc_angle\"]},"
								"{\"type\":\"dense\",\"units\":1}]}");
	float		img[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
	float		side[2] = {40.0f, NAN};
	float		all[6] = {30.0f, NAN, 50.0f, 40.0f, INFINITY, 30.0f};
	float		mean[1],
				sd[1],
				prob[2];
	char	   *canon;
	Plan	   *plan;
	ERR;

	if (!net)
		return;
	CHECK(iceml_net_side_count(net) == 1 && strcmp(iceml_net_side_name(net, 0), "inc_angle") == 0,
		  "side inputs");
	CHECK(iceml_net_side_name(net, 1) == NULL, "out of range");
	CHECK(net->layers[1].oc == 4 + 2 && net->layers[2].nw == 6, "4 features, value and indicator");
	CHECK(iceml_net_side_mean(net) == NULL, "no standardisation before it is set");
	/* statistics over the present, finite values only */
	iceml_nn_side_stats(all, 6, 1, mean, sd);
	CHECK(fabsf(mean[0] - 37.5f) < 1e-5f && fabsf(sd[0] - sqrtf(68.75f)) < 1e-4f,
		  "mean %g std %g", mean[0], sd[0]);
	iceml_nn_side_stats(all, 1, 1, mean, sd);
	CHECK(mean[0] == 30.0f && sd[0] == 1.0f, "a constant input: std 1, not 0 (%g)", sd[0]);
	iceml_nn_side_stats(all + 1, 1, 1, mean, sd);
	CHECK(mean[0] == 0.0f && sd[0] == 1.0f, "no value present");
	mean[0] = 35.0f;
	sd[0] = 2.5f;
	CHECK(iceml_net_set_side_normalisation(net, mean, sd) == 0, "set");
	CHECK(iceml_net_side_mean(net)[0] == 35.0f, "kept");
	sd[0] = 0.0f;
	CHECK(iceml_net_set_side_normalisation(net, mean, sd) < 0, "std 0 refused");
	/* logit = sum(pixels) * 0 + 0.5 * z + 3 * missing - 1 */
	memset(net->params, 0, sizeof(float) * net->nparams);
	net->params[4] = 0.5f;
	net->params[5] = 3.0f;
	net->params[6] = -1.0f;
	plan = nn_plan_create(net, 2, 0);
	nn_gather(net, plan, img, NULL, 2, NULL);
	nn_gather_side(net, plan, side, NULL, 2);
	nn_forward(net, plan, 2, 0, 0);
	CHECK(plan->out[1][4] == 2.0f && plan->out[1][5] == 0.0f, "(40 - 35) / 2.5 = 2, present: %g %g",
		  plan->out[1][4], plan->out[1][5]);
	CHECK(plan->out[1][10] == 0.0f && plan->out[1][11] == 1.0f, "missing: 0 and indicator 1");
	CHECK(plan->out[1][6] == 5.0f && plan->out[1][9] == 8.0f, "image features pass through");
	CHECK(iceml_net_predict_side(net, img, side, 2, prob, err, sizeof(err)) == 0, "%s", err);
	CHECK(fabsf(prob[0] - 1.0f / (1.0f + expf(-0.0f))) < 1e-6f, "p %g", prob[0]);
	CHECK(fabsf(prob[1] - 1.0f / (1.0f + expf(-2.0f))) < 1e-6f, "p %g", prob[1]);
	/* without side values every image counts as missing */
	CHECK(iceml_net_predict(net, img, 2, prob, err, sizeof(err)) == 0, "%s", err);
	CHECK(fabsf(prob[0] - 1.0f / (1.0f + expf(-2.0f))) < 1e-6f, "p %g", prob[0]);
	nn_plan_free(plan);
	/* the canonical form keeps the layer and builds the same net */
	canon = iceml_net_spec_json(net);
	CHECK(strstr(canon, "\"type\":\"side\",\"name\":\"angle\",\"inputs\":[\"inc_angle\"]") != NULL, "%s", canon);
	{
		IcemlNet   *again = iceml_net_create(canon, err, sizeof(err));

		CHECK(again && strcmp(again->spec, canon) == 0 && again->nside == 1, "%s", err);
		iceml_net_free(again);
	}
	free(canon);
	iceml_net_free(net);

	/* malformed side layers: each refused naming the layer */
	{
		static const char *const bad[][2] = {
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"side\",\"inputs\":[\"a\"]},{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1}]}",
			"layer 0 (side): input 1x4x4 is not flat; put the side layer after a flatten or gap layer"},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\"},{\"type\":\"dense\",\"units\":1}]}",
			"layer 1 (side): needs \"inputs\""},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":[]},{\"type\":\"dense\",\"units\":1}]}",
			"layer 1 (side): \"inputs\" must be an array of 1 to 8 names"},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":\"inc_angle\"},{\"type\":\"dense\",\"units\":1}]}",
			"layer 1 (side): \"inputs\" must be an array of 1 to 8 names"},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":[\"a\",\"b\",\"a\"]},{\"type\":\"dense\",\"units\":1}]}",
			"layer 1 (side): side input \"a\" is named twice"},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":[7]},{\"type\":\"dense\",\"units\":1}]}",
			"layer 1 (side): \"inputs\" must be a non-empty string"},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":[\"a\"]},{\"type\":\"side\",\"inputs\":[\"b\"]},{\"type\":\"dense\",\"units\":1}]}",
			"layer 2 (side): the net already has a side layer (layer 1)"},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"side\",\"inputs\":[\"a\"],\"units\":3},{\"type\":\"dense\",\"units\":1}]}",
			"layer 1 (side): unknown key \"units\""},
			{"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":1,\"inputs\":[\"a\"]}]}",
			"layer 1 (dense): unknown key \"inputs\""},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			IcemlNet   *n = iceml_net_create(bad[i][0], err, sizeof(err));

			CHECK(n == NULL && strstr(err, bad[i][1]) != NULL, "case %zu: got \"%s\"", i, err);
			iceml_net_free(n);
			n = iceml_net_describe(bad[i][0], err, sizeof(err));
			CHECK(n == NULL, "case %zu described", i);
			iceml_net_free(n);
		}
	}
}

/*
 * Model format 2 adds the side inputs' standardisation.  A model written
 * in format 1 by the engine before it (model_v1.h) still loads and predicts
 * what it predicted then; a net with side inputs round-trips with its
 * standardisation; a format from the future is refused.
 */
TEST(model_format_1_still_loads_and_format_2_keeps_side_inputs)
{
	IcemlNet   *old,
			   *back;
	float		x[4 * 72],
				p[4],
				side[4] = {35.0f, NAN, 41.0f, 30.0f},
				mean[1] = {37.0f},
				sd[1] = {4.0f},
				p1[4],
				p2[4];
	void	   *blob;
	size_t		len;
	unsigned char *copy;
	uint32_t	v,
				crc;
	ERR;

	old = iceml_net_load(v1_blob, sizeof(v1_blob), err, sizeof(err));
	CHECK(old != NULL, "%s", err);
	if (old == NULL)
		return;
	CHECK(iceml_net_side_count(old) == 0, "no side inputs");
	for (int i = 0; i < 4 * 72; i++)
		x[i] = -22.0f + (float) ((i * 37) % 19) * 0.5f;
	CHECK(iceml_net_predict(old, x, 4, p, err, sizeof(err)) == 0, "%s", err);
	for (int k = 0; k < 4; k++)
		CHECK(fabsf(p[k] - v1_prob[k]) < 1e-6f, "image %d: %.9g, format 1 said %.9g", k, p[k], v1_prob[k]);
	/* saved again it is format 2, and loads the same */
	CHECK(iceml_net_save(old, &blob, &len) == 0 && len == sizeof(v1_blob) + 8, "%zu bytes", len);
	memcpy(&v, (unsigned char *) blob + 8, 4);
	CHECK(v == 2, "format %u", v);
	back = iceml_net_load(blob, len, err, sizeof(err));
	CHECK(back && iceml_net_predict(back, x, 4, p1, err, sizeof(err)) == 0 && memcmp(p, p1, sizeof(p)) == 0,
		  "format 2 round trip %s", err);
	iceml_net_free(back);
	/* a format-1 header on a format-2 body, and a format 3, are refused */
	copy = malloc(len);
	memcpy(copy, blob, len);
	v = 1;
	memcpy(copy + 8, &v, 4);
	crc = nn_crc32(copy, len - 4);
	memcpy(copy + len - 4, &crc, 4);
	CHECK(iceml_net_load(copy, len, err, sizeof(err)) == NULL && strstr(err, "inconsistent"), "%s", err);
	v = 3;
	memcpy(copy + 8, &v, 4);
	crc = nn_crc32(copy, len - 4);
	memcpy(copy + len - 4, &crc, 4);
	CHECK(iceml_net_load(copy, len, err, sizeof(err)) == NULL && strstr(err, "version 3 is not supported"),
		  "%s", err);
	free(copy);
	free(blob);
	iceml_net_free(old);

	/* side inputs: the standardisation travels, predictions are identical */
	old = make_net("{\"input\":[2,6,6],\"layers\":[{\"type\":\"conv2d\",\"filters\":3,\"kernel\":3,\"activation\":\"relu\"},"
				   "{\"type\":\"gap\"},{\"type\":\"side\",\"inputs\":[\"inc_angle\"]},"
				   "{\"type\":\"dense\",\"units\":4,\"activation\":\"relu\"},{\"type\":\"dense\",\"units\":1}]}");
	if (old == NULL)
		return;
	iceml_net_init_params(old, 9);
	iceml_net_set_side_normalisation(old, mean, sd);
	CHECK(iceml_net_save(old, &blob, &len) == 0, "save");
	back = iceml_net_load(blob, len, err, sizeof(err));
	CHECK(back != NULL, "%s", err);
	if (back)
	{
		CHECK(iceml_net_side_mean(back) && iceml_net_side_mean(back)[0] == 37.0f &&
			  iceml_net_side_std(back)[0] == 4.0f, "standardisation kept");
		iceml_net_predict_side(old, x, side, 4, p1, err, sizeof(err));
		iceml_net_predict_side(back, x, side, 4, p2, err, sizeof(err));
		CHECK(memcmp(p1, p2, sizeof(p1)) == 0, "predictions differ after a round trip");
		CHECK(p1[0] != p1[2], "the angle changes the prediction");
		iceml_net_free(back);
	}
	/* every truncation is refused */
	for (size_t cut = 0; cut < len; cut++)
	{
		back = iceml_net_load(blob, cut, err, sizeof(err));
		CHECK(back == NULL, "truncated to %zu accepted", cut);
		iceml_net_free(back);
	}
	free(blob);
	iceml_net_free(old);
}

/*
 * Training reads the side inputs: labels that only the angle (and whether
 * it is there) explains, on images of pure noise, are learnt.
 */
TEST(training_learns_from_a_side_input)
{
	enum
	{
		N = 256
	};
	IcemlNet   *net = make_net("{\"input\":[1,4,4],\"layers\":[{\"type\":\"gap\"},"
								"{\"type\":\"side\",\"inputs\":[\"inc_angle\"]},"
								"{\"type\":\"dense\",\"units\":8,\"activation\":\"relu\"},"
								"{\"type\":\"dense\",\"units\":1}]}");
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	float	   *x = malloc(sizeof(float) * N * 16),
				side[N],
				y[N],
				prob[N],
				mean[1],
				sd[1];
	IcemlMetrics m;
	double		loss = 0;
	uint64_t	s = 21;
	ERR;

	if (net == NULL)
		return;
	for (int i = 0; i < N; i++)
	{
		for (int j = 0; j < 16; j++)
			x[i * 16 + j] = frand(&s);
		side[i] = (i % 5 == 0) ? NAN : 30.0f + 16.0f * nn_uniform(&s);
		/* missing: a ship (0); present: an iceberg above 38 degrees */
		y[i] = isnan(side[i]) ? 0.0f : (side[i] > 38.0f ? 1.0f : 0.0f);
	}
	iceml_nn_side_stats(side, N, 1, mean, sd);
	iceml_net_set_side_normalisation(net, mean, sd);
	iceml_net_init_params(net, 4);
	iceml_train_config_defaults(&cfg);
	cfg.learning_rate = 0.01f;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	CHECK(tr != NULL, "%s", err);
	if (tr == NULL)
		return;
	for (int e = 1; e <= 30; e++)
		CHECK(iceml_trainer_epoch_side(tr, x, side, y, N, e, NULL, NULL, &loss, err, sizeof(err)) == 0,
			  "%s", err);
	CHECK(iceml_net_predict_side(net, x, side, N, prob, err, sizeof(err)) == 0, "%s", err);
	iceml_metrics_compute(prob, y, N, 0.5, &m);
	CHECK(m.accuracy > 0.95 && loss < 0.2, "accuracy %.3f, last training loss %.3f", m.accuracy, loss);
	/* the same net without the angles cannot tell */
	CHECK(iceml_net_predict(net, x, N, prob, err, sizeof(err)) == 0, "%s", err);
	iceml_metrics_compute(prob, y, N, 0.5, &m);
	CHECK(m.accuracy < 0.8, "accuracy without angles %.3f", m.accuracy);
	iceml_trainer_free(tr);
	iceml_net_free(net);
	free(x);
}

/*
 * ICEML_KERNELS=<bad> test_nn_san refusal: the engine refuses to start
 * with a kernel set it does not have, by name (test/unit/Makefile).
 */
/* ---- inference plans ------------------------------------------------------ */

/* the probabilities of n images by a copy of net made through its blob */
static void
predict_by_copy(const IcemlNet *net, const float *x, int n, float *prob)
{
	void	   *blob = NULL;
	size_t		len = 0;
	IcemlNet   *copy;
	ERR;

	CHECK(iceml_net_save(net, &blob, &len) == 0, "save");
	copy = iceml_net_load(blob, len, err, sizeof(err));
	CHECK(copy != NULL, "%s", err);
	if (copy)
		CHECK(iceml_net_predict(copy, x, n, prob, err, sizeof(err)) == 0, "%s", err);
	iceml_net_free(copy);
	free(blob);
}

/*
 * An inference plan keeps its Winograd convs' transformed weights from one
 * prediction to the next: every change of the parameters (training steps,
 * a restored checkpoint, initialisation) must be seen by the next
 * prediction, which then equals a fresh copy's bit for bit.
 */
TEST(an_inference_plan_follows_every_change_of_the_parameters)
{
	IcemlNet   *net = make_net(WINO_SPEC);
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	float	   *x = malloc(sizeof(float) * 8 * 16 * 110),
				y[8],
				p0[3],
				p1[3],
				p2[3],
				fresh[3];
	void	   *ck = NULL;
	size_t		len = 0;
	double		loss;
	uint64_t	s = 11;
	ERR;

	for (int i = 0; i < 8 * 16 * 110; i++)
		x[i] = frand(&s);
	for (int i = 0; i < 8; i++)
		y[i] = (float) (i % 2);
	iceml_net_init_params(net, 1);
	CHECK(iceml_net_predict(net, x, 3, p0, err, sizeof(err)) == 0, "%s", err);
	CHECK(net->infer && !net->infer->training && (net->infer->choice[0] & PLAN_WINOGRAD) &&
		  net->infer->wino_made[0] == net->params_version + 1,
		  "the inference plan keeps a Winograd conv's weights");

	iceml_train_config_defaults(&cfg);
	cfg.batch_size = 4;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	CHECK(tr != NULL, "%s", err);
	CHECK(iceml_trainer_save(tr, &ck, &len) == 0, "checkpoint");
	iceml_trainer_epoch(tr, x, y, 8, 1, NULL, NULL, &loss, err, sizeof(err));
	CHECK(iceml_net_predict(net, x, 3, p1, err, sizeof(err)) == 0, "%s", err);
	predict_by_copy(net, x, 3, fresh);
	CHECK(memcmp(p1, p0, sizeof(p0)) != 0, "training changed no prediction");
	CHECK(memcmp(p1, fresh, sizeof(p1)) == 0, "after training: %.9g against a copy's %.9g",
		  p1[0], fresh[0]);

	/* back to the checkpoint taken before the epoch */
	CHECK(iceml_trainer_restore(tr, ck, len, err, sizeof(err)) == 0, "%s", err);
	CHECK(iceml_net_predict(net, x, 3, p2, err, sizeof(err)) == 0, "%s", err);
	CHECK(memcmp(p2, p0, sizeof(p0)) == 0, "after restoring: %.9g, before %.9g", p2[0], p0[0]);

	/* initialised again with another seed */
	iceml_net_init_params(net, 2);
	CHECK(iceml_net_predict(net, x, 3, p2, err, sizeof(err)) == 0, "%s", err);
	predict_by_copy(net, x, 3, fresh);
	CHECK(memcmp(p2, fresh, sizeof(p2)) == 0, "after initialising: %.9g against a copy's %.9g",
		  p2[0], fresh[0]);
	free(ck);
	iceml_trainer_free(tr);
	iceml_net_free(net);
	free(x);
}

/*
 * The promise of batched scoring (sql/52_serving): an image predicted
 * alone (a plan for one image) and the same image in batches (the plan
 * for INFER_BATCH, in the first batch and in a short last one) give the
 * same bits; and both equal a training plan's buffers run without
 * training, so an inference plan's shared buffers change nothing.  For the
 * current kernel set.
 */
TEST(one_image_alone_and_in_batches_agree_exactly)
{
	enum
	{
	N = 35, IMG = 3 * 75 * 75};
	IcemlNet   *alone = make_net(iceml_nn_builtin_spec("statoil_cnn")),
			   *batched = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	float	   *x = malloc(sizeof(float) * N * IMG),
				one[N],
				all[N];
	int			at[] = {0, 7, 31, 32, 34};
	Plan	   *tp;
	const float *z;
	uint64_t	s = 23;
	ERR;

	for (int i = 0; i < N * IMG; i++)
		x[i] = frand(&s);
	iceml_net_init_params(alone, 5);
	iceml_net_init_params(batched, 5);
	CHECK(iceml_net_predict(batched, x, N, all, err, sizeof(err)) == 0, "%s", err);
	for (int q = 0; q < 5; q++)
	{
		int			k = at[q];

		CHECK(iceml_net_predict(alone, x + (size_t) k * IMG, 1, &one[k], err, sizeof(err)) == 0,
			  "%s", err);
		CHECK(alone->infer && alone->infer->batch == 1, "a plan for one image");
		CHECK(memcmp(&one[k], &all[k], sizeof(float)) == 0,
			  "image %d: %.9g alone, %.9g in a batch", k, one[k], all[k]);
	}
	/* a training plan's own buffers, run as inference (first 3 images) */
	tp = nn_plan_create(batched, 3, 1);
	nn_gather(batched, tp, x, NULL, 3, NULL);
	z = nn_forward(batched, tp, 3, 0, 0);
	for (int k = 0; k < 3; k++)
	{
		float		pk = 1.0f / (1.0f + expf(-z[k]));

		CHECK(fabsf(pk - all[k]) <= 1e-6f * fabsf(all[k]) + 1e-12f,
			  "image %d: %.9g by a training plan, %.9g by the inference plan", k, pk, all[k]);
	}
	nn_plan_free(tp);
	iceml_net_free(alone);
	iceml_net_free(batched);
	free(x);
}

/*
 * A plan's block of 4 MB or more is mapped on 2 MB boundaries with the
 * kernel asked for transparent huge pages (plan.c), and unmapped when the
 * plan is freed.  Under AddressSanitizer blocks come from malloc instead
 * (its leak check sees them), so there this says so and checks nothing.
 */
#if !defined(__SANITIZE_ADDRESS__)
static int
vma_flags_of(const void *addr, char *flags, size_t flen)
{
	FILE	   *f = fopen("/proc/self/smaps", "r");
	char		line[512];
	int			in = 0,
				found = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
	{
		unsigned long lo,
					hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t) addr >= lo && (uintptr_t) addr < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0)
		{
			snprintf(flags, flen, "%s", line + 8);
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}
#endif

TEST(a_large_plan_is_on_huge_pages_and_unmapped_when_freed)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("    (AddressSanitizer: plan blocks come from malloc; checked in the thread-sanitizer run)\n");
#else
	IcemlNet   *net = make_net(iceml_nn_builtin_spec("statoil_cnn"));
	Plan	   *plan = nn_plan_create(net, 32, 0);
	char		flags[256] = "";
	void	   *block;

	CHECK(plan != NULL, "a 32-image inference plan");
	if (plan == NULL)
		return;
	block = plan->block;
	CHECK(plan->block_floats * sizeof(float) >= ((size_t) 4 << 20), "a 32-image plan of %zu bytes",
		  plan->block_floats * sizeof(float));
	CHECK(((uintptr_t) block & (((uintptr_t) 2 << 20) - 1)) == 0, "block at %p, not on a 2 MB boundary", block);
	CHECK(vma_flags_of(block, flags, sizeof(flags)) == 1, "no mapping holds the block at %p", block);
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
		CHECK(strstr(flags, " hg") != NULL, "the block's mapping is not advised for huge pages: %s", flags);
	/* the block is written as a pass would, then handed back */
	memset(block, 1, plan->block_floats * sizeof(float));
	nn_plan_free(plan);
	CHECK(vma_flags_of(block, flags, sizeof(flags)) == 0, "the freed block at %p is still mapped", block);
	iceml_net_free(net);
#endif
}

static int
expect_refusal(void)
{
	ERR;
	IcemlNet   *net = iceml_net_create(iceml_nn_builtin_spec("statoil_cnn"), err, sizeof(err));
	const char *want = getenv("ICEML_KERNELS");

	if (net != NULL || want == NULL || strstr(err, "ICEML_KERNELS") == NULL ||
		strstr(err, want) == NULL || strstr(iceml_nn_runtime(), "ICEML_KERNELS") == NULL)
	{
		printf("FAIL ICEML_KERNELS=%s was not refused by name: \"%s\"\n", want ? want : "", err);
		iceml_net_free(net);
		return 1;
	}
	printf("ok   ICEML_KERNELS=%s refused: %s\n", want, err);
	return 0;
}

int
main(int argc, char **argv)
{
	char		sets[64] = "";
	const NnKernels *best;
	ERR;

	if (argc > 1 && strcmp(argv[1], "refusal") == 0)
		return expect_refusal();
	if (iceml_nn_init(err, sizeof(err)) != 0)
	{
		printf("FAIL engine init: %s\n", err);
		return 1;
	}
	printf("engine: %s\n", iceml_nn_runtime());
	iceml_nn_set_threads(1);
	if (argc > 1 && strcmp(argv[1], "threads") == 0)
	{
		/* the thread tests alone (ThreadSanitizer: make tsan) */
		RUN(the_thread_pool_is_persistent_and_blocks_signals);
		RUN(one_and_two_threads_agree_and_each_is_reproducible);
		RUN(a_large_plan_is_on_huge_pages_and_unmapped_when_freed);
		return UNIT_SUMMARY();
	}
	RUN(reference_model_has_560193_parameters);
	RUN(forward_conv_pool_dense_by_hand);

	/* the gradient checks once per kernel set this CPU runs */
	best = nn_kernels_current();
	for (int k = 0; nn_kernel_sets[k]; k++)
	{
		if (!nn_kernels_supported(nn_kernel_sets[k]))
			continue;
		CHECK(nn_kernels_use(nn_kernel_sets[k]->name, err, sizeof(err)) == 0, "%s", err);
		printf("kernel set %s:\n", nn_kernel_sets[k]->name);
		snprintf(sets + strlen(sets), sizeof(sets) - strlen(sets), " %s", nn_kernel_sets[k]->name);
		RUN(gradients_conv_pool_bn_dropout_dense);
		RUN(gradients_same_padding_gap);
		RUN(gradients_statoil_cnn_small_batch);
		RUN(gradients_winograd_same_padding_odd_sizes);
		RUN(one_image_alone_and_in_batches_agree_exactly);
	}
	CHECK(nn_kernels_use(best->name, err, sizeof(err)) == 0, "%s", err);
	printf("kernel sets run:%s (engine default: %s)\n", sets, best->name);
	RUN(sgd_momentum_steps_by_hand);
	RUN(adam_steps_by_hand);
	RUN(default_initialisation_has_the_intended_variance_per_layer);
	RUN(learning_rate_schedules_by_hand);
	RUN(weight_decay_by_hand_and_against_central_differences);
	RUN(bce_is_stable_for_large_logits);
	RUN(malformed_specs_are_refused_with_the_layer_at_fault);
	RUN(serialisation_round_trip_and_malformed_blobs);
	RUN(checkpoints_resume_bit_identically);
	RUN(same_seed_same_weights_other_seed_other_weights);
	RUN(metrics_by_hand);
	RUN(tiny_model_learns_a_separable_toy_set);
	RUN(callback_stops_an_epoch_and_bad_configs_are_refused);
	RUN(one_and_two_threads_agree_and_each_is_reproducible);
	RUN(every_kernel_set_matches_the_plain_path);
	RUN(a_plan_keeps_its_kernels_when_the_current_set_changes);
	RUN(the_thread_pool_is_persistent_and_blocks_signals);
	RUN(describe_and_memory_without_allocating);
	RUN(interrupt_check_stops_forward_backward_predict_and_epoch);
	RUN(gradients_side_inputs);
	RUN(side_inputs_by_hand_and_malformed_side_layers);
	RUN(model_format_1_still_loads_and_format_2_keeps_side_inputs);
	RUN(training_learns_from_a_side_input);
	RUN(an_inference_plan_follows_every_change_of_the_parameters);
	RUN(a_large_plan_is_on_huge_pages_and_unmapped_when_freed);
	return UNIT_SUMMARY();
}
