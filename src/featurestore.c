/*
 * featurestore.c - the triggers that make a feature group table enforce its
 * expectations and keep its commit history, the reject hook of the loader,
 * and the C helpers of the SQL functions in sql/install/10_featurestore.sql.
 *
 * Per feature group table there are four triggers (created by
 * iceml.create_feature_group):
 *   zz_iceml_expectations  BEFORE INSERT OR UPDATE FOR EACH ROW: row rules.
 *                          Named to fire last among BEFORE ROW triggers, so
 *                          it judges the row as it will be written.
 *   iceml_commit_insert / _update / _delete  AFTER ... FOR EACH STATEMENT with
 *                          transition tables: batch rules, the commit row,
 *                          the validations rows (PostgreSQL allows transition
 *                          tables on single-event triggers only, hence three).
 *
 * The parsed expectations are cached per backend, keyed by the table's oid
 * and the catalog row's version (xmin, ctid).  The catalog row is looked up
 * once per statement (the first row trigger call of a new command id), never
 * per row; a relcache invalidation of the table (ALTER TABLE) forces a new
 * parse.  Row findings that do not block the write are counted in backend
 * memory during the statement and written to iceml.validations by the
 * statement trigger, with the commit id; they are discarded at abort.
 *
 * Catalog rows are written as the bootstrap superuser (the catalog tables'
 * owner): whoever may write to a feature group gets its commit rows, without
 * being able to write to the catalog directly.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "iceml_expectations.h"
#include "iceml_fs.h"
#include "iceml_catalog.h"

typedef enum FsMode
{
	FS_MODE_STRICT,
	FS_MODE_WARNING,
	FS_MODE_ALL,
	FS_MODE_NONE
} FsMode;

static const char *const mode_names[] = {"STRICT", "WARNING", "ALL", "NONE"};

/* a rule that failed without blocking, during the current statement */
typedef struct FsFinding
{
	char	   *expectation;
	const char *rule;
	char	   *feature;
	bool		error_level;
	bool		batch;
	int64		failures;
	int			nkeys;
	char	   *keys[FS_MAX_KEYS];
	char	   *value;			/* first failing value, or the observed batch value */
	double		observed;
	bool		has_observed;
} FsFinding;

typedef struct FsCacheEntry
{
	Oid			relid;			/* hash key */
	bool		parsed;			/* ex etc. valid for (xmin, tid) */
	bool		is_fg;			/* the table is in iceml.feature_groups */
	bool		stamped;		/* checked against the catalog in (lxid, cid) */
	LocalTransactionId lxid;
	CommandId	cid;
	TransactionId xmin;
	ItemPointerData tid;
	int64		fg_id;
	FsMode		mode;
	MemoryContext cxt;			/* the parse below */
	char	   *fgname;
	FsExpectations *ex;
	int			npk;
	AttrNumber *pkatts;
	char	  **pknames;
	Oid		   *pkout;
	int			ndetoast;
	AttrNumber *detoast;		/* array features read by row rules */

	/* findings of the current statement, in findcxt */
	MemoryContext findcxt;
	int			find_level;		/* transaction nest level of the first one */
	int			nfindings;
	int			capfindings;
	FsFinding  *findings;
} FsCacheEntry;

static HTAB *fs_cache = NULL;
static MemoryContext fs_row_cxt = NULL;
static SPIPlanPtr fs_lookup_plan = NULL;
static SPIPlanPtr fs_commit_plan = NULL;
static SPIPlanPtr fs_validation_plan = NULL;
static FeatureGroupRejectHook fs_reject_hook = NULL;
static void *fs_reject_arg = NULL;
static int	fs_reject_level = 0;	/* transaction nest level it was set at */

PG_FUNCTION_INFO_V1(iceml_fs_row_trigger);
PG_FUNCTION_INFO_V1(iceml_fs_statement_trigger);
PG_FUNCTION_INFO_V1(iceml_fs_table_ddl);
PG_FUNCTION_INFO_V1(iceml_fs_check_expectations);
PG_FUNCTION_INFO_V1(iceml_fs_check_expectation);
PG_FUNCTION_INFO_V1(iceml_fs_check_name);

/* ----------------------------------------------------------------
 * reject hook, cache life cycle
 * ---------------------------------------------------------------- */

void
FeatureGroupSetRejectHook(FeatureGroupRejectHook hook, void *arg)
{
	fs_reject_hook = hook;
	fs_reject_arg = hook ? arg : NULL;
	fs_reject_level = hook ? GetCurrentTransactionNestLevel() : 0;
}

static void
ForgetFindings(FsCacheEntry *e)
{
	if (e->findcxt)
		MemoryContextReset(e->findcxt);
	e->nfindings = 0;
	e->capfindings = 0;
	e->findings = NULL;
}

