/*
 * shard_stats.c - statistics of sharded feature groups: each node computes
 * mergeable partial statistics of its rows (iceml.shard_statistics,
 * iceml.shard_histogram), the coordinator merges them exactly (counts,
 * moments, min/max, HyperLogLog registers, histograms over common bins).
 * See shard.c for nodes and connections.
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "iceml.h"
#include "iceml_catalog.h"
#include "iceml_fs.h"
#include "iceml_shard.h"
#include "iceml_stats.h"

/* ---- statistics: the node's side ----------------------------------------- */

static Relation
OpenReadableGroup(Oid relid)
{
	Relation	rel;

	if (!IsFeatureGroup(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" is not a feature group",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)))),
				 errhint("Feature groups are created by iceml.create_feature_group and listed in iceml.feature_groups.")));
	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("feature group \"%s\" is not a table on this server", RelationGetRelationName(rel)),
				 errhint("Node statistics are computed on the node that holds the rows.")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for feature group \"%s\"", RelationGetRelationName(rel))));
	if (check_enable_rls(relid, GetUserId(), false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot summarise feature group \"%s\": row-level security applies to role \"%s\"",
						RelationGetRelationName(rel), GetUserNameFromId(GetUserId(), false))));
	return rel;
}

static void
AppendDouble(StringInfo s, const char *key, double v, bool present)
{
	if (present && isfinite(v))
		appendStringInfo(s, ", \"%s\": %.17g", key, v);
	else
		appendStringInfo(s, ", \"%s\": null", key);
}

static void
AppendNodeState(StringInfo s, FeatStats *f, const char *kind, Acc *a, bool numeric, bool *first)
{
	appendStringInfoString(s, *first ? "" : ", ");
	*first = false;
	appendStringInfoString(s, "{\"feature\": ");
	escape_json(s, f->f.name);
	appendStringInfo(s, ", \"kind\": \"%s\", \"numeric\": %s, \"nonnull_rows\": " INT64_FORMAT
					 ", \"count\": " INT64_FORMAT ", \"nfinite\": " INT64_FORMAT,
					 kind, numeric ? "true" : "false", f->nonnull_rows, a->count, a->nfinite);
	AppendDouble(s, "mean", a->mean, numeric && a->nfinite > 0);
	AppendDouble(s, "m2", a->m2, numeric && a->nfinite > 0);
	AppendDouble(s, "min", a->min, numeric && a->nfinite > 0);
	AppendDouble(s, "max", a->max, numeric && a->nfinite > 0);
	appendStringInfoString(s, ", \"hll\": [");
	for (int i = 0; i < HLL_M; i++)
		appendStringInfo(s, "%s%d", i ? "," : "", a->hll[i]);
	appendStringInfoString(s, "]}");
}

/*
 * iceml.shard_statistics(feature_group regclass) RETURNS jsonb: this
 * server's mergeable summary of a feature group, {"rows": n, "features":
 * [{feature, kind, numeric, nonnull_rows, count, nfinite, mean, m2, min,
 * max, hll}, ...]} in compute_statistics' order.
 */
PG_FUNCTION_INFO_V1(iceml_shard_statistics);

