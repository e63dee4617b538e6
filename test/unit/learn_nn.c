/*
 * learn_nn.c - learning, not just running, on synthetic chips
 * (src/eo/synth.c): the reference CNN with the engine's defaults must reach
 * PyTorch's validation log loss after 3 epochs, and the recipe must learn
 * the chips as well as it does now.  Optimised build, two threads (`make -C
 * test/unit learn`; `learn_nn recipe` runs the recipe's check alone).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iceml_nn.h"
#include "iceml_synth.h"
#include "unit.h"

#define HW ICEML_CHIP_PIXELS

/* chips from..from+n of the generator: images, labels, angles (NaN missing) */
static void
load(uint32_t seed, int from, int n, float *x, float *y, float *angle)
{
	IcemlChip  *c = malloc(sizeof(IcemlChip));

	for (int i = 0; i < n; i++)
	{
		float	   *img = x + (size_t) i * 3 * HW;

		iceml_synth_chip(seed, (uint64_t) (from + i), c);
		for (int p = 0; p < HW; p++)
		{
			img[p] = c->band_1[p];
			img[HW + p] = c->band_2[p];
			img[2 * HW + p] = (c->band_1[p] + c->band_2[p]) * 0.5f;
		}
		y[i] = (float) c->is_iceberg;
		if (angle)
			angle[i] = c->inc_angle;
	}
	free(c);
}

/*
 * The recipe (README): recipe_cnn, flips and quarter turns, Adam 2e-3 with a
 * one-epoch warm-up and a cosine schedule, weight decay 1e-2, batch 32, for
 * RECIPE_EPOCHS epochs: the last epoch's validation log loss must be below
 * RECIPE_BOUND and its accuracy at least 97%.  Measured: before speed's
 * convolution change (issue 17) recipe_cnn gave 0.0349 and the first
 * recipe_cnn (global average pooling) 0.0436, so a bound of 0.040 told them
 * apart; after it they give 0.0420 and 0.0429: on these chips at 8 epochs
 * the two are no longer apart (the bench's 15 epochs on three seeds are:
 * 0.035 against 0.057), and the bound is 0.045, which a recipe that stops
 * learning still fails; with the Winograd weight gradient and the pool
 * fusions recipe_cnn gives 0.0356 (accuracy 0.991).  Fixed seeds and two
 * threads: the figures are reproducible for an engine build; re-measure
 * with `learn_nn recipe`.
 */
#define RECIPE_EPOCHS 8
#define RECIPE_BOUND 0.045

TEST(recipe_learns_synthetic_chips)
{
	enum
	{
	NT = 1283, NV = 321};
	float	   *xt = malloc(sizeof(float) * NT * 3 * HW),
			   *xv = malloc(sizeof(float) * NV * 3 * HW),
				yt[NT],
				yv[NV],
				at[NT],
				av[NV],
				pv[NV],
				mean[3],
				sd[3],
				am[1],
				as[1];
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_create(iceml_nn_builtin_spec("recipe_cnn"), err, sizeof(err));
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	IcemlMetrics m;
	double		loss;

	CHECK(net != NULL, "%s", err);
	if (net == NULL)
		return;
	load(2026, 0, NT, xt, yt, at);
	load(2026, NT, NV, xv, yv, av);
	iceml_nn_channel_stats(xt, NT, 3, HW, mean, sd);
	iceml_net_set_normalisation(net, mean, sd);
	/* the recipe takes the incidence angle as a side input */
	iceml_nn_side_stats(at, NT, 1, am, as);
	CHECK(iceml_net_side_count(net) == 1 && iceml_net_set_side_normalisation(net, am, as) == 0,
		  "recipe_cnn takes the angle");
	iceml_net_init_params(net, 42);
	iceml_train_config_defaults(&cfg);
	cfg.augment = ICEML_AUG_FLIP_H | ICEML_AUG_FLIP_V | ICEML_AUG_ROT90;
	cfg.learning_rate = 2e-3f;
	cfg.schedule = ICEML_SCHED_COSINE;
	cfg.epochs = RECIPE_EPOCHS;
	cfg.warmup_epochs = 1.0f;
	cfg.weight_decay = 1e-2f;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	CHECK(tr != NULL, "%s", err);
	for (int e = 1; tr != NULL && e <= RECIPE_EPOCHS; e++)
	{
		time_t		t0 = time(NULL);

		CHECK(iceml_trainer_epoch_side(tr, xt, at, yt, NT, e, NULL, NULL, &loss, err, sizeof(err)) == 0,
			  "%s", err);
		iceml_net_predict_side(net, xv, av, NV, pv, err, sizeof(err));
		iceml_metrics_compute(pv, yv, NV, 0.5, &m);
		printf("    epoch %d: train loss %.4f, val loss %.4f, val acc %.3f, val auc %.3f (%ld s)\n",
			   e, loss, m.log_loss, m.accuracy, m.auc, (long) (time(NULL) - t0));
		fflush(stdout);
	}
	CHECK(m.log_loss < RECIPE_BOUND && m.accuracy >= 0.97,
		  "last epoch: validation log loss %.4f (bound %.2f), accuracy %.3f", m.log_loss,
		  RECIPE_BOUND, m.accuracy);
	iceml_trainer_free(tr);
	iceml_net_free(net);
	free(xt);
	free(xv);
}