/*
 * Forget the findings gathered at transaction nest level `level` or deeper
 * (0: all).  A subtransaction that a loader opens and aborts inside the
 * writing statement does not wipe the statement's findings.
 */
static void
ForgetAllFindings(int level)
{
	HASH_SEQ_STATUS seq;
	FsCacheEntry *e;

	if (fs_cache == NULL)
		return;
	hash_seq_init(&seq, fs_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->nfindings > 0 && e->find_level >= level)
			ForgetFindings(e);
		e->stamped = false;
	}
}

static void
FsXactCallback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ForgetAllFindings(0);
			FeatureGroupSetRejectHook(NULL, NULL);
			break;
		default:
			break;
	}
}

static void
FsSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
				  SubTransactionId parentSubid, void *arg)
{
	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();

		/*
		 * a statement interrupted in this subtransaction leaves no findings
		 * behind, and a hook set in it is gone
		 */
		ForgetAllFindings(level);
		if (fs_reject_hook && fs_reject_level >= level)
			FeatureGroupSetRejectHook(NULL, NULL);
	}
}

static void
FsRelcacheCallback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	FsCacheEntry *e;

	(void) arg;
	if (fs_cache == NULL)
		return;
	hash_seq_init(&seq, fs_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (relid == InvalidOid || e->relid == relid)
		{
			e->parsed = false;
			e->stamped = false;
		}
}

void
FeatureStoreInit(void)
{
	RegisterXactCallback(FsXactCallback, NULL);
	RegisterSubXactCallback(FsSubXactCallback, NULL);
	CacheRegisterRelcacheCallback(FsRelcacheCallback, (Datum) 0);
}

/* ----------------------------------------------------------------
 * catalog access
 * ---------------------------------------------------------------- */

static SPIPlanPtr
KeepPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*slot = p;
	}
	return *slot;
}

/*
 * Look up relid in iceml.feature_groups (connected to SPI).  Returns false
 * when the table is not a feature group; otherwise the row's tuple is
 * SPI_tuptable->vals[0].
 */
static bool
LookupFeatureGroup(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1];
	IcemlOwnerContext own;
	int			rc;

	BecomeCatalogOwner(&own);
	KeepPlan(&fs_lookup_plan,
			 "SELECT fg.xmin, fg.ctid, fg.id, fg.validation, fg.expectations,"
			 " fg.primary_key, fg.\"table\"::pg_catalog.oid"
			 " FROM iceml.feature_groups fg"
			 " WHERE fg.\"table\"::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
			 1, types);
	args[0] = ObjectIdGetDatum(relid);
	rc = SPI_execute_plan(fs_lookup_plan, args, NULL, true, 1);
	RestoreUser(&own);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "feature group lookup failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

bool
FeatureGroupWantsStatistics(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	IcemlOwnerContext own;
	bool		wants = false;

	SPI_connect();
	BecomeCatalogOwner(&own);
	if (SPI_execute_with_args("SELECT fg.statistics FROM iceml.feature_groups fg"
							  " WHERE fg.\"table\"::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "feature group lookup failed");
	RestoreUser(&own);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		wants = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	return wants;
}

bool
IsFeatureGroup(Oid relid)
{
	bool		found;

	SPI_connect();
	found = LookupFeatureGroup(relid);
	SPI_finish();
	return found;
}

static FsMode
ParseMode(const char *s)
{
	int			i;

	for (i = 0; i < (int) lengthof(mode_names); i++)
		if (pg_strcasecmp(s, mode_names[i]) == 0)
			return (FsMode) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown validation mode \"%s\"", s),
			 errhint("Use STRICT, WARNING, ALL or NONE.")));
	return FS_MODE_STRICT;		/* keep compiler quiet */
}

/* A catalog row iceml cannot use: XX001, naming the row. */
pg_attribute_noreturn()
static void
CorruptCatalogRow(FsCacheEntry *e, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("catalog row of feature group \"%s\" (iceml.feature_groups id %lld) is corrupt: %s",
					e->fgname, (long long) e->fg_id, what),
			 errhint("Recreate the feature group with iceml.create_feature_group().")));
}

static void
BuildEntryContext(void *arg)
{
	errcontext("stored expectations of feature group \"%s\" (after a change of its table?); "
			   "iceml.drop_expectation removes an expectation", (const char *) arg);
}

