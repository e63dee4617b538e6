/*
 * schedules.c - pipelines scheduled with pg_cron: iceml.schedule_pipeline()
 * and iceml.unschedule_pipeline().  pg_cron is checked (preloaded, installed
 * in this database, its functions the extension's own) and called as the
 * catalog owner with the job running as the caller; the schedule is recorded
 * in iceml.schedules.  The job itself calls iceml.run_scheduled_pipeline()
 * (src/jobs/pipeline.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "iceml.h"
#include "iceml_worker.h"
#include "iceml_catalog.h"

PG_FUNCTION_INFO_V1(iceml_schedule_pipeline);
PG_FUNCTION_INFO_V1(iceml_unschedule_pipeline);

/* ---- schedules on pg_cron ------------------------------------------------ */

/*
 * pg_cron, checked: loaded, installed in this database; returns the oid of
 * its extension and whether it schedules in seconds (1.5 and later).
 */
static Oid
CronExtension(bool *seconds)
{
	const char *cron_db = GetConfigOption("cron.database_name", true, false);
	char	   *here = get_database_name(MyDatabaseId);
	Oid			ext;

	/*
	 * cron.database_name set in postgresql.conf exists as a placeholder
	 * even when pg_cron was never loaded: only pg_cron's own definition of
	 * the setting says it is there.
	 */
	if (cron_db == NULL ||
		(GetConfigOptionFlags("cron.database_name", true) & GUC_CUSTOM_PLACEHOLDER) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron is not loaded, so iceml cannot schedule pipelines"),
				 errhint("Add pg_cron to shared_preload_libraries, restart the server and CREATE EXTENSION pg_cron in database \"%s\"; or run iceml.run_pipeline() from your own scheduler.",
						 here)));
	ext = get_extension_oid("pg_cron", true);
	if (!OidIsValid(ext))
	{
		if (strcmp(cron_db, here) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("pg_cron keeps its jobs in database \"%s\", not in \"%s\"", cron_db, here),
					 errhint("Schedule pipelines in database \"%s\", or set cron.database_name = '%s' and restart the server.",
							 cron_db, here)));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension pg_cron is not installed in database \"%s\"", here),
				 errhint("CREATE EXTENSION pg_cron; (as a superuser)")));
	}
	{
		char	   *v = NULL;
		int			major = 0,
					minor = 0;

		SPI_connect();
		if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension"
						" WHERE extname OPERATOR(pg_catalog.=) 'pg_cron'", true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			v = SpiGetText(0, 1);
		if (v)
			(void) sscanf(v, "%d.%d", &major, &minor);
		SPI_finish();
		*seconds = major > 1 || (major == 1 && minor >= 5);
	}
	return ext;
}

/*
 * A function of pg_cron by exact qualified name and argument types, and
 * only if it is a member of the pg_cron extension: iceml calls it as the
 * catalog owner, so nothing a user created may stand in for it.
 */
static Oid
CronFunction(Oid ext, const char *name, int nargs, Oid *argtypes)
{
	List	   *fname = list_make2(makeString("cron"), makeString((char *) name));
	IcemlOwnerContext own;
	Oid			fn;

	/* looked up as the owner: callers need no USAGE on schema cron */
	BecomeCatalogOwner(&own);
	fn = LookupFuncName(fname, nargs, argtypes, true);
	RestoreUser(&own);

	if (!OidIsValid(fn) || getExtensionOfObject(ProcedureRelationId, fn) != ext)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the installed pg_cron has no function cron.%s of the expected arguments", name),
				 errhint("iceml needs pg_cron 1.4 or later.")));
	return fn;
}

/* 'N seconds' (1 to 59) or 0 for anything else */
static int
ParseSeconds(const char *schedule)
{
	int			n = 0;
	int			used = 0;
	char		unit[16];

	if (sscanf(schedule, " %d %15s %n", &n, unit, &used) != 2 || schedule[used] != '\0')
		return 0;
	if (strcmp(unit, "seconds") != 0 && strcmp(unit, "second") != 0)
		return 0;
	if (n < 1 || n > 59)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid pipeline schedule \"%s\": seconds must be between 1 and 59", schedule),
				 errhint("Use cron syntax for longer periods, e.g. '*/5 * * * *' for every five minutes.")));
	return n;
}

/*
 * iceml.schedule_pipeline(name, schedule, config) -> pg_cron job id.
 * The job runs in this database as the caller (pg_cron's username), and
 * runs only iceml.run_scheduled_pipeline(name), which finds the caller's
 * own schedule of that name.
 */
