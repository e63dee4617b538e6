/*
 * worker.c - the queue: launching workers at commit, claiming a run,
 * reaping orphans, and the training worker's main; plus the SPI and
 * transaction helpers every iceml worker uses.
 *
 * The path of a run, from iceml.train() to a model.  It crosses from SQL
 * into C once, at the gate; plpgsql appears only where a study builds its
 * trials (src/sql/42_studies.sql) and where a stored model is deployed
 * (iceml._deploy_if_better, src/sql/50_predict.sql).
 *
 *   iceml.train()             the gate (src/catalog.c) becomes the catalog
 *                             owner and calls its implementation
 *   iceml._train()            C (src/jobs/runs.c): JobsMaintain (the lazy path
 *                             only), the architecture's spec, QueueRun:
 *                             the dataset (iceml._dataset_info), the
 *                             hyperparameters (src/jobs/hyperparams.c), spec,
 *                             limits and channels; INSERT 'queued';
 *                             LaunchAtCommit
 *   COMMIT                    WorkerXactCallback registers the worker
 *   iceml_worker_main         ClaimRun: a trainer slot (src/jobs/supervisor.c)
 *                             and the run's row
 *     TrainRunInWorker        src/jobs/train.c: LoadJob (the same hyperparameter
 *                             parser), ReadDataset, the epochs (RecordEpoch,
 *                             AshaStops), FinishRun (src/jobs/run_record.c:
 *                             the model, iceml._deploy_if_better, and
 *                             FinishStudies in src/jobs/studies.c)
 *   exit                      the slot goes back and wakes the supervisor,
 *                             which starts the next queued run
 *
 * iceml.tune() and iceml.ablation_study() make their trials in plpgsql and
 * queue each with iceml._queue_run(), the same QueueRun.
 *
 * A run is a row in iceml.runs.  iceml.train() inserts it as 'queued' and
 * asks for a worker when the transaction commits (a rolled-back call starts
 * nothing).  The worker claims the run under a cluster-wide lock, within
 * iceml.max_workers and its study's parallel limit; a run that finds no
 * room, or no free background worker slot, stays queued.  With iceml
 * preloaded the supervisor starts it when a slot frees; without, the next
 * worker that finishes in its database, or the next iceml.train() or
 * iceml.wait() there (the lazy path, JobsMaintain).
 *
 * A claimed worker records its pid and start time in the run; a run whose
 * worker is no longer alive with that start time is marked failed by
 * ReapOrphanedRuns().  It also names itself 'iceml train <id>' in
 * pg_stat_activity, for people: no budget counts that name.
 */
#include "postgres.h"

#include "commands/extension.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "iceml.h"
#include "iceml_worker.h"

ClaimedRunHook claimed_run_hook = NULL;

#define ICEML_APPNAME_PREFIX "iceml train "
#define ICEML_WORKER_TYPE "iceml train"

PGDLLEXPORT void iceml_worker_main(Datum main_arg);
PGDLLEXPORT void iceml_visit_main(Datum arg);

/* ---- launching at commit ------------------------------------------------- */

typedef struct PendingLaunch
{
	int64		id;
	int			nest_level;		/* subtransaction that asked */
	IcemlWorkerExtra extra;		/* who the worker connects and acts as */
	bool		pipeline;		/* a pipeline run (src/jobs/pipeline.c), else a training run */
} PendingLaunch;

static List *pending_launches = NIL;	/* in TopMemoryContext */

static int	StartQueued(uint64 n, bool pipeline);

static bool
StartWorker(int64 id, IcemlWorkerExtra *extra, bool pipeline)
{
	BackgroundWorkerHandle *handle;

	/* pipeline workers mostly wait: they are not counted as trainers */
	return RegisterIcemlWorker(pipeline ? "iceml_pipeline_main" : "iceml_worker_main",
							   pipeline ? "iceml pipeline" : ICEML_WORKER_TYPE,
							   psprintf("iceml %s %lld", pipeline ? "pipeline" : "train", (long long) id),
							   Int64GetDatum(id), extra, sizeof(*extra), false, &handle);
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
	{
		/* the supervisor tries again when it can (preloaded) */
		WakeSupervisor(MyDatabaseId, true, true);
		ereport(WARNING,
				(errmsg("no free background worker slot for %d iceml run(s); they stay queued", failed),
				 JobsSupervised() ?
				 errdetail("The iceml supervisor starts them when a background worker slot is free.") :
				 errdetail("A queued run starts when another iceml run finishes, or at the next iceml.train() or iceml.wait()."),
				 errhint("Raise max_worker_processes (restart required) or lower the load of other background workers.")));
	}
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
	SupervisorInit();
}

/* ---- room for trainers ---------------------------------------------------- */

/*
 * Without preloading (no shared memory): the background workers of type
 * "iceml train" that have claimed a run, anywhere in the cluster.  The type
 * is set at registration, which no client session can do; the name
 * 'iceml train <id>' is set by the worker's own code once it has claimed
 * (and tells a claimed worker from one that is still starting).
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

/* How many more runs may start training now. */
static int
TrainerRoom(void)
{
	if (JobsSupervised())
		return TrainerSlotsFree();
	return Max(iceml_max_workers - ClaimedWorkers(), 0);
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

	room = TrainerRoom();
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

	started += StartQueued(n, false);
	SPI_finish();
	return started;
}

