/*
 * engine_bench.c - the reference CNN on 1283 chips of 3x75x75 (synthetic:
 * band_1, band_2, band_avg), batch 32, Adam.  Prints BENCH lines, and
 * first the machine's sgemm rate on the engine's 2 threads (the rate
 * training is judged against).  Writes the chips to a file for
 * torch_cnn.py when given a path.  With ICEML_KERNELS set, the figures'
 * names end in _<set> (a forced kernel set, e.g. avx2 on an AVX-512 CPU).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

extern char *openblas_get_config(void);

#include "iceml_nn.h"
#include "iceml_synth.h"
#include "nn_internal.h"
#include "bench_util.h"

/*
 * sgemm GFLOP/s of C(n x n) = A B on the engine's threads, split as the
 * engine splits its convolutions (by columns of C), best of 5
 */
static double
sgemm_rate(int n, int threads)
{
	float	   *a = malloc(sizeof(float) * n * n),
			   *b = malloc(sizeof(float) * n * n),
			   *c = malloc(sizeof(float) * n * n);
	double		best = 1e30;

	for (int i = 0; i < n * n; i++)
	{
		a[i] = (float) (i % 7) * 0.1f;
		b[i] = (float) (i % 5) * 0.1f;
	}
	iceml_nn_set_threads(threads);
	for (int r = 0; r < 6; r++)
	{
		double		t = now();

		nn_gemm_split(0, 0, n, n, n, a, n, b, n, 0.0f, c, n, SPLIT_N);
		t = now() - t;
		if (r > 0 && t < best)
			best = t;
	}
	free(a);
	free(b);
	free(c);
	return 2.0 * n * n * n / best / 1e9;
}

/* forward multiply-adds x 2 of layer l for one image (conv, dense; else 0) */
static double
layer_flops(const Layer *l)
{
	if (l->type == L_CONV)
		return 2.0 * l->oc * l->oh * l->ow * l->ic * l->kh * l->kw;
	if (l->type == L_DENSE)
		return 2.0 * l->units * l->ic;
	return 0;
}

/*
 * ICEML_BENCH_PROFILE=1: time per layer, forward and backward, for training
 * batches of 32 at 2 threads and single images at 1 thread, on stderr.
 */
static void
profile(IcemlNet *net, const float *x, int reps)
{
	int			L = net->nlayers;
	double	   *acc = calloc((size_t) 2 * L, sizeof(double));
	float	   *grads = malloc(sizeof(float) * (size_t) iceml_net_param_count(net));
	double		tot[2] = {0, 0},
				fl[2] = {0, 0};
	Plan	   *plan;

	for (int pass = 0; pass < 2; pass++)
	{
		int			b = pass == 0 ? 32 : 1;
		int			n = pass == 0 ? reps : reps * 20;

		iceml_nn_set_threads(pass == 0 ? 2 : 1);
		plan = nn_plan_create(net, b, pass == 0);
		memset(acc, 0, sizeof(double) * 2 * L);
		for (int r = -1; r < n; r++)
		{
			size_t		first = (size_t) (r < 0 ? 0 : r) * b % (1283 - 32);

			nn_gather(net, plan, x + first * 3 * 75 * 75, NULL, b, NULL);
			if (r == 0)
				memset(acc, 0, sizeof(double) * 2 * L);
			nn_set_profile(acc);
			nn_forward(net, plan, b, pass == 0, (uint64_t) r);
			if (pass == 0)
			{
				for (int k = 0; k < b; k++)
					plan->dout[k] = 0.01f * (k % 2 ? 1 : -1);
				nn_backward(net, plan, b, grads);
			}
			nn_set_profile(NULL);
		}
		fprintf(stderr, "profile: %s, batch %d, %d threads (ms per batch; GFLOP/s)\n",
				pass == 0 ? "training" : "inference", b, pass == 0 ? 2 : 1);
		fprintf(stderr, "  %-8s %9s %7s %9s %7s\n", "layer", "fwd ms", "GF/s", "bwd ms", "GF/s");
		tot[0] = tot[1] = fl[0] = fl[1] = 0;
		for (int i = 0; i < L; i++)
		{
			const Layer *l = &net->layers[i];
			double		f = layer_flops(l) * b,
						fb = (i == 0 ? 1 : 2) * f,
						tf = acc[2 * i] / n,
						tb = acc[2 * i + 1] / n;

			tot[0] += tf;
			tot[1] += tb;
			fl[0] += f;
			fl[1] += fb;
			if (pass == 1)
				fprintf(stderr, "  %-8s %9.3f %7.1f\n", l->name, tf * 1e3, f ? f / tf / 1e9 : 0);
			else
				fprintf(stderr, "  %-8s %9.3f %7.1f %9.3f %7.1f\n", l->name, tf * 1e3,
						f ? f / tf / 1e9 : 0, tb * 1e3, f ? fb / tb / 1e9 : 0);
		}
		fprintf(stderr, "  %-8s %9.3f %7.1f %9.3f %7.1f\n", "total", tot[0] * 1e3, fl[0] / tot[0] / 1e9,
				tot[1] * 1e3, pass == 0 ? fl[1] / tot[1] / 1e9 : 0);
		nn_plan_free(plan);
	}
	free(grads);
	free(acc);
}