Datum
iceml_schedule_pipeline(PG_FUNCTION_ARGS)
{
	IcemlOwnerContext own;
	text	   *name;
	char	   *schedule;
	Jsonb	   *config;
	bool		seconds;
	Oid			ext;
	Oid			fn;
	Oid			argtypes[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID};
	int			repeat;
	char	   *cname;
	char	   *user;
	char	   *db = get_database_name(MyDatabaseId);
	char	   *jobname;
	char	   *command;
	int64		job;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline name, schedule and config must not be NULL")));
	RequireIcemlUser("run a pipeline");
	name = PG_GETARG_TEXT_PP(0);
	schedule = text_to_cstring(PG_GETARG_TEXT_PP(1));
	config = PG_GETARG_JSONB_P(2);
	cname = text_to_cstring(name);
	user = GetUserNameFromId(IcemlCaller(), false);

	/* the config first: a bad one is refused whether or not pg_cron is there */
	SPI_connect();
	{
		Datum		args[2] = {PointerGetDatum(name), JsonbPGetDatum(config)};
		Oid			types[2] = {TEXTOID, JSONBOID};
		Datum		d;

		BecomeCatalogOwner(&own);
		SpiExec("SELECT iceml._pipeline_check($1, $2)", 2, types, args, NULL);
		SpiGetDatum(0, 1, &d);
		config = DatumGetJsonbPCopy(d);	/* in SPI's context: kept until SPI_finish */
		RestoreUser(&own);
	}

	repeat = ParseSeconds(schedule);
	ext = CronExtension(&seconds);
	fn = CronFunction(ext, "schedule_in_database", 6, argtypes);
	jobname = psprintf("iceml pipeline %s in %s", cname, db);
	command = psprintf("SELECT iceml.run_scheduled_pipeline(%s)", quote_literal_cstr(cname));

	BecomeCatalogOwner(&own);
	job = DatumGetInt64(OidFunctionCall6(fn,
										 CStringGetTextDatum(jobname),
										 CStringGetTextDatum(repeat > 0 && !seconds ? "* * * * *" : schedule),
										 CStringGetTextDatum(command),
										 CStringGetTextDatum(db),
										 CStringGetTextDatum(user),
										 BoolGetDatum(true)));
	{
		Datum		args[8];
		Oid			types[8] = {TEXTOID, NAMEOID, OIDOID, OIDOID, TEXTOID, JSONBOID, INT8OID, INT4OID};
		char		nulls[9] = "        ";

		args[0] = PointerGetDatum(name);
		args[1] = DirectFunctionCall1(namein, CStringGetDatum(user));
		args[2] = ObjectIdGetDatum(IcemlCaller());
		args[3] = ObjectIdGetDatum(MyDatabaseId);
		args[4] = CStringGetTextDatum(schedule);
		args[5] = JsonbPGetDatum(config);
		args[6] = Int64GetDatum(job);
		args[7] = Int32GetDatum(repeat);
		nulls[7] = repeat > 0 && !seconds ? ' ' : 'n';
		SpiExec("INSERT INTO iceml.schedules (name, owner, role, database, schedule, config, cron_job, repeat_seconds)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
				" ON CONFLICT (database, owner, name) DO UPDATE SET role = EXCLUDED.role,"
				"     schedule = EXCLUDED.schedule, config = EXCLUDED.config, cron_job = EXCLUDED.cron_job,"
				"     repeat_seconds = EXCLUDED.repeat_seconds, created = pg_catalog.now()",
				8, types, args, nulls);
	}
	SPI_finish();
	RestoreUser(&own);
	PG_RETURN_INT64(job);
}

/* iceml.unschedule_pipeline(name) -> whether a schedule was removed */
Datum
iceml_unschedule_pipeline(PG_FUNCTION_ARGS)
{
	IcemlOwnerContext own;
	Datum		args[3];
	Oid			types[3] = {TEXTOID, NAMEOID, OIDOID};
	bool		seconds;
	Oid			ext;
	Oid			fn;
	Oid			argtype = INT8OID;
	int64		job;
	Datum		d;
	bool		present;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline name must not be NULL")));
	RequireIcemlUser("run a pipeline");
	ext = CronExtension(&seconds);
	fn = CronFunction(ext, "unschedule", 1, &argtype);
	args[0] = PG_GETARG_DATUM(0);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));
	args[2] = ObjectIdGetDatum(MyDatabaseId);

	SPI_connect();
	BecomeCatalogOwner(&own);
	/* the caller's own schedule only, whatever row-level security shows */
	if (SpiExec("DELETE FROM iceml.schedules WHERE name OPERATOR(pg_catalog.=) $1"
				"   AND owner OPERATOR(pg_catalog.=) $2 AND database OPERATOR(pg_catalog.=) $3"
				" RETURNING cron_job",
				3, types, args, NULL) != 1)
	{
		RestoreUser(&own);
		SPI_finish();
		ereport(NOTICE,
				(errmsg("role \"%s\" has no scheduled pipeline \"%s\" in this database",
						GetUserNameFromId(IcemlCaller(), false), TextDatumGetCString(args[0]))));
		PG_RETURN_BOOL(false);
	}
	SpiGetDatum(0, 1, &d);
	job = DatumGetInt64(d);
	/* the job may already be gone (cron.unschedule by hand) */
	present = SpiExec("SELECT 1 FROM cron.job WHERE jobid OPERATOR(pg_catalog.=) $1",
					  1, &argtype, &d, NULL) == 1;
	if (present)
		(void) OidFunctionCall1(fn, Int64GetDatum(job));
	RestoreUser(&own);
	SPI_finish();
	PG_RETURN_BOOL(true);
}
