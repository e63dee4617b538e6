/*
 * supervisor.c - the job supervisor: worker slots in shared memory, and one
 * static background worker that moves the queue when iceml is preloaded.
 *
 * Shape.  One supervisor per cluster, not one per database: a background
 * worker is bound to one database for life, a database with a connected
 * backend cannot be dropped, and the databases that have iceml are not
 * known when the postmaster registers static workers.  So the supervisor
 * (like autovacuum's launcher) connects to no database; it reads
 * pg_database and visits a database by starting a short-lived worker there
 * ("iceml jobs <db>") that reaps orphaned runs, ends finished studies,
 * starts queued runs and exits.  A visit takes a few milliseconds and holds
 * no connection in between, so DROP DATABASE never waits for long.
 *
 * When it visits.  Once every database when it starts (after a server start
 * or crash: runs of the dead server are marked failed before anyone looks);
 * a database when a session of it asks (a worker found no slot at commit) or
 * a trainer of it exits; every database that was left with queued runs when
 * a trainer anywhere frees its slot; and, as a safety net, every database
 * with unfinished runs once a minute.  In between it sleeps on its latch,
 * which trainers and committing sessions set.
 *
 * Slots.  A trainer takes one of iceml.max_workers slots in shared memory
 * before it claims its run and gives it back when it exits (on_shmem_exit:
 * also on FATAL; a crash resets shared memory).  Nothing a session can set
 * (application_name, pg_stat_activity) counts.
 *
 * Without preloading there is neither shared memory nor supervisor: trainers
 * are counted among the background workers of type "iceml train" that have
 * claimed a run, and iceml.train()/iceml.wait() move the queue (the lazy
 * path, src/jobs/worker.c).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "catalog/pg_database.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "iceml.h"
#include "iceml_worker.h"

#define MAX_SLOTS	64			/* iceml.max_workers' maximum */
#define MAX_DBS		128
#define SAFETY_NAP_MS	60000L
#define RETRY_NAP_MS	1000L

typedef struct TrainerSlot
{
	pid_t		pid;			/* 0: free */
	Oid			database;
	int64		run_id;
} TrainerSlot;

typedef struct DatabaseState
{
	Oid			database;		/* InvalidOid: unused entry */
	bool		visit;			/* asked for a visit */
	bool		queued;			/* left with queued runs at the last visit */
	bool		active;			/* left with queued or running runs */
} DatabaseState;

typedef struct JobsShared
{
	slock_t		mutex;
	Latch	   *supervisor;		/* NULL while no supervisor runs */
	bool		visit_all;		/* a database fell out of the table */
	bool		slot_freed;		/* since the last round */
	TrainerSlot slots[MAX_SLOTS];
	DatabaseState dbs[MAX_DBS];
} JobsShared;

static JobsShared *jobs = NULL;
static int	my_slot = -1;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void iceml_supervisor_main(Datum arg);

bool
JobsSupervised(void)
{
	return jobs != NULL;
}

/* the state of `db`, added if new; NULL (and visit_all) when full. Locked. */
static DatabaseState *
DatabaseEntry(Oid db)
{
	DatabaseState *free_entry = NULL;

	for (int i = 0; i < MAX_DBS; i++)
	{
		if (jobs->dbs[i].database == db)
			return &jobs->dbs[i];
		if (free_entry == NULL && jobs->dbs[i].database == InvalidOid)
			free_entry = &jobs->dbs[i];
	}
	if (free_entry == NULL)
	{
		jobs->visit_all = true;
		return NULL;
	}
	memset(free_entry, 0, sizeof(*free_entry));
	free_entry->database = db;
	return free_entry;
}

/*
 * Ask the supervisor to visit database `db` (visit), or note that it has
 * runs waiting for a slot (queued); sets its latch.  Nothing when iceml is
 * not preloaded.
 */
void
WakeSupervisor(Oid db, bool visit, bool queued)
{
	Latch	   *latch;

	if (jobs == NULL)
		return;
	SpinLockAcquire(&jobs->mutex);
	{
		DatabaseState *e = DatabaseEntry(db);

		if (e)
		{
			e->visit |= visit;
			e->queued |= queued;
			e->active |= queued;
		}
	}
	latch = jobs->supervisor;
	SpinLockRelease(&jobs->mutex);
	if (latch)
		SetLatch(latch);
}

