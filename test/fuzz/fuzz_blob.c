/*
 * fuzz_blob.c - libFuzzer target: the loaders of model blobs
 * (iceml_net_load: iceml.models.weights) and of checkpoints
 * (iceml_trainer_restore: iceml.checkpoints), both read back from catalog
 * rows that a damaged disk, a restore or a privileged user may have changed.
 *
 * The first byte chooses: bit 0 model (0) or checkpoint (1); bit 1 set
 * rewrites the blob's trailing CRC-32 so that mutations get past the checksum
 * into the structure behind it.  The rest is the blob.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iceml_nn.h"
#include "nn_internal.h"

#define FUZZ_MAX_INPUT	(1 << 14)

/* the net checkpoints are restored into: small, as in the seeds */
static const char ckpt_spec[] =
"{\"input\":[2,6,6],\"layers\":[{\"type\":\"conv2d\",\"filters\":2,\"kernel\":3},"
"{\"type\":\"batchnorm\"},{\"type\":\"maxpool\",\"size\":2},{\"type\":\"flatten\"},"
"{\"type\":\"dense\",\"units\":1}]}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		err[ICEML_NN_ERRLEN];
	unsigned char *blob;
	size_t		len;
	int			mode;

	if (size < 1)
		return 0;
	mode = data[0];
	len = size - 1;
	blob = malloc(len ? len : 1);
	if (blob == NULL)
		return 0;
	memcpy(blob, data + 1, len);
	if ((mode & 2) && len >= 4)
	{
		uint32_t	crc = nn_crc32(blob, len - 4);

		memcpy(blob + len - 4, &crc, 4);
	}
	err[0] = '\0';
	if ((mode & 1) == 0)
	{
		IcemlNet   *net = iceml_net_load(blob, len, err, sizeof(err));

		if (net == NULL && err[0] == '\0')
			abort();
		if (net)
		{
			int			c, h, w;
			void	   *again;
			size_t		againlen;

			iceml_net_input_shape(net, &c, &h, &w);
			if ((int64_t) c * h * w <= FUZZ_MAX_INPUT)
			{
				float	   *x = calloc((size_t) c * h * w, sizeof(float));
				float		p;

				if (x)
					(void) iceml_net_predict(net, x, 1, &p, err, sizeof(err));
				free(x);
			}
			/* what loads saves and loads again */
			if (iceml_net_save(net, &again, &againlen) == 0)
			{
				IcemlNet   *net2 = iceml_net_load(again, againlen, err, sizeof(err));

				if (net2 == NULL)
				{
					fprintf(stderr, "a saved model does not load: %s\n", err);
					abort();
				}
				iceml_net_free(net2);
				free(again);
			}
			iceml_net_free(net);
		}
	}
	else
	{
		static IcemlNet *net;
		static IcemlTrainer *tr;

		if (net == NULL)
		{
			IcemlTrainConfig cfg;

			net = iceml_net_create(ckpt_spec, err, sizeof(err));
			if (net == NULL)
				abort();
			iceml_net_init_params(net, 1);
			iceml_train_config_defaults(&cfg);
			cfg.batch_size = 2;
			tr = iceml_trainer_create(net, &cfg, err, sizeof(err));
			if (tr == NULL)
				abort();
		}
		if (iceml_trainer_restore(tr, blob, len, err, sizeof(err)) != 0 && err[0] == '\0')
			abort();
	}
	free(blob);
	return 0;
}
