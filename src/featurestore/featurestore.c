/*
 * featurestore.c - the triggers that make a feature group table enforce its
 * expectations and keep its commit history, the reject hook of the loader,
 * (this file), the statement triggers that write commits and validations
 * (fs_commit.c), and the C helpers of src/sql/10_featurestore.sql
 * (fs_sql.c).
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

#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "iceml_catalog.h"
#include "featurestore_internal.h"

const char *const fs_mode_names[] = {"STRICT", "WARNING", "ALL", "NONE"};

static HTAB *fs_cache = NULL;
static MemoryContext fs_row_cxt = NULL;
static SPIPlanPtr fs_lookup_plan = NULL;
static FeatureGroupRejectHook fs_reject_hook = NULL;
static void *fs_reject_arg = NULL;
static int	fs_reject_level = 0;	/* transaction nest level it was set at */

PG_FUNCTION_INFO_V1(iceml_fs_row_trigger);

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

void
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

SPIPlanPtr
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

	for (i = 0; i < (int) lengthof(fs_mode_names); i++)
		if (pg_strcasecmp(s, fs_mode_names[i]) == 0)
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
FsCacheEntry *
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

char *
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

bool
Blocks(FsMode mode, FsRule *r)
{
	return mode == FS_MODE_STRICT || (mode == FS_MODE_WARNING && r->error_level);
}

/* ----------------------------------------------------------------
 * findings
 * ---------------------------------------------------------------- */

FsFinding *
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
						   fs_mode_names[e->mode],
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
