/*
 * fuzz_spec.c - libFuzzer target: the architecture spec parser
 * (iceml_net_create, src/nn/spec.c), which reads the JSON text a user gives
 * iceml.create_architecture() and the spec stored in every model blob.
 *
 * Oracles besides the sanitizers: a spec that parses has a canonical form
 * that parses again to the same canonical form and parameter count, and a
 * small net runs a forward pass on a zero image.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iceml_nn.h"

/* forward passes only for nets this small (floats per image) */
#define FUZZ_MAX_INPUT	(1 << 14)
#define FUZZ_MAX_PARAMS	(1 << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		err[ICEML_NN_ERRLEN];
	char	   *text = malloc(size + 1);
	IcemlNet   *net;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	net = iceml_net_create(text, err, sizeof(err));
	free(text);
	if (net == NULL)
	{
		if (err[0] == '\0')
			abort();			/* a refusal must say why */
		return 0;
	}
	{
		char	   *canon = iceml_net_spec_json(net);
		IcemlNet   *again;
		char	   *canon2;

		if (canon == NULL)
			abort();
		again = iceml_net_create(canon, err, sizeof(err));
		if (again == NULL)
		{
			fprintf(stderr, "canonical spec does not parse: %s\n%s\n", err, canon);
			abort();
		}
		canon2 = iceml_net_spec_json(again);
		if (strcmp(canon, canon2) != 0 ||
			iceml_net_param_count(net) != iceml_net_param_count(again))
		{
			fprintf(stderr, "canonical spec is not stable:\n%s\n%s\n", canon, canon2);
			abort();
		}
		free(canon);
		free(canon2);
		iceml_net_free(again);
	}
	{
		int			c, h, w;

		iceml_net_input_shape(net, &c, &h, &w);
		if ((int64_t) c * h * w <= FUZZ_MAX_INPUT &&
			iceml_net_param_count(net) <= FUZZ_MAX_PARAMS)
		{
			float	   *x = calloc((size_t) c * h * w, sizeof(float));
			float		p = -1.0f;

			iceml_net_init_params(net, 42);
			if (x && iceml_net_predict(net, x, 1, &p, err, sizeof(err)) == 0 &&
				!(p >= 0.0f && p <= 1.0f))
			{
				fprintf(stderr, "probability %g out of [0, 1]\n", p);
				abort();
			}
			free(x);
		}
	}
	iceml_net_free(net);
	return 0;
}
