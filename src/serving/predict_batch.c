/*
 * predict_batch.c - the batched SQL entry points iceml.predict_table() and
 * iceml.predict_batch().
 *
 * Why batches.  iceml_predict() is called once per row, so every row is a
 * one-image forward pass: the engine's sgemms are then thin and its
 * threads idle.  The engine is fastest on batches of images
 * (iceml_net_predict works in batches of 32).  predict_table reads the
 * rows of a relation as the caller, ICEML_PREDICT_CHUNK at a time, builds
 * their input images with PredictFillImage (the same code as
 * iceml_predict) and scores each chunk in one engine call (PredictScore,
 * score.c) over iceml.predict_batch_threads threads.  predict_batch does
 * the same for chips a client sends as two-dimensional arrays.
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "iceml.h"
#include "iceml_pgarray.h"
#include "iceml_predict.h"

int			iceml_predict_batch_threads = 2;

static PredictScratch input_scratch;

/* the input buffer of a batched call: the backend's, unless a caller up the stack has it */
static float *
InputBuffer(size_t floats, bool *own)
{
	if (input_scratch.busy)
	{
		*own = false;
		return palloc(sizeof(float) * floats);
	}
	*own = true;
	input_scratch.busy = true;
	return PredictScratchGet(&input_scratch, floats);
}

/* the threads of a batched call: iceml.predict_threads inside a parallel query */
static int
BatchThreads(void)
{
	return IsInParallelMode() ? iceml_predict_threads : iceml_predict_batch_threads;
}

/* ---- iceml.predict_table ------------------------------------------------------ */

typedef struct TableScan
{
	const char *relname;
	const char *key;			/* of the row being read, for the error context */
} TableScan;

static void
TableScanContext(void *arg)
{
	TableScan  *ts = (TableScan *) arg;

	if (ts->key)
		errcontext("iceml.predict_table, row with key %s of %s", ts->key, ts->relname);
}

/*
 * A column of the relation, quoted: it must exist, and be of type `want`
 * (ANYOID: any type; InvalidOid: a number).
 */
static char *
ColumnArg(Oid relid, const char *relname, const char *argname, const char *col, Oid want)
{
	AttrNumber	att = get_attnum(relid, col);
	Oid			type;

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("iceml.predict_table: %s column \"%s\" of %s does not exist", argname, col, relname)));
	type = get_atttype(relid, att);
	if (OidIsValid(want) && want != ANYOID && type != want)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("iceml.predict_table: %s column \"%s\" of %s is %s, not %s",
						argname, col, relname, format_type_be(type), format_type_be(want))));
	if (!OidIsValid(want) && !(type == FLOAT4OID || type == FLOAT8OID || type == NUMERICOID ||
							   type == INT2OID || type == INT4OID))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("iceml.predict_table: %s column \"%s\" of %s is %s, not a number",
						argname, col, relname, format_type_be(type))));
	return pstrdup(quote_identifier(col));
}

