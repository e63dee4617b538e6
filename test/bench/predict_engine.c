/*
 * predict_engine.c - the engine's own single-image time for the reference
 * CNN (statoil_cnn, one thread, raw input standardised by the net), the
 * yardstick of BENCH predict_sql_ms in predict.sh.  Prints
 * BENCH predict_engine_ms (median of 300).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "iceml_nn.h"
#include "iceml_synth.h"
#include "bench_util.h"

int
main(void)
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
