/*
 * make_seeds.c - writes the binary seeds of the blob target
 * (corpus/blob/seed_*): a model and a checkpoint of small nets, each with
 * the mode byte of fuzz_blob.c in front (seed_model_v1_*: written in model
 * format 1, before side inputs, and kept).  Run by `make -C test/fuzz seeds`;
 * the output is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iceml_nn.h"

static const char *const specs[] = {
	"{\"input\":[2,6,6],\"layers\":[{\"type\":\"conv2d\",\"filters\":2,\"kernel\":3},"
	"{\"type\":\"batchnorm\"},{\"type\":\"maxpool\",\"size\":2},{\"type\":\"flatten\"},"
	"{\"type\":\"dense\",\"units\":1}]}",
	"{\"input\":[1,4,4],\"layers\":[{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":3,"
	"\"activation\":\"relu\"},{\"type\":\"dropout\",\"rate\":0.5},{\"type\":\"dense\",\"units\":1}]}",
	"{\"input\":[3,8,8],\"layers\":[{\"type\":\"conv2d\",\"filters\":2,\"kernel\":[3,1],\"padding\":\"same\"},"
	"{\"type\":\"relu\"},{\"type\":\"gap\"},{\"type\":\"dense\",\"units\":1,\"activation\":\"sigmoid\"}]}",
	"{\"input\":[2,4,4],\"layers\":[{\"type\":\"gap\"},{\"type\":\"side\",\"inputs\":[\"inc_angle\"]},"
	"{\"type\":\"dense\",\"units\":2,\"activation\":\"relu\"},{\"type\":\"dense\",\"units\":1}]}",
};

static void
write_seed(const char *dir, const char *name, int mode, const void *blob, size_t len)
{
	char		path[512];
	FILE	   *f;
	unsigned char m = (unsigned char) mode;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(&m, 1, 1, f) != 1 || fwrite(blob, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "corpus/blob";
	char		err[ICEML_NN_ERRLEN];

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
	{
		IcemlNet   *net = iceml_net_create(specs[i], err, sizeof(err));
		IcemlTrainConfig cfg;
		IcemlTrainer *tr;
		void	   *blob;
		size_t		len;
		char		name[64];
		float		mean[3] = {-20.0f, -25.0f, -22.5f},
					std[3] = {5.0f, 4.0f, 4.5f};

		if (net == NULL)
		{
			fprintf(stderr, "seed spec %zu: %s\n", i, err);
			return 1;
		}
		iceml_net_init_params(net, 7);
		iceml_net_set_normalisation(net, mean, std);
		if (iceml_net_side_count(net) > 0)
		{
			float		am[1] = {39.0f},
						as[1] = {3.5f};

			iceml_net_set_side_normalisation(net, am, as);
		}
		if (iceml_net_save(net, &blob, &len) != 0)
			return 1;
		snprintf(name, sizeof(name), "seed_model_%zu", i);
		write_seed(dir, name, 0, blob, len);
		snprintf(name, sizeof(name), "seed_model_%zu_crcfix", i);
		write_seed(dir, name, 2, blob, len);
		free(blob);
		if (i == 0)
		{
			/* fuzz_blob.c restores checkpoints into this first net */
			iceml_train_config_defaults(&cfg);
			cfg.batch_size = 2;
			tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
			if (tr == NULL || iceml_trainer_save(tr, &blob, &len) != 0)
				return 1;
			write_seed(dir, "seed_checkpoint", 1, blob, len);
			write_seed(dir, "seed_checkpoint_crcfix", 3, blob, len);
			free(blob);
			iceml_trainer_free(tr);
		}
		iceml_net_free(net);
	}
	return 0;
}