/* (re)parse the catalog row in SPI_tuptable->vals[0] for relation rel */
static void
BuildEntry(FsCacheEntry *e, Relation rel)
{
	HeapTuple	row = SPI_tuptable->vals[0];
	TupleDesc	rd = SPI_tuptable->tupdesc;
	MemoryContext cxt,
				old;
	bool		isnull;
	Datum		d;
	int			i,
				j;
	ArrayType  *pk;
	Datum	   *pkd;
	bool	   *pkn;
	int			npk;
	bool	   *need;

	/*
	 * Built under the transaction and kept only once complete: an error
	 * half-way (say a column of an expectation was dropped) frees it, and the
	 * entry stays unparsed until a build succeeds.
	 */
	e->parsed = false;
	cxt = AllocSetContextCreate(CurTransactionContext, "iceml feature group",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

	e->fgname = pstrdup(RelationGetRelationName(rel));
	e->fg_id = DatumGetInt64(SPI_getbinval(row, rd, 3, &isnull));
	d = SPI_getbinval(row, rd, 4, &isnull);
	if (isnull)
		CorruptCatalogRow(e, "validation is NULL");
	e->mode = ParseMode(TextDatumGetCString(d));
	d = SPI_getbinval(row, rd, 5, &isnull);
	if (isnull)
		CorruptCatalogRow(e, "expectations is NULL");
	{
		FsFeature  *features;
		int			nf;
		ErrorContextCallback ctx;

		ctx.callback = BuildEntryContext;
		ctx.arg = e->fgname;
		ctx.previous = error_context_stack;
		error_context_stack = &ctx;
		features = FsFeaturesFromTupleDesc(RelationGetDescr(rel), &nf);
		e->ex = FsParseExpectations(DatumGetJsonbPCopy(d), features, nf);
		error_context_stack = ctx.previous;
	}

	/*
	 * The catalog is written only by iceml, but a corrupt row must give an
	 * error naming it, never a crash.
	 */
	d = SPI_getbinval(row, rd, 6, &isnull);
	if (isnull)
		CorruptCatalogRow(e, "primary_key is NULL");
	pk = DatumGetArrayTypePCopy(d);
	if (ARR_NDIM(pk) != 1 || ARR_ELEMTYPE(pk) != TEXTOID)
		CorruptCatalogRow(e, "primary_key is not a one-dimensional text array");
	deconstruct_array(pk, TEXTOID, -1, false, TYPALIGN_INT, &pkd, &pkn, &npk);
	if (npk < 1)
		CorruptCatalogRow(e, "primary_key is empty");
	e->npk = npk;
	e->pkatts = palloc(sizeof(AttrNumber) * Max(npk, 1));
	e->pknames = palloc(sizeof(char *) * Max(npk, 1));
	e->pkout = palloc(sizeof(Oid) * Max(npk, 1));
	for (i = 0; i < npk; i++)
	{
		char	   *name;
		int			k;
		bool		varlena;

		if (pkn[i])
			CorruptCatalogRow(e, psprintf("primary_key[%d] is NULL", i + 1));
		name = TextDatumGetCString(pkd[i]);
		k = FsFindFeature(e->ex->features, e->ex->nfeatures, name);
		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("primary key column \"%s\" of feature group \"%s\" is missing",
							name, e->fgname),
					 errhint("The table was altered outside iceml; restore the column or create a new version of the feature group.")));
		e->pknames[i] = name;
		e->pkatts[i] = e->ex->features[k].attno;
		getTypeOutputInfo(e->ex->features[k].typid, &e->pkout[i], &varlena);
	}

	/* array features read by row rules: detoasted once per row */
	need = palloc0(sizeof(bool) * Max(e->ex->nfeatures, 1));
	for (i = 0; i < e->ex->nrowrules; i++)
		if (e->ex->features[e->ex->rules[i].feature].isarray)
			need[e->ex->rules[i].feature] = true;
	e->detoast = palloc(sizeof(AttrNumber) * Max(e->ex->nfeatures, 1));
	e->ndetoast = 0;
	for (j = 0; j < e->ex->nfeatures; j++)
		if (need[j])
			e->detoast[e->ndetoast++] = e->ex->features[j].attno;

	MemoryContextSwitchTo(old);

	if (e->cxt)
		MemoryContextDelete(e->cxt);
	MemoryContextSetParent(cxt, CacheMemoryContext);
	e->cxt = cxt;
	e->xmin = DatumGetTransactionId(SPI_getbinval(row, rd, 1, &isnull));
	e->tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(row, rd, 2, &isnull));
	e->parsed = true;
}

/*
 * The cache entry of a table, checked against the catalog once per
 * statement (command id).  Not connected to SPI on entry or exit.
 */