/* The relation's single-column primary key (for key => NULL). */
static char *
PrimaryKeyColumn(Oid relid, const char *relname)
{
	Datum		arg = ObjectIdGetDatum(relid);
	Oid			argtype = OIDOID;
	char	   *col = NULL;

	if (SPI_execute_with_args("SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_index i"
							  "  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid"
							  "   AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)"
							  " WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary"
							  "   AND i.indnatts OPERATOR(pg_catalog.=) 1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "iceml: primary key lookup failed");
	if (SPI_processed == 1)
		col = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (col == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iceml.predict_table: %s has no single-column primary key", relname),
				 errhint("Name the column that identifies a row: iceml.predict_table(model, relation, key => 'id').")));
	return col;
}

static const char *
TextArg(FunctionCallInfo fcinfo, int i, const char *argname)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iceml.predict_table: %s must not be NULL", argname)));
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/*
 * iceml.predict_table(model, relation regclass, key text DEFAULT NULL,
 *     band_1 text DEFAULT 'band_1', band_2 text DEFAULT 'band_2',
 *     inc_angle text DEFAULT NULL)
 *   RETURNS TABLE (key text, probability real)
 *
 * Reads the relation as the caller (so with the caller's privileges and
 * row-level security), one row per chip, and returns each row's key and
 * probability (NULL when a band is NULL), in the relation's scan order.
 * inc_angle NULL: the column inc_angle when the relation has one.
 */
static Datum
PredictTable(FunctionCallInfo fcinfo, const char *name, int64 model_id)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid;
	char	   *relname;
	char	   *qualified;
	char	   *keycol,
			   *b1col,
			   *b2col,
			   *anglecol = NULL;
	IcemlModel *m;
	StringInfoData q;
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext batchcxt;
	MemoryContext oldcxt;
	ErrorContextCallback errcb;
	TableScan	ts = {0};
	float	   *x;
	float		prob[ICEML_PREDICT_CHUNK];
	size_t		img;
	int			hw;
	bool		logging = iceml_log_inferences > 0;
	volatile bool own_x = false;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iceml.predict_table: relation must not be NULL")));
	relid = PG_GETARG_OID(1);
	relname = get_rel_name(relid);
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("iceml.predict_table: relation with OID %u does not exist", relid)));
	qualified = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
	/* as the relation is named in messages: schema-qualified when not visible */
	relname = DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)));

	/* the model first: an unknown deployment is the first thing to hear about */
	m = PredictGetModel(name, model_id);
	PredictPin(m);
	hw = m->h * m->w;
	img = (size_t) m->c * hw;

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	keycol = PG_ARGISNULL(2) ? PrimaryKeyColumn(relid, relname) : (char *) TextArg(fcinfo, 2, "key");
	keycol = ColumnArg(relid, relname, "key", keycol, ANYOID);
	b1col = ColumnArg(relid, relname, "band_1", TextArg(fcinfo, 3, "band_1"), FLOAT4ARRAYOID);
	b2col = ColumnArg(relid, relname, "band_2", TextArg(fcinfo, 4, "band_2"), FLOAT4ARRAYOID);
	if (!PG_ARGISNULL(5))
		anglecol = ColumnArg(relid, relname, "inc_angle", TextArg(fcinfo, 5, "inc_angle"), InvalidOid);
	else if (get_attnum(relid, "inc_angle") != InvalidAttrNumber)
		anglecol = ColumnArg(relid, relname, "inc_angle", "inc_angle", InvalidOid);

	initStringInfo(&q);
	appendStringInfo(&q, "SELECT (%s)::pg_catalog.text, %s, %s, (%s)::pg_catalog.float4 FROM %s",
					 keycol, b1col, b2col, anglecol ? anglecol : "NULL", qualified);
	/* as the caller: a role without SELECT on the relation gets 42501 here */
	plan = SPI_prepare(q.data, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "iceml.predict_table: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);

	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "iceml predict_table batch",
									 ALLOCSET_DEFAULT_SIZES);
	{
		bool		own;

		x = InputBuffer(img * ICEML_PREDICT_CHUNK, &own);
		own_x = own;
	}
	ts.relname = relname;
	errcb.callback = TableScanContext;
	errcb.arg = &ts;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PG_TRY();
	{
	for (;;)
	{
		SPITupleTable *tt;
		uint64		rows;
		int			nb = 0;
		int			slot[ICEML_PREDICT_CHUNK];	/* row -> image, -1 for NULL bands */
		const float *b1s[ICEML_PREDICT_CHUNK];
		const float *b2s[ICEML_PREDICT_CHUNK];
		float		angles[ICEML_PREDICT_CHUNK];	/* NaN: missing */
		instr_time	start;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, ICEML_PREDICT_CHUNK);
		rows = SPI_processed;
		tt = SPI_tuptable;
		if (rows == 0)
			break;
		oldcxt = MemoryContextSwitchTo(batchcxt);
		for (uint64 r = 0; r < rows; r++)
		{
			bool		n1,
						n2,
						nk;
			Datum		k = SPI_getbinval(tt->vals[r], tt->tupdesc, 1, &nk);
			Datum		d1 = SPI_getbinval(tt->vals[r], tt->tupdesc, 2, &n1);
			Datum		d2 = SPI_getbinval(tt->vals[r], tt->tupdesc, 3, &n2);

			ts.key = nk ? "NULL" : TextDatumGetCString(k);
			slot[r] = -1;
			if (n1 || n2)
				continue;
			b1s[nb] = PredictCheckBand(DatumGetArrayTypeP(d1), "iceml.predict_table", "band_1", hw);
			b2s[nb] = PredictCheckBand(DatumGetArrayTypeP(d2), "iceml.predict_table", "band_2", hw);
			{
				bool		na;
				Datum		da = SPI_getbinval(tt->vals[r], tt->tupdesc, 4, &na);

				angles[nb] = na ? NAN : PredictCheckAngle(DatumGetFloat4(da), "iceml.predict_table", "inc_angle");
			}
			PredictFillImage(m, x + (size_t) nb * img, b1s[nb], b2s[nb]);
			slot[r] = nb++;
		}
		ts.key = NULL;
		INSTR_TIME_SET_CURRENT(start);
		if (nb > 0)
			PredictScore(m, x, angles, nb, prob, BatchThreads(), "iceml.predict_table");
		MemoryContextSwitchTo(oldcxt);
		for (uint64 r = 0; r < rows; r++)
		{
			Datum		v[2];
			bool		n[2] = {false, slot[r] < 0};
			bool		a_null;
			Datum		a = SPI_getbinval(tt->vals[r], tt->tupdesc, 4, &a_null);

			v[0] = SPI_getbinval(tt->vals[r], tt->tupdesc, 1, &n[0]);
			v[1] = Float4GetDatum(slot[r] < 0 ? 0 : prob[slot[r]]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
			if (logging && slot[r] >= 0)
				MonitorRecord(m, name, b1s[slot[r]], b2s[slot[r]], hw, !a_null,
							  a_null ? 0 : DatumGetFloat4(a), prob[slot[r]], start);
		}
		SPI_freetuptable(tt);
		MemoryContextReset(batchcxt);
	}
	}
	PG_FINALLY();
	{
		if (own_x)
			input_scratch.busy = false;
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
	SPI_cursor_close(portal);
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(iceml_predict_table_name);
Datum
iceml_predict_table_name(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iceml.predict_table: model must not be NULL")));
	return PredictTable(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), 0);
}

