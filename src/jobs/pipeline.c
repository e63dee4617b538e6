/*
 * pipeline.c - iceml.run_pipeline() and the worker that runs a pipeline's
 * steps.
 *
 * iceml.run_pipeline(name, config) checks the config whole
 * (iceml._pipeline_check, 22023 naming the JSON path of a fault), records
 * the run and its planned steps in iceml.pipeline_runs / pipeline_steps as
 * the catalog owner, and asks for a worker at commit, as iceml.train() does
 * (src/jobs/worker.c: same launch-at-commit machinery, worker set-up and
 * transaction helpers, same id sequence; a queued pipeline that found no
 * slot is started by the supervisor, or by the lazy path).
 *
 * The worker connects as the caller's session user and runs each step as
 * the caller's role, in a transaction of its own, by calling
 * iceml._pipeline_step() directly through fmgr (nobody may EXECUTE it from
 * SQL).  Step bookkeeping is written as the catalog owner in short
 * transactions, so iceml.pipeline_steps shows progress live.  A train or
 * tune step queues its run or study (launched when the step's transaction
 * commits) and the worker waits for it, passing on iceml.cancel().  A step
 * that raises ends the run failed with the step's SQLSTATE and message.
 *
 * Schedules on pg_cron are in schedules.c.
 *
 * Pipeline workers advertise themselves as 'iceml pipeline <id>', not as
 * trainers: they mostly wait, and must not take the iceml.max_workers slot
 * their own training run needs.
 */
#include "postgres.h"

#include "parser/parse_func.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "iceml_worker.h"

PG_FUNCTION_INFO_V1(iceml_run_pipeline);
PG_FUNCTION_INFO_V1(iceml_run_scheduled_pipeline);

PGDLLEXPORT void iceml_pipeline_main(Datum main_arg);

/* ---- queueing ------------------------------------------------------------ */

/*
 * Check the config and record the run with its steps, as the catalog owner;
 * the worker starts when the caller's transaction commits.  SPI connected.
 */
static int64
EnqueuePipeline(text *name, Jsonb *config, int64 cron_job, int repeat_seconds)
{
	Oid			types[8] = {TEXTOID, JSONBOID, NAMEOID, OIDOID, OIDOID, OIDOID, INT8OID, INT4OID};
	Datum		values[8];
	char		nulls[9] = "        ";
	int64		id;

	values[0] = PointerGetDatum(name);
	values[1] = JsonbPGetDatum(config);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));
	values[3] = ObjectIdGetDatum(IcemlCaller());
	values[4] = ObjectIdGetDatum(GetSessionUserId());
	values[5] = ObjectIdGetDatum(MyDatabaseId);
	values[6] = Int64GetDatum(cron_job);
	nulls[6] = cron_job > 0 ? ' ' : 'n';
	values[7] = Int32GetDatum(repeat_seconds);
	nulls[7] = repeat_seconds > 0 ? ' ' : 'n';

	id = OwnerInsertId("WITH c AS (SELECT iceml._pipeline_check($1, $2) AS config),"
			"     r AS (INSERT INTO iceml.pipeline_runs (name, config, owner, role, login, database, cron_job, repeat_seconds)"
			"           SELECT $1, c.config, $3, $4, $5, $6, $7, $8 FROM c RETURNING id, config),"
			"     s AS (INSERT INTO iceml.pipeline_steps (run_id, ordinal, step)"
			"           SELECT r.id, p.ordinality, p.step FROM r,"
			"                  pg_catalog.unnest(iceml._pipeline_plan(r.config)) WITH ORDINALITY AS p(step, ordinality))"
			" SELECT id FROM r",
			8, types, values, nulls);
	LaunchPipelineAtCommit(id, IcemlCaller(), GetSessionUserId());
	return id;
}

