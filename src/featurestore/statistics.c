/*
 * statistics.c - iceml.compute_statistics(feature_group regclass): one
 * sequential pass over a feature group table, per-feature accumulators,
 * rows into iceml.feature_statistics.
 *
 * The table is read exactly once, in bounded memory per feature:
 *  - count, min, max, mean and stddev: Welford/Chan running moments (an
 *    array's elements are summed within the row first, then merged), over
 *    finite values only (NaN and Infinity count in count, not in the moments);
 *  - approximate distinct count: a HyperLogLog of 1024 six-bit registers
 *    (standard error about 3%), with linear counting for small sets;
 *  - the 20-bin equal-width histogram over [min, max]: bins need min and max,
 *    which are known only at the end, so values go into a fine histogram of
 *    4096 equal-width bins whose range doubles (merging bin pairs exactly)
 *    whenever a value falls outside it; the first 4096 values are buffered to
 *    place the initial range.  At the end each fine bin's count is shared
 *    among the final bins it overlaps, in proportion to the overlap.  A
 *    feature with at most 4096 values is binned exactly; otherwise only the
 *    values of a fine bin straddling a final edge may be put on the wrong
 *    side of it (a fine bin is at most 1/100 of a final bin wide, about 1/200
 *    typically).  The counts always sum to the number of finite values,
 *    so the histogram serves drift measures (PSI) directly.
 *
 * Kinds: 'value' for a scalar feature; for a numeric array feature
 * 'elements' (over all elements of all rows) and 'row_means' (over each
 * row's mean).  Non-numeric features get count, completeness and distinct.
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/rls.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "iceml_fs.h"
#include "iceml_catalog.h"

#include "iceml_stats.h"

PartitionedStatisticsHook partitioned_statistics_hook = NULL;

PG_FUNCTION_INFO_V1(iceml_compute_statistics);

static void
HllAdd(Acc *a, uint32 h)
{
	int			idx = h >> (32 - HLL_BITS);
	uint32		rest = h << HLL_BITS;
	uint8		rank = rest == 0 ? (32 - HLL_BITS + 1) : (uint8) (__builtin_clz(rest) + 1);

	if (rank > a->hll[idx])
		a->hll[idx] = rank;
}

int64
HllEstimate(Acc *a)
{
	double		sum = 0,
				alpha = 0.7213 / (1.0 + 1.079 / HLL_M),
				e;
	int			zeros = 0,
				i;

	for (i = 0; i < HLL_M; i++)
	{
		sum += ldexp(1.0, -a->hll[i]);
		if (a->hll[i] == 0)
			zeros++;
	}
	e = alpha * HLL_M * HLL_M / sum;
	if (e <= 2.5 * HLL_M && zeros > 0)
		e = HLL_M * log((double) HLL_M / zeros);
	else if (e > 4294967296.0 / 30.0)
		e = -4294967296.0 * log(1.0 - e / 4294967296.0);
	return (int64) llround(e);
}

static uint32
HashDouble(double d)
{
	if (d == 0)
		d = 0;					/* -0 and 0 are one value */
	return hash_bytes((const unsigned char *) &d, sizeof(d));
}

static void
HistStart(Histogram *h)
{
	double		lo = h->buf[0],
				hi = h->buf[0];
	int			i,
				n = h->nbuf;

	for (i = 1; i < n; i++)
	{
		lo = Min(lo, h->buf[i]);
		hi = Max(hi, h->buf[i]);
	}
	h->lo = lo;
	h->w = (hi - lo) / (FINE_BINS - 1);
	if (!(h->w > 0))
		h->w = Max(fabs(lo), 1.0) * 1e-9;
	h->ranged = true;
	memset(h->bins, 0, sizeof(h->bins));
	h->nbuf = 0;
	for (i = 0; i < n; i++)
	{
		int			k = (int) ((h->buf[i] - h->lo) / h->w);

		h->bins[Min(Max(k, 0), FINE_BINS - 1)]++;
	}
}

