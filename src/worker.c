/*
 * worker.c - starting training workers, and the catalog plumbing they share
 * with the SQL functions.
 *
 * A run is a row in iceml.runs.  iceml.train() inserts it as 'queued' and
 * asks for a worker when the transaction commits (a rolled-back call starts
 * nothing).  The worker claims the run under a cluster-wide lock, within
 * iceml.max_workers and its study's parallel limit; a run that finds no
 * room, or no free background worker slot, stays queued and is started by
 * the next worker that finishes in its database, or by the next
 * iceml.train(), iceml.wait() or iceml.progress look there.
 *
 * A claimed worker advertises itself as application_name 'iceml train <id>'
 * and records its pid and start time in the run; a run whose worker is no
 * longer alive with that start time is marked failed by ReapOrphanedRuns().
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "iceml.h"
#include "iceml_worker.h"

#define ICEML_APPNAME_PREFIX "iceml train "
#define ICEML_WORKER_TYPE "iceml train"

PGDLLEXPORT void iceml_worker_main(Datum main_arg);

/* ---- SPI helpers ---------------------------------------------------------- */

uint64
SpiExec(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
										   false, 0);

	if (rc < 0)
		elog(ERROR, "iceml: SPI failed (%s) running: %s",
			 SPI_result_code_string(rc), sql);
	return SPI_processed;
}

bool
SpiGetDatum(uint64 row, int col, Datum *out)
{
	bool		isnull;

	*out = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	return !isnull;
}

char *
SpiGetText(uint64 row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/* ---- launching at commit ------------------------------------------------- */

typedef struct PendingLaunch
{
	int64		id;
	int			nest_level;		/* subtransaction that asked */
	IcemlWorkerExtra extra;		/* who the worker connects and acts as */
	bool		pipeline;		/* a pipeline run (src/pipeline.c), else a training run */
} PendingLaunch;

static List *pending_launches = NIL;	/* in TopMemoryContext */

static int	StartQueued(uint64 n, bool pipeline);

static bool
StartWorker(int64 id, IcemlWorkerExtra *extra, bool pipeline)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "iceml");
	snprintf(worker.bgw_function_name, BGW_MAXLEN,
			 pipeline ? "iceml_pipeline_main" : "iceml_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "iceml %s %lld",
			 pipeline ? "pipeline" : "train", (long long) id);
	/* pipeline workers mostly wait: they are not counted as trainers */
	snprintf(worker.bgw_type, BGW_MAXLEN, pipeline ? "iceml pipeline" : ICEML_WORKER_TYPE);
	worker.bgw_main_arg = Int64GetDatum(id);
	memcpy(worker.bgw_extra, extra, sizeof(*extra));
	worker.bgw_notify_pid = 0;

	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

static void
LaunchPending(void)
{
	ListCell   *lc;
	int			failed = 0;

	foreach(lc, pending_launches)
	{
		PendingLaunch *p = (PendingLaunch *) lfirst(lc);

		if (!StartWorker(p->id, &p->extra, p->pipeline))
			failed++;
	}
	list_free_deep(pending_launches);
	pending_launches = NIL;

	if (failed > 0)
		ereport(WARNING,
				(errmsg("no free background worker slot for %d iceml run(s); they stay queued", failed),
				 errdetail("A queued run starts when another iceml run finishes, or at the next iceml.train(), iceml.wait() or look at iceml.progress."),
				 errhint("Raise max_worker_processes (restart required) or lower the load of other background workers.")));
}

static void
WorkerXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (pending_launches != NIL)
				LaunchPending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			list_free_deep(pending_launches);
			pending_launches = NIL;
			break;
		default:
			break;
	}
}

static void
WorkerSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_launches)
		{
			PendingLaunch *p = (PendingLaunch *) lfirst(lc);

			if (p->nest_level >= level)
			{
				pending_launches = foreach_delete_current(pending_launches, lc);
				pfree(p);
			}
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_launches)
		{
			PendingLaunch *p = (PendingLaunch *) lfirst(lc);

			if (p->nest_level >= level)
				p->nest_level = level - 1;
		}
	}
}

static void
AddPendingLaunch(int64 id, Oid role, Oid login, bool pipeline)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	PendingLaunch *p = palloc(sizeof(PendingLaunch));

	p->id = id;
	p->extra.database = MyDatabaseId;
	p->extra.role = role;
	p->extra.login_role = login;
	p->nest_level = GetCurrentTransactionNestLevel();
	p->pipeline = pipeline;
	pending_launches = lappend(pending_launches, p);
	MemoryContextSwitchTo(old);
}

void
LaunchAtCommit(int64 id, Oid role, Oid login)
{
	AddPendingLaunch(id, role, login, false);
}