int
main(int argc, char **argv)
{
	enum
	{
	N = 1283, HW = 75 * 75, C = 3};
	float	   *x = malloc(sizeof(float) * N * C * HW),
			   *y = malloc(sizeof(float) * N),
				mean[3],
				sd[3],
				prob[64];
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_create(iceml_nn_builtin_spec("statoil_cnn"), err, sizeof(err));
	IcemlTrainConfig cfg;
	IcemlTrainer *tr;
	IcemlChip  *chip = malloc(sizeof(IcemlChip));
	double		t0,
				loss,
				epoch_s = 1e30,
				times[200];
	struct rusage ru;
	int			epochs = argc > 2 ? atoi(argv[2]) : 2;
	const char *forced = getenv("ICEML_KERNELS");
	char		sfx[32] = "";
	double		sgemm;

	for (int i = 0; i < N; i++)
	{
		iceml_synth_chip(1, (uint64_t) i, chip);
		for (int p = 0; p < HW; p++)
		{
			x[(size_t) i * C * HW + p] = chip->band_1[p];
			x[(size_t) i * C * HW + HW + p] = chip->band_2[p];
			x[(size_t) i * C * HW + 2 * HW + p] = (chip->band_1[p] + chip->band_2[p]) * 0.5f;
		}
		y[i] = (float) chip->is_iceberg;
	}
	if (argc > 1 && strcmp(argv[1], "-") != 0)
	{
		FILE	   *f = fopen(argv[1], "wb");

		fwrite(x, sizeof(float), (size_t) N * C * HW, f);
		fwrite(y, sizeof(float), N, f);
		fclose(f);
	}
	if (forced && forced[0])
		snprintf(sfx, sizeof(sfx), "_%s", forced);
	if (net == NULL)
	{
		fprintf(stderr, "engine_bench: %s\n", err);
		return 1;
	}
	fprintf(stderr, "engine_bench: %s\n", iceml_nn_runtime());
	sgemm = sgemm_rate(2048, 2);
	printf("BENCH sgemm_gflops%s %.1f GFLOP/s\n", sfx, sgemm);
	iceml_nn_channel_stats(x, N, C, HW, mean, sd);
	iceml_net_set_normalisation(net, mean, sd);
	iceml_net_init_params(net, 42);
	if (getenv("ICEML_BENCH_PROFILE") && atoi(getenv("ICEML_BENCH_PROFILE")) > 0)
		profile(net, x, 10);
	iceml_train_config_defaults(&cfg);
	iceml_nn_set_threads(2);
	tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
	for (int e = 1; e <= epochs; e++)
	{
		t0 = now();
		iceml_trainer_epoch(tr, x, y, N, e, NULL, NULL, &loss, err, sizeof(err));
		t0 = now() - t0;
		if (t0 < epoch_s)
			epoch_s = t0;
		fprintf(stderr, "epoch %d: %.2f s, loss %.4f\n", e, t0, loss);
	}
	fprintf(stderr, "engine_bench: %s, OPENBLAS_THREAD_TIMEOUT=%s\n", openblas_get_config(),
			getenv("OPENBLAS_THREAD_TIMEOUT") ? getenv("OPENBLAS_THREAD_TIMEOUT") : "(unset)");
	printf("BENCH train_epoch_s%s %.2f s\n", sfx, epoch_s);
	printf("BENCH train_gflops%s %.1f GFLOP/s\n", sfx, 3.0 * iceml_net_forward_flops(net) * N / epoch_s / 1e9);
	printf("BENCH train_sgemm_fraction%s %.2f of sgemm_gflops\n", sfx,
		   3.0 * iceml_net_forward_flops(net) * N / epoch_s / 1e9 / sgemm);
	getrusage(RUSAGE_SELF, &ru);
	printf("BENCH train_peak_rss_mb%s %.0f MB\n", sfx, ru.ru_maxrss / 1024.0);
	iceml_trainer_free(tr);

	/* one image at a time, one thread */
	iceml_nn_set_threads(1);
	for (int r = 0; r < 200; r++)
	{
		t0 = now();
		iceml_net_predict(net, x + (size_t) (r % N) * C * HW, 1, prob, err, sizeof(err));
		times[r] = now() - t0;
	}
	qsort(times, 200, sizeof(double), cmp_double);
	printf("BENCH predict_image_ms%s %.2f ms\n", sfx, times[100] * 1e3);
	printf("BENCH predict_gflops_1t%s %.1f GFLOP/s\n", sfx, iceml_net_forward_flops(net) / times[100] / 1e9);

	/* batches, two threads */
	iceml_nn_set_threads(2);
	{
		float	   *pr = malloc(sizeof(float) * N);

		iceml_net_predict(net, x, 64, pr, err, sizeof(err));
		t0 = now();
		iceml_net_predict(net, x, N, pr, err, sizeof(err));
		t0 = now() - t0;
		printf("BENCH predict_images_per_s%s %.0f images/s\n", sfx, N / t0);
		/* the inference plan those batches ran in (every buffer of a pass) */
		printf("BENCH predict_workspace_mb%s %.1f MB\n", sfx,
			   net->infer->block_floats * sizeof(float) / 1048576.0);
		free(pr);
	}
	iceml_net_free(net);
	free(x);
	free(y);
	free(chip);
	return 0;
}