/* iceml.run_pipeline(name text, config jsonb) -> pipeline run id */
Datum
iceml_run_pipeline(PG_FUNCTION_ARGS)
{
	int64		id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline name and config must not be NULL")));
	RequireIcemlUser("run a pipeline");
	SPI_connect();
	id = EnqueuePipeline(PG_GETARG_TEXT_PP(0), PG_GETARG_JSONB_P(1), 0, 0);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * iceml.run_scheduled_pipeline(name text): what a pg_cron job of
 * iceml.schedule_pipeline() runs, as the role that scheduled it: the
 * caller's own schedule of that name, recorded with its cron job id.
 */
Datum
iceml_run_scheduled_pipeline(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	Datum		args[2];
	Oid			types[2] = {TEXTOID, NAMEOID};
	Datum		d;
	Jsonb	   *config;
	int64		job;
	int			repeat;
	int64		id;

	RequireIcemlUser("run a pipeline");
	SPI_connect();
	args[0] = PointerGetDatum(name);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(IcemlCaller(), false)));
	/* row-level security shows each role its own schedules only */
	if (SpiExec("SELECT config, cron_job, repeat_seconds FROM iceml.schedules"
				" WHERE name OPERATOR(pg_catalog.=) $1 AND owner OPERATOR(pg_catalog.=) $2"
				"   AND database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
				"        WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())",
				2, types, args, NULL) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" has no scheduled pipeline \"%s\" in this database",
						GetUserNameFromId(IcemlCaller(), false), text_to_cstring(name)),
				 errhint("iceml.pipeline_schedules lists your schedules.")));
	SpiGetDatum(0, 1, &d);
	config = DatumGetJsonbPCopy(d);
	SpiGetDatum(0, 2, &d);
	job = DatumGetInt64(d);
	repeat = SpiGetDatum(0, 3, &d) ? DatumGetInt32(d) : 0;
	id = EnqueuePipeline(name, config, job, repeat);
	SPI_finish();
	PG_RETURN_INT64(id);
}


/* ---- the worker ---------------------------------------------------------- */

typedef struct PipelineJob
{
	int64		id;
	int			repeat_seconds; /* see iceml.schedules */
	TimestampTz created;
	Oid			role;
	char	   *name;
	Jsonb	   *config;
	Jsonb	   *state;
	int			nsteps;
	char	  **steps;
	int		   *ordinals;
} PipelineJob;

static bool
ClaimPipeline(PipelineJob *job)
{
	IcemlOwnerContext own;
	Datum		args[3];
	Oid			types[3] = {INT8OID, INT4OID, TIMESTAMPTZOID};
	bool		ok;
	MemoryContext old;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	args[0] = Int64GetDatum(job->id);
	args[1] = Int32GetDatum(MyProcPid);
	args[2] = TimestampTzGetDatum(MyStartTimestamp);
	ok = SpiExec("UPDATE iceml.pipeline_runs SET status = 'running', started = pg_catalog.now(),"
				 "       worker_pid = $2, worker_start = $3"
				 " WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'queued'"
				 " RETURNING name, config, role, COALESCE(repeat_seconds, 0), created",
				 3, types, args, NULL) == 1;
	if (ok)
	{
		Datum		d;
		uint64		n;

		old = MemoryContextSwitchTo(TopMemoryContext);
		job->name = pstrdup(SpiGetText(0, 1));
		SpiGetDatum(0, 2, &d);
		job->config = DatumGetJsonbPCopy(d);
		SpiGetDatum(0, 3, &d);
		job->role = DatumGetObjectId(d);
		SpiGetDatum(0, 4, &d);
		job->repeat_seconds = DatumGetInt32(d);
		SpiGetDatum(0, 5, &d);
		job->created = DatumGetTimestampTz(d);
		MemoryContextSwitchTo(old);

		n = SpiExec("SELECT step, ordinal FROM iceml.pipeline_steps"
					" WHERE run_id OPERATOR(pg_catalog.=) $1 ORDER BY ordinal",
					1, types, args, NULL);
		old = MemoryContextSwitchTo(TopMemoryContext);
		job->nsteps = (int) n;
		job->steps = palloc(sizeof(char *) * n);
		job->ordinals = palloc(sizeof(int) * n);
		for (uint64 i = 0; i < n; i++)
		{
			job->steps[i] = pstrdup(SpiGetText(i, 1));
			SpiGetDatum(i, 2, &d);
			job->ordinals[i] = DatumGetInt32(d);
		}
		job->state = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		MemoryContextSwitchTo(old);

		{
			char		appname[NAMEDATALEN];

			snprintf(appname, sizeof(appname), "iceml pipeline %lld", (long long) job->id);
			pgstat_report_appname(appname);
		}
	}
	RestoreUser(&own);
	WorkerEndTx();
	return ok;
}