/* ---- trainer slots -------------------------------------------------------- */

static void
SlotExit(int code, Datum arg)
{
	ReleaseTrainerSlot(true);
}

/*
 * Take a slot for run `run_id`; false when all iceml.max_workers are taken.
 * Preloaded only (see TrainerRoom for the other case).
 */
bool
TakeTrainerSlot(int64 run_id)
{
	int			taken = 0;
	int			free_slot = -1;

	Assert(jobs != NULL && my_slot < 0);
	SpinLockAcquire(&jobs->mutex);
	for (int i = 0; i < MAX_SLOTS; i++)
	{
		if (jobs->slots[i].pid != 0)
			taken++;
		else if (free_slot < 0)
			free_slot = i;
	}
	if (taken < Min(iceml_max_workers, MAX_SLOTS) && free_slot >= 0)
	{
		jobs->slots[free_slot].pid = MyProcPid;
		jobs->slots[free_slot].database = MyDatabaseId;
		jobs->slots[free_slot].run_id = run_id;
		my_slot = free_slot;
	}
	SpinLockRelease(&jobs->mutex);
	if (my_slot < 0)
		return false;
	{
		static bool registered = false;

		if (!registered)
			on_shmem_exit(SlotExit, (Datum) 0);
		registered = true;
	}
	return true;
}

/*
 * Give the slot back (if held); `wake`: tell the supervisor that the queue
 * may move (a trainer's end), else (a claim that found nothing) not.
 */
void
ReleaseTrainerSlot(bool wake)
{
	if (jobs == NULL || my_slot < 0)
		return;
	SpinLockAcquire(&jobs->mutex);
	jobs->slots[my_slot].pid = 0;
	jobs->slot_freed |= wake;
	SpinLockRelease(&jobs->mutex);
	my_slot = -1;
	if (wake)
		WakeSupervisor(MyDatabaseId, true, false);
}

/* Free slots now (preloaded), for a visit that starts queued runs. */
int
TrainerSlotsFree(void)
{
	int			taken = 0;

	SpinLockAcquire(&jobs->mutex);
	for (int i = 0; i < MAX_SLOTS; i++)
		if (jobs->slots[i].pid != 0)
			taken++;
	SpinLockRelease(&jobs->mutex);
	return Max(Min(iceml_max_workers, MAX_SLOTS) - taken, 0);
}

/*
 * A visit of `db` (iceml_visit_main, src/jobs/worker.c) found runs `queued`
 * (waiting for a slot) and `active` (queued or running).
 */
void
SupervisorVisited(Oid db, bool queued, bool active)
{
	SpinLockAcquire(&jobs->mutex);
	{
		DatabaseState *e = DatabaseEntry(db);

		if (e)
		{
			e->queued = queued;
			e->active = active;
		}
	}
	SpinLockRelease(&jobs->mutex);
}

/* Start a visit of `db` and wait for it to end; false if no worker slot. */
static bool
Visit(Oid db, bool startup)
{
	BackgroundWorkerHandle *h;

	if (!RegisterIcemlWorker("iceml_visit_main", "iceml jobs", psprintf("iceml jobs %u", db),
							 ObjectIdGetDatum(db), &startup, sizeof(bool), true, &h))
		return false;
	(void) WaitForBackgroundWorkerShutdown(h);
	pfree(h);
	return true;
}

/* The databases a first round visits: every one that takes connections. */
static List *
AllDatabases(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		if (d->datallowconn)
		{
			/* the list outlives the transaction */
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			dbs = lappend_oid(dbs, d->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return dbs;
}

/*
 * The databases this round visits: asked for; left with queued runs when a
 * slot was freed; with unfinished runs on the safety round.  Entries of
 * dropped databases are forgotten.
 */
static List *
DatabasesToVisit(bool safety_round)
{
	List	   *dbs = NIL;
	bool		freed;

	SpinLockAcquire(&jobs->mutex);
	freed = jobs->slot_freed;
	jobs->slot_freed = false;
	for (int i = 0; i < MAX_DBS; i++)
	{
		DatabaseState *e = &jobs->dbs[i];

		if (e->database == InvalidOid)
			continue;
		if (e->visit || (freed && e->queued) || (safety_round && e->active))
			dbs = lappend_oid(dbs, e->database);
		e->visit = false;
	}
	SpinLockRelease(&jobs->mutex);

	/* DROP DATABASE leaves its entry behind */
	StartTransactionCommand();
	{
		ListCell   *lc;

		foreach(lc, dbs)
		{
			Oid			db = lfirst_oid(lc);

			if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(db)))
			{
				SpinLockAcquire(&jobs->mutex);
				for (int i = 0; i < MAX_DBS; i++)
					if (jobs->dbs[i].database == db)
						jobs->dbs[i].database = InvalidOid;
				SpinLockRelease(&jobs->mutex);
				dbs = foreach_delete_current(dbs, lc);
			}
		}
	}
	CommitTransactionCommand();
	return dbs;
}