static FsCacheEntry *
GetEntry(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	FsCacheEntry *e;
	bool		found;
	CommandId	cid = GetCurrentCommandId(false);

	if (fs_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(FsCacheEntry);
		fs_cache = hash_create("iceml feature groups", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS);
		fs_row_cxt = AllocSetContextCreate(TopMemoryContext, "iceml feature group row",
										   ALLOCSET_DEFAULT_SIZES);
	}
	e = hash_search(fs_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		memset(((char *) e) + sizeof(Oid), 0, sizeof(FsCacheEntry) - sizeof(Oid));
		e->findcxt = AllocSetContextCreate(TopMemoryContext, "iceml feature group findings",
										   ALLOCSET_SMALL_SIZES);
	}
	if (e->stamped && e->lxid == MyProc->lxid && e->cid == cid)
		return e;

	SPI_connect();
	if (!LookupFeatureGroup(relid))
		e->is_fg = false;
	else
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		bool		isnull;
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));

		e->is_fg = true;
		if (!e->parsed || xmin != e->xmin || !ItemPointerEquals(tid, &e->tid))
			BuildEntry(e, rel);
	}
	SPI_finish();
	e->lxid = MyProc->lxid;
	e->cid = cid;
	e->stamped = true;
	return e;
}

/* ----------------------------------------------------------------
 * messages
 * ---------------------------------------------------------------- */

/* "id = 'abc'" or "(a, b) = ('1', 'x')" */
static char *
KeyText(FsCacheEntry *e, Datum *values, bool *nulls, bool quoted)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	if (quoted && e->npk > 1)
	{
		appendStringInfoChar(&s, '(');
		for (i = 0; i < e->npk; i++)
			appendStringInfo(&s, "%s%s", i ? ", " : "", e->pknames[i]);
		appendStringInfoString(&s, ") = (");
	}
	else if (quoted && e->npk == 1)
		appendStringInfo(&s, "%s = ", e->pknames[0]);
	for (i = 0; i < e->npk; i++)
	{
		AttrNumber	a = e->pkatts[i];
		char	   *v = nulls[a - 1] ? "NULL" :
			OidOutputFunctionCall(e->pkout[i], values[a - 1]);

		if (i)
			appendStringInfoString(&s, quoted ? ", " : ",");
		if (quoted && !nulls[a - 1])
			appendStringInfoString(&s, quote_literal_cstr(v));
		else
			appendStringInfoString(&s, v);
	}
	if (quoted && e->npk > 1)
		appendStringInfoChar(&s, ')');
	return s.data;
}

static char *
DescribeRule(FsRule *r)
{
	switch (r->kind)
	{
		case FS_HAS_MIN:
			return psprintf("the value (every element of an array) must be at least %g", r->min);
		case FS_HAS_MAX:
			return psprintf("the value (every element of an array) must be at most %g", r->max);
		case FS_IS_FINITE:
			return pstrdup("the value (every element of an array) must be finite, not NaN or Infinity");
		case FS_HAS_COMPLETENESS:
			if (r->batch)
				return psprintf("the fraction of non-null values must be at least %g", r->min);
			return pstrdup("the value must not be NULL");
		case FS_HAS_DATATYPE:
			{
				static const char *const names[] = {"Integral", "Fractional", "String", "Boolean", "Array", "?"};

				return psprintf("the value must be of type %s", names[r->accepted]);
			}
		case FS_IS_CONTAINED_IN:
			return pstrdup("the value must be one of the legal values");
		case FS_HAS_PATTERN:
			return psprintf("the value must match the pattern %s",
							quote_literal_cstr(text_to_cstring(r->pattern)));
		case FS_HAS_LENGTH:
		case FS_HAS_MEAN:
		case FS_HAS_STDDEV:
		case FS_HAS_UNIQUENESS:
			{
				const char *what = r->kind == FS_HAS_LENGTH ? "the length" :
				r->kind == FS_HAS_MEAN ? "the mean over the statement's rows" :
				r->kind == FS_HAS_STDDEV ? "the standard deviation over the statement's rows" :
				"the fraction of unique values among the statement's rows";

				if (r->has_min && r->has_max && r->min == r->max)
					return psprintf("%s must be %g", what, r->min);
				if (r->has_min && r->has_max)
					return psprintf("%s must be between %g and %g", what, r->min, r->max);
				if (r->has_min)
					return psprintf("%s must be at least %g", what, r->min);
				return psprintf("%s must be at most %g", what, r->max);
			}
	}
	return pstrdup("");
}

static bool
Blocks(FsMode mode, FsRule *r)
{
	return mode == FS_MODE_STRICT || (mode == FS_MODE_WARNING && r->error_level);
}

/* ----------------------------------------------------------------
 * findings
 * ---------------------------------------------------------------- */