static bool
CancelRequested(PipelineJob *job)
{
	Datum		arg = Int64GetDatum(job->id);
	Oid			type = INT8OID;
	IcemlOwnerContext own;
	bool		cancel;

	WorkerBeginTx();
	BecomeCatalogOwner(&own);
	cancel = SpiExec("SELECT 1 FROM iceml.pipeline_runs WHERE id OPERATOR(pg_catalog.=) $1 AND cancel_requested",
					 1, &type, &arg, NULL) == 1;
	RestoreUser(&own);
	WorkerEndTx();
	return cancel;
}

static void
MarkStepRunning(PipelineJob *job, int i)
{
	Datum		args[2] = {Int64GetDatum(job->id), Int32GetDatum(job->ordinals[i])};
	Oid			types[2] = {INT8OID, INT4OID};
	char		activity[128];

	snprintf(activity, sizeof(activity), "pipeline %lld: step %s", (long long) job->id, job->steps[i]);
	pgstat_report_activity(STATE_RUNNING, activity);
	OwnerExec("UPDATE iceml.pipeline_steps SET status = 'running', started = pg_catalog.now()"
			  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND ordinal OPERATOR(pg_catalog.=) $2",
			  2, types, args, NULL);
}

/* record a step's end; result is the step function's result document */
static void
FinishStep(PipelineJob *job, int i, Jsonb *result, const char *status)
{
	Datum		args[4] = {Int64GetDatum(job->id), Int32GetDatum(job->ordinals[i]),
	JsonbPGetDatum(result), CStringGetTextDatum(status)};
	Oid			types[4] = {INT8OID, INT4OID, JSONBOID, TEXTOID};

	OwnerExec("UPDATE iceml.pipeline_steps SET status = $4, finished = pg_catalog.now(),"
			  "       rows_in = ($3 OPERATOR(pg_catalog.->>) 'rows_in')::pg_catalog.int8,"
			  "       \"rows\" = ($3 OPERATOR(pg_catalog.->>) 'rows')::pg_catalog.int8,"
			  "       detail = COALESCE($3 OPERATOR(pg_catalog.->) 'detail', '{}')"
			  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND ordinal OPERATOR(pg_catalog.=) $2",
			  4, types, args, NULL);
}

/* the run ends: steps not reached are marked with why */
static void
EndRun(PipelineJob *job, const char *status, const char *error)
{
	Datum		args[3] = {Int64GetDatum(job->id), CStringGetTextDatum(status),
	error ? CStringGetTextDatum(error) : (Datum) 0};
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	char		nulls[4] = {' ', ' ', error ? ' ' : 'n', '\0'};

	OwnerExec("WITH s AS (UPDATE iceml.pipeline_steps SET"
			  "              status = CASE WHEN $2 OPERATOR(pg_catalog.=) 'cancelled' THEN 'cancelled' ELSE 'skipped' END,"
			  "              detail = pg_catalog.jsonb_build_object('reason', CASE $2 WHEN 'cancelled' THEN 'the run was cancelled'"
			  "                                                               ELSE 'an earlier step failed' END)"
			  "            WHERE run_id OPERATOR(pg_catalog.=) $1"
			  "              AND status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']) RETURNING 1)"
			  " UPDATE iceml.pipeline_runs SET status = $2, finished = pg_catalog.now(), error = $3"
			  " WHERE id OPERATOR(pg_catalog.=) $1",
			  3, types, args, nulls);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
FailStep(PipelineJob *job, int i, const char *sqlstate, const char *message, Jsonb *detail)
{
	Datum		args[5] = {Int64GetDatum(job->id), Int32GetDatum(job->ordinals[i]),
		CStringGetTextDatum(sqlstate), CStringGetTextDatum(message),
	detail ? JsonbPGetDatum(detail) : (Datum) 0};
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, JSONBOID};
	char		nulls[6] = {' ', ' ', ' ', ' ', detail ? ' ' : 'n', '\0'};
	char	   *error;

	OwnerExec("UPDATE iceml.pipeline_steps SET status = 'failed', finished = pg_catalog.now(),"
			  "       sqlstate = $3, error = $4, detail = COALESCE($5, detail)"
			  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND ordinal OPERATOR(pg_catalog.=) $2",
			  5, types, args, nulls);
	error = psprintf("step %s failed: %s (SQLSTATE %s)", job->steps[i], message, sqlstate);
	EndRun(job, "failed", error);
}