/*
 * Model quality, not just learning: the reference CNN with the engine's
 * defaults (no augmentation, Adam 1e-3, batch 32) after 3 epochs on 1283
 * synthetic chips reaches a validation log loss near PyTorch's with its
 * defaults (below 0.30).  One run is a trajectory that any change of
 * rounding moves: summing a gradient in another order gives other weights
 * after a few hundred steps.  Seed 42 alone gave 0.24 with im2col weight
 * gradients and 0.335 with Winograd ones that agreed with them to 5e-7.
 * So the check trains from REF_NSEEDS seeds (weights, shuffling, dropout)
 * and bounds the median of their last-epoch losses, plus a loose bound on
 * the worst seed for a learner that breaks only now and then.
 *
 * Measured (`learn_nn spread 10`, seeds 1-10; issue 17):
 *   main before Winograd weight gradients: median 0.149, mean 0.170,
 *     sd 0.053, 0.098-0.254; seeds 11-13: 0.164, 0.177, 0.305
 *   Winograd weight gradients: median 0.182, mean 0.204, sd 0.073,
 *     0.117-0.334; with the pool and dropout fusions, seeds 11-14: 0.155,
 *     0.131, 0.148, 0.113
 *   so about 1 seed in 9 ends above 0.30 whatever the rounding, and none
 *   of 27 above 0.34.  The median of 5 fails a mere change of rounding
 *   when 3 of 5 seeds do (about 1%), and the worst bound sits 3 sd above
 *   the worst seen.
 *   Broken on purpose (conv2's weight gradient, the Winograd engine):
 *     sign flipped: 0.598, 0.585, 0.672, 0.498, 0.618 (median 0.598):
 *       both bounds fail;
 *     zeroed: 0.233, 0.271, 0.226, 0.846, 0.124 (median 0.233): the
 *       worst bound fails (a conv that never learns still lets the rest
 *       learn, mostly).
 * Fixed seeds and two threads: the figures are reproducible for an engine
 * build.  About 15 s a seed on 2 quiet cores (75 s for the check).
 */
#define QUALITY_EPOCHS 3
#define REF_NSEEDS 5
#define REF_MEDIAN_BOUND 0.30
#define REF_WORST_BOUND 0.55

static const uint64_t ref_seeds[REF_NSEEDS] = {1, 2, 3, 4, 5};

typedef struct RefData
{
	float	   *xt,
			   *xv,
			   *yt,
			   *yv,
				mean[3],
				sd[3];
} RefData;

enum
{
REF_NT = 1283, REF_NV = 321};

static void
ref_load(RefData *d)
{
	d->xt = malloc(sizeof(float) * REF_NT * 3 * HW);
	d->xv = malloc(sizeof(float) * REF_NV * 3 * HW);
	d->yt = malloc(sizeof(float) * REF_NT);
	d->yv = malloc(sizeof(float) * REF_NV);
	load(2026, 0, REF_NT, d->xt, d->yt, NULL);
	load(2026, REF_NT, REF_NV, d->xv, d->yv, NULL);
	iceml_nn_channel_stats(d->xt, REF_NT, 3, HW, d->mean, d->sd);
}

static void
ref_free(RefData *d)
{
	free(d->xt);
	free(d->xv);
	free(d->yt);
	free(d->yv);
}