void
LaunchPipelineAtCommit(int64 id, Oid role, Oid login)
{
	AddPendingLaunch(id, role, login, true);
}

/*
 * Queued pipeline runs of this database whose worker found no slot: they
 * do not count against iceml.max_workers (they mostly wait for their own
 * training run, which does).  SPI connected.
 */
static int
LaunchQueuedPipelines(void)
{
	IcemlOwnerContext own;
	Datum		arg = ObjectIdGetDatum(MyDatabaseId);
	Oid			type = OIDOID;
	uint64		n;
	int			started = 0;

	BecomeCatalogOwner(&own);
	n = SpiExec("SELECT p.id, p.role, p.login FROM iceml.pipeline_runs p"
				" WHERE p.status OPERATOR(pg_catalog.=) 'queued' AND p.database OPERATOR(pg_catalog.=) $1"
				"   AND NOT p.cancel_requested"
				" ORDER BY p.id LIMIT 8",
				1, &type, &arg, NULL);
	RestoreUser(&own);
	started = StartQueued(n, true);
	return started;
}

void
WorkerInit(void)
{
	RegisterXactCallback(WorkerXactCallback, NULL);
	RegisterSubXactCallback(WorkerSubXactCallback, NULL);
}

/* ---- claiming a run ------------------------------------------------------ */

/*
 * Workers that hold a run anywhere in the cluster: background workers of
 * type "iceml train" (the type is set at registration; a client session
 * can name itself anything, but is never a background worker).
 */
static int
ClaimedWorkers(void)
{
	int			n;
	int			claimed = 0;

	/*
	 * The backend table is snapshotted once per transaction; iceml.wait()
	 * looks again and again inside one, so take a fresh look each time.
	 */
	pgstat_clear_snapshot();
	n = pgstat_fetch_stat_numbackends();

	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;
		const char *type;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid == MyProcPid || be->st_backendType != B_BG_WORKER)
			continue;
		type = GetBackgroundWorkerTypeByPid(be->st_procpid);
		if (type != NULL && strcmp(type, ICEML_WORKER_TYPE) == 0 &&
			be->st_appname != NULL &&
			strncmp(be->st_appname, ICEML_APPNAME_PREFIX, strlen(ICEML_APPNAME_PREFIX)) == 0)
			claimed++;
	}
	return claimed;
}

/*
 * Start a worker for each of the first n rows of SPI_tuptable (id, role,
 * login), in order, until no slot is free.  Returns how many started.
 */
static int
StartQueued(uint64 n, bool pipeline)
{
	IcemlWorkerExtra extra;
	int			started = 0;

	extra.database = MyDatabaseId;
	for (uint64 i = 0; i < n; i++)
	{
		Datum		d;
		int64		id;

		SpiGetDatum(i, 1, &d);
		id = DatumGetInt64(d);
		SpiGetDatum(i, 2, &d);
		extra.role = DatumGetObjectId(d);
		SpiGetDatum(i, 3, &d);
		extra.login_role = DatumGetObjectId(d);
		if (!StartWorker(id, &extra, pipeline))
			break;
		started++;
	}
	return started;
}

/* A cluster-wide transaction lock that serialises claims. */
static void
LockClaims(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, InvalidOid, 0x1CE3, 0x7A1, 2);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

int
LaunchQueuedRuns(void)
{
	IcemlOwnerContext own;
	int			room;
	int			started = 0;
	uint64		n;
	Datum		args[1];
	Oid			types[1] = {INT4OID};

	SPI_connect();
	started += LaunchQueuedPipelines();
	SPI_finish();

	if (iceml_max_workers <= 0)
		return started;
	room = iceml_max_workers - ClaimedWorkers();
	if (room <= 0)
		return started;

	SPI_connect();
	BecomeCatalogOwner(&own);
	args[0] = Int32GetDatum(room);
	/*
	 * the oldest queued runs, no more of a study than its free parallel
	 * slots; every row of this database's catalog is a run of this database
	 * (runs.database names the one it was queued in, which a restored or
	 * copied database does not share)
	 */
	n = SpiExec("SELECT q.id, q.role, q.login FROM ("
				"  SELECT r.id, r.role, r.login, r.study_id, s.parallel,"
				"         pg_catalog.row_number() OVER (PARTITION BY r.study_id ORDER BY r.id) AS k,"
				"         (SELECT pg_catalog.count(*) FROM iceml.runs x"
				"           WHERE x.study_id OPERATOR(pg_catalog.=) r.study_id"
				"             AND x.status OPERATOR(pg_catalog.=) 'running') AS busy"
				"    FROM iceml.runs r LEFT JOIN iceml.studies s ON s.id OPERATOR(pg_catalog.=) r.study_id"
				"   WHERE r.status OPERATOR(pg_catalog.=) 'queued') q"
				" WHERE q.study_id IS NULL OR q.k OPERATOR(pg_catalog.+) q.busy OPERATOR(pg_catalog.<=) q.parallel"
				" ORDER BY q.id LIMIT $1",
				1, types, args, NULL);
	RestoreUser(&own);

	started = StartQueued(n, false);
	SPI_finish();
	return started;
}