static Jsonb *
JsonbGet(Jsonb *jb, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	return JsonbValueToJsonb(v);
}

static char *
JsonbGetText(Jsonb *jb, const char *key)
{
	Jsonb	   *v = JsonbGet(jb, key);
	char	   *s;
	size_t		len;

	if (v == NULL)
		return NULL;
	s = JsonbToCString(NULL, &v->root, VARSIZE(v));
	/* scalars print bare except strings, which keep their quotes */
	len = strlen(s);
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
		s = pnstrdup(s + 1, len - 2);
	return s;
}

/*
 * Run the step function as the pipeline's role, in its own transaction.
 * Returns its result (in TopMemoryContext), or NULL after recording the
 * failure.
 */
static Jsonb *
RunStep(PipelineJob *job, int i)
{
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *result = NULL;
	Oid			argtypes[5] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID};
	List	   *fname = list_make2(makeString("iceml"), makeString("_pipeline_step"));
	Oid			fn;
	Oid			save_userid;
	int			save_sec;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	GetUserIdAndSecContext(&save_userid, &save_sec);
	PG_TRY();
	{
		Datum		r;

		fn = LookupFuncName(fname, 5, argtypes, false);
		/* the caller's role, for the step and for the commit that launches its run */
		SetUserIdAndSecContext(job->role, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		r = OidFunctionCall5(fn, Int64GetDatum(job->id), CStringGetTextDatum(job->steps[i]),
							 CStringGetTextDatum(job->name), JsonbPGetDatum(job->config),
							 JsonbPGetDatum(job->state));
		MemoryContextSwitchTo(TopMemoryContext);
		result = DatumGetJsonbPCopy(r);
		MemoryContextSwitchTo(caller);
		PopActiveSnapshot();
		CommitTransactionCommand();
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		SetUserIdAndSecContext(save_userid, save_sec);
		/* the server log keeps the whole report */
		ereport(LOG,
				(errmsg("iceml pipeline %lld: step %s failed: %s",
						(long long) job->id, job->steps[i], edata->message)));
		FailStep(job, i, unpack_sql_state(edata->sqlerrcode), edata->message, NULL);
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/*
 * Wait for the run or study a train/tune step queued; passes a cancel of
 * the pipeline on to it.  Returns the model id, or 0 after recording why
 * there is none.
 */
static int64
WaitForTraining(PipelineJob *job, int i, int64 wait_id, bool study, Jsonb *detail)
{
	Datum		arg = Int64GetDatum(wait_id);
	Oid			type = INT8OID;
	bool		cancel_sent = false;

	for (;;)
	{
		IcemlOwnerContext own;
		char	   *status = NULL;
		char	   *error = NULL;
		int64		model = 0;
		int			epoch = 0;
		int			epochs = 0;
		Datum		d;

		CHECK_FOR_INTERRUPTS();
		WorkerBeginTx();
		/* without the supervisor: start the run, mark dead workers */
		JobsMaintain();
		BecomeCatalogOwner(&own);
		if (SpiExec(study ?
					"SELECT status, NULL::pg_catalog.text, best_model, 0, 0 FROM iceml.studies WHERE id OPERATOR(pg_catalog.=) $1" :
					"SELECT status, error, model_id, epoch, epochs FROM iceml.runs WHERE id OPERATOR(pg_catalog.=) $1",
					1, &type, &arg, NULL) == 1)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			status = pstrdup(SpiGetText(0, 1));
			error = SpiGetText(0, 2) ? pstrdup(SpiGetText(0, 2)) : NULL;
			MemoryContextSwitchTo(old);
			if (SpiGetDatum(0, 3, &d))
				model = DatumGetInt64(d);
			SpiGetDatum(0, 4, &d);
			epoch = DatumGetInt32(d);
			SpiGetDatum(0, 5, &d);
			epochs = DatumGetInt32(d);
		}
		RestoreUser(&own);
		WorkerEndTx();

		if (status == NULL)
		{
			FailStep(job, i, "XX000", psprintf("%s %lld vanished", study ? "study" : "run", (long long) wait_id), detail);
			return 0;
		}
		if (strcmp(status, "succeeded") == 0)
		{
			if (model == 0)
			{
				FailStep(job, i, "38000", psprintf("%s %lld kept no model", study ? "study" : "run", (long long) wait_id), detail);
				return 0;
			}
			return model;
		}
		if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0)
		{
			if (strcmp(status, "cancelled") == 0 && cancel_sent)
			{
				Datum		args[2] = {Int64GetDatum(job->id), Int32GetDatum(job->ordinals[i])};
				Oid			types[2] = {INT8OID, INT4OID};

				OwnerExec("UPDATE iceml.pipeline_steps SET status = 'cancelled', finished = pg_catalog.now()"
						  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND ordinal OPERATOR(pg_catalog.=) $2",
						  2, types, args, NULL);
				EndRun(job, "cancelled", NULL);
			}
			else
				FailStep(job, i, strcmp(status, "cancelled") == 0 ? "57014" : "38000",
						 psprintf("%s %lld %s%s%s", study ? "study" : "training run", (long long) wait_id,
								  status, error ? ": " : "", error ? error : ""),
						 detail);
			return 0;
		}
		if (!cancel_sent && CancelRequested(job))
		{
			/* iceml.cancel as the caller, as if the caller had asked */
			Oid			save_userid;
			int			save_sec;

			WorkerBeginTx();
			GetUserIdAndSecContext(&save_userid, &save_sec);
			SetUserIdAndSecContext(job->role, save_sec | SECURITY_LOCAL_USERID_CHANGE);
			SpiExec("SELECT iceml.cancel($1)", 1, &type, &arg, NULL);
			SetUserIdAndSecContext(save_userid, save_sec);
			WorkerEndTx();
			cancel_sent = true;
		}
		{
			char		activity[160];

			snprintf(activity, sizeof(activity), "pipeline %lld: step %s: %s %lld %s, epoch %d of %d",
					 (long long) job->id, job->steps[i], study ? "study" : "run",
					 (long long) wait_id, status, epoch, epochs);
			pgstat_report_activity(STATE_RUNNING, activity);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 500L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* state := state || {"model_id": model}, and the step's detail too */
static Jsonb *
JsonbSetInt(Jsonb *jb, const char *key, int64 value)
{
	char	   *s = psprintf("{\"%s\": %lld}", key, (long long) value);
	Datum		add = DirectFunctionCall1(jsonb_in, CStringGetDatum(s));

	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(jb), add));
}

static void
RunPipeline(PipelineJob *job)
{
	for (int i = 0; i < job->nsteps; i++)
	{
		Jsonb	   *result;
		char	   *status;
		char	   *wait;

		if (CancelRequested(job))
		{
			EndRun(job, "cancelled", NULL);
			return;
		}
		MarkStepRunning(job, i);
		result = RunStep(job, i);
		if (result == NULL)
			return;
		status = JsonbGetText(result, "status");
		wait = JsonbGetText(result, "wait");
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
			Jsonb	   *st = JsonbGet(result, "state");

			job->state = st ? st : job->state;
			MemoryContextSwitchTo(old);
		}
		if (wait != NULL)
		{
			int64		id = strtoll(wait, NULL, 10);
			bool		study = strcmp(job->steps[i], "tune") == 0;
			int64		model;
			Jsonb	   *detail = JsonbGet(result, "detail");

			/* show the run being waited for */
			FinishStep(job, i, result, "running");
			model = WaitForTraining(job, i, id, study, detail);
			if (model == 0)
				return;
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
				Jsonb	   *res2;

				job->state = JsonbSetInt(job->state, "model_id", model);
				detail = JsonbSetInt(detail, "model_id", model);
				res2 = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(result),
														  DirectFunctionCall1(jsonb_in, CStringGetDatum(psprintf("{\"detail\": %s}",
																												 JsonbToCString(NULL, &detail->root, VARSIZE(detail)))))));
				result = res2;
				MemoryContextSwitchTo(old);
			}
			status = "succeeded";
		}
		FinishStep(job, i, result, status);
	}
	EndRun(job, "succeeded", NULL);
}