/* Queued and running runs and pipeline runs of this database.  SPI connected. */
JobsQueueState
QueueState(void)
{
	IcemlOwnerContext own;
	JobsQueueState st = {0, 0};
	Datum		d;

	BecomeCatalogOwner(&own);
	SpiExec("SELECT (SELECT pg_catalog.count(*) FROM iceml.runs"
			"         WHERE status OPERATOR(pg_catalog.=) 'queued')"
			"     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM iceml.pipeline_runs"
			"         WHERE status OPERATOR(pg_catalog.=) 'queued' AND NOT cancel_requested),"
			"       (SELECT pg_catalog.count(*) FROM iceml.runs"
			"         WHERE status OPERATOR(pg_catalog.=) 'running')"
			"     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM iceml.pipeline_runs"
			"         WHERE status OPERATOR(pg_catalog.=) 'running')",
			0, NULL, NULL, NULL);
	SpiGetDatum(0, 1, &d);
	st.queued = DatumGetInt64(d);
	SpiGetDatum(0, 2, &d);
	st.running = DatumGetInt64(d);
	RestoreUser(&own);
	return st;
}

/*
 * Mark runs and pipeline runs whose worker is gone as failed, with the
 * reason; `startup`: the supervisor's first look after a server start or
 * crash, when no worker of before can be alive.  Returns how many runs.
 */
int
ReapOrphanedRuns(bool startup)
{
	IcemlOwnerContext own;
	uint64		n;
	Datum		arg = CStringGetTextDatum(startup ?
										  "the server restarted or crashed while it ran" :
										  "it was killed, crashed or the server restarted");
	Oid			type = TEXTOID;

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
				" %s; iceml.resume(%s) continues from the last checkpoint', r.worker_pid, $1, r.id)"
				" WHERE r.status OPERATOR(pg_catalog.=) 'running'"
				"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
				"                    WHERE a.pid OPERATOR(pg_catalog.=) r.worker_pid"
				"                      AND a.backend_start OPERATOR(pg_catalog.=) r.worker_start)",
				1, &type, &arg, NULL);
	/* pipeline runs likewise: the step under way is marked with the reason */
	SpiExec("WITH p AS (UPDATE iceml.pipeline_runs r SET status = 'failed', finished = pg_catalog.now(),"
			"       error = pg_catalog.format('the pipeline worker (pid %s) ended without finishing the run:"
			" %s', r.worker_pid, $1)"
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
			1, &type, &arg, NULL);
	/* studies whose last trials were among them, or were cancelled */
	FinishStudies(0);
	RestoreUser(&own);
	SPI_finish();
	return (int) n;
}

/*
 * The lazy path: without the supervisor (iceml not preloaded), reap
 * orphans and start queued runs now.  With it, nothing: the supervisor
 * does both without being asked.  Needs a transaction.
 */
int
JobsMaintain(void)
{
	int			reaped;

	if (JobsSupervised())
		return 0;
	reaped = ReapOrphanedRuns(false);
	LaunchQueuedRuns();
	return reaped;
}

/*
 * Claim run `id` for this worker: under the claim lock, take a trainer slot
 * and check the study's parallel limit, then move the run from queued to
 * running.  Returns false when the run is not ours to train (already
 * claimed, cancelled, or no room: it stays queued, and the supervisor
 * knows this database waits for a slot).
 */
static bool
ClaimRun(int64 id)
{
	IcemlOwnerContext own;
	Datum		args[3];
	Oid			types[3] = {INT8OID, INT4OID, TIMESTAMPTZOID};
	bool		ok = false;
	bool		room;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	LockClaims();

	room = JobsSupervised() ? TakeTrainerSlot(id) : ClaimedWorkers() < iceml_max_workers;
	if (room)
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
	else
		WakeSupervisor(MyDatabaseId, false, true);
	if (ok)
	{
		char		appname[NAMEDATALEN];

		snprintf(appname, sizeof(appname), ICEML_APPNAME_PREFIX "%lld", (long long) id);
		pgstat_report_appname(appname);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (!ok && room && JobsSupervised())
	{
		/* not ours (cancelled, claimed, its study full): the slot goes back */
		ReleaseTrainerSlot(false);
		WakeSupervisor(MyDatabaseId, false, true);
	}
	return ok;
}

/* ---- the supervisor's visit: one database, then exit ---------------------- */

/*
 * bgw_main_arg is the database, bgw_extra a bool: the supervisor's first
 * round (runs of a server that is gone are reaped with that reason).
 */
void
iceml_visit_main(Datum arg)
{
	Oid			db = DatumGetObjectId(arg);
	bool		startup;
	bool		queued = false;
	bool		active = false;

	memcpy(&startup, MyBgworkerEntry->bgw_extra, sizeof(bool));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* the bootstrap superuser: catalog work switches to the catalog owner */
	BackgroundWorkerInitializeConnectionByOid(db, InvalidOid, 0);
	pgstat_report_appname("iceml jobs");

	WorkerBeginTx();
	if (OidIsValid(get_extension_oid("iceml", true)))
	{
		JobsQueueState st;

		ReapOrphanedRuns(startup);
		(void) LaunchQueuedRuns();
		st = QueueState();
		queued = st.queued > 0;
		active = st.queued + st.running > 0;
	}
	WorkerEndTx();

	SupervisorVisited(db, queued, active);
	proc_exit(0);
}

/* ---- the worker ---------------------------------------------------------- */

void
iceml_worker_main(Datum main_arg)
{
	IcemlWorkerExtra extra;
	int64		id = WorkerConnect(&extra);

	if (!ClaimRun(id))
		proc_exit(0);

	/* a run the scale-out placed on a node is followed there, not trained here */
	if (!(claimed_run_hook && claimed_run_hook(id, extra.role)))
		TrainRunInWorker(id, extra.role);

	/* the slot goes back and the supervisor starts the next queued run */
	ReleaseTrainerSlot(true);
	if (!JobsSupervised())
	{
		/* the lazy path: hand the freed slot to this database's queue */
		WorkerBeginTx();
		pgstat_report_appname("iceml launcher");
		LaunchQueuedRuns();
		WorkerEndTx();
	}
	proc_exit(0);
}