static void
HistAdd(Histogram *h, double x)
{
	int			k;

	if (!h->ranged)
	{
		h->buf[h->nbuf++] = x;
		if (h->nbuf == FINE_BINS)
			HistStart(h);
		return;
	}
	while (x < h->lo && isfinite(h->w * 2))
	{
		/* double the width, extending downwards: old bin j -> (N + j) / 2 */
		int64		tmp[FINE_BINS];
		int			j;

		memset(tmp, 0, sizeof(tmp));
		for (j = 0; j < FINE_BINS; j++)
			tmp[(FINE_BINS + j) / 2] += h->bins[j];
		memcpy(h->bins, tmp, sizeof(tmp));
		h->lo -= FINE_BINS * h->w;
		h->w *= 2;
	}
	while (x >= h->lo + FINE_BINS * h->w && isfinite(h->w * 2))
	{
		/* double the width, extending upwards: old bin j -> j / 2 */
		int			j;

		for (j = 0; j < FINE_BINS / 2; j++)
			h->bins[j] = h->bins[2 * j] + h->bins[2 * j + 1];
		memset(h->bins + FINE_BINS / 2, 0, sizeof(int64) * (FINE_BINS / 2));
		h->w *= 2;
	}
	k = (int) ((x - h->lo) / h->w);
	h->bins[Min(Max(k, 0), FINE_BINS - 1)]++;
}

static void
AccInit(Acc *a, bool numeric)
{
	memset(a, 0, sizeof(Acc));
	a->min = INFINITY;
	a->max = -INFINITY;
	if (numeric)
		a->hist = palloc0(sizeof(Histogram));
}

/* a finite value: moments, range, histogram */
static inline void
AccAddFinite(Acc *a, double x)
{
	double		d;

	a->nfinite++;
	d = x - a->mean;
	a->mean += d / a->nfinite;
	a->m2 += d * (x - a->mean);
	if (x < a->min)
		a->min = x;
	if (x > a->max)
		a->max = x;
	HistAdd(a->hist, x);
}

static void
AccAddNumber(Acc *a, double x)
{
	a->count++;
	HllAdd(a, HashDouble(x));
	if (isfinite(x))
		AccAddFinite(a, x);
}

/* merge a batch's moments (n finite values, mean, m2) into a (Chan et al.) */
static void
AccMergeMoments(Acc *a, int64 n, double mean, double m2)
{
	int64		tot;
	double		d;

	if (n == 0)
		return;
	tot = a->nfinite + n;
	d = mean - a->mean;
	a->mean += d * n / tot;
	a->m2 += m2 + d * d * ((double) a->nfinite * n / tot);
	a->nfinite = tot;
}

double
StatsToDouble(Datum d, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case FLOAT8OID:
			return DatumGetFloat8(d);
		default:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
	}
}

