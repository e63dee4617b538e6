/*
 * engine_bench.c - the reference CNN on 1283 chips of 3x75x75 (synthetic:
 * band_1, band_2, band_avg), batch 32, Adam.  Prints BENCH lines.
 * Writes the chips to a file for torch_cnn.py when given a path.
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

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
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
	iceml_nn_channel_stats(x, N, C, HW, mean, sd);
	iceml_net_set_normalisation(net, mean, sd);
	iceml_net_init_params(net, 42);
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
	printf("BENCH train_epoch_s %.2f s\n", epoch_s);
	printf("BENCH train_gflops %.1f GFLOP/s\n", 3.0 * iceml_net_forward_flops(net) * N / epoch_s / 1e9);
	getrusage(RUSAGE_SELF, &ru);
	printf("BENCH train_peak_rss_mb %.0f MB\n", ru.ru_maxrss / 1024.0);
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
	printf("BENCH predict_image_ms %.2f ms\n", times[100] * 1e3);
	printf("BENCH predict_gflops_1t %.1f GFLOP/s\n", iceml_net_forward_flops(net) / times[100] / 1e9);

	/* batches, two threads */
	iceml_nn_set_threads(2);
	{
		float	   *pr = malloc(sizeof(float) * N);

		iceml_net_predict(net, x, 64, pr, err, sizeof(err));
		t0 = now();
		iceml_net_predict(net, x, N, pr, err, sizeof(err));
		t0 = now() - t0;
		printf("BENCH predict_images_per_s %.0f images/s\n", N / t0);
		free(pr);
	}
	iceml_net_free(net);
	free(x);
	free(y);
	free(chip);
	return 0;
}