/*
 * An 'N seconds' schedule on a pg_cron that schedules by the minute: after
 * the run of a cron tick, run again every N seconds until the minute is
 * over, one run at a time (a late run skips the offsets it overran), while
 * the schedule still exists.  Each run is a pipeline run of its own.
 */
static bool
NextRepeat(PipelineJob *job, int repeat, int64 *k, TimestampTz tick)
{
	TimestampTz next;
	Datum		arg;
	Oid			type = INT8OID;
	Datum		d;

	if (repeat <= 0)
		return false;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		next = tick + (*k) * repeat * USECS_PER_SEC;
		if (next >= tick + 60 * USECS_PER_SEC)
			return false;
		if (next >= GetCurrentTimestamp())
			break;
		(*k)++;
	}
	while (GetCurrentTimestamp() < next)
	{
		long		ms = (long) ((next - GetCurrentTimestamp()) / 1000) + 1;

		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(ms, 1000L), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	(*k)++;

	/* a copy of the run, queued, with its planned steps; then claimed here */
	arg = Int64GetDatum(job->id);
	WorkerBeginTx();
	{
		IcemlOwnerContext own;
		bool		found;

		BecomeCatalogOwner(&own);
		found = SpiExec("WITH o AS (SELECT p.* FROM iceml.pipeline_runs p"
						"            WHERE p.id OPERATOR(pg_catalog.=) $1"
						"              AND EXISTS (SELECT 1 FROM iceml.schedules s"
						"                           WHERE s.cron_job OPERATOR(pg_catalog.=) p.cron_job"
						"                             AND s.owner OPERATOR(pg_catalog.=) p.owner)),"
						"     r AS (INSERT INTO iceml.pipeline_runs (name, config, owner, role, login, database, cron_job)"
						"           SELECT o.name, o.config, o.owner, o.role, o.login, o.database, o.cron_job FROM o"
						"           RETURNING id, config),"
						"     s AS (INSERT INTO iceml.pipeline_steps (run_id, ordinal, step)"
						"           SELECT r.id, p.ordinality, p.step FROM r,"
						"                  pg_catalog.unnest(iceml._pipeline_plan(r.config)) WITH ORDINALITY AS p(step, ordinality))"
						" SELECT id FROM r",
						1, &type, &arg, NULL) == 1;
		if (found)
			SpiGetDatum(0, 1, &d);
		RestoreUser(&own);
		WorkerEndTx();
		if (!found)
			return false;		/* unscheduled meanwhile */
	}
	job->id = DatumGetInt64(d);
	return true;
}

void
iceml_pipeline_main(Datum main_arg)
{
	PipelineJob job;
	IcemlWorkerExtra extra;

	memset(&job, 0, sizeof(job));
	job.id = WorkerConnect(&extra);
	/* a pipeline run left 'running' is reaped when this worker is gone */
	WakeSupervisorAtExit();

	if (!ClaimPipeline(&job))
		proc_exit(0);

	PG_TRY();
	{
		TimestampTz tick = job.created;
		int			repeat = job.repeat_seconds;
		int64		k = 1;

		RunPipeline(&job);
		while (repeat > 0 && NextRepeat(&job, repeat, &k, tick))
		{
			if (!ClaimPipeline(&job))
				break;
			RunPipeline(&job);
		}
	}
	PG_CATCH();
	{
		/* bookkeeping itself failed, or SIGTERM: record it if we can */
		ErrorData  *edata;

		/* logged before it is flushed: EmitErrorReport needs the error's stack */
		edata = WorkerCatchError(TopMemoryContext);
		EndRun(&job, "failed", psprintf("the pipeline worker stopped: %s", edata->message));
	}
	PG_END_TRY();
	proc_exit(0);
}