static FsFinding *
FindingFor(FsCacheEntry *e, FsRule *r)
{
	FsExpectations *ex = e->ex;
	const char *feature = ex->features[r->feature].name;
	FsFinding  *f;
	int			i;
	MemoryContext old;

	for (i = 0; i < e->nfindings; i++)
	{
		f = &e->findings[i];
		if (f->rule == r->rule && strcmp(f->expectation, r->expectation) == 0 &&
			strcmp(f->feature, feature) == 0)
			return f;
	}
	old = MemoryContextSwitchTo(e->findcxt);
	if (e->nfindings >= e->capfindings)
	{
		e->capfindings = Max(8, e->capfindings * 2);
		e->findings = e->findings ?
			repalloc(e->findings, sizeof(FsFinding) * e->capfindings) :
			palloc(sizeof(FsFinding) * e->capfindings);
	}
	if (e->nfindings == 0)
		e->find_level = GetCurrentTransactionNestLevel();
	f = &e->findings[e->nfindings++];
	memset(f, 0, sizeof(FsFinding));
	f->expectation = pstrdup(r->expectation);
	f->rule = r->rule;			/* a static string */
	f->feature = pstrdup(feature);
	f->error_level = r->error_level;
	f->batch = r->batch;
	MemoryContextSwitchTo(old);
	return f;
}

static void
RecordRowFinding(FsCacheEntry *e, FsFailure *fail, Datum *values, bool *nulls)
{
	FsFinding  *f = FindingFor(e, fail->rule);
	MemoryContext old = MemoryContextSwitchTo(e->findcxt);

	f->failures++;
	if (f->nkeys < FS_MAX_KEYS)
		f->keys[f->nkeys++] = KeyText(e, values, nulls, false);
	if (f->value == NULL)
		f->value = fail->element ?
			psprintf("%s at element %d", fail->value, fail->element) :
			pstrdup(fail->value);
	MemoryContextSwitchTo(old);
}

/* ----------------------------------------------------------------
 * the row trigger
 * ---------------------------------------------------------------- */

Datum
iceml_fs_row_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	FsCacheEntry *e;
	FsExpectations *ex;
	MemoryContext old;
	Datum	   *values;
	bool	   *nulls;
	FsFailure  *fails;
	int			nfails = 0;
	FsFailure  *blocking = NULL;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iceml._fs_row_trigger() must be fired BEFORE INSERT OR UPDATE FOR EACH ROW")));
	rel = td->tg_relation;
	tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	e = GetEntry(rel);
	if (!e->is_fg || e->mode == FS_MODE_NONE || e->ex->nrowrules == 0)
		return PointerGetDatum(tuple);
	ex = e->ex;

	MemoryContextReset(fs_row_cxt);
	old = MemoryContextSwitchTo(fs_row_cxt);
	tupdesc = RelationGetDescr(rel);
	values = palloc(sizeof(Datum) * tupdesc->natts);
	nulls = palloc(sizeof(bool) * tupdesc->natts);
	heap_deform_tuple(tuple, tupdesc, values, nulls);
	for (i = 0; i < e->ndetoast; i++)
	{
		AttrNumber	a = e->detoast[i];

		if (!nulls[a - 1])
			values[a - 1] = PointerGetDatum(PG_DETOAST_DATUM(values[a - 1]));
	}

	fails = palloc(sizeof(FsFailure) * ex->nrowrules);
	for (i = 0; i < ex->nrowrules; i++)
	{
		FsRule	   *r = &ex->rules[i];
		FsFeature  *f = &ex->features[r->feature];

		if (!FsCheckRowRule(r, f, values[f->attno - 1], nulls[f->attno - 1], &fails[nfails]))
		{
			if (Blocks(e->mode, r))
			{
				blocking = &fails[nfails];
				break;			/* the row is not written: no need to go on */
			}
			nfails++;
		}
	}

	if (blocking)
	{
		FsRule	   *r = blocking->rule;
		char	   *where = blocking->element ? psprintf(" at element %d", blocking->element) : "";
		char	   *what = r->kind == FS_HAS_LENGTH ? psprintf("(%s)", blocking->value) :
		psprintf("(value %s)", blocking->value);
		char	   *msg = psprintf("feature group \"%s\" rejected a row: expectation \"%s\" rule %s failed on feature \"%s\"%s %s for %s",
								   e->fgname, r->expectation, r->rule,
								   ex->features[r->feature].name, where, what,
								   KeyText(e, values, nulls, true));

		if (fs_reject_hook)
		{
			FeatureGroupRejectHook hook = fs_reject_hook;

			/* the hook may write to a feature group: keep msg out of fs_row_cxt */
			msg = MemoryContextStrdup(CurTransactionContext, msg);
			hook(RelationGetRelid(rel), tuple, msg, fs_reject_arg);
			MemoryContextSwitchTo(old);
			return PointerGetDatum(NULL);
		}
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg_internal("%s", msg),
				 errdetail("Rule %s (level %s): %s. Validation mode %s %s.",
						   r->rule, r->error_level ? "ERROR" : "WARNING", DescribeRule(r),
						   mode_names[e->mode],
						   e->mode == FS_MODE_STRICT ? "blocks a write on any failed rule" :
						   "blocks a write on a failed ERROR-level rule"),
				 errhint("Nothing of the statement was written. Fix the row, or change the expectation with iceml.drop_expectation/iceml.add_expectation or the mode with iceml.set_validation."),
				 errtable(rel)));
	}

	for (i = 0; i < nfails; i++)
		RecordRowFinding(e, &fails[i], values, nulls);

	MemoryContextSwitchTo(old);
	return PointerGetDatum(tuple);
}

