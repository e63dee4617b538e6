/*
 * memory.c - what a net costs before it exists: a description of a spec
 * without its parameters, and the bytes a model, an inference plan and a
 * trainer for a batch size take.  The extension checks its limits with
 * these before it allocates anything (iceml.max_model_mb,
 * iceml.train_memory_mb).
 */
#include <stdlib.h>

#include "nn_internal.h"

/* the batch iceml_net_predict works in (net.c) */
#define INFER_BATCH 32

IcemlNet *
iceml_net_describe(const char *spec_json, char *err, size_t errlen)
{
	return nn_build_shapes(spec_json, err, errlen);
}

void
iceml_net_memory(const IcemlNet *net, int batch_size, IcemlNetMemory *out)
{
	double		p = (double) net->nparams;
	double		s = (double) net->nstate;
	double		f = (double) sizeof(float);
	double		model = (p + s + 2.0 * net->c) * f;
	double		blob = (p + s) * f;
	size_t		infer = nn_plan_floats(net, INFER_BATCH, 0);
	size_t		train = nn_plan_floats(net, batch_size < 1 ? 1 : batch_size, 1);

	out->parameters = (int64_t) (net->nparams + net->nstate);
	out->model_bytes = model;
	out->predict_bytes = model + (double) infer * f;
	/*
	 * A trainer: the model, gradients and two optimiser moments (3 floats a
	 * parameter, whatever the optimiser), the training plan for the batch,
	 * the inference plan of the accuracy and validation passes, and the
	 * copies an epoch makes: the checkpoint (weights, state, moments) and
	 * the best epoch's model.
	 */
	out->train_bytes = model + 3.0 * p * f + (double) train * f + (double) infer * f +
		(3.0 * p + s) * f + blob;
}