/*
 * A study ends when none of its trials is queued or running: it records its
 * best trial (by the study's metric, among trials that kept a model) and
 * ends succeeded, or failed when no trial kept one.  Trials end in separate
 * workers at the same time, so the study row is locked first: the last of
 * two concurrent trials then waits, and its check (a fresh snapshot per
 * statement) sees the other's end.  The lock is FOR NO KEY UPDATE: a
 * finishing trial already holds FOR KEY SHARE on its study (the foreign key
 * check of its second update of its run row), and two such holders each
 * asking FOR UPDATE deadlocked.  study_id 0: every running study.
 * Needs SPI and the catalog owner.
 */
void
FinishStudies(int64 study_id)
{
	Datum		arg = Int64GetDatum(study_id);
	Oid			type = INT8OID;
	uint64		n;
	int64	   *ids;

	if (study_id != 0)
		n = SpiExec("SELECT id FROM iceml.studies"
					" WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
					" FOR NO KEY UPDATE",
					1, &type, &arg, NULL);
	else
		/* a sweep: skip studies a finishing trial holds, it ends them itself */
		n = SpiExec("SELECT s.id FROM iceml.studies s"
					" WHERE s.status OPERATOR(pg_catalog.=) 'running'"
					"   AND NOT EXISTS (SELECT 1 FROM iceml.runs r"
					"                    WHERE r.study_id OPERATOR(pg_catalog.=) s.id"
					"                      AND r.status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']))"
					" ORDER BY s.id FOR NO KEY UPDATE SKIP LOCKED",
					0, NULL, NULL, NULL);
	ids = palloc(sizeof(int64) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		Datum		d;

		SpiGetDatum(i, 1, &d);
		ids[i] = DatumGetInt64(d);
	}
	for (uint64 i = 0; i < n; i++)
	{
		arg = Int64GetDatum(ids[i]);
		if (SpiExec("WITH t AS (SELECT r.id, r.model_id, r.status,"
				"                  (m.metrics OPERATOR(pg_catalog.->>) 'log_loss')::float8 AS loss,"
				"                  (m.metrics OPERATOR(pg_catalog.->>) 'accuracy')::float8 AS acc,"
				"                  (m.metrics OPERATOR(pg_catalog.->>) 'roc_auc')::float8 AS auc"
				"             FROM iceml.runs r LEFT JOIN iceml.models m ON m.id OPERATOR(pg_catalog.=) r.model_id"
				"            WHERE r.study_id OPERATOR(pg_catalog.=) $1),"
				"     s AS (SELECT * FROM iceml.studies WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
				"             AND NOT EXISTS (SELECT 1 FROM t WHERE t.status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']))),"
				"     best AS (SELECT t.id, t.model_id FROM t, s WHERE t.model_id IS NOT NULL"
				"               ORDER BY CASE s.metric WHEN 'val_log_loss' THEN t.loss"
				"                                      WHEN 'val_auc' THEN -t.auc ELSE -t.acc END NULLS LAST, t.id LIMIT 1)"
				" UPDATE iceml.studies st SET finished_at = pg_catalog.now(),"
				"        status = CASE WHEN EXISTS (SELECT 1 FROM best) THEN 'succeeded' ELSE 'failed' END,"
				"        best_run = (SELECT id FROM best), best_model = (SELECT model_id FROM best)"
				"   FROM s WHERE st.id OPERATOR(pg_catalog.=) s.id"
				" RETURNING st.best_run",
				1, &type, &arg, NULL) == 1)
		{
			Datum		best;

			/* the best trial is offered for deployment as its "deploy" says */
			if (SpiGetDatum(0, 1, &best))
				SpiExec("SELECT iceml._deploy_if_better($1, true)", 1, &type, &best, NULL);
		}
	}
	pfree(ids);
}

