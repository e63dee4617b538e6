/*
 * predict_engine.c - the engine's own figures for the reference CNN
 * (statoil_cnn, raw input standardised by the net), the yardsticks of the
 * SQL figures in predict.sh:
 *   predict_engine            BENCH predict_engine_ms: one image, one
 *                             thread (median of 300)
 *   predict_engine batch [T [P]]  BENCH predict_engine_batch_images_per_s:
 *                             1283 images in one iceml_net_predict call
 *                             on T threads (2), as engine_bench measures
 *                             predict_images_per_s, P times over (1): the
 *                             SQL figure it is held against takes seconds,
 *                             and so should its yardstick on a VM whose
 *                             speed moves from one second to the next
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iceml_nn.h"
#include "iceml_synth.h"
#include "bench_util.h"

static int
batch(int threads, int passes)
{
	enum
	{
	HW = 75 * 75, N = 1283};
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_create(iceml_nn_builtin_spec("statoil_cnn"), err, sizeof(err));
	IcemlChip  *chip = malloc(sizeof(IcemlChip));
	float	   *x = malloc(sizeof(float) * 3 * HW * N);
	float	   *p = malloc(sizeof(float) * N);
	float		mean[3] = {-20, -27, -24},
				sd[3] = {3, 1, 2};
	double		t0;

	if (net == NULL || x == NULL || p == NULL)
	{
		fprintf(stderr, "predict_engine: %s\n", net ? "out of memory" : err);
		return 1;
	}
	iceml_net_init_params(net, 1);
	iceml_net_set_normalisation(net, mean, sd);
	iceml_nn_set_threads(threads);
	for (int n = 0; n < N; n++)
	{
		float	   *xi = x + (size_t) n * 3 * HW;

		iceml_synth_chip(1, n, chip);
		for (int i = 0; i < HW; i++)
		{
			xi[i] = chip->band_1[i];
			xi[HW + i] = chip->band_2[i];
			xi[2 * HW + i] = (chip->band_1[i] + chip->band_2[i]) / 2.0f;
		}
	}
	iceml_net_predict(net, x, 64, p, err, sizeof(err));
	t0 = now();
	for (int i = 0; i < passes; i++)
		iceml_net_predict(net, x, N, p, err, sizeof(err));
	t0 = now() - t0;
	printf("BENCH predict_engine_batch_images_per_s %.0f images/s\n", (double) N * passes / t0);
	iceml_net_free(net);
	free(chip);
	free(x);
	free(p);
	return 0;
}

int
main(int argc, char **argv)
{
	enum
	{
	HW = 75 * 75, RUNS = 300};
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net = iceml_net_create(iceml_nn_builtin_spec("statoil_cnn"), err, sizeof(err));
	IcemlChip  *chip = malloc(sizeof(IcemlChip));
	float	   *x = malloc(sizeof(float) * 3 * HW);
	float		mean[3] = {-20, -27, -24},
				sd[3] = {3, 1, 2},
				p;
	double		times[RUNS];

	if (argc > 1 && strcmp(argv[1], "batch") == 0)
		return batch(argc > 2 ? atoi(argv[2]) : 2, argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 1);
	if (net == NULL)
	{
		fprintf(stderr, "predict_engine: %s\n", err);
		return 1;
	}
	iceml_net_init_params(net, 1);
	iceml_net_set_normalisation(net, mean, sd);
	iceml_nn_set_threads(1);
	iceml_synth_chip(1, 0, chip);
	for (int i = 0; i < HW; i++)
	{
		x[i] = chip->band_1[i];
		x[HW + i] = chip->band_2[i];
		x[2 * HW + i] = (chip->band_1[i] + chip->band_2[i]) / 2.0f;
	}
	for (int r = 0; r < RUNS; r++)
	{
		double		t0 = now();

		iceml_net_predict(net, x, 1, &p, err, sizeof(err));
		times[r] = now() - t0;
	}
	qsort(times, RUNS, sizeof(double), cmp_double);
	printf("BENCH predict_engine_ms %.3f ms\n", times[RUNS / 2] * 1e3);
	iceml_net_free(net);
	free(chip);
	free(x);
	return 0;
}
