/*
 * fs_commit.c - the statement triggers of a feature group (AFTER INSERT,
 * UPDATE, DELETE with transition tables): batch rules judged on the whole
 * statement, the commit row, and the validations rows of the findings the
 * row trigger collected (see featurestore.c).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"

#include "iceml_catalog.h"
#include "featurestore_internal.h"

static SPIPlanPtr fs_commit_plan = NULL;
static SPIPlanPtr fs_validation_plan = NULL;

PG_FUNCTION_INFO_V1(iceml_fs_statement_trigger);

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
						   fs_mode_names[e->mode],
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
		args[7] = CStringGetTextDatum(fs_mode_names[e->mode]);
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
						fs_mode_names[e->mode]),
				 errdetail("%s.", d.data),
				 errhint("The findings are in iceml.validations.")));
	}
	ForgetFindings(e);
	return PointerGetDatum(NULL);
}