/* ----------------------------------------------------------------
 * the statement trigger
 * ---------------------------------------------------------------- */

/* one batch rule over the transition table iceml_new (connected to SPI) */
static void
CheckBatchRule(FsCacheEntry *e, FsRule *r, Relation rel, int64 rows)
{
	FsFeature  *f = &e->ex->features[r->feature];
	const char *col = quote_identifier(f->name);
	char	   *sql;
	bool		isnull;
	double		observed;
	int64		n;
	bool		fails;

	switch (r->kind)
	{
		case FS_HAS_MEAN:
		case FS_HAS_STDDEV:
			{
				const char *agg = r->kind == FS_HAS_MEAN ? "pg_catalog.avg" : "pg_catalog.stddev_samp";

				if (f->isarray)
					sql = psprintf("SELECT %s(e::pg_catalog.float8), pg_catalog.count(e)"
								   " FROM iceml_new t, pg_catalog.unnest(t.%s) e", agg, col);
				else
					sql = psprintf("SELECT %s(t.%s::pg_catalog.float8), pg_catalog.count(t.%s)"
								   " FROM iceml_new t", agg, col, col);
				break;
			}
		case FS_HAS_UNIQUENESS:
			sql = psprintf("SELECT (pg_catalog.count(*) FILTER (WHERE s.c OPERATOR(pg_catalog.=) 1))::pg_catalog.float8"
						   " OPERATOR(pg_catalog./) pg_catalog.sum(s.c)::pg_catalog.float8, pg_catalog.sum(s.c)::pg_catalog.int8"
						   " FROM (SELECT pg_catalog.count(*) AS c FROM iceml_new t"
						   " WHERE t.%s IS NOT NULL GROUP BY t.%s) s", col, col);
			break;
		case FS_HAS_COMPLETENESS:
			sql = psprintf("SELECT pg_catalog.count(t.%s)::pg_catalog.float8 OPERATOR(pg_catalog./) pg_catalog.count(*)::pg_catalog.float8,"
						   " pg_catalog.count(*) FROM iceml_new t", col);
			break;
		default:
			return;
	}
	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "batch rule query failed: %s", sql);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		n = 0;
	observed = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || n == 0)
		return;					/* nothing to judge (e.g. one value for a stddev) */
	fails = (r->has_min && observed < r->min) || (r->has_max && observed > r->max);
	if (!fails)
		return;
	if (Blocks(e->mode, r))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("feature group \"%s\" rejected the statement: expectation \"%s\" rule %s failed on feature \"%s\" (observed %g over " INT64_FORMAT " values)",
						e->fgname, r->expectation, r->rule, f->name, observed, n),
				 errdetail("Rule %s (level %s): %s. Validation mode %s %s.",
						   r->rule, r->error_level ? "ERROR" : "WARNING", DescribeRule(r),
						   mode_names[e->mode],
						   e->mode == FS_MODE_STRICT ? "blocks a write on any failed rule" :
						   "blocks a write on a failed ERROR-level rule"),
				 errhint("Nothing of the statement was written."),
				 errtable(rel)));
	{
		FsFinding  *fd = FindingFor(e, r);
		MemoryContext old = MemoryContextSwitchTo(e->findcxt);

		fd->failures = rows;	/* a batch rule fails on the statement's rows */
		fd->observed = observed;
		fd->has_observed = true;
		fd->value = psprintf("%g", observed);
		MemoryContextSwitchTo(old);
	}
}

