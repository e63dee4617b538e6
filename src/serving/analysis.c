/*
 * analysis.c - the metrics of iceml.evaluate() and iceml.evaluate_slices():
 * the engine's own iceml_metrics_compute, so that an evaluation reports
 * exactly what training reported for its validation split.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "iceml_nn.h"
#include "iceml_predict.h"

static const float *
MetricsArray(ArrayType *a, const char *argname, int *n)
{
	if (ARR_ELEMTYPE(a) != FLOAT4OID || ARR_NDIM(a) > 1 ||
		(ARR_HASNULL(a) && array_contains_nulls(a)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iceml.binary_metrics: %s must be a one-dimensional real[] without NULLs", argname)));
	*n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
	return (const float *) ARR_DATA_PTR(a);
}

static void
AppendNumber(StringInfo s, const char *key, double v)
{
	if (isfinite(v))
		appendStringInfo(s, "\"%s\": %.9g, ", key, v);
	else
		appendStringInfo(s, "\"%s\": null, ", key);
}

/*
 * iceml.binary_metrics(prob real[], label real[], threshold float8) RETURNS jsonb:
 * n, log_loss, accuracy, precision, recall, f1, roc_auc, confusion, with the
 * keys iceml.models.metrics uses.
 */
PG_FUNCTION_INFO_V1(iceml_metrics);
Datum
iceml_metrics(PG_FUNCTION_ARGS)
{
	int			n,
				ny;
	const float *p = MetricsArray(PG_GETARG_ARRAYTYPE_P(0), "prob", &n);
	const float *y = MetricsArray(PG_GETARG_ARRAYTYPE_P(1), "label", &ny);
	double		threshold = PG_GETARG_FLOAT8(2);
	IcemlMetrics m;
	StringInfoData s;

	if (n != ny)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iceml.binary_metrics: %d probabilities but %d labels", n, ny)));
	for (int i = 0; i < n; i++)
		if (!(p[i] >= 0 && p[i] <= 1) || (y[i] != 0 && y[i] != 1))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("iceml.binary_metrics: element %d is (%g, %g); probabilities must be in [0, 1] and labels 0 or 1",
							i + 1, p[i], y[i])));
	iceml_metrics_compute(p, y, n, threshold, &m);
	initStringInfo(&s);
	appendStringInfo(&s, "{\"n\": %lld, ", (long long) m.n);
	AppendNumber(&s, "log_loss", m.log_loss);
	AppendNumber(&s, "accuracy", m.accuracy);
	AppendNumber(&s, "precision", m.precision);
	AppendNumber(&s, "recall", m.recall);
	AppendNumber(&s, "f1", m.f1);
	AppendNumber(&s, "roc_auc", m.auc);
	appendStringInfo(&s, "\"threshold\": %.9g, \"confusion\": {\"tp\": %lld, \"fp\": %lld, \"tn\": %lld, \"fn\": %lld}}",
					 threshold, (long long) m.tp, (long long) m.fp, (long long) m.tn, (long long) m.fn);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
