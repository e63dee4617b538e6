/*
 * predict.c - iceml_predict(): one chip scored by a deployment (by name) or
 * a model (by id), from the backend's model cache (model_cache.c), built
 * into the model's input (predict_input.c) and scored (score.c).
 *
 * Input.  The model's channels say what to build from the arguments:
 * band_1, band_2, and band_avg = (band_1 + band_2) / 2 exactly as training
 * computes it; the net applies the standardisation it stores (iceml_nn.h).
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"

#include "iceml.h"
#include "iceml_predict.h"
#include "iceml_worker.h"

static Datum
Predict(FunctionCallInfo fcinfo, const char *name, int64 model_id)
{
	IcemlModel *m;
	ArrayType  *a1,
			   *a2;
	const float *b1,
			   *b2;
	float		angle = 0;
	bool		has_angle = !PG_ARGISNULL(3);
	float		p;
	instr_time	start;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	INSTR_TIME_SET_CURRENT(start);
	if (has_angle)
	{
		angle = PredictCheckAngle(PG_GETARG_FLOAT4(3), "iceml_predict", "argument inc_angle");
	}
	m = PredictGetModel(name, model_id);
	a1 = PG_GETARG_ARRAYTYPE_P(1);
	a2 = PG_GETARG_ARRAYTYPE_P(2);
	b1 = PredictCheckBand(a1, "iceml_predict", "band_1", m->h * m->w);
	b2 = PredictCheckBand(a2, "iceml_predict", "band_2", m->h * m->w);
	PredictFillInput(m, b1, b2);
	m->angle = has_angle ? angle : NAN;	/* a NULL angle is a missing one */
	p = PredictRun(m, m->input);
	if (iceml_log_inferences > 0)
		MonitorRecord(m, name, b1, b2, m->h * m->w, has_angle, angle, p, start);
	PG_RETURN_FLOAT4(p);
}

PG_FUNCTION_INFO_V1(iceml_predict_name);
Datum
iceml_predict_name(PG_FUNCTION_ARGS)
{
	text	   *name;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	name = PG_GETARG_TEXT_PP(0);
	return Predict(fcinfo, text_to_cstring(name), 0);
}

PG_FUNCTION_INFO_V1(iceml_predict_id);
Datum
iceml_predict_id(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return Predict(fcinfo, NULL, PG_GETARG_INT64(0));
}

/*
 * iceml._untrained_weights(spec, seed, mean, std): a serialised net with
 * seeded initial weights and the given normalisation.  Tests and demos use
 * it to have deterministic models without a training worker.
 */
PG_FUNCTION_INFO_V1(iceml_untrained_weights);
Datum
iceml_untrained_weights(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		seed = PG_GETARG_INT64(1);
	ArrayType  *mean = PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *std = PG_GETARG_ARRAYTYPE_P(3);
	char		err[ICEML_NN_ERRLEN];
	IcemlNet   *net;
	int			c,
				h,
				w;
	void	   *blob;
	size_t		len;
	bytea	   *out;

	net = iceml_net_create(spec, err, sizeof(err));
	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid architecture spec: %s", err)));
	iceml_net_input_shape(net, &c, &h, &w);
	/*
	 * He-normal, the training default before issue 16: the tests' figures
	 * come from these weights and need not move with the training default
	 */
	iceml_net_init_params_scheme(net, (uint64_t) seed, ICEML_INIT_HE_NORMAL);
	if (ARR_NDIM(mean) != 1 || ARR_DIMS(mean)[0] != c || ARR_HASNULL(mean) ||
		ARR_NDIM(std) != 1 || ARR_DIMS(std)[0] != c || ARR_HASNULL(std) ||
		ARR_ELEMTYPE(mean) != FLOAT4OID || ARR_ELEMTYPE(std) != FLOAT4OID)
	{
		iceml_net_free(net);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mean and std must be real[] of %d values without NULLs", c)));
	}
	iceml_net_set_normalisation(net, (const float *) ARR_DATA_PTR(mean),
								(const float *) ARR_DATA_PTR(std));
	if (iceml_net_save(net, &blob, &len) != 0)
	{
		iceml_net_free(net);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory saving the net")));
	}
	iceml_net_free(net);
	out = palloc(VARHDRSZ + len);
	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), blob, len);
	free(blob);
	PG_RETURN_BYTEA_P(out);
}

void
PredictInit(void)
{
	ModelCacheInit();
	PredictBatchInit();
}