/*
 * Work asked for since the round began: waiting for a visit to end resets
 * the latch, so its wake-ups are found here, not by WaitLatch.
 */
static bool
WorkPending(void)
{
	bool		pending;

	SpinLockAcquire(&jobs->mutex);
	pending = jobs->visit_all;
	for (int i = 0; i < MAX_DBS && !pending; i++)
		pending = jobs->dbs[i].database != InvalidOid &&
			(jobs->dbs[i].visit || (jobs->slot_freed && jobs->dbs[i].queued));
	SpinLockRelease(&jobs->mutex);
	return pending;
}

static void
WakeAtExit(int code, Datum arg)
{
	WakeSupervisor(MyDatabaseId, true, false);
}

/*
 * A worker that holds no slot (a pipeline's) asks for a visit of its
 * database when it exits, however it exits: a run it left 'running' is
 * reaped then.
 */
void
WakeSupervisorAtExit(void)
{
	if (jobs != NULL)
		on_shmem_exit(WakeAtExit, (Datum) 0);
}

static void
SupervisorExit(int code, Datum arg)
{
	SpinLockAcquire(&jobs->mutex);
	jobs->supervisor = NULL;
	SpinLockRelease(&jobs->mutex);
}

void
iceml_supervisor_main(Datum arg)
{
	bool		first = true;
	TimestampTz last_safety = GetCurrentTimestamp();

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	/* shared catalogs only (pg_database): no database to keep from DROP */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&jobs->mutex);
	jobs->supervisor = MyLatch;
	SpinLockRelease(&jobs->mutex);
	on_shmem_exit(SupervisorExit, (Datum) 0);

	for (;;)
	{
		List	   *dbs;
		ListCell   *lc;
		bool		all_done = true;
		bool		safety;
		bool		visit_all;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* reset first: a wake-up during the round makes another round */
		ResetLatch(MyLatch);

		safety = TimestampDifferenceExceeds(last_safety, GetCurrentTimestamp(), SAFETY_NAP_MS);
		if (safety)
			last_safety = GetCurrentTimestamp();
		SpinLockAcquire(&jobs->mutex);
		visit_all = jobs->visit_all;
		jobs->visit_all = false;
		SpinLockRelease(&jobs->mutex);

		dbs = (first || visit_all) ? AllDatabases() : DatabasesToVisit(safety);
		foreach(lc, dbs)
		{
			pgstat_report_activity(STATE_RUNNING, "visiting a database");
			if (!Visit(lfirst_oid(lc), first))
			{
				/* no background worker slot: again soon */
				WakeSupervisor(lfirst_oid(lc), true, false);
				all_done = false;
				break;
			}
		}
		list_free(dbs);
		first = first && !all_done;
		pgstat_report_activity(STATE_IDLE, NULL);

		if (all_done && WorkPending())
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 all_done ? SAFETY_NAP_MS : RETRY_NAP_MS, PG_WAIT_EXTENSION);
	}
}

/* ---- set-up ---------------------------------------------------------------- */

static void
JobsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(JobsShared)));
}

static void
JobsShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jobs = ShmemInitStruct("iceml jobs", sizeof(JobsShared), &found);
	if (!found)
	{
		memset(jobs, 0, sizeof(JobsShared));
		SpinLockInit(&jobs->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init: shared memory and the supervisor, when preloaded. */
void
SupervisorInit(void)
{
	BackgroundWorker w;

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = JobsShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = JobsShmemStartup;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "iceml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "iceml_supervisor_main", BGW_MAXLEN);
	strlcpy(w.bgw_name, "iceml supervisor", BGW_MAXLEN);
	strlcpy(w.bgw_type, "iceml supervisor", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}
