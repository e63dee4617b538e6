/*
 * parity.c - model quality side by side with PyTorch (torch_parity.py).
 *
 *   parity write FILE [DATA_SEED]       write 1604 synthetic chips (1283
 *                                        train, 321 test) for both programs
 *   parity train FILE [options]          train on them, print per-epoch lines
 *
 * options: --epochs N (15)  --seed S (42)  --arch NAME|SPEC (statoil_cnn)
 *          --init he_normal|glorot_uniform|torch_default (the engine's default)
 *          --eps E  --augment  --schedule none|step|cosine  --warmup N
 *          --weight-decay W  --lr L  --name NAME
 *          --side       insert the angle as a side input before the first
 *                       dense layer (recipe_cnn has it built in: no-op)
 *          --no-angle   give the net no angles (every one missing): the
 *                       angle's contribution, by ablation
 *          --no-dropout every dropout rate 0
 *          --no-augment no training-time augmentation (after --recipe:
 *                       the augmentation's contribution, by ablation)
 *          --tta        score the test chips as a deployment with tta does
 *                       (the mean over the 8 flips and quarter turns)
 *          --members K  train K nets (seeds S, S+1000, ...) and score them
 *                       as one ensemble deployment (deploy_ensemble)
 *          --batch-log  print "batch EPOCH K loss" after every batch
 *          --dump FILE  write the initial weights (conv and dense, weights
 *                       then biases, layer by layer) and each epoch's
 *                       batch order (int32, 1283 per epoch) for
 *                       torch_parity.py --lockstep FILE: both programs then
 *                       train from the same weights in the same order
 *
 * The chip file: N x 3 x 75 x 75 floats (band_1, band_2, band_avg in dB),
 * then N labels, then N incidence angles (NaN when missing), N = 1604; the
 * first 1283 chips train, the last 321 test (the Statoil train.json split).
 * Every epoch prints "curve NAME EPOCH train_loss test_loss test_acc seconds"
 * (with --tta or --members the deployment's test figures, then the first
 * member's alone);
 * at the end "BENCH NAME_best", "BENCH NAME_final" (test log loss) and the
 * standard deviation of the last five epochs' test log loss.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iceml_nn.h"
#include "iceml_synth.h"
#include "nn_internal.h"		/* --no-dropout, --dump: layers and the shuffle */
#include "bench_util.h"

#define NTRAIN 1283
#define NTEST 321
#define NALL (NTRAIN + NTEST)
#define C 3
#define HW ICEML_CHIP_PIXELS
#define HW_SIDE ICEML_CHIP_SIDE
#define MAX_MEMBERS 16			/* deploy_ensemble's limit */
#define MEMBER_SEED_STEP 1000

/* the recipe's settings (README) */
#define RECIPE_LR 2e-3f
#define RECIPE_WARMUP 1.0f
#define RECIPE_WD 1e-2f

static int
write_chips(const char *path, uint32_t seed)
{
	IcemlChip  *chip = malloc(sizeof(IcemlChip));
	float	   *img = malloc(sizeof(float) * C * HW);
	float	   *y = malloc(sizeof(float) * NALL),
			   *a = malloc(sizeof(float) * NALL);
	FILE	   *f = fopen(path, "wb");

	if (f == NULL)
	{
		perror(path);
		return 1;
	}
	for (int i = 0; i < NALL; i++)
	{
		iceml_synth_chip(seed, (uint64_t) i, chip);
		for (int p = 0; p < HW; p++)
		{
			img[p] = chip->band_1[p];
			img[HW + p] = chip->band_2[p];
			img[2 * HW + p] = (chip->band_1[p] + chip->band_2[p]) * 0.5f;
		}
		fwrite(img, sizeof(float), C * HW, f);
		y[i] = (float) chip->is_iceberg;
		a[i] = chip->inc_angle;
	}
	fwrite(y, sizeof(float), NALL, f);
	fwrite(a, sizeof(float), NALL, f);
	fclose(f);
	free(chip);
	free(img);
	free(y);
	free(a);
	return 0;
}

/*
 * The initial weights and the trainer's batch order per epoch (the same
 * shuffle as trainer.c: a Fisher-Yates driven by (seed, epoch)).
 */