/* the elements of a numeric array, and its mean into row_means */
static void
AddNumericArray(FeatStats *s, ArrayType *a)
{
	int64		n = 0;
	double		sum = 0,
				mean,
				m2 = 0,
				lo = INFINITY,
				hi = -INFINITY;
	int			i,
				ne;
	Acc		   *e = &s->elems;

	if (ARR_ELEMTYPE(a) == FLOAT4OID && !ARR_HASNULL(a))
	{
		const float4 *p = (const float4 *) ARR_DATA_PTR(a);

		ne = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
		e->count += ne;
		for (i = 0; i < ne; i++)
		{
			float4		v = p[i] == 0 ? 0 : p[i];
			uint32		bits;

			memcpy(&bits, &v, sizeof(bits));
			HllAdd(e, hash_bytes_uint32(bits));
			if (isfinite(v))
			{
				n++;
				sum += v;
				lo = Min(lo, v);
				hi = Max(hi, v);
				HistAdd(e->hist, v);
			}
		}
		mean = n ? sum / n : 0;
		for (i = 0; i < ne; i++)
			if (isfinite(p[i]))
				m2 += (p[i] - mean) * (p[i] - mean);
	}
	else
	{
		Datum	   *elems;
		bool	   *nulls;
		double	   *vals;

		deconstruct_array(a, s->f.elemtype, s->f.elmlen, s->f.elmbyval, s->f.elmalign,
						  &elems, &nulls, &ne);
		vals = palloc(sizeof(double) * Max(ne, 1));
		for (i = 0; i < ne; i++)
		{
			double		v;

			if (nulls[i])
				continue;
			v = StatsToDouble(elems[i], s->f.elemtype);
			e->count++;
			HllAdd(e, HashDouble(v));
			if (isfinite(v))
			{
				vals[n++] = v;
				sum += v;
				lo = Min(lo, v);
				hi = Max(hi, v);
				HistAdd(e->hist, v);
			}
		}
		mean = n ? sum / n : 0;
		for (i = 0; i < n; i++)
			m2 += (vals[i] - mean) * (vals[i] - mean);
	}
	if (n > 0)
	{
		AccMergeMoments(e, n, mean, m2);
		e->min = Min(e->min, lo);
		e->max = Max(e->max, hi);
		AccAddNumber(&s->rowmeans, mean);
	}
}