Datum
iceml_shard_statistics(PG_FUNCTION_ARGS)
{
	Relation	rel;
	FeatStats  *st;
	int			nf;
	int64		rows;
	StringInfoData s;
	bool		first = true;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature_group must not be NULL")));
	rel = OpenReadableGroup(PG_GETARG_OID(0));
	st = StatsCollect(rel, &nf, &rows);
	table_close(rel, AccessShareLock);

	initStringInfo(&s);
	appendStringInfo(&s, "{\"rows\": " INT64_FORMAT ", \"features\": [", rows);
	for (int i = 0; i < nf; i++)
	{
		FeatStats  *f = &st[i];

		if (f->numeric && f->f.isarray)
		{
			AppendNodeState(&s, f, "elements", &f->elems, true, &first);
			AppendNodeState(&s, f, "row_means", &f->rowmeans, true, &first);
		}
		else
			AppendNodeState(&s, f, "value", &f->value, f->numeric, &first);
	}
	appendStringInfoString(&s, "]}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

typedef struct HistReq
{
	int			attno;			/* 1-based */
	int			feature;		/* index in features */
	int			kind;			/* 0 value, 1 elements, 2 row_means */
	double		lo;
	double		hi;
	int64		counts[FINAL_BINS];
} HistReq;

/* the bin of compute_statistics' histograms: [lo, hi] in FINAL_BINS equal parts */
static inline void
HistCount(HistReq *r, double x)
{
	double		span = r->hi - r->lo;
	int			k = span > 0 ? Min(Max((int) floor((x - r->lo) / span * FINAL_BINS), 0), FINAL_BINS - 1) : 0;

	r->counts[k]++;
}

/* an array's finite elements and its mean, computed as StatsCollect does */
static void
HistArray(HistReq *el, HistReq *rm, ArrayType *a, FsFeature *f)
{
	int64		n = 0;
	double		sum = 0;
	int			ne;

	if (ARR_ELEMTYPE(a) == FLOAT4OID && !ARR_HASNULL(a))
	{
		const float4 *p = (const float4 *) ARR_DATA_PTR(a);

		ne = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
		for (int i = 0; i < ne; i++)
		{
			float4		v = p[i] == 0 ? 0 : p[i];

			if (isfinite(v))
			{
				n++;
				sum += v;
				if (el)
					HistCount(el, v);
			}
		}
	}
	else
	{
		Datum	   *elems;
		bool	   *nulls;

		deconstruct_array(a, f->elemtype, f->elmlen, f->elmbyval, f->elmalign,
						  &elems, &nulls, &ne);
		for (int i = 0; i < ne; i++)
		{
			double		v;

			if (nulls[i])
				continue;
			v = StatsToDouble(elems[i], f->elemtype);
			if (isfinite(v))
			{
				n++;
				sum += v;
				if (el)
					HistCount(el, v);
			}
		}
	}
	if (n > 0 && rm)
	{
		double		mean = sum / n;

		if (isfinite(mean))
			HistCount(rm, mean);
	}
}

/*
 * iceml.shard_histogram(feature_group regclass, features text[], kinds
 * text[], lo float8[], hi float8[]) RETURNS TABLE (feature text, kind text,
 * counts bigint[]): exact counts of this server's finite values in the 20
 * equal bins of [lo, hi] that compute_statistics uses, per feature and kind.
 */
PG_FUNCTION_INFO_V1(iceml_shard_histogram);

Datum
iceml_shard_histogram(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	rel;
	FsFeature  *features;
	int			nf,
				nreq,
				n2,
				n3,
				n4;
	Datum	   *fnames,
			   *kinds,
			   *los,
			   *his;
	bool	   *nn;
	HistReq    *req;
	TableScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext rowcxt,
				old;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("shard_histogram arguments must not be NULL")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &fnames, &nn, &nreq);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &kinds, &nn, &n2);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &los, &nn, &n3);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &his, &nn, &n4);
	if (n2 != nreq || n3 != nreq || n4 != nreq)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("features, kinds, lo and hi must have the same length")));

	rel = OpenReadableGroup(PG_GETARG_OID(0));
	features = FsFeaturesFromTupleDesc(RelationGetDescr(rel), &nf);
	req = palloc0(sizeof(HistReq) * Max(nreq, 1));
	for (int r = 0; r < nreq; r++)
	{
		char	   *fn = TextDatumGetCString(fnames[r]);
		char	   *kd = TextDatumGetCString(kinds[r]);
		int			k = FsFindFeature(features, nf, fn);
		bool		numeric;

		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("feature group \"%s\" has no feature \"%s\"", RelationGetRelationName(rel), fn)));
		numeric = features[k].cls == FS_CLASS_INTEGRAL || features[k].cls == FS_CLASS_FRACTIONAL;
		req[r].attno = features[k].attno;
		req[r].feature = k;
		if (strcmp(kd, "value") == 0 && numeric && !features[k].isarray)
			req[r].kind = 0;
		else if (strcmp(kd, "elements") == 0 && numeric && features[k].isarray)
			req[r].kind = 1;
		else if (strcmp(kd, "row_means") == 0 && numeric && features[k].isarray)
			req[r].kind = 2;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature \"%s\" has no histogram of kind \"%s\"", fn, kd)));
		req[r].lo = DatumGetFloat8(los[r]);
		req[r].hi = DatumGetFloat8(his[r]);
	}

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "iceml shard histogram row",
								   ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		old = MemoryContextSwitchTo(rowcxt);
		for (int r = 0; r < nreq; r++)
		{
			int			a = req[r].attno - 1;
			int			k = req[r].feature;

			if (slot->tts_isnull[a])
				continue;
			if (req[r].kind == 0)
			{
				double		v = StatsToDouble(slot->tts_values[a], features[k].typid);

				if (isfinite(v))
					HistCount(&req[r], v);
			}
			else
				HistArray(req[r].kind == 1 ? &req[r] : NULL, req[r].kind == 2 ? &req[r] : NULL,
						  DatumGetArrayTypeP(slot->tts_values[a]), &features[k]);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	InitMaterializedSRF(fcinfo, 0);
	for (int r = 0; r < nreq; r++)
	{
		Datum		v[3];
		bool		nulls[3] = {false, false, false};
		Datum		c[FINAL_BINS];

		for (int i = 0; i < FINAL_BINS; i++)
			c[i] = Int64GetDatum(req[r].counts[i]);
		v[0] = fnames[r];
		v[1] = kinds[r];
		v[2] = PointerGetDatum(construct_array(c, FINAL_BINS, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}

/* iceml._hll_estimate(registers integer[]) RETURNS bigint */
PG_FUNCTION_INFO_V1(iceml_hll_estimate);

Datum
iceml_hll_estimate(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *d;
	bool	   *nulls;
	int			n;
	Acc		   *a = palloc0(sizeof(Acc));

	deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &d, &nulls, &n);
	if (n != HLL_M)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a HyperLogLog has %d registers, not %d", HLL_M, n)));
	for (int i = 0; i < n; i++)
	{
		int			r = nulls[i] ? 0 : DatumGetInt32(d[i]);

		if (r < 0 || r > 32)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid HyperLogLog register %d at %d", r, i + 1)));
		a->hll[i] = (uint8) r;
	}
	PG_RETURN_INT64(HllEstimate(a));
}

/* ---- statistics: the coordinator's side ---------------------------------- */

bool
ShardIsSharded(Oid relid)
{
	IcemlOwnerContext own;
	Oid			t[1] = {OIDOID};
	Datum		a[1] = {ObjectIdGetDatum(relid)};
	bool		found;

	SPI_connect();
	BecomeCatalogOwner(&own);
	if (SPI_execute_with_args("SELECT 1 FROM iceml.shards s JOIN iceml.feature_groups g"
							  " ON g.id OPERATOR(pg_catalog.=) s.feature_group_id"
							  " WHERE g.\"table\"::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  1, t, a, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "shard lookup failed");
	found = SPI_processed > 0;
	RestoreUser(&own);
	SPI_finish();
	return found;
}

/*
 * compute_statistics of a sharded group (the caller may read it: checked by
 * compute_statistics): the merge runs as the catalog owner.
 */
int64
ShardComputeStatistics(Oid relid)
{
	IcemlOwnerContext own;
	Oid			t[1] = {OIDOID};
	Datum		a[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;
	int64		rows;

	if (!ShardIsSharded(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("feature group \"%s\" is partitioned but not sharded",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid))))));
	SPI_connect();
	BecomeCatalogOwner(&own);
	if (SPI_execute_with_args("SELECT iceml._shard_compute_statistics($1::pg_catalog.regclass)",
							  1, t, a, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "sharded statistics failed");
	rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	RestoreUser(&own);
	SPI_finish();
	return isnull ? 0 : rows;
}