/* the last epoch's validation log loss of one run from seed (NaN on error) */
static double
ref_run(const RefData *d, uint64_t seed)
{
	float		pv[REF_NV];
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_create(iceml_nn_builtin_spec("statoil_cnn"), err, sizeof(err));
	IcemlTrainConfig cfg;
	IcemlTrainer *tr = NULL;
	IcemlMetrics m;
	double		loss,
				out = NAN;
	time_t		t0 = time(NULL);

	CHECK(net != NULL, "%s", err);
	if (net == NULL)
		return NAN;
	iceml_net_set_normalisation(net, d->mean, d->sd);
	iceml_net_init_params(net, seed);
	iceml_train_config_defaults(&cfg);
	cfg.seed = seed;
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	CHECK(tr != NULL, "%s", err);
	for (int e = 1; tr != NULL && e <= QUALITY_EPOCHS; e++)
	{
		if (iceml_trainer_epoch(tr, d->xt, d->yt, REF_NT, e, NULL, NULL, &loss, err, sizeof(err)) != 0 ||
			iceml_net_predict(net, d->xv, REF_NV, pv, err, sizeof(err)) != 0)
		{
			CHECK(0, "seed %llu, epoch %d: %s", (unsigned long long) seed, e, err);
			break;
		}
		iceml_metrics_compute(pv, d->yv, REF_NV, 0.5, &m);
		if (e == QUALITY_EPOCHS)
			out = m.log_loss;
	}
	if (!isnan(out))
		printf("    seed %llu: train loss %.4f, val loss %.4f, val acc %.3f (%ld s)\n",
			   (unsigned long long) seed, loss, m.log_loss, m.accuracy, (long) (time(NULL) - t0));
	fflush(stdout);
	iceml_trainer_free(tr);
	iceml_net_free(net);
	return out;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* median, mean and sample standard deviation of n values (sorted in place) */
static void
spread(double *v, int n, double *median, double *mean, double *sd)
{
	double		s = 0,
				ss = 0;

	qsort(v, n, sizeof(double), cmp_double);
	*median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
	for (int i = 0; i < n; i++)
		s += v[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		ss += (v[i] - *mean) * (v[i] - *mean);
	*sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

TEST(reference_cnn_validation_log_loss_after_3_epochs)
{
	RefData		d;
	double		v[REF_NSEEDS],
				median,
				mean,
				sd;
	int			ok = 1;

	ref_load(&d);
	for (int s = 0; s < REF_NSEEDS; s++)
	{
		v[s] = ref_run(&d, ref_seeds[s]);
		ok = ok && !isnan(v[s]);
	}
	ref_free(&d);
	if (!ok)
		return;
	spread(v, REF_NSEEDS, &median, &mean, &sd);
	printf("    %d seeds: median %.4f, mean %.4f, sd %.4f, worst %.4f\n",
		   REF_NSEEDS, median, mean, sd, v[REF_NSEEDS - 1]);
	CHECK(median < REF_MEDIAN_BOUND, "median validation log loss %.4f of %d seeds after %d epochs (bound %.2f)",
		  median, REF_NSEEDS, QUALITY_EPOCHS, REF_MEDIAN_BOUND);
	CHECK(v[REF_NSEEDS - 1] < REF_WORST_BOUND, "worst validation log loss %.4f of %d seeds after %d epochs (bound %.2f)",
		  v[REF_NSEEDS - 1], REF_NSEEDS, QUALITY_EPOCHS, REF_WORST_BOUND);
}

/* learn_nn spread N [FIRST]: the reference CNN from seeds FIRST.. (1..N), for the figures above */
static int
measure_spread(int n, int first)
{
	RefData		d;
	double	   *v = malloc(sizeof(double) * n),
				median,
				mean,
				sd;

	ref_load(&d);
	for (int s = 0; s < n; s++)
		v[s] = ref_run(&d, (uint64_t) (s + first));
	ref_free(&d);
	spread(v, n, &median, &mean, &sd);
	printf("spread of %d seeds: median %.4f, mean %.4f, sd %.4f, min %.4f, max %.4f\n",
		   n, median, mean, sd, v[0], v[n - 1]);
	free(v);
	return 0;
}

/* learn_nn [reference|recipe]: both checks, or the one named; learn_nn spread N [FIRST] */
int
main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "";

	iceml_nn_set_threads(2);
	if (strcmp(only, "spread") == 0)
		return measure_spread(argc > 2 ? atoi(argv[2]) : 10, argc > 3 ? atoi(argv[3]) : 1);
	if (strcmp(only, "recipe") != 0)
		RUN(reference_cnn_validation_log_loss_after_3_epochs);
	if (strcmp(only, "reference") != 0)
		RUN(recipe_learns_synthetic_chips);
	return UNIT_SUMMARY();
}