static int
dump_lockstep(const char *path, const IcemlNet *net, uint64_t seed, int epochs)
{
	FILE	   *f = fopen(path, "wb");
	int32_t    *order = malloc(sizeof(int32_t) * NTRAIN);

	if (f == NULL)
	{
		perror(path);
		return 1;
	}
	for (int i = 0; i < net->nlayers; i++)
	{
		const Layer *l = &net->layers[i];

		if (l->type == L_CONV || l->type == L_DENSE)
		{
			fwrite(net->params + l->w_off, sizeof(float), l->nw, f);
			fwrite(net->params + l->b_off, sizeof(float), l->nb, f);
		}
	}
	for (int e = 1; e <= epochs; e++)
	{
		uint64_t	s = nn_mix(seed, 0xE0000 + (uint64_t) e);

		for (int i = 0; i < NTRAIN; i++)
			order[i] = i;
		for (int i = NTRAIN - 1; i > 0; i--)
		{
			int			j = (int) (nn_splitmix64(&s) % (uint64_t) (i + 1));
			int32_t		t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		fwrite(order, sizeof(int32_t), NTRAIN, f);
	}
	fclose(f);
	free(order);
	return 0;
}

/*
 * The test chips scored as a deployment scores them (PredictScore in
 * src/serving/score.c): with tta every chip's views (iceml_nn_view)
 * with the chip's angle, and the probabilities of every member and view
 * summed in double and divided by their number.
 */
static int
predict_deployment(IcemlNet **nets, int nmembers, int tta, const float *x,
				   const float *angle, int n, float *prob, char *err, size_t errlen)
{
	int			nv = tta ? iceml_nn_view_count(HW_SIDE, HW_SIDE) : 1;
	size_t		img = (size_t) C * HW;
	float	   *views = malloc(sizeof(float) * img * nv * n),
			   *side = malloc(sizeof(float) * nv * n),
			   *p = malloc(sizeof(float) * nv * n);
	double	   *sum = calloc(n, sizeof(double));
	int			rc = 0;

	for (int i = 0; i < n; i++)
		for (int v = 0; v < nv; v++)
		{
			iceml_nn_view(x + i * img, views + ((size_t) i * nv + v) * img, C, HW_SIDE, HW_SIDE, v);
			side[i * nv + v] = angle[i];
		}
	for (int k = 0; k < nmembers && rc == 0; k++)
	{
		rc = iceml_net_side_count(nets[k]) > 0 ?
			iceml_net_predict_side(nets[k], views, side, (int64_t) n * nv, p, err, errlen) :
			iceml_net_predict(nets[k], views, (int64_t) n * nv, p, err, errlen);
		for (int i = 0; i < n * nv; i++)
			sum[i / nv] += p[i];
	}
	for (int i = 0; i < n; i++)
		prob[i] = (float) (sum[i] / ((double) nmembers * nv));
	free(views);
	free(side);
	free(p);
	free(sum);
	return rc;
}

static int	log_epoch;

static int
batch_log(void *arg, int64_t done, int64_t total, double batch_loss)
{
	(void) arg;
	(void) total;
	printf("batch %d %lld %.7f\n", log_epoch, (long long) done, batch_loss);
	return 0;
}

/* spec with a side layer for the angle inserted before its first dense layer */
static char *
with_side(const char *spec)
{
	static const char side[] = "{\"type\": \"side\", \"name\": \"angle\", \"inputs\": [\"inc_angle\"]}, ";
	const char *at = strstr(spec, "{\"type\": \"dense\"");
	char	   *out;

	if (at == NULL)
		return NULL;
	out = malloc(strlen(spec) + sizeof(side));
	memcpy(out, spec, (size_t) (at - spec));
	strcpy(out + (at - spec), side);
	strcat(out, at);
	return out;
}

static char *
read_text(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	long		n;
	char	   *s;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t) n + 1);
	if (fread(s, 1, (size_t) n, f) != (size_t) n)
		n = 0;
	s[n] = '\0';
	fclose(f);
	return s;
}