PG_FUNCTION_INFO_V1(iceml_predict_table_id);
Datum
iceml_predict_table_id(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iceml.predict_table: model must not be NULL")));
	return PredictTable(fcinfo, NULL, PG_GETARG_INT64(0));
}

/* ---- iceml.predict_batch ------------------------------------------------------ */

/*
 * A batch of bands: a two-dimensional real[] of n rows of hw values, no
 * NULLs, all finite.  Returns its data and sets *n.
 */
static const float *
BatchBandArg(ArrayType *arr, const char *argname, int hw, int *n)
{
	const float *v;
	int			total;

	if (ARR_ELEMTYPE(arr) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("iceml.predict_batch: %s must be an array of real, not of %s",
						argname, format_type_be(ARR_ELEMTYPE(arr)))));
	if (ARR_NDIM(arr) != 2 || ARR_DIMS(arr)[1] != hw)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iceml.predict_batch: %s must be a two-dimensional array of chips of %d values, not %s",
						argname, hw,
						ARR_NDIM(arr) == 2 ? psprintf("%d x %d", ARR_DIMS(arr)[0], ARR_DIMS(arr)[1])
						: psprintf("%d-dimensional", ARR_NDIM(arr))),
				 errhint("Aggregate the chips of the rows: array_agg(band_1) gives one row per chip.")));
	if (ARR_HASNULL(arr) && array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("iceml.predict_batch: %s has NULL elements", argname)));
	*n = ARR_DIMS(arr)[0];
	total = ArrayGetNItems(2, ARR_DIMS(arr));
	v = (const float *) ARR_DATA_PTR(arr);
	for (int i = 0; i < total; i++)
		if (!isfinite(v[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("iceml.predict_batch: %s has a non-finite value (%g) in chip %d at index %d",
							argname, v[i], i / hw + 1, i % hw + 1)));
	return v;
}