Datum
iceml_fs_statement_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	FsCacheEntry *e;
	int64		inserted = 0,
				updated = 0,
				deleted = 0;
	const char *op;
	int64		commit_id;
	int			i;
	IcemlOwnerContext own;
	char	   *who;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("iceml._fs_statement_trigger() must be fired AFTER ... FOR EACH STATEMENT")));
	rel = td->tg_relation;
	e = GetEntry(rel);
	if (!e->is_fg)
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		op = "INSERT";
		inserted = td->tg_newtable ? tuplestore_tuple_count(td->tg_newtable) : 0;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		op = "UPDATE";
		updated = td->tg_newtable ? tuplestore_tuple_count(td->tg_newtable) : 0;
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		op = "DELETE";
		deleted = td->tg_oldtable ? tuplestore_tuple_count(td->tg_oldtable) : 0;
	}
	else
		return PointerGetDatum(NULL);

	if (inserted + updated + deleted == 0 && e->nfindings == 0)
		return PointerGetDatum(NULL);

	who = GetUserNameFromId(IcemlCaller(), false);
	SPI_connect();

	if (e->mode != FS_MODE_NONE && inserted + updated > 0 &&
		e->ex->nrules > e->ex->nrowrules)
	{
		if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
			elog(ERROR, "could not register the transition tables");
		for (i = e->ex->nrowrules; i < e->ex->nrules; i++)
			CheckBatchRule(e, &e->ex->rules[i], rel, inserted + updated);
	}

	BecomeCatalogOwner(&own);
	{
		Oid			types[7] = {INT8OID, OIDOID, TEXTOID, INT8OID, INT8OID, INT8OID, TEXTOID};
		Datum		args[7];
		bool		isnull;

		KeepPlan(&fs_commit_plan,
				 "INSERT INTO iceml.feature_group_commits"
				 " (feature_group_id, feature_group, operation, rows_inserted, rows_updated,"
				 "  rows_deleted, committed_by)"
				 " VALUES ($1, $2::pg_catalog.regclass, $3, $4, $5, $6, $7::pg_catalog.name)"
				 " RETURNING commit_id", 7, types);
		args[0] = Int64GetDatum(e->fg_id);
		args[1] = ObjectIdGetDatum(RelationGetRelid(rel));
		args[2] = CStringGetTextDatum(op);
		args[3] = Int64GetDatum(inserted);
		args[4] = Int64GetDatum(updated);
		args[5] = Int64GetDatum(deleted);
		args[6] = CStringGetTextDatum(who);
		if (SPI_execute_plan(fs_commit_plan, args, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not record the commit of feature group \"%s\"", e->fgname);
		commit_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (i = 0; i < e->nfindings; i++)
	{
		FsFinding  *f = &e->findings[i];
		Oid			types[11] = {INT8OID, OIDOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, INT8OID, TEXTARRAYOID, TEXTOID};
		Datum		args[11];
		char		nulls[11];
		Datum	   *keys = palloc(sizeof(Datum) * Max(f->nkeys, 1));
		int			k;

		memset(nulls, ' ', sizeof(nulls));
		KeepPlan(&fs_validation_plan,
				 "INSERT INTO iceml.validations"
				 " (feature_group_id, feature_group, commit_id, expectation, rule, feature, level,"
				 "  validation, failing_rows, failing_keys, observed, status)"
				 " VALUES ($1, $2::pg_catalog.regclass, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
				 "  CASE WHEN $7 OPERATOR(pg_catalog.=) 'ERROR' THEN 'FAILURE' ELSE 'WARNING' END)",
				 11, types);
		for (k = 0; k < f->nkeys; k++)
			keys[k] = CStringGetTextDatum(f->keys[k]);
		args[0] = Int64GetDatum(e->fg_id);
		args[1] = ObjectIdGetDatum(RelationGetRelid(rel));
		args[2] = Int64GetDatum(commit_id);
		args[3] = CStringGetTextDatum(f->expectation);
		args[4] = CStringGetTextDatum(f->rule);
		args[5] = CStringGetTextDatum(f->feature);
		args[6] = CStringGetTextDatum(f->error_level ? "ERROR" : "WARNING");
		args[7] = CStringGetTextDatum(mode_names[e->mode]);
		args[8] = Int64GetDatum(f->failures);
		if (f->nkeys > 0)
			args[9] = PointerGetDatum(construct_array(keys, f->nkeys, TEXTOID, -1, false, TYPALIGN_INT));
		else
			nulls[9] = 'n';
		if (f->value)
			args[10] = CStringGetTextDatum(f->value);
		else
			nulls[10] = 'n';
		if (SPI_execute_plan(fs_validation_plan, args, nulls, false, 1) != SPI_OK_INSERT)
			elog(ERROR, "could not record a validation of feature group \"%s\"", e->fgname);
	}
	RestoreUser(&own);
	SPI_finish();

	if (e->nfindings > 0)
	{
		StringInfoData d;

		initStringInfo(&d);
		for (i = 0; i < e->nfindings; i++)
		{
			FsFinding  *f = &e->findings[i];

			appendStringInfo(&d, "%sexpectation \"%s\" rule %s (level %s) on feature \"%s\": ",
							 i ? "; " : "", f->expectation, f->rule,
							 f->error_level ? "ERROR" : "WARNING", f->feature);
			if (f->batch)
				appendStringInfo(&d, "observed %s", f->value);
			else
				appendStringInfo(&d, INT64_FORMAT " row%s, first value %s", f->failures,
								 f->failures == 1 ? "" : "s", f->value);
		}
		ereport(WARNING,
				(errmsg("feature group \"%s\" accepted %s " INT64_FORMAT " row%s with %d failed rule%s under validation mode %s",
						e->fgname, op == NULL ? "" : (strcmp(op, "INSERT") == 0 ? "an INSERT of" : "an UPDATE of"),
						inserted + updated, inserted + updated == 1 ? "" : "s",
						e->nfindings, e->nfindings == 1 ? "" : "s",
						mode_names[e->mode]),
				 errdetail("%s.", d.data),
				 errhint("The findings are in iceml.validations.")));
	}
	ForgetFindings(e);
	return PointerGetDatum(NULL);
}

/* ----------------------------------------------------------------
 * helpers of the SQL functions
 * ---------------------------------------------------------------- */

/* iceml._fs_check_name(name text, what text): a safe identifier, or 22023 */
Datum
iceml_fs_check_name(PG_FUNCTION_ARGS)
{
	FsCheckIdentifier(text_to_cstring(PG_GETARG_TEXT_PP(0)),
					  text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/*
 * iceml._fs_table_ddl(features jsonb, primary_key text[]) RETURNS text: the
 * column list of CREATE TABLE, from checked names (quoted anyway) and types
 * written back from their oids, with the primary key.
 */
Datum
iceml_fs_table_ddl(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc = PG_GETARG_JSONB_P(0);
	ArrayType  *pk = PG_GETARG_ARRAYTYPE_P(1);
	FsFeature  *features;
	int			nf,
				npk,
				i,
				j;
	Datum	   *pkd;
	bool	   *pkn;
	bool	   *inpk;
	StringInfoData s;

	features = FsFeaturesFromJsonb(doc, &nf);
	if (ARR_NDIM(pk) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary_key must be a one-dimensional array of feature names")));
	deconstruct_array(pk, TEXTOID, -1, false, TYPALIGN_INT, &pkd, &pkn, &npk);
	if (npk == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("primary_key must name at least one feature"),
				 errhint("For example primary_key => ARRAY['id'].")));
	inpk = palloc0(sizeof(bool) * nf);
	initStringInfo(&s);
	for (i = 0; i < npk; i++)
	{
		char	   *name;
		int			k;

		if (pkn[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] is NULL", i + 1)));
		name = TextDatumGetCString(pkd[i]);
		k = FsFindFeature(features, nf, name);
		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] \"%s\" is not a feature", i + 1, name)));
		if (inpk[k])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] \"%s\" is listed twice", i + 1, name)));
		if (features[k].isarray)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary_key[%d] \"%s\" is an array feature", i + 1, name),
					 errhint("A primary key is made of scalar features such as an id.")));
		inpk[k] = true;
	}
	for (i = 0; i < nf; i++)
		appendStringInfo(&s, "%s%s %s%s", i ? ", " : "", quote_identifier(features[i].name),
						 format_type_with_typemod(features[i].typid, features[i].typmod),
						 inpk[i] ? " NOT NULL" : "");
	appendStringInfoString(&s, ", PRIMARY KEY (");
	for (j = 0; j < npk; j++)
		appendStringInfo(&s, "%s%s", j ? ", " : "",
						 quote_identifier(TextDatumGetCString(pkd[j])));
	appendStringInfoChar(&s, ')');
	PG_RETURN_TEXT_P(cstring_to_text(s.data));
}

/* iceml._fs_check_expectations(features jsonb, expectations jsonb) */
Datum
iceml_fs_check_expectations(PG_FUNCTION_ARGS)
{
	int			nf;
	FsFeature  *features = FsFeaturesFromJsonb(PG_GETARG_JSONB_P(0), &nf);

	(void) FsParseExpectations(PG_GETARG_JSONB_P(1), features, nf);
	PG_RETURN_VOID();
}

/*
 * iceml._fs_check_expectation(feature_group regclass, existing jsonb,
 * expectation jsonb): one more expectation for a table, checked against its
 * live columns.
 */
Datum
iceml_fs_check_expectation(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel = relation_open(relid, AccessShareLock);
	int			nf;
	FsFeature  *features = FsFeaturesFromTupleDesc(RelationGetDescr(rel), &nf);

	FsCheckOneExpectation(PG_GETARG_JSONB_P(2), PG_GETARG_JSONB_P(1), features, nf);
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}