int
ReapOrphanedRuns(void)
{
	IcemlOwnerContext own;
	uint64		n;

	if (XactReadOnly || RecoveryInProgress())
		return 0;

	/*
	 * A fresh look at pg_stat_activity: a snapshot taken earlier in this
	 * transaction (iceml.wait() runs in one) would miss workers that claimed
	 * their run since, and reap them alive.  A worker is in the backend table
	 * before it claims, so a claim this statement sees has its worker there.
	 */
	pgstat_clear_snapshot();
	SPI_connect();
	BecomeCatalogOwner(&own);
	n = SpiExec("UPDATE iceml.runs r SET status = 'failed', finished_at = pg_catalog.now(),"
				"       error = pg_catalog.format('the worker (pid %s) ended without finishing the run:"
				" it was killed, crashed or the server restarted; iceml.resume(%s) continues"
				" from the last checkpoint', r.worker_pid, r.id)"
				" WHERE r.status OPERATOR(pg_catalog.=) 'running'"
				"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
				"                    WHERE a.pid OPERATOR(pg_catalog.=) r.worker_pid"
				"                      AND a.backend_start OPERATOR(pg_catalog.=) r.worker_start)",
				0, NULL, NULL, NULL);
	/* pipeline runs likewise: the step under way is marked with the reason */
	SpiExec("WITH p AS (UPDATE iceml.pipeline_runs r SET status = 'failed', finished = pg_catalog.now(),"
			"       error = pg_catalog.format('the pipeline worker (pid %s) ended without finishing the run:"
			" it was killed, crashed or the server restarted', r.worker_pid)"
			" WHERE r.status OPERATOR(pg_catalog.=) 'running'"
			"   AND r.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
			"                   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
			"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
			"                    WHERE a.pid OPERATOR(pg_catalog.=) r.worker_pid"
			"                      AND a.backend_start OPERATOR(pg_catalog.=) r.worker_start)"
			" RETURNING r.id)"
			" UPDATE iceml.pipeline_steps s SET status = 'failed', finished = pg_catalog.now(),"
			"        sqlstate = '57P01', error = 'the pipeline worker ended during this step'"
			"   FROM p WHERE s.run_id OPERATOR(pg_catalog.=) p.id"
			"    AND s.status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running'])",
			0, NULL, NULL, NULL);
	/* studies whose last trials were among them, or were cancelled */
	FinishStudies(0);
	RestoreUser(&own);
	SPI_finish();
	return (int) n;
}

/*
 * Claim run `id` for this worker: under the claim lock, check the cluster
 * budget and the study's parallel limit, then move it from queued to
 * running.  Returns false when the run is not ours to train (already
 * claimed, cancelled, or no room: it stays queued).
 */
static bool
ClaimRun(int64 id)
{
	IcemlOwnerContext own;
	Datum		args[3];
	Oid			types[3] = {INT8OID, INT4OID, TIMESTAMPTZOID};
	bool		ok = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	LockClaims();

	if (ClaimedWorkers() < iceml_max_workers)
	{
		SPI_connect();
		BecomeCatalogOwner(&own);
		args[0] = Int64GetDatum(id);
		args[1] = Int32GetDatum(MyProcPid);
		args[2] = TimestampTzGetDatum(MyStartTimestamp);
		ok = SpiExec("UPDATE iceml.runs r SET status = 'running',"
					 "       started_at = COALESCE(r.started_at, pg_catalog.now()),"
					 "       worker_pid = $2, worker_start = $3, error = NULL"
					 " WHERE r.id OPERATOR(pg_catalog.=) $1 AND r.status OPERATOR(pg_catalog.=) 'queued'"
					 "   AND (r.study_id IS NULL OR"
					 "        (SELECT pg_catalog.count(*) FROM iceml.runs x"
					 "          WHERE x.study_id OPERATOR(pg_catalog.=) r.study_id"
					 "            AND x.status OPERATOR(pg_catalog.=) 'running')"
					 "        OPERATOR(pg_catalog.<) (SELECT s.parallel FROM iceml.studies s"
					 "                                 WHERE s.id OPERATOR(pg_catalog.=) r.study_id))",
					 3, types, args, NULL) == 1;
		RestoreUser(&own);
		SPI_finish();
	}
	if (ok)
	{
		char		appname[NAMEDATALEN];

		snprintf(appname, sizeof(appname), ICEML_APPNAME_PREFIX "%lld", (long long) id);
		pgstat_report_appname(appname);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return ok;
}

/* ---- the worker ---------------------------------------------------------- */

void
iceml_worker_main(Datum main_arg)
{
	int64		id = DatumGetInt64(main_arg);
	IcemlWorkerExtra extra;

	memcpy(&extra, MyBgworkerEntry->bgw_extra, sizeof(extra));

	/* SIGTERM sets ProcDiePending; training notices it between batches */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(extra.database, extra.login_role, 0);

	if (!ClaimRun(id))
		proc_exit(0);

	TrainRunInWorker(id, extra.role);

	/* hand the freed slot to the next queued run of this database */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_appname("iceml launcher");
	LaunchQueuedRuns();
	PopActiveSnapshot();
	CommitTransactionCommand();
	proc_exit(0);
}