/* Score n chips of two bands each, a chunk at a time: memory bounded whatever n. */
static void
ScoreBands(IcemlModel *m, const float *b1, const float *b2, const float *angles, int n,
		   float *prob)
{
	int			hw = m->h * m->w;
	size_t		img = (size_t) m->c * hw;
	bool		own;
	float	   *x = InputBuffer(img * ICEML_PREDICT_CHUNK, &own);
	volatile bool own_x = own;

	PG_TRY();
	{
		for (int at = 0; at < n; at += ICEML_PREDICT_CHUNK)
		{
			int			b = Min(n - at, ICEML_PREDICT_CHUNK);

			for (int i = 0; i < b; i++)
				PredictFillImage(m, x + (size_t) i * img, b1 + (size_t) (at + i) * hw,
								 b2 + (size_t) (at + i) * hw);
			PredictScore(m, x, angles ? angles + at : NULL, b, prob + at, BatchThreads(),
						 "iceml.predict_batch");
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		if (own_x)
			input_scratch.busy = false;
	}
	PG_END_TRY();
}

/*
 * iceml.predict_batch(model, band_1 real[][], band_2 real[][],
 *     inc_angle real[] DEFAULT NULL) RETURNS real[]:
 * the probabilities of n chips sent as n x (h*w) arrays, in order.
 */
static Datum
PredictBatch(FunctionCallInfo fcinfo, const char *name, int64 model_id)
{
	IcemlModel *m;
	const float *b1,
			   *b2;
	int			n1,
				n2,
				hw;
	float	   *prob;
	ArrayType  *angles = NULL;
	ArrayType  *out;
	instr_time	start;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	INSTR_TIME_SET_CURRENT(start);
	m = PredictGetModel(name, model_id);
	hw = m->h * m->w;
	b1 = BatchBandArg(PG_GETARG_ARRAYTYPE_P(1), "band_1", hw, &n1);
	b2 = BatchBandArg(PG_GETARG_ARRAYTYPE_P(2), "band_2", hw, &n2);
	if (n1 != n2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("iceml.predict_batch: band_1 has %d chips but band_2 has %d", n1, n2)));
	if (!PG_ARGISNULL(3))
	{
		angles = PG_GETARG_ARRAYTYPE_P(3);
		if (ARR_ELEMTYPE(angles) != FLOAT4OID || ARR_NDIM(angles) != 1 || ARR_DIMS(angles)[0] != n1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("iceml.predict_batch: inc_angle must be a real[] of one angle per chip (%d), or NULL", n1)));
	}
	prob = palloc(sizeof(float) * n1);
	{
		bool	   *anull = NULL;
		Datum	   *avals = NULL;
		int			na = 0;

		float	   *av = NULL;	/* NaN: missing */

		if (angles)
		{
			deconstruct_array(angles, FLOAT4OID, 4, true, TYPALIGN_INT, &avals, &anull, &na);
			av = palloc(sizeof(float) * n1);
			for (int i = 0; i < na; i++)
				av[i] = anull[i] ? NAN : PredictCheckAngle(DatumGetFloat4(avals[i]), "iceml.predict_batch", "inc_angle");
		}
		ScoreBands(m, b1, b2, av, n1, prob);
		if (iceml_log_inferences > 0)
			for (int i = 0; i < n1; i++)
				MonitorRecord(m, name, b1 + (size_t) i * hw, b2 + (size_t) i * hw, hw,
							  angles && !anull[i], angles && !anull[i] ? DatumGetFloat4(avals[i]) : 0,
							  prob[i], start);
	}
	{
		float	   *data;

		out = IcemlNewRealArray(n1, &data);
		memcpy(data, prob, sizeof(float) * n1);
	}
	PG_RETURN_ARRAYTYPE_P(out);
}

PG_FUNCTION_INFO_V1(iceml_predict_batch_name);
Datum
iceml_predict_batch_name(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return PredictBatch(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), 0);
}

PG_FUNCTION_INFO_V1(iceml_predict_batch_id);
Datum
iceml_predict_batch_id(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return PredictBatch(fcinfo, NULL, PG_GETARG_INT64(0));
}

void
PredictBatchInit(void)
{
	DefineCustomIntVariable("iceml.predict_batch_threads",
							"Threads the engine uses for one iceml.predict_table() or iceml.predict_batch() call.",
							"Inside a parallel query iceml.predict_threads applies instead.",
							&iceml_predict_batch_threads,
							2, 1, 64,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}