int
main(int argc, char **argv)
{
	const char *name = "parity_logloss_iceml";
	const char *arch = "statoil_cnn";
	int			epochs = 15;
	IcemlTrainConfig cfg;
	float	   *x,
			   *y,
			   *angle,
				mean[C],
				sd[C],
				prob[NTEST];
	double		curve[1000];
	char		err[ICEML_NN_ERRLEN];
	const char *spec;
	IcemlNet   *nets[MAX_MEMBERS],
			   *net;
	IcemlTrainer *trs[MAX_MEMBERS];
	FILE	   *f;
	int			init = -1,
				side = 0,
				no_angle = 0,
				no_dropout = 0,
				tta = 0,
				members = 1,
				blog = 0;
	const char *dump = NULL;
	double		t_all;

	if (argc >= 3 && strcmp(argv[1], "write") == 0)
		return write_chips(argv[2], argc > 3 ? (uint32_t) atoi(argv[3]) : 16);
	if (argc < 3 || strcmp(argv[1], "train") != 0)
	{
		fprintf(stderr, "usage: parity write FILE [SEED] | parity train FILE [options]\n");
		return 2;
	}
	iceml_train_config_defaults(&cfg);
	for (int i = 3; i < argc; i++)
	{
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : "";

		if (strcmp(o, "--augment") == 0)
		{
			cfg.augment = ICEML_AUG_FLIP_H | ICEML_AUG_FLIP_V | ICEML_AUG_ROT90;
			continue;
		}
		if (strcmp(o, "--no-dropout") == 0 || strcmp(o, "--batch-log") == 0)
		{
			*(o[2] == 'n' ? &no_dropout : &blog) = 1;
			continue;
		}
		if (strcmp(o, "--no-augment") == 0)
		{
			cfg.augment = 0;
			continue;
		}
		if (strcmp(o, "--tta") == 0)
		{
			tta = 1;
			continue;
		}
		if (strcmp(o, "--side") == 0 || strcmp(o, "--no-angle") == 0)
		{
			*(o[2] == 's' ? &side : &no_angle) = 1;
			continue;
		}
		if (strcmp(o, "--recipe") == 0)
		{
			/* README, "the recipe" */
			arch = "recipe_cnn";
			cfg.augment = ICEML_AUG_FLIP_H | ICEML_AUG_FLIP_V | ICEML_AUG_ROT90;
			cfg.schedule = ICEML_SCHED_COSINE;
			cfg.learning_rate = RECIPE_LR;
			cfg.warmup_epochs = RECIPE_WARMUP;
			cfg.weight_decay = RECIPE_WD;
			continue;
		}
		i++;
		if (strcmp(o, "--epochs") == 0)
			epochs = atoi(v);
		else if (strcmp(o, "--seed") == 0)
			cfg.seed = (uint64_t) atoll(v);
		else if (strcmp(o, "--members") == 0)
			members = atoi(v);
		else if (strcmp(o, "--arch") == 0)
			arch = v;
		else if (strcmp(o, "--name") == 0)
			name = v;
		else if (strcmp(o, "--dump") == 0)
			dump = v;
		else if (strcmp(o, "--lr") == 0)
			cfg.learning_rate = (float) atof(v);
		else if (strcmp(o, "--eps") == 0)
			cfg.epsilon = (float) atof(v);
		else if (strcmp(o, "--weight-decay") == 0)
			cfg.weight_decay = (float) atof(v);
		else if (strcmp(o, "--warmup") == 0)
			cfg.warmup_epochs = (float) atof(v);
		else if (strcmp(o, "--schedule") == 0)
			cfg.schedule = strcmp(v, "cosine") == 0 ? ICEML_SCHED_COSINE :
				strcmp(v, "step") == 0 ? ICEML_SCHED_STEP : ICEML_SCHED_CONSTANT;
		else if (strcmp(o, "--init") == 0)
		{
			init = iceml_init_scheme_parse(v);
			if (init < 0)
			{
				fprintf(stderr, "unknown init %s\n", v);
				return 2;
			}
		}
		else
		{
			fprintf(stderr, "unknown option %s\n", o);
			return 2;
		}
	}
	if (epochs < 1 || epochs > 1000 || members < 1 || members > MAX_MEMBERS)
		return 2;
	cfg.epochs = epochs;

	x = malloc(sizeof(float) * (size_t) NALL * C * HW);
	y = malloc(sizeof(float) * NALL);
	angle = malloc(sizeof(float) * NALL);
	f = fopen(argv[2], "rb");
	if (f == NULL || fread(x, sizeof(float), (size_t) NALL * C * HW, f) != (size_t) NALL * C * HW ||
		fread(y, sizeof(float), NALL, f) != NALL || fread(angle, sizeof(float), NALL, f) != NALL)
	{
		fprintf(stderr, "cannot read %s\n", argv[2]);
		return 1;
	}
	fclose(f);

	spec = iceml_nn_builtin_spec(arch);
	if (spec == NULL)
		spec = read_text(arch);
	if (side && spec != NULL && strstr(spec, "\"side\"") == NULL)
		spec = with_side(spec);
	if (spec == NULL)
	{
		fprintf(stderr, "architecture %s: cannot read it, or it has no dense layer for --side\n", arch);
		return 1;
	}
	iceml_nn_channel_stats(x, NTRAIN, C, HW, mean, sd);
	if (no_angle)
		for (int i = 0; i < NALL; i++)
			angle[i] = NAN;
	iceml_nn_set_threads(2);
	for (int k = 0; k < members; k++)
	{
		IcemlTrainConfig mc = cfg;

		/* member k: the seed a user would give the k-th training run */
		mc.seed = cfg.seed + MEMBER_SEED_STEP * (uint64_t) k;
		net = nets[k] = iceml_net_create(spec, err, sizeof(err));
		if (net == NULL)
		{
			fprintf(stderr, "architecture %s: %s\n", arch, err);
			return 1;
		}
		iceml_net_set_normalisation(net, mean, sd);
		if (iceml_net_side_count(net) > 0)
		{
			float		am[1],
						as[1];

			iceml_nn_side_stats(angle, NTRAIN, 1, am, as);
			iceml_net_set_side_normalisation(net, am, as);
		}
		if (init >= 0)
			iceml_net_init_params_scheme(net, mc.seed, (IcemlInit) init);
		else
			iceml_net_init_params(net, mc.seed);
		if (no_dropout)
			for (int i = 0; i < net->nlayers; i++)
				if (net->layers[i].type == L_DROPOUT)
					net->layers[i].rate = 0.0f;
		if (k == 0 && dump && dump_lockstep(dump, net, mc.seed, epochs) != 0)
			return 1;
		trs[k] = iceml_trainer_create(net, &mc, err, sizeof(err));
		if (trs[k] == NULL)
		{
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}

	t_all = now();
	for (int e = 1; e <= epochs; e++)
	{
		double		t0 = now(),
					loss,
					plain;
		IcemlMetrics m;

		log_epoch = e;
		loss = 0;
		for (int k = 0; k < members; k++)
		{
			double		lk;

			if (iceml_trainer_epoch_side(trs[k], x, angle, y, NTRAIN, e, blog ? batch_log : NULL, NULL,
										 &lk, err, sizeof(err)) != 0)
			{
				fprintf(stderr, "epoch %d: %s\n", e, err);
				return 1;
			}
			loss += lk / members;
		}
		/* the first member alone, without tta; then the deployment */
		if (predict_deployment(nets, 1, 0, x + (size_t) NTRAIN * C * HW, angle + NTRAIN, NTEST,
							   prob, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "epoch %d: %s\n", e, err);
			return 1;
		}
		iceml_metrics_compute(prob, y + NTRAIN, NTEST, 0.5, &m);
		plain = m.log_loss;
		if (tta || members > 1)
		{
			if (predict_deployment(nets, members, tta, x + (size_t) NTRAIN * C * HW,
								   angle + NTRAIN, NTEST, prob, err, sizeof(err)) != 0)
			{
				fprintf(stderr, "epoch %d: %s\n", e, err);
				return 1;
			}
			iceml_metrics_compute(prob, y + NTRAIN, NTEST, 0.5, &m);
		}
		curve[e - 1] = m.log_loss;
		printf("curve %s %d %.4f %.4f %.3f %.2f", name, e, loss, m.log_loss, m.accuracy, now() - t0);
		if (tta || members > 1)
			printf(" (first member alone, without tta: %.4f)", plain);
		printf("\n");
		fflush(stdout);
	}
	{
		double		best = 1e30,
					s = 0,
					s2 = 0;
		int			k = epochs < 5 ? epochs : 5,
					best_e = 0;

		for (int e = 0; e < epochs; e++)
			if (curve[e] < best)
			{
				best = curve[e];
				best_e = e + 1;
			}
		for (int e = epochs - k; e < epochs; e++)
		{
			s += curve[e];
			s2 += curve[e] * curve[e];
		}
		printf("BENCH %s_best %.4f log_loss (epoch %d)\n", name, best, best_e);
		printf("BENCH %s_final %.4f log_loss\n", name, curve[epochs - 1]);
		printf("BENCH %s_last5_std %.4f log_loss\n", name,
			   sqrt(fmax(0.0, s2 / k - (s / k) * (s / k))));
		printf("BENCH %s_train_s %.1f s\n", name, now() - t_all);
	}
	for (int k = 0; k < members; k++)
	{
		iceml_trainer_free(trs[k]);
		iceml_net_free(nets[k]);
	}
	free(x);
	free(y);
	free(angle);
	return 0;
}