static void
AddOther(FeatStats *s, Datum d)
{
	Oid			out;
	bool		varlena;
	char	   *str;

	s->value.count++;
	if (s->f.typid == TEXTOID || s->f.typid == VARCHAROID || s->f.typid == BPCHAROID)
	{
		text	   *t = DatumGetTextPP(d);

		HllAdd(&s->value, hash_bytes((unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
		return;
	}
	getTypeOutputInfo(s->f.typid, &out, &varlena);
	str = OidOutputFunctionCall(out, d);
	HllAdd(&s->value, hash_bytes((unsigned char *) str, strlen(str)));
}

static char *
HistogramJson(Acc *a)
{
	int64		counts[FINAL_BINS];
	double		span = a->max - a->min;
	StringInfoData s;
	Histogram  *h = a->hist;
	int			i;

	memset(counts, 0, sizeof(counts));
#define FINAL_BIN(x) (span > 0 ? Min(Max((int) floor(((x) - a->min) / span * FINAL_BINS), 0), FINAL_BINS - 1) : 0)
	if (!h->ranged)
	{
		for (i = 0; i < h->nbuf; i++)
			counts[FINAL_BIN(h->buf[i])]++;
	}
	else
	{
		/*
		 * each fine bin's count is shared among the final bins it overlaps,
		 * in proportion to the overlap (its values lie within [min, max])
		 */
		for (i = 0; i < FINE_BINS; i++)
		{
			int64		c = h->bins[i],
						given = 0;
			double		fa,
						fb;
			int			k;

			if (c == 0)
				continue;
			if (!(span > 0))
			{
				counts[0] += c;
				continue;
			}
			fa = Max((h->lo + i * h->w - a->min) / span * FINAL_BINS, 0.0);
			fb = Min((h->lo + (i + 1) * h->w - a->min) / span * FINAL_BINS, (double) FINAL_BINS);
			if (!(fb > fa))
			{
				counts[FINAL_BIN(h->lo + (i + 0.5) * h->w)] += c;
				continue;
			}
			for (k = (int) floor(fa); k < FINAL_BINS && k < fb; k++)
			{
				double		edge = Min((double) (k + 1), fb);
				int64		upto = (int64) llround(c * (edge - fa) / (fb - fa));

				counts[Max(k, 0)] += upto - given;
				given = upto;
			}
			counts[FINAL_BINS - 1] += c - given;
		}
	}
#undef FINAL_BIN
	initStringInfo(&s);
	appendStringInfo(&s, "{\"lo\": %.17g, \"hi\": %.17g, \"counts\": [", a->min, a->max);
	for (i = 0; i < FINAL_BINS; i++)
		appendStringInfo(&s, "%s" INT64_FORMAT, i ? ", " : "", counts[i]);
	appendStringInfoString(&s, "]}");
	return s.data;
}

static void
InsertRow(int64 fg_id, Oid relid, Datum commit, bool commit_null, FeatStats *s,
		  const char *kind, Acc *a, int64 rows, bool with_moments, TimestampTz now)
{
	Oid			types[14] = {INT8OID, OIDOID, INT8OID, TEXTOID, TEXTOID, INT8OID, FLOAT8OID,
		FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID};
	Datum		v[14];
	char		n[14];
	bool		have = with_moments && a->nfinite > 0;

	memset(n, ' ', sizeof(n));
	v[0] = Int64GetDatum(fg_id);
	v[1] = ObjectIdGetDatum(relid);
	v[2] = commit;
	if (commit_null)
		n[2] = 'n';
	v[3] = CStringGetTextDatum(s->f.name);
	v[4] = CStringGetTextDatum(kind);
	v[5] = Int64GetDatum(a->count);
	v[6] = Float8GetDatum(rows > 0 ? (double) s->nonnull_rows / rows : 0.0);
	if (rows == 0)
		n[6] = 'n';
	v[7] = Float8GetDatum(a->min);
	v[8] = Float8GetDatum(a->max);
	v[9] = Float8GetDatum(a->mean);
	v[10] = Float8GetDatum(a->nfinite > 1 ? sqrt(a->m2 / (a->nfinite - 1)) : 0.0);
	if (!have)
		n[7] = n[8] = n[9] = n[10] = 'n';
	else if (a->nfinite < 2)
		n[10] = 'n';
	v[11] = Int64GetDatum(Min(HllEstimate(a), a->count));
	if (have)
		v[12] = CStringGetTextDatum(HistogramJson(a));
	else
		n[12] = 'n';
	v[13] = TimestampTzGetDatum(now);
	if (SPI_execute_with_args("INSERT INTO iceml.feature_statistics"
							  " (feature_group_id, feature_group, commit_id, feature, kind, count,"
							  "  completeness, min, max, mean, stddev, approx_distinct, histogram,"
							  "  computed_at)"
							  " VALUES ($1, $2::pg_catalog.regclass, $3, $4, $5, $6, $7, $8, $9, $10,"
							  "  $11, $12, $13::pg_catalog.jsonb, $14)",
							  14, types, v, n, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert feature statistics");
}

/*
 * The one pass over rel: per-feature accumulators (*nf of them) and the
 * rows read.  The caller has checked that it may read every row.
 */
FeatStats *
StatsCollect(Relation rel, int *nf_out, int64 *rows_out)
{
	TableScanDesc scan;
	TupleTableSlot *slot;
	FsFeature  *features;
	FeatStats  *st;
	int			nf,
				i;
	int64		rows = 0;
	MemoryContext rowcxt,
				old;

	features = FsFeaturesFromTupleDesc(RelationGetDescr(rel), &nf);
	st = palloc0(sizeof(FeatStats) * Max(nf, 1));
	for (i = 0; i < nf; i++)
	{
		st[i].f = features[i];
		st[i].numeric = features[i].cls == FS_CLASS_INTEGRAL || features[i].cls == FS_CLASS_FRACTIONAL;
		AccInit(&st[i].value, st[i].numeric && !features[i].isarray);
		AccInit(&st[i].elems, st[i].numeric && features[i].isarray);
		AccInit(&st[i].rowmeans, st[i].numeric && features[i].isarray);
	}

	/* the one pass */
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "iceml statistics row",
								   ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		rows++;
		old = MemoryContextSwitchTo(rowcxt);
		for (i = 0; i < nf; i++)
		{
			FeatStats  *s = &st[i];
			int			a = s->f.attno - 1;
			Datum		d = slot->tts_values[a];

			if (slot->tts_isnull[a])
				continue;
			s->nonnull_rows++;
			if (s->numeric && s->f.isarray)
				AddNumericArray(s, DatumGetArrayTypeP(d));
			else if (s->numeric)
				AccAddNumber(&s->value, StatsToDouble(d, s->f.typid));
			else
				AddOther(s, d);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	MemoryContextDelete(rowcxt);
	*nf_out = nf;
	*rows_out = rows;
	return st;
}

/*
 * Summarise feature group relid into iceml.feature_statistics; returns the
 * rows read.  The caller needs SELECT on the table.
 */
int64
FeatureGroupComputeStatistics(Oid relid)
{
	Relation	rel;
	FeatStats  *st;
	int			nf,
				i;
	int64		rows = 0;
	int64		fg_id;
	Datum		commit;
	bool		commit_null;
	IcemlOwnerContext own;
	bool		isnull;
	TimestampTz now = GetCurrentTimestamp();

	/* a feature group, readable by the caller */
	SPI_connect();
	BecomeCatalogOwner(&own);
	{
		Oid			t[1] = {OIDOID};
		Datum		a[1] = {ObjectIdGetDatum(relid)};

		if (SPI_execute_with_args("SELECT fg.id, (SELECT pg_catalog.max(c.commit_id)"
								  "  FROM iceml.feature_group_commits c"
								  "  WHERE c.feature_group_id OPERATOR(pg_catalog.=) fg.id)"
								  " FROM iceml.feature_groups fg"
								  " WHERE fg.\"table\"::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
								  1, t, a, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "feature group lookup failed");
	}
	RestoreUser(&own);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" is not a feature group",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)))),
				 errhint("Feature groups are created by iceml.create_feature_group and listed in iceml.feature_groups.")));
	fg_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	commit = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &commit_null);
	SPI_finish();

	rel = table_open(relid, AccessShareLock);
	if (pg_class_aclcheck(relid, IcemlCaller(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for feature group \"%s\"", RelationGetRelationName(rel)),
				 errhint("compute_statistics reads the whole table: SELECT on it is needed.")));
	/*
	 * The scan below reads the heap directly: with row-level security in
	 * force for the caller it would summarise rows the caller cannot see,
	 * and publish them to every iceml role.
	 */
	if (check_enable_rls(relid, IcemlCaller(), false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot compute statistics of feature group \"%s\": row-level security applies to role \"%s\"",
						RelationGetRelationName(rel), GetUserNameFromId(IcemlCaller(), false)),
				 errdetail("Statistics summarise every row and are visible to every iceml role."),
				 errhint("Have the table's owner (or a role that bypasses row-level security) compute them.")));

	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE &&
		partitioned_statistics_hook != NULL)
	{
		/* a sharded group: its nodes summarise, the coordinator merges */
		table_close(rel, AccessShareLock);
		return partitioned_statistics_hook(relid);
	}
	st = StatsCollect(rel, &nf, &rows);


	SPI_connect();
	BecomeCatalogOwner(&own);
	for (i = 0; i < nf; i++)
	{
		FeatStats  *s = &st[i];

		if (s->numeric && s->f.isarray)
		{
			InsertRow(fg_id, relid, commit, commit_null, s, "elements", &s->elems, rows, true, now);
			InsertRow(fg_id, relid, commit, commit_null, s, "row_means", &s->rowmeans, rows, true, now);
		}
		else
			InsertRow(fg_id, relid, commit, commit_null, s, "value", &s->value, rows, s->numeric, now);
	}
	RestoreUser(&own);
	SPI_finish();
	table_close(rel, AccessShareLock);
	return rows;
}

/*
 * iceml.compute_statistics(feature_group regclass) RETURNS bigint: the rows
 * summarised.
 */
Datum
iceml_compute_statistics(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature_group must not be NULL")));
	PG_RETURN_INT64(FeatureGroupComputeStatistics(PG_GETARG_OID(0)));
}
